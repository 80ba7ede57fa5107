"""Payload builders for the restricted-unpickler tests.

Every hostile payload here is harmless: if one ever fired, its only effect would be to create
a canary file under a pytest tmp path (``builtins.open(canary, 'w')``, ``touch canary``).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

TORCH_MAGIC = 0x1950A86A20F9469CFC6C


class Reduce:
    """Pickles as ``fn(*args)``: exactly the REDUCE a malicious ``__reduce__`` would emit."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args


def fragment(value: Any) -> bytes:
    """Opcodes pushing ``value`` (protocol 3, no PROTO, no STOP), to splice into a pickle."""
    return pickle.dumps(value, protocol=3)[2:-1]


def _short_unicode(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def global_ref(module: str, name: str) -> bytes:
    """A whole protocol-4 pickle whose value is the global ``module`` + ``name`` (STACK_GLOBAL)."""
    return b"\x80\x04" + _short_unicode(module) + _short_unicode(name) + b"\x93."


def call(module: str, name: str, *args: Any, protocol: int = 4) -> bytes:
    """A whole pickle calling ``module.name(*args)``, naming the global verbatim."""
    if protocol >= 4:
        head = global_ref(module, name)[:-1]
    else:
        head = b"\x80" + bytes([protocol]) + b"c" + f"{module}\n{name}\n".encode()
    return head + fragment(args) + b"R."


def canary_call(canary: Any, protocol: int = 4) -> bytes:
    """``builtins.open(canary, 'w')``: creates the canary file if it ever runs."""
    return call("builtins", "open", str(canary), "w", protocol=protocol)


def storage_pid(
    type_name: str = "FloatStorage",
    key: Any = "0",
    location: Any = "cpu",
    numel: Any = 1,
    view: Any = None,
    module: str = "torch",
    kind: Any = "storage",
) -> bytes:
    """The main pickle of a legacy torch stream: one storage persistent id (BINPERSID)."""
    return (
        b"\x80\x02("
        + fragment(kind)
        + f"c{module}\n{type_name}\n".encode()
        + b"".join(fragment(v) for v in (key, location, numel, view))
        + b"tQ."
    )


def raw_storage(count: int, data: bytes) -> bytes:
    """One storage's raw record: little-endian int64 element count, then the bytes."""
    return struct.pack("<q", count) + data


def torch_stream(
    main: bytes,
    keys: Any,
    raw: bytes = b"",
    *,
    magic: Any = TORCH_MAGIC,
    version: Any = 1001,
    little_endian: Any = True,
) -> bytes:
    """A torch legacy stream (``torch.save(..., _use_new_zipfile_serialization=False)``)."""
    sys_info = {
        "protocol_version": 1001,
        "little_endian": little_endian,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    header = b"".join(pickle.dumps(v, protocol=2) for v in (magic, version, sys_info))
    return header + main + pickle.dumps(keys, protocol=2) + raw


def float_stream(values: list[float], key: str = "0", location: str = "cpu") -> bytes:
    """A valid stream holding one FloatStorage with ``values``."""
    data = struct.pack(f"<{len(values)}f", *values)
    return torch_stream(
        storage_pid("FloatStorage", key, location, len(values)),
        [key],
        raw_storage(len(values), data),
    )
