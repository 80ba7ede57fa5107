"""Builds (never loads) the attacker's pickle used by this example.

If anything unpickled it, its only effect would be ``builtins.open(<canary>, "w")``: an
empty canary file appears. safeart must refuse it before that happens.
"""

import struct
from pathlib import Path


def malicious_pickle(canary: Path) -> bytes:
    """Protocol-4 opcodes for ``builtins.open(str(canary), "w")``."""
    path = str(canary).encode("utf-8")
    return (
        b"\x80\x04"                                     # PROTO 4
        + b"\x8c\x08builtins\x8c\x04open\x93"           # STACK_GLOBAL builtins.open
        + b"X" + struct.pack("<I", len(path)) + path    # BINUNICODE the canary path
        + b"\x8c\x01w"                                  # SHORT_BINUNICODE "w"
        + b"\x86R."                                     # TUPLE2, REDUCE (the call), STOP
    )
