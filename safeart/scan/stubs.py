"""Drive CPython's own ``_pickle.Unpickler`` over a pickle without building anything real.

:class:`StubUnpickler` overrides ``find_class`` and ``persistent_load`` to return *inert
stubs*, so CPython's real parser runs (no parser differential with the victim's loader) while
nothing named in the pickle is ever imported or called. Stubs are classes (NEWOBJ requires a
type) of :class:`_StubMeta`; calling one, ``__new__``, ``__setstate__``, ``append``,
``extend``, ``add`` and ``__setitem__`` all accept anything and keep nothing. Every call
returns the one shared :data:`Opaque` stub (or a lazy ``range``), so memo and DUP tricks cannot
make the scanner allocate more than the unpickler itself does. Every call is reported to
:meth:`Hooks.called` with its real literal arguments, which grades what it may allocate
(:mod:`safeart.scan.calls`).

A few stubs act, through :class:`Hooks`: ``torch.storage._load_from_bytes`` hands its bytes
argument to a nested scan, ``joblib``'s ``NumpyArrayWrapper`` skips (or scans) the inline
array that follows its BUILD, ``numpy.dtype`` models the dtype numpy builds (object or not,
item size: :mod:`~safeart.scan.joblib_arrays`) and
``_codecs.encode(text, 'latin1')`` returns the bytes protocol 2 pickles spell that way.

:class:`GuardedReader` is the file CPython reads from: it only hands out bytes that the
:class:`~safeart.scan.walker.Walker` has validated, and it has no ``peek`` so CPython reads
exactly what each opcode needs.
"""

from __future__ import annotations

import _pickle
import contextvars
import copyreg
import io
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..pickle_facts import compat_name
from .joblib_arrays import DTypeRecord, WrapperRecord
from .walker import ImportOp, Walker


_HOOKS: contextvars.ContextVar["Hooks"] = contextvars.ContextVar("safeart_scan_hooks")
#: Size of what CPython reads in place of a large bytes literal (:class:`GuardedReader`).
STAND_IN_SIZE = 24
#: Distinct stub classes shared by all runs, and again per run; past both, imports share
#: :data:`UNNAMED`.
_MAX_NAMED_STUBS = 10_000


class Hooks(Protocol):
    """What the acting stubs report to (one per stub unpickler run)."""

    def load_from_bytes(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """``torch.storage._load_from_bytes`` was called with ``args``."""

    def joblib_array(self, wrapper: WrapperRecord) -> None:
        """BUILD of a joblib ``NumpyArrayWrapper`` (its attributes merged); consume the
        inline array joblib reads after it."""

    def storage_called(self, name: str) -> None:
        """A ``torch.<X>Storage`` type was called rather than used as a tag."""

    def encode_latin1(self, text: str) -> bytes:
        """``_codecs.encode(text, 'latin1')``: one bytes object per string object, so calls
        repeated through the memo cannot multiply memory."""

    def called(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               new: bool) -> Any:
        """The stub for ``name`` is called (``new``: as ``cls.__new__(cls, *args)``, by
        NEWOBJ/NEWOBJ_EX/OBJ/INST without arguments); returns the value the call stands
        for when the scanner models it (``range(...)``), else None."""


class _StubMeta(type):
    """Metaclass of every stub: accepts every operation the unpickler performs."""

    _sa_name: str
    _sa_role: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _act(cls, args, kwargs, False)

    def __setstate__(cls, state: Any) -> None:
        pass

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass

    def append(cls, item: Any) -> None:
        pass

    def extend(cls, items: Any) -> None:
        pass

    def add(cls, item: Any) -> None:
        pass

    def __repr__(cls) -> str:
        return f"<stub {cls._sa_name}>"


class _Stub(metaclass=_StubMeta):
    _sa_name = "<anonymous>"
    _sa_role = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # NEWOBJ / NEWOBJ_EX / OBJ
        return _act(cls, args, kwargs, True)


def _make(name: str, role: str = "") -> type:
    short = name.rsplit(".", 1)[-1].replace("\0", "\\0")  # type names cannot hold NUL
    return _StubMeta(short, (_Stub,), {"_sa_name": name, "_sa_role": role})


#: What every call on a stub returns.
Opaque: type = _make("<result of a call>")
#: What an import gets past the stub capacity (its name is lost); calling it is graded.
UNNAMED: type = _make("<unnamed import>")

_ROLES = {
    "torch.storage._load_from_bytes": "load-from-bytes",
    "_codecs.encode": "codecs-encode",
    "joblib.numpy_pickle.NumpyArrayWrapper": "joblib-wrapper",
    "numpy.dtype": "dtype",
}


class _JoblibArray(WrapperRecord):
    """A ``NumpyArrayWrapper`` instance: each BUILD merges its state, then joblib reads the
    inline array (:mod:`~safeart.scan.joblib_arrays`)."""

    def __setstate__(self, state: Any) -> None:
        self.build(state)
        _HOOKS.get().joblib_array(self)


def _act(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any], new: bool) -> Any:
    modelled = _HOOKS.get().called(cls._sa_name, args, kwargs, new)  # type: ignore[attr-defined]
    if modelled is not None:
        return modelled
    role = cls._sa_role  # type: ignore[attr-defined]
    if role == "load-from-bytes":
        _HOOKS.get().load_from_bytes(args, kwargs)
    elif role == "codecs-encode":
        if (len(args) == 2 and not kwargs and type(args[0]) is str
                and args[1] in ("latin1", "latin-1")):
            return _HOOKS.get().encode_latin1(args[0])
    elif role == "joblib-wrapper":
        return _JoblibArray.made(args, kwargs, new)
    elif role == "dtype":
        return DTypeRecord(args, kwargs)
    elif role == "storage-type":
        _HOOKS.get().storage_called(cls._sa_name)  # type: ignore[attr-defined]
    return Opaque


