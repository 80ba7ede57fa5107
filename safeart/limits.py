"""Resource limits shared by the decoder, the scanner and the restricted unpickler.

Every limit bounds work or memory an attacker controls through the bytes. Hitting one
is a :class:`~safeart.errors.LimitExceeded` error on load and a finding on scan, never
a crash. Limits travel inside a :class:`~safeart.policy.Policy` so that one object
configures serializer, scanner and loader alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .errors import ConfigError


_MiB = 1 << 20
_GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Upper bounds on untrusted input. All sizes are in bytes."""

    #: Largest header a reader accepts: a safetensors JSON header (manifest included), and
    #: the header of an ``.npy`` array the scanner meets inside an archive.
    max_header_bytes: int = 100 * _MiB
    #: Deepest nesting of containers/objects in a manifest or a pickle.
    max_depth: int = 200
    #: Most manifest nodes (objects, containers, values) in one blob.
    max_nodes: int = 5_000_000
    #: Most tensors in one blob.
    max_tensors: int = 1_000_000
    #: Longest string/bytes value or class name in a manifest.
    max_name_length: int = 1_000
    #: Largest input the scanner reads (after decompression) per object.
    max_scan_bytes: int = 64 * _GiB
    #: Most pickle opcodes the scanner walks per pickle stream.
    max_opcodes: int = 50_000_000
    #: Largest decompressed/compressed ratio accepted for gzip/bz2/lzma/zip members.
    max_decompression_ratio: int = 1_000
    #: Deepest recursion into nested containers/payloads (zip in gzip in pickle ...).
    max_nesting: int = 8
    #: Most members scanned inside one archive.
    max_archive_members: int = 100_000
    #: Most memory one allowlisted call may ask for from its arguments (``bytes(n)``,
    #: ``bytearray(n)``, ``frozenset(range(n))``, array shapes; see
    #: :mod:`safeart.scan.calls`). Data a pickle carries itself (tensor storages, array
    #: bytes, ``bytearray(b"...")``) is bounded by ``max_scan_bytes`` and never charged here,
    #: so this does not limit model size: real pickles call reconstructors with empty shapes.
    max_alloc_bytes: int = 4 * _GiB

    def updated(self, values: Mapping[str, Any]) -> "Limits":
        """Return a copy with ``values`` applied; unknown names or non-positive values fail."""
        known = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"unknown limit {key!r}",
                    hint=f"known limits: {', '.join(sorted(known))}",
                )
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"limit {key!r} must be a positive integer, got {value!r}")
        return replace(self, **dict(values))
