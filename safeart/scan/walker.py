"""A bounded, incremental pickle opcode walker.

The walker never builds objects. It validates opcode structure (argument lengths, lines,
memo indexes, resource limits), records every opcode that makes CPython's unpickler import
something (with its offset and the protocol in force) and tracks just enough of the stack
and memo to name ``STACK_GLOBAL`` operands that are literal strings.

It is driven *by the real unpickler*: :class:`~safeart.scan.stubs.GuardedReader` asks it to
validate bytes before handing them to ``_pickle.Unpickler``, so CPython never parses a byte
the walker has not accepted, and the walker is never ahead of CPython by more than one
opcode or frame. After CPython stops (STOP or an error) the walker finishes the stream on its
own, so imports that a parse error hid are still reported.

Framing follows ``Modules/_pickle.c`` reading from a file: a FRAME is loaded into a buffer and
any read that starts inside the buffer but does not fit in it *drops the rest of the buffer*
and reads from the file (``_Unpickler_ReadImpl``/``_Unpickler_Readline``), whereas
``pickle.loads`` parses linearly. A read straddling a frame end is therefore a parser
differential and is recorded in :attr:`Walker.straddles`.
"""

from __future__ import annotations

import codecs
import copyreg
from dataclasses import dataclass, field
from typing import Union

import mmap

from ..limits import Limits

__all__ = ["Buffer", "HOLE_MIN", "ImportOp", "Walker"]

Buffer = Union[bytes, mmap.mmap]

# Argument kinds.
_NONE, _LINE, _TWO_LINES, _FIXED, _COUNTED = range(5)

# opcode byte -> (name, kind, size): size is the fixed argument size, or the width of the
# length prefix for counted arguments (negative: signed prefix).
_OPS: dict[int, tuple[str, int, int]] = {}


def _op(code: bytes, name: str, kind: int = _NONE, size: int = 0) -> None:
    _OPS[code[0]] = (name, kind, size)


for _c, _n in [
    (b"(", "MARK"), (b".", "STOP"), (b"0", "POP"), (b"1", "POP_MARK"), (b"2", "DUP"),
    (b"N", "NONE"), (b"\x88", "NEWTRUE"), (b"\x89", "NEWFALSE"), (b")", "EMPTY_TUPLE"),
    (b"t", "TUPLE"), (b"\x85", "TUPLE1"), (b"\x86", "TUPLE2"), (b"\x87", "TUPLE3"),
    (b"]", "EMPTY_LIST"), (b"a", "APPEND"), (b"e", "APPENDS"), (b"l", "LIST"),
    (b"}", "EMPTY_DICT"), (b"d", "DICT"), (b"s", "SETITEM"), (b"u", "SETITEMS"),
    (b"\x8f", "EMPTY_SET"), (b"\x90", "ADDITEMS"), (b"\x91", "FROZENSET"), (b"b", "BUILD"),
    (b"R", "REDUCE"), (b"\x81", "NEWOBJ"), (b"\x92", "NEWOBJ_EX"), (b"o", "OBJ"),
    (b"\x93", "STACK_GLOBAL"), (b"\x94", "MEMOIZE"), (b"Q", "BINPERSID"),
    (b"\x97", "NEXT_BUFFER"), (b"\x98", "READONLY_BUFFER"),
]:
    _op(_c, _n)
for _c, _n in [(b"I", "INT"), (b"L", "LONG"), (b"F", "FLOAT"), (b"S", "STRING"),
               (b"V", "UNICODE"), (b"P", "PERSID"), (b"g", "GET"), (b"p", "PUT")]:
    _op(_c, _n, _LINE)
_op(b"c", "GLOBAL", _TWO_LINES)
_op(b"i", "INST", _TWO_LINES)
for _c, _n, _s in [(b"J", "BININT", 4), (b"K", "BININT1", 1), (b"M", "BININT2", 2),
                   (b"G", "BINFLOAT", 8), (b"h", "BINGET", 1), (b"j", "LONG_BINGET", 4),
                   (b"q", "BINPUT", 1), (b"r", "LONG_BINPUT", 4), (b"\x82", "EXT1", 1),
                   (b"\x83", "EXT2", 2), (b"\x84", "EXT4", 4), (b"\x80", "PROTO", 1),
                   (b"\x95", "FRAME", 8)]:
    _op(_c, _n, _FIXED, _s)
for _c, _n, _s in [(b"\x8a", "LONG1", 1), (b"\x8b", "LONG4", -4), (b"T", "BINSTRING", -4),
                   (b"U", "SHORT_BINSTRING", 1), (b"X", "BINUNICODE", 4),
                   (b"\x8c", "SHORT_BINUNICODE", 1), (b"\x8d", "BINUNICODE8", 8),
                   (b"B", "BINBYTES", 4), (b"C", "SHORT_BINBYTES", 1),
                   (b"\x8e", "BINBYTES8", 8), (b"\x96", "BYTEARRAY8", 8)]:
    _op(_c, _n, _COUNTED, _s)

