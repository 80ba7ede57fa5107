"""The pickle opcode set as the walker reads it, and the runs of opcodes it validates in bulk.

Argument layouts come from the standard library's own table (:mod:`pickletools`): a fixed size,
a line, two lines (``GLOBAL``/``INST``), or a count prefix of 1, 4 (signed or not) or 8 bytes
followed by that many bytes, as ``Modules/_pickle.c`` reads them.

:data:`RUN` matches a run of *plain* opcodes: opcodes whose only effect on the walk is to be
there, in the stack model aside (no import, persistent id, bytes literal, frame, protocol, STOP,
memo index that needs a bound check, or line that needs parsing). Each opcode byte starts
exactly one alternative, and a counted argument is spelled out per length (below 256: a count
prefix whose other bytes are zero), so the match is the one and only opcode parse of those
bytes; the run stops before any opcode that is not plain, is longer, or does not fit before
``endpos``. A LONG_BINPUT below index 1024 is plain too: the walker bounds memo indexes by the
opcode count + 1024.
"""

from __future__ import annotations

import pickletools
import re


# Argument kinds.
NONE, LINE, TWO_LINES, FIXED, COUNTED = range(5)

# pickletools' ArgumentDescriptor.n for counted arguments -> width of the count prefix
# (negative: signed).
_COUNT_WIDTH = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: -4,
                pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def _layout(op: pickletools.OpcodeInfo) -> tuple[int, int]:
    arg = op.arg
    if arg is None:
        return NONE, 0
    if arg.n == pickletools.UP_TO_NEWLINE:
        return (TWO_LINES if arg.name == "stringnl_noescape_pair" else LINE), 0
    if arg.n > 0:
        return FIXED, arg.n
    return COUNTED, _COUNT_WIDTH[arg.n]


#: opcode byte -> (name, argument kind, size): size is the fixed argument size, or the width
#: of the count prefix for counted arguments (negative: signed prefix).
OPS: dict[int, tuple[str, int, int]] = {
    ord(op.code): (op.name, *_layout(op)) for op in pickletools.opcodes
}

_PLAIN = {
    "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE", "TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "APPEND", "APPENDS", "LIST", "EMPTY_DICT",
    "DICT", "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS", "FROZENSET", "BUILD", "REDUCE",
    "NEWOBJ", "NEWOBJ_EX", "OBJ", "MEMOIZE", "NEXT_BUFFER", "READONLY_BUFFER",
    "BININT", "BININT1", "BININT2", "BINFLOAT", "BINGET", "LONG_BINGET", "BINPUT",
    "SHORT_BINUNICODE", "BINUNICODE", "SHORT_BINSTRING", "BINSTRING", "LONG1", "INT", "LONG",
    "FLOAT", "STRING", "UNICODE",
}


_LONG_BINPUT = next(code for code, (name, _, _) in OPS.items() if name == "LONG_BINPUT")
#: The opcode bytes that start a plain opcode (a LONG_BINPUT is one below index 1024).
PLAIN_CODES = frozenset(code for code, (name, _, _) in OPS.items() if name in _PLAIN) | {
    _LONG_BINPUT}


def _class(codes: list[int]) -> bytes:
    return b"[" + b"".join(re.escape(bytes([c])) for c in codes) + b"]"


def _any(n: int) -> bytes:
    """``n`` bytes, whatever they are (spelled out when short: the engine runs that faster)."""
    return b"." * n if n < 10 else b".{%d}" % n


def _plain_alternatives(repeat_bare: bytes) -> bytes:
    """One plain opcode, as alternatives by argument layout (bare opcodes first, followed by
    ``repeat_bare``; lines, rare past protocol 0, last)."""
    by_layout: dict[tuple[int, int], list[int]] = {}
    for code, (name, kind, size) in OPS.items():
        if name in _PLAIN:
            by_layout.setdefault((kind, size), []).append(code)
    alts = []
    for (kind, size), codes in sorted(by_layout.items(), key=lambda item: (
            item[0][0] == LINE, item[0][0], abs(item[0][1]), item[0][1])):
        head = _class(codes)
        if kind == NONE:
            alts.append(head + repeat_bare)
        elif kind == FIXED:
            alts.append(head + _any(size))
        elif kind == LINE:
            alts.append(head + b"[^\n]*\n")
        else:  # a count prefix: each length below 256 spelled out, longer ones walked alone
            zeros = b"\x00" * (abs(size) - 1)
            lengths = b"|".join(re.escape(bytes([n]) + zeros) + _any(n) for n in range(256))
            alts.append(head + b"(?:" + lengths + b")")
    # LONG_BINPUT below 1024: the walker's bound on memo indexes (the opcode count + 1024)
    # holds whatever the count.
    alts.insert(-1, re.escape(bytes([_LONG_BINPUT])) + b".[\x00-\x03]\x00\x00")
    return b"(?:" + b"|".join(alts) + b")"


#: A run of plain opcodes (possibly empty); ``RUN.match(buf, pos, endpos).end()``. (Possessive:
#: the parse is unique, so there is nothing to backtrack to.)
RUN = re.compile(_plain_alternatives(b"++") + b"*+", re.DOTALL)
_ONE: list[re.Pattern[bytes]] = []  # one plain opcode: compiled when first counted


def count_opcodes(buf: object, start: int, end: int) -> int:
    """How many opcodes the run ``buf[start:end]`` (matched by :data:`RUN`) holds."""
    if not _ONE:
        _ONE.append(re.compile(_plain_alternatives(b""), re.DOTALL))
    return _ONE[0].subn(b"", buf[start:end])[1]  # type: ignore[index]


def c_int(line: bytes) -> int:
    """A PUT/GET index as CPython's C unpickler reads it: the line is a C string, so it ends
    at the first NUL (``b"0\\0x"`` is 0, which Python's ``int()`` refuses)."""
    return int(line.split(b"\0", 1)[0])
