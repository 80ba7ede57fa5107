"""The safe artifact format: pickle-free encoding of the objects ML flows keep.

A blob is one valid safetensors file. Tensors and numpy arrays are safetensors tensors;
the object structure is a JSON manifest (in the ``__metadata__`` entry ``"safeart"``) that
names allowed classes, safeart's own value codecs and references to allowed functions (looked
up, never called) -- never a call. Loading audits everything first, then rebuilds only what
the :class:`~safeart.Policy` allows::

    blob = safeart.dumps(model)
    model = safeart.loads(blob, allow=[Net])

The format is specified in ``safeart/format/SPEC.md``.
"""

from .api import FORMAT_VERSION, audit, dumps, is_safeart, load_file, loads, save_file
from .report import AuditReport, ClassRef

__all__ = [
    "FORMAT_VERSION",
    "AuditReport",
    "ClassRef",
    "audit",
    "dumps",
    "is_safeart",
    "load_file",
    "loads",
    "save_file",
]
