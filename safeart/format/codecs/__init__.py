"""Value codecs: safeart's own, versioned code that turns a value of one exact type into plain
state and back (manifest kind ``val``, format version 2).

The manifest names the codec (``c``, checked against the policy like a class) and the codec
version (``cv``); the builder calls the codec registered here under that name, never anything
the blob names. The contract for codec authors (the codec table is in
``safeart/format/SPEC.md``):

* ``encode(obj)`` returns *state*: values the format stores natively (literals, containers,
  arrays, tensors, values of other codecs, functions/classes, allowed objects); the writer
  encodes it recursively, so sharing and object paths work through codecs.
* ``decode(state, version)`` receives the state already built and must treat it as hostile:
  check every type, shape and length, call only public constructors on validated data,
  never look up or call anything the state holds. ``TypeError``/``ValueError`` become a
  ``FormatError`` naming the object path.

Codec modules are imported eagerly and must not import their library at import time, so
dispatch (by the exact ``module.qualname`` of a type) never imports anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Codec", "CODECS", "codec_for_type", "codec_named", "type_name"]


@dataclass(frozen=True)
class Codec:
    """One codec: how a value of the exact types ``types`` is stored as state.

    Attributes:
        name: ``module.qualname`` recorded in the manifest (``c`` is it split at the last
            dot); a policy entry of this name (``class`` or ``callable``) is required to load.
        types: Exact ``type(obj)`` names it encodes (see :func:`type_name`); empty for a
            codec the writer picks itself (``torch_extra.BUFFER``), whose decode guarantees
            the type it returns.
        version: The version ``encode`` writes; ``decode`` reads every version 1..version.
        encode: obj -> state; raises ``EncodeError(message, hint=...)`` for variants it
            does not support.
        decode: (built state, version) -> obj.
        reason: Why rebuilding this type from its state is safe (goes into the docs).
    """

    name: str
    types: tuple[str, ...]
    version: int
    encode: Callable[[Any], Any]
    decode: Callable[[Any, int], Any]
    reason: str


def type_name(obj_type: type) -> str:
    """The name a codec lists in ``types`` for ``obj_type``: ``module.qualname``."""
    return f"{obj_type.__module__}.{obj_type.__qualname__}"


#: Codec modules of this package, each exporting ``CODECS``. A module that is not present
#: (library codecs are added by separate work) is skipped; any other import error is a bug.
_MODULES = ("stdlib", "torch_extra", "numpy_extra", "pandas", "sklearn")


def _load() -> list[Codec]:
    codecs: list[Codec] = []
    for short in _MODULES:
        full = f"{__name__}.{short}"
        try:
            module = importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise
            continue
        codecs.extend(module.CODECS)
    return codecs


def _index(codecs: list[Codec]) -> tuple[dict[str, Codec], dict[str, Codec]]:
    by_name: dict[str, Codec] = {}
    by_type: dict[str, Codec] = {}
    for codec in codecs:
        if (not codec.reason or type(codec.version) is not int or codec.version < 1
                or codec.name in by_name or any(t in by_type for t in codec.types)):
            raise RuntimeError(f"codec {codec.name!r}: needs a reason, a version >= 1, and a "
                               "name and types no other codec uses")
        by_name[codec.name] = codec
        by_type.update(dict.fromkeys(codec.types, codec))
    return by_name, by_type


#: Every registered codec (stdlib first, then the library ones that are present).
CODECS: list[Codec] = _load()
_BY_NAME, _BY_TYPE = _index(CODECS)


def codec_for_type(obj_type: type) -> Codec | None:
    """The codec that encodes values of exactly ``obj_type``, or None (never imports)."""
    return _BY_TYPE.get(type_name(obj_type))


def codec_named(name: str) -> Codec | None:
    """The codec recorded as ``name`` (``module.qualname``) in a manifest, or None."""
    return _BY_NAME.get(name)
