"""Metaflow artifact encodings: the names, and which ones are pickle or safeart.

Metaflow records an ``encoding`` per artifact (``TaskDataStore``'s ``_info[name]``);
every safeart reader (the loader, the run scanner, the serializer plugin, enforcement)
decides what a blob is from it, here::

    from safeart.metaflow.encodings import SAFEART_ENCODING, encoding_of, is_pickle

    encoding = encoding_of(task_info.get("model"))   # the legacy default when unrecorded
    if is_pickle(encoding): ...                      # scan + restricted unpickle
    elif is_safeart(encoding): ...                   # safeart.loads (SAFEART_ENCODING only)

Free of Metaflow imports (the plugin and every Metaflow process import it).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional


#: Metaflow ``encoding`` of a safeart artifact: one blob, exactly ``safeart.format.dumps``
#: output. The blob carries its own format version; this suffix versions the Metaflow
#: layout and bumps only if that changes.
SAFEART_ENCODING = "safeart-v1"
#: Every safeart layout, known to this safeart or not, starts with this.
SAFEART_PREFIX = "safeart-"
#: The encodings Metaflow's pickle serializer reads (``PickleSerializer._ENCODINGS``).
PICKLE_ENCODINGS = frozenset({"pickle-v2", "pickle-v4", "gzip+pickle-v2", "gzip+pickle-v4"})
#: What Metaflow assumes for artifacts recorded without an encoding (very old runs).
LEGACY_ENCODING = "gzip+pickle-v2"


def is_pickle(encoding: str) -> bool:
    """True for an encoding Metaflow's pickle serializer reads (a pickled artifact)."""
    return encoding in PICKLE_ENCODINGS


def is_safeart(encoding: str) -> bool:
    """True for any safeart layout (``safeart-*``), including ones newer than
    :data:`SAFEART_ENCODING` that this safeart refuses as unsupported."""
    return encoding.startswith(SAFEART_PREFIX)


def encoding_of(info: Optional[Mapping[str, Any]]) -> str:
    """The encoding recorded in one artifact's datastore info (``{"encoding": ...}``), or
    :data:`LEGACY_ENCODING` when none is recorded."""
    encoding = (info or {}).get("encoding")
    return str(encoding) if encoding else LEGACY_ENCODING