def stub_name(obj: Any) -> str | None:
    """The global a stub stands for (``torch.FloatStorage``), None for non-stubs."""
    return obj._sa_name if isinstance(obj, _StubMeta) else None


class GuardedReader:
    """The file object CPython reads: validated bytes only, no ``peek``, seekable.

    Large bytes literals (the walker's :attr:`~Walker.holes`: tensor storages, array data)
    are not copied into CPython: their length prefix is read as :data:`STAND_IN_SIZE` and
    their content as a stand-in naming the literal (:meth:`literal_of`), so CPython parses
    the very same opcodes into a bytes object of the same type and the reader moves on
    past the real content. Stubs never look inside bytes; the one hook that does
    (``_load_from_bytes``) scans the literal in place in the walker's buffer. The stand-in
    starts with 16 random bytes drawn per reader, so pickle data cannot forge one.
    """

    def __init__(self, walker: Walker) -> None:
        self.walker = walker
        self.pos = walker.start
        self._view = memoryview(walker.buf)
        self.ext_guard = _ExtensionCacheGuard()
        self._nonce: bytes | None = None  # drawn when the first stand-in is handed out
        self._hole: tuple[int, int] | None = None  # (literal index, its data offset)

    def _avail(self, n: int) -> int:
        w = self.walker
        w.advance(self.pos + n)
        if w.imports and w.imports[-1].opcode.startswith("EXT"):
            self.ext_guard.engage()
        return max(0, min(n, w.frontier - self.pos))

    def read(self, n: int = -1) -> bytes:
        hole = self.walker.holes.get(self.pos)
        if hole is not None and n == hole[0]:  # the length prefix of a large literal
            data_at = self.walker.byte_literals[hole[1]][0]
            self._hole, self.pos = (hole[1], data_at), data_at
            return STAND_IN_SIZE.to_bytes(n, "little")
        n = self._avail(n if n >= 0 else self.walker.end - self.pos)
        data = self.walker.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    def readinto(self, b: Any) -> int:
        hole, self._hole = self._hole, None
        if hole is not None and hole[1] == self.pos and len(b) == STAND_IN_SIZE:
            if self._nonce is None:
                self._nonce = os.urandom(16)
            memoryview(b).cast("B")[:] = self._nonce + hole[0].to_bytes(8, "little")
            self.pos += self.walker.byte_literals[hole[0]][1]
            return STAND_IN_SIZE
        n = self._avail(len(b))
        memoryview(b).cast("B")[:n] = self._view[self.pos:self.pos + n]
        self.pos += n
        return n

    def literal_of(self, data: Any) -> int | None:
        """The index in ``walker.byte_literals`` of the literal ``data`` stands in for."""
        if self._nonce is None or len(data) != STAND_IN_SIZE or bytes(data[:16]) != self._nonce:
            return None
        return int.from_bytes(data[16:], "little")

    def readline(self, size: int = -1) -> bytes:
        self._avail(1)
        nl = self.walker.buf.find(b"\n", self.pos, self.walker.frontier)
        stop = self.walker.frontier if nl < 0 else nl + 1
        data = self.walker.buf[self.pos:stop]
        self.pos = stop
        return data

    def seek(self, pos: int) -> None:
        self.pos = pos
        self._hole = None

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self._view.release()



