"""A bounded, incremental pickle opcode walker.

The walker never builds objects. It validates opcode structure (argument lengths, lines,
memo indexes, resource limits) and records every opcode that makes CPython's unpickler import
something (with its offset and the protocol in force). Its stack model
(:class:`~safeart.scan.stackmodel.StackModel`) names ``STACK_GLOBAL`` operands that are
literal strings and finds the first stack/memo inconsistency, replaying the walk when asked.

It is driven *by the real unpickler*: :class:`~safeart.scan.stubs.GuardedReader` asks it to
validate bytes before handing them to ``_pickle.Unpickler``, so CPython never parses a byte
the walker has not accepted, and the walker is never ahead of CPython by more than one
opcode or frame. After CPython stops (STOP or an error) the walker finishes the stream on its
own, so imports that a parse error hid are still reported.

Plain opcodes (:data:`~safeart.scan.opcodes.RUN`: no import, frame, bytes literal or memo index
to bound) are validated a run at a time by one regular expression match that ends at the
frame's end, so an opcode crossing it is always walked one by one. Their count, which only the
opcode and memo limits need, is taken when a limit could be near.

Framing follows ``Modules/_pickle.c`` reading from a file: a FRAME is loaded into a buffer and
any read that starts inside the buffer but does not fit in it *drops the rest of the buffer*
and reads from the file (``_Unpickler_ReadImpl``/``_Unpickler_Readline``), whereas
``pickle.loads`` parses linearly. A read straddling a frame end is therefore a parser
differential and is recorded in :attr:`Walker.straddles`.
"""

from __future__ import annotations

import copyreg
import mmap
from dataclasses import dataclass, field
from typing import Union

from ..limits import Limits
from .opcodes import (COUNTED, FIXED, LINE, OPS, PLAIN_CODES, RUN, TWO_LINES, c_int,
                      count_opcodes)
from .stackmodel import StackModel


Buffer = Union[bytes, mmap.mmap]

_EXT = {"EXT1", "EXT2", "EXT4"}
_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
#: Bytes literals from this size on, read outside a FRAME, are :attr:`Walker.holes`.
HOLE_MIN = 64 * 1024
#: Runs left uncounted before they are counted (bounds the bookkeeping's memory).
_MAX_RUNS = 4096