_EXT = {"EXT1", "EXT2", "EXT4"}
_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
#: Bytes literals from this size on, read outside a FRAME, are :attr:`Walker.holes`.
HOLE_MIN = 64 * 1024
_UTF8 = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_PUSH1 = {"NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG",
          "LONG1", "LONG4", "FLOAT", "BINFLOAT", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT",
          "EMPTY_SET", "GLOBAL", "EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER",
          "STRING", "BINSTRING", "SHORT_BINSTRING"} | _BYTES
# name -> (values popped, values pushed) for opcodes that do not use the mark.
_EFFECT = {"TUPLE1": (1, 1), "TUPLE2": (2, 1), "TUPLE3": (3, 1), "APPEND": (1, 0),
           "SETITEM": (2, 0), "BUILD": (1, 0), "REDUCE": (2, 1), "NEWOBJ": (2, 1),
           "NEWOBJ_EX": (3, 1), "STACK_GLOBAL": (2, 1), "BINPERSID": (1, 1),
           "READONLY_BUFFER": (1, 1)}
_TO_MARK_PUSH = {"TUPLE", "LIST", "DICT", "FROZENSET", "OBJ", "INST"}
_TO_MARK = {"APPENDS", "SETITEMS", "ADDITEMS", "POP_MARK"}
_UNKNOWN = object()  # a stack value the walker does not track


def _c_int(line: bytes) -> int:
    """A PUT/GET index as CPython's C unpickler reads it: the line is a C string, so it ends
    at the first NUL (``b"0\\0x"`` is 0, which Python's ``int()`` refuses)."""
    return int(line.split(b"\0", 1)[0])


@dataclass(frozen=True)
class ImportOp:
    """One opcode that makes CPython's unpickler resolve a global.

    ``module``/``name`` are the names as written (before the protocol < 3 name mapping),
    None when the walker cannot see them (STACK_GLOBAL operands that are not literal
    strings, an unregistered EXT code).
    """

    offset: int
    opcode: str
    module: str | None
    name: str | None
    proto: int
    ext_code: int | None = None
    #: False when CPython resolves it without find_class (a repeated EXT code, which the
    #: extension cache serves) or cannot resolve it at all (unregistered EXT code).
    calls_find_class: bool = True