class _ExtensionCacheGuard:
    """Empties ``copyreg._extension_cache`` while a pickle with EXT opcodes is parsed.

    CPython serves repeated EXT codes from that process-wide cache without calling
    ``find_class``: a real object cached by an earlier genuine load would otherwise reach
    the stub world. The cache is restored afterwards (stubs never stay in it).
    """

    _lock = threading.RLock()

    def __init__(self) -> None:
        self._saved: dict[Any, Any] | None = None

    def engage(self) -> None:
        if self._saved is None:
            self._lock.acquire()
            cache = copyreg._extension_cache  # type: ignore[attr-defined]
            self._saved = dict(cache)
            cache.clear()

    def release(self) -> None:
        if self._saved is not None:
            cache = copyreg._extension_cache  # type: ignore[attr-defined]
            cache.clear()
            cache.update(self._saved)
            self._saved = None
            self._lock.release()


@dataclass
class FindClassCall:
    """One ``find_class`` call CPython made, matched to the walker opcode that caused it."""

    module: str
    name: str
    #: The name really imported (after the protocol < 3 mapping).
    resolved: tuple[str, str]
    op: ImportOp | None


class _Recorder(_pickle.Unpickler):
    """CPython's C unpickler; every import and persistent id goes to the stub world."""

    def __init__(self, file: Any, run: "StubUnpickler") -> None:
        super().__init__(file, encoding="latin1")
        self._run = run

    def find_class(self, module: str, name: str) -> Any:
        return self._run.find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        self._run.persistent_ids.append(pid)
        return Opaque


#: Stub classes are stateless (a name and a role), so they are shared by every run.
_STUBS: dict[str, type] = {}
#: Pickles up to this size are walked first and handed to CPython in one piece.
_EAGER_MAX = 1 << 20


def _stub(full: str, local: dict[str, type]) -> type:
    """The stub for ``full``: shared by every run up to the capacity, then made per run (up
    to the capacity again: a busy process keeps naming what it calls), then :data:`UNNAMED`."""
    stub = _STUBS.get(full) or local.get(full)
    if stub is None:
        cache = _STUBS if len(_STUBS) < _MAX_NAMED_STUBS else local
        if len(cache) >= _MAX_NAMED_STUBS:
            return UNNAMED
        role = _ROLES.get(full, "")
        if not role and full.startswith("torch.") and full.endswith("Storage"):
            role = "storage-type"
        stub = cache[full] = _make(full, role)
    return stub


@dataclass
class StubUnpickler:
    """One run of CPython's unpickler over the walker's pickle, with stubs."""

    walker: Walker
    hooks: Hooks
    calls: list[FindClassCall] = field(default_factory=list)
    persistent_ids: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    result: Any = None

    def run(self) -> None:
        """Load until STOP or the first error (kept in :attr:`error`, never raised).

        Small pickles without joblib inline arrays are walked completely first and handed
        over as one in-memory file (fast); others go through a :class:`GuardedReader`, which
        validates as CPython reads, so joblib can move the read position between opcodes.
        In both cases CPython only ever sees bytes the walker accepted.
        """
        w = self.walker
        self._ops = iter(w.imports)
        self._base = w.start
        reader: Any
        if w.end - w.start <= _EAGER_MAX and w.buf.find(b"NumpyArrayWrapper", w.start, w.end) < 0:
            w.finish()
            reader = io.BytesIO(w.buf[w.start:w.frontier])
            guard = _ExtensionCacheGuard()
            if any(op.opcode.startswith("EXT") for op in w.imports):
                guard.engage()
        else:
            reader = GuardedReader(w)
            self._base = 0
            guard = reader.ext_guard
            w.advance(w.start + 1)  # what CPython's first read asks for
        self.reader = reader
        if w.frontier == w.start:  # nothing valid to hand over (most bytes are no pickle):
            self.error = EOFError("Ran out of input")  # what CPython raises on no input
            self._final = w.start
            reader.close()
            return
        token = _HOOKS.set(self.hooks)
        try:
            self.result = _Recorder(reader, self).load()
        except Exception as exc:  # noqa: BLE001 - every parse error is a finding
            self.error = exc
        finally:
            _HOOKS.reset(token)
            guard.release()
            self._final = self.position()
            reader.close()

    def position(self) -> int:
        """Where CPython's read position is (absolute offset in the walker's buffer)."""
        final = self.__dict__.get("_final")
        return final if final is not None else self._base + self.reader.tell()

    def find_class(self, module: str, name: str) -> Any:
        """Record CPython's import, matched to the walker's next import opcode."""
        op = next((o for o in self._ops if o.calls_find_class), None)
        resolved = compat_name(module, name, op.proto if op else 0)
        self.calls.append(FindClassCall(module, name, resolved, op))
        return _stub(".".join(resolved), self.__dict__.setdefault("_stubs", {}))