@dataclass(eq=False)
class ImportOp:
    """One opcode that makes CPython's unpickler resolve a global.

    ``module``/``name`` are the names as written (before the protocol < 3 name mapping),
    None when the walker cannot see them (STACK_GLOBAL operands that are not literal
    strings, an unregistered EXT code). STACK_GLOBAL operands are named by
    :meth:`Walker.finish`.
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
        self._counted = 0  # opcodes walked, but for those in the uncounted runs
        self._runs: list[tuple[int, int]] = []  # runs of plain opcodes not counted yet
        self._run_bytes = 0  # their total size: at least their opcode count
        self._segments: list[tuple[int, int]] = []  # the walk before the last jump
        self._segment_start = self.start
        self._stack_globals: list[ImportOp] = []  # to be named by the stack model
        self._model: StackModel | None = None  # made when first asked
        self._ext_seen: set[int] = set()
        self._halted = False

    # -- public ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.stop is not None or self.error is not None or self._halted

    @property
    def opcodes(self) -> int:
        """Opcodes walked so far."""
        self._count_runs()
        return self._counted

    @property
    def semantic_error(self) -> tuple[int, str] | None:
        """First stack/memo inconsistency in the walk (offset, message), if any."""
        return self._replay(None).semantic

    def advance(self, target: int) -> None:
        """Validate opcodes until ``frontier >= target`` or the walk ends."""
        while self.frontier < target and not self.done:
            if not self._run(target):
                self._step()

    def finish(self) -> None:
        """Walk to the end of this pickle (STOP, error or limit) and name the STACK_GLOBAL
        operands."""
        while not self.done:
            if not self._run(None):
                self._step()
        if self._stack_globals:
            self._replay(len(self._stack_globals))

    def jump(self, pos: int) -> None:
        """Continue at ``pos``: bytes before it were consumed outside the pickle (joblib)."""
        if self.pos > self._segment_start:
            self._segments.append((self._segment_start, self.pos))
        self._segment_start = self.pos = self.frontier = pos
        self._buf_end = None

    # -- internals ------------------------------------------------------------------------
    def _replay(self, want: int | None) -> StackModel:
        if self._model is None:
            self._model = StackModel(self.buf)
        walk = [*self._segments, (self._segment_start, self.pos)]
        self._model.replay(walk, self._stack_globals, want)
        return self._model

    def _count_runs(self) -> None:
        for a, b in self._runs:
            self._counted += count_opcodes(self.buf, a, b)
        self._runs.clear()
        self._run_bytes = 0

    def _run(self, target: int | None) -> bool:
        """Validate a run of plain opcodes at :attr:`pos` that ends within CPython's frame
        buffer (or the data) and by ``target``; False when there is none."""
        p, be = self.pos, self._buf_end
        if p >= self.end or self.buf[p] not in PLAIN_CODES:
            return False
        if be is not None and p >= be:  # CPython reads on from the file
            be = self._buf_end = None
        stop = self.end if be is None else be
        if target is not None and self.frozen_at is None and target < stop:
            stop = target  # an opcode crossing the target is walked on its own, as ever
        if self._counted + self._run_bytes + stop - p > self.limits.max_opcodes:
            self._count_runs()  # the opcode limit may be within reach: walk one by one
            if self._counted + stop - p > self.limits.max_opcodes:
                return False
        e = RUN.match(self.buf, p, stop).end()  # type: ignore[union-attr]
        if e == p:
            return False
        self._runs.append((p, e))
        self._run_bytes += e - p
        if len(self._runs) >= _MAX_RUNS:
            self._count_runs()
        self.pos = e
        if self.frozen_at is None:
            self.frontier = e
        return True

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
        """Validate the one opcode at :attr:`pos`."""
        p = self.pos
        if p >= self.end:
            return self._fail(p, "pickle data was truncated (no STOP opcode)")
        limit = self.limits.max_opcodes
        if self._counted + self._run_bytes >= limit:
            self._count_runs()
            if self._counted >= limit:
                self._halted = True
                return self._freeze(p, f"more than {limit} opcodes (max_opcodes)", limit=True)
        code = self.buf[p]
        spec = OPS.get(code)
        if spec is None:
            return self._fail(p, f"invalid opcode 0x{code:02x}")
        if self._buf_end is not None:
            self._piece(p, p + 1)
        framed = self._buf_end is not None
        name, kind, size = spec
        q = p + 1
        arg: object = None
        if kind == FIXED:
            if not self._piece(q, q + size):
                return self._fail(p, f"{name} argument truncated")
            arg = int.from_bytes(self.buf[q:q + size], "little")
            q += size
        elif kind == COUNTED:
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
        elif kind in (LINE, TWO_LINES):
            q = self._line(q)
            if q < 0:
                return self._fail(p, f"{name} line is truncated")
            if kind == TWO_LINES:
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
        self._counted += 1
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

    def _memo_index(self, p: int, idx: int) -> None:
        """Freeze before indexes CPython would allocate a huge memo array for."""
        if idx > self._counted + 1024:
            self._count_runs()
            if idx > self._counted + 1024:
                self._freeze(p, f"memo index {idx} is far beyond the opcode count (memory "
                             "exhaustion)", limit=True)

    def _effect(self, p: int, q: int, name: str, arg: object) -> str | None:  # noqa: C901
        """Record what one opcode means for the scan; return an error message to stop.
        (Its effect on the stack and memo is the stack model's.)"""
        if name in _BYTES:
            self.byte_literals.append(arg)  # type: ignore[arg-type]
        elif name in ("GLOBAL", "INST"):
            self._import(p, name, arg)
        elif name == "STACK_GLOBAL":
            op = ImportOp(p, name, None, None, self.proto)
            self._stack_globals.append(op)
            self.imports.append(op)
        elif name in _EXT:
            self._ext(p, name, arg)  # type: ignore[arg-type]
        elif name in ("PERSID", "BINPERSID"):
            self.persids.append(p)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            try:
                idx = c_int(arg) if name == "PUT" else arg  # type: ignore[arg-type]
            except ValueError:
                return "PUT index is not an integer"
            self._memo_index(p, idx)  # type: ignore[arg-type]
        elif name == "GET":
            try:
                c_int(arg)  # type: ignore[arg-type]
            except ValueError:
                return "GET index is not an integer"
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
        self.imports.append(ImportOp(p, opcode, mod, nm, self.proto))

    def _ext(self, p: int, opcode: str, code: int) -> None:
        target = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        first = code not in self._ext_seen
        self._ext_seen.add(code)
        mod, nm = target if target else (None, None)
        self.imports.append(ImportOp(p, opcode, mod, nm, self.proto, code,
                                     calls_find_class=bool(target) and first))