@dataclass
class Walker:
    """Walks one pickle in ``buf[start:end]``; call :meth:`advance` or :meth:`finish`."""

    buf: Buffer
    start: int
    end: int
    limits: Limits = field(default_factory=Limits)
    pos: int = field(init=False)
    #: Bytes up to here are validated and may be handed to CPython.
    frontier: int = field(init=False)
    proto: int = 0
    opcodes: int = 0
    imports: list[ImportOp] = field(default_factory=list)
    persids: list[int] = field(default_factory=list)
    #: (data offset, length) of every bytes literal.
    byte_literals: list[tuple[int, int]] = field(default_factory=list)
    #: Large bytes literals CPython reads straight from the file (not from a FRAME buffer):
    #: offset of the length prefix -> (its width, index in :attr:`byte_literals`). The
    #: reader may hand CPython a short stand-in for their content (see ``GuardedReader``).
    holes: dict[int, tuple[int, int]] = field(default_factory=dict)
    straddles: list[int] = field(default_factory=list)
    stop: int | None = None
    #: Where the next stacked pickle starts (after STOP, or after the frame holding it).
    next_start: int | None = None
    error: str | None = None
    error_offset: int | None = None
    limit: str | None = None
    #: Why CPython cannot go past :attr:`frozen_at` although the walk goes on (a FRAME
    #: running past the end, a huge memo index): later imports are still reported.
    fatal: str | None = None
    frozen_at: int | None = None

    def __post_init__(self) -> None:
        self.pos = self.frontier = self.start
        self._buf_end: int | None = None  # end of CPython's frame buffer
        self._stack: list[object] = []
        self._marks: list[int] = []
        self._memo: dict[int, object] = {}
        self._ext_seen: set[int] = set()
        self._semantic: tuple[int, str] | None = None
        self._halted = False

    # -- public ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.stop is not None or self.error is not None or self._halted

    @property
    def semantic_error(self) -> tuple[int, str] | None:
        """First stack/memo inconsistency the walker noticed (offset, message), if any."""
        return self._semantic

    def advance(self, target: int) -> None:
        """Validate opcodes until ``frontier >= target`` or the walk ends."""
        step = self._step
        while self.frontier < target and self.stop is None and self.error is None \
                and not self._halted:
            step()

    def finish(self) -> None:
        """Walk to the end of this pickle (STOP, error or limit)."""
        step = self._step
        while self.stop is None and self.error is None and not self._halted:
            step()

    def jump(self, pos: int) -> None:
        """Continue at ``pos``: bytes before it were consumed outside the pickle (joblib)."""
        self.pos = self.frontier = pos
        self._buf_end = None

    # -- internals ------------------------------------------------------------------------
    def _fail(self, offset: int, message: str) -> None:
        self.error, self.error_offset = message, offset

    def _piece(self, a: int, b: int) -> bool:
        """Account for one CPython read of ``[a, b)``; False when it runs past the end."""
        if b > self.end:
            return False
        be = self._buf_end
        if be is not None:  # inside a frame buffer
            if a >= be:
                self._buf_end = None
            elif b > be:
                self.straddles.append(a)
                self._buf_end = None
        return True

    def _line(self, a: int) -> int:
        nl = self.buf.find(b"\n", a, self.end)
        if nl < 0 or not self._piece(a, nl + 1):
            return -1
        return nl + 1

    def _step(self) -> None:
        p = self.pos
        if p >= self.end:
            return self._fail(p, "pickle data was truncated (no STOP opcode)")
        if self.opcodes >= self.limits.max_opcodes:
            self._halted = True
            return self._freeze(p, f"more than {self.limits.max_opcodes} opcodes (max_opcodes)",
                                limit=True)
        code = self.buf[p]
        spec = _OPS.get(code)
        if spec is None:
            return self._fail(p, f"invalid opcode 0x{code:02x}")
        if self._buf_end is not None:
            self._piece(p, p + 1)
        framed = self._buf_end is not None
        name, kind, size = spec
        q = p + 1
        arg: object = None
        if kind == _FIXED:
            if not self._piece(q, q + size):
                return self._fail(p, f"{name} argument truncated")
            arg = int.from_bytes(self.buf[q:q + size], "little")
            q += size
        elif kind == _COUNTED:
            width = abs(size)
            if not self._piece(q, q + width):
                return self._fail(p, f"{name} length truncated")
            n = int.from_bytes(self.buf[q:q + width], "little", signed=size < 0)
            q += width
            if n < 0:
                return self._fail(p, f"{name} has a negative length")
            if not self._piece(q, q + n):
                return self._fail(p, f"{name} declares {n} bytes past the end of the data")
            if n >= HOLE_MIN and not framed and name in _BYTES and self.frozen_at is None:
                self.holes[p + 1] = (width, len(self.byte_literals))
            arg = (q, n)
            q += n
        elif kind in (_LINE, _TWO_LINES):
            q = self._line(q)
            if q < 0:
                return self._fail(p, f"{name} line is truncated")
            if kind == _TWO_LINES:
                q2 = self._line(q)
                if q2 < 0:
                    return self._fail(p, f"{name} name line is truncated")
                arg = (bytes(self.buf[p + 1:q - 1]), bytes(self.buf[q:q2 - 1]))
                q = q2
            else:
                arg = bytes(self.buf[p + 1:q - 1])
        err = self._effect(p, q, name, arg)
        if err:
            return self._fail(p, err)
        self.opcodes += 1
        self.pos = q
        if self.frontier < q and self.frozen_at is None:
            self.frontier = q
        return None

    def _freeze(self, p: int, message: str, *, limit: bool = False) -> None:
        """CPython must not read from ``p`` on; the walk itself goes on (unless halted)."""
        if self.frozen_at is None:
            self.frozen_at = self.frontier = p
            if limit:
                self.limit = message
            else:
                self.fatal = message

    def _push(self, value: object) -> None:
        self._stack.append(value)

    def _pop(self, p: int, n: int) -> list[object]:
        fence = self._marks[-1] if self._marks else 0
        if len(self._stack) - n < fence:
            self._note(p, "stack underflow")
            taken = self._stack[fence:]
            del self._stack[fence:]
            return [_UNKNOWN] * (n - len(taken)) + taken
        taken = self._stack[len(self._stack) - n:]
        del self._stack[len(self._stack) - n:]
        return taken

    def _pop_mark(self, p: int) -> None:
        if not self._marks:
            self._note(p, "no MARK on the stack")
            return
        del self._stack[self._marks.pop():]

    def _note(self, p: int, message: str) -> None:
        if self._semantic is None:
            self._semantic = (p, message)

    def _memo_index(self, p: int, idx: int) -> None:
        """Freeze before indexes CPython would allocate a huge memo array for."""
        if idx > self.opcodes + 1024:
            self._freeze(p, f"memo index {idx} is far beyond the opcode count (memory "
                         "exhaustion)", limit=True)

    def _effect(self, p: int, q: int, name: str, arg: object) -> str | None:  # noqa: C901
        """Apply one opcode to the walker state; return an error message to stop."""
        if name in _UTF8:
            a, n = arg  # type: ignore[misc]
            try:
                self._push(codecs.decode(self.buf[a:a + n], "utf-8", "surrogatepass"))
            except UnicodeDecodeError:
                self._push(_UNKNOWN)
        elif name in _PUSH1:
            if name in _BYTES:
                self.byte_literals.append(arg)  # type: ignore[arg-type]
            self._push(_UNKNOWN)
            if name == "GLOBAL":
                self._import(p, name, arg)
            elif name in _EXT:
                self._ext(p, name, arg)  # type: ignore[arg-type]
            elif name == "PERSID":
                self.persids.append(p)
        elif name == "UNICODE":
            try:
                self._push(codecs.raw_unicode_escape_decode(arg)[0])  # type: ignore[arg-type]
            except UnicodeDecodeError:
                self._push(_UNKNOWN)
        elif name in _EFFECT:
            pops, pushes = _EFFECT[name]
            taken = self._pop(p, pops)
            if name == "STACK_GLOBAL":
                mod, nm = taken
                self._record(ImportOp(p, name, mod if isinstance(mod, str) else None,
                                      nm if isinstance(nm, str) else None, self.proto))
            elif name == "BINPERSID":
                self.persids.append(p)
            if pushes:
                self._push(_UNKNOWN)
        elif name in _TO_MARK_PUSH:
            self._pop_mark(p)
            self._push(_UNKNOWN)
            if name == "INST":
                self._import(p, name, arg)
        elif name in _TO_MARK:
            self._pop_mark(p)
        elif name == "MARK":
            self._marks.append(len(self._stack))
        elif name == "POP":
            fence = self._marks[-1] if self._marks else 0
            if len(self._stack) > fence:
                self._stack.pop()
            else:
                self._pop_mark(p)
        elif name == "DUP":
            self._push(self._stack[-1] if self._stack else _UNKNOWN)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if name == "PUT":
                try:
                    idx = _c_int(arg)  # type: ignore[arg-type]
                except ValueError:
                    return "PUT index is not an integer"
            else:
                idx = len(self._memo) if name == "MEMOIZE" else arg  # type: ignore[assignment]
            self._memo_index(p, idx)  # type: ignore[arg-type]
            self._memo[idx] = self._stack[-1] if self._stack else _UNKNOWN  # type: ignore[index]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            try:
                idx = _c_int(arg) if name == "GET" else arg  # type: ignore[arg-type]
            except ValueError:
                return "GET index is not an integer"
            if idx not in self._memo:
                self._note(p, f"memo index {idx} was never stored")
            self._push(self._memo.get(idx, _UNKNOWN))  # type: ignore[arg-type]
        elif name == "PROTO":
            if arg > 5:  # type: ignore[operator]
                return f"unsupported pickle protocol {arg}"
            self.proto = arg  # type: ignore[assignment]
        elif name == "FRAME":
            self._frame(q, arg)  # type: ignore[arg-type]
        elif name == "STOP":
            self.stop = p
            be = self._buf_end
            self.next_start = be if be is not None and be > q else q
            if self.frozen_at is None:
                self.frontier = max(self.frontier, self.next_start)
        return None

    def _frame(self, q: int, n: int) -> None:
        if q + n > self.end:  # CPython refuses the frame; a pure-Python unpickler reads on
            self._freeze(q - 9, f"FRAME declares {n} bytes past the end of the data")
            return
        be = self._buf_end
        if be is not None and q < be:
            if q + n <= be:
                return  # CPython rewinds inside its current buffer
            self.straddles.append(q - 9)
        self._buf_end = q + n

    def _import(self, p: int, opcode: str, arg: object) -> None:
        raw_mod, raw_name = arg  # type: ignore[misc]
        codec = "ascii" if opcode == "INST" else "utf-8"
        try:
            mod, nm = raw_mod.decode(codec), raw_name.decode(codec)
        except UnicodeDecodeError:
            mod = nm = None
        self._record(ImportOp(p, opcode, mod, nm, self.proto))

    def _ext(self, p: int, opcode: str, code: int) -> None:
        target = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        first = code not in self._ext_seen
        self._ext_seen.add(code)
        mod, nm = target if target else (None, None)
        self._record(ImportOp(p, opcode, mod, nm, self.proto, code,
                              calls_find_class=bool(target) and first))

    def _record(self, op: ImportOp) -> None:
        self.imports.append(op)
