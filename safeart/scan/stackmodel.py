"""The walker's model of the unpickler's stack and memo, replayed only when it is asked for.

Validating a pickle needs no values: :class:`~safeart.scan.walker.Walker` checks structure and
limits without one. Two answers do need them: the names ``STACK_GLOBAL`` pops (literal strings
pushed, memoized, fetched or duplicated before it), and the first stack/memo inconsistency (a
pop below a MARK, a GET of an index never stored). :class:`StackModel` replays the opcodes the
walker accepted, in the order it accepted them (a joblib inline array makes the walk jump, so
the walk is a list of segments), and stops as soon as the answer asked for is known: after the
last ``STACK_GLOBAL`` to name, or at the end of the walk. Values it does not track (numbers,
containers, call results) are :data:`UNKNOWN`.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any, Sequence

from .opcodes import COUNTED, FIXED, LINE, NONE, OPS, TWO_LINES, c_int

if TYPE_CHECKING:
    from .walker import ImportOp


UNKNOWN = object()  # a stack value the model does not track

# Effects on the stack and memo.
(_NOTHING, _PUSH, _TEXT, _UNICODE, _POPS, _MARK_PUSH, _TO_MARK, _MARK, _POP, _DUP, _PUT, _GET,
 _GLOBAL) = range(13)
_EFFECTS = {
    _PUSH: {"NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG",
            "LONG1", "LONG4", "FLOAT", "BINFLOAT", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT",
            "EMPTY_SET", "GLOBAL", "EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER", "STRING",
            "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
            "BYTEARRAY8"},
    _TEXT: {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"},
    _UNICODE: {"UNICODE"},
    _POPS: {"TUPLE1", "TUPLE2", "TUPLE3", "APPEND", "SETITEM", "BUILD", "REDUCE", "NEWOBJ",
            "NEWOBJ_EX", "BINPERSID", "READONLY_BUFFER"},
    _GLOBAL: {"STACK_GLOBAL"},
    _MARK_PUSH: {"TUPLE", "LIST", "DICT", "FROZENSET", "OBJ", "INST"},
    _TO_MARK: {"APPENDS", "SETITEMS", "ADDITEMS", "POP_MARK"},
    _MARK: {"MARK"}, _POP: {"POP"}, _DUP: {"DUP"},
    _PUT: {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"},
    _GET: {"GET", "BINGET", "LONG_BINGET"},
}
# name -> (values popped, values pushed) of the _POPS opcodes.
_POPPED = {"TUPLE1": (1, 1), "TUPLE2": (2, 1), "TUPLE3": (3, 1), "APPEND": (1, 0),
           "SETITEM": (2, 0), "BUILD": (1, 0), "REDUCE": (2, 1), "NEWOBJ": (2, 1),
           "NEWOBJ_EX": (3, 1), "BINPERSID": (1, 1), "READONLY_BUFFER": (1, 1),
           "STACK_GLOBAL": (2, 1)}
_EFFECT_OF = {name: effect for effect, names in _EFFECTS.items() for name in names}
#: opcode byte -> (argument kind, size, effect, values popped, values pushed).
_TABLE = {code: (kind, size, _EFFECT_OF.get(name, _NOTHING), *_POPPED.get(name, (0, 0)))
          for code, (name, kind, size) in OPS.items()}


class StackModel:
    """Stack, marks and memo after the opcodes replayed so far (see the module docstring)."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        #: First inconsistency met (offset, message), if any.
        self.semantic: tuple[int, str] | None = None
        self._stack: list[object] = []
        self._marks: list[int] = []
        self._memo: dict[int, object] = {}
        self._segment = 0  # index of the segment being replayed
        self._pos: int | None = None  # where in it (None: at its start)
        self._named = 0  # STACK_GLOBAL opcodes named so far

    def replay(self, segments: Sequence[tuple[int, int]], stack_globals: Sequence["ImportOp"],
               want: int | None) -> None:
        """Replay the walk (``segments``, in order) until the first ``want`` of
        ``stack_globals`` (the walk's STACK_GLOBAL opcodes, in order) are named, or to the end
        of the walk when ``want`` is None."""
        while self._segment < len(segments):
            if want is not None and self._named >= want:
                return
            start, stop = segments[self._segment]
            pos = start if self._pos is None else self._pos
            self._pos = self._replay(pos, stop, stack_globals, want)
            if self._pos < stop or self._segment == len(segments) - 1:
                return  # paused on a name, or at the end of the walk so far
            self._segment, self._pos = self._segment + 1, None

    def _note(self, p: int, message: str) -> None:
        if self.semantic is None:
            self.semantic = (p, message)

    def _pop(self, p: int, n: int) -> list[object]:
        stack = self._stack
        fence = self._marks[-1] if self._marks else 0
        if len(stack) - n < fence:
            self._note(p, "stack underflow")
            taken = stack[fence:]
            del stack[fence:]
            return [UNKNOWN] * (n - len(taken)) + taken
        taken = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return taken

    def _pop_mark(self, p: int) -> None:
        if not self._marks:
            self._note(p, "no MARK on the stack")
            return
        del self._stack[self._marks.pop():]

    def _replay(self, p: int, stop: int, stack_globals: Sequence["ImportOp"],  # noqa: C901
                want: int | None) -> int:
        """Apply the (validated) opcodes in ``[p, stop)``; returns where it stopped."""
        buf, stack, memo, table = self.buf, self._stack, self._memo, _TABLE
        while p < stop:
            kind, size, effect, pops, pushes = table[buf[p]]
            q = p + 1
            arg: Any = None
            if kind == FIXED:
                arg = int.from_bytes(buf[q:q + size], "little")
                q += size
            elif kind == COUNTED:
                width = -size if size < 0 else size
                n = int.from_bytes(buf[q:q + width], "little", signed=size < 0)
                q += width
                arg = (q, n)
                q += n
            elif kind == LINE:
                nl = buf.find(b"\n", q, stop)
                arg, q = bytes(buf[q:nl]), nl + 1
            elif kind == TWO_LINES:
                q = buf.find(b"\n", buf.find(b"\n", q, stop) + 1, stop) + 1
            if effect == _PUSH:
                stack.append(UNKNOWN)
            elif effect == _TEXT:
                try:
                    stack.append(codecs.decode(buf[arg[0]:arg[0] + arg[1]], "utf-8",
                                               "surrogatepass"))
                except UnicodeDecodeError:
                    stack.append(UNKNOWN)
            elif effect == _PUT:
                idx = len(memo) if kind == NONE else c_int(arg) if kind == LINE else arg
                memo[idx] = stack[-1] if stack else UNKNOWN
            elif effect == _GET:
                idx = c_int(arg) if kind == LINE else arg
                if idx not in memo:
                    self._note(p, f"memo index {idx} was never stored")
                stack.append(memo.get(idx, UNKNOWN))
            elif effect == _MARK:
                self._marks.append(len(stack))
            elif effect == _POPS:
                self._pop(p, pops)
                if pushes:
                    stack.append(UNKNOWN)
            elif effect == _MARK_PUSH:
                self._pop_mark(p)
                stack.append(UNKNOWN)
            elif effect == _TO_MARK:
                self._pop_mark(p)
            elif effect == _POP:
                if len(stack) > (self._marks[-1] if self._marks else 0):
                    stack.pop()
                else:
                    self._pop_mark(p)
            elif effect == _DUP:
                stack.append(stack[-1] if stack else UNKNOWN)
            elif effect == _UNICODE:
                try:
                    stack.append(codecs.raw_unicode_escape_decode(arg)[0])
                except UnicodeDecodeError:
                    stack.append(UNKNOWN)
            elif effect == _GLOBAL:
                module, name = self._pop(p, 2)
                op = stack_globals[self._named]
                op.module = module if isinstance(module, str) else None
                op.name = name if isinstance(name, str) else None
                self._named += 1
                stack.append(UNKNOWN)
                if want is not None and self._named >= want:
                    return q
            p = q
        return p
