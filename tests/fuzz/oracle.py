"""Oracles for fuzzing and hardening tests.

:func:`victim_imports` is what a victim could import from some bytes: CPython's own C
unpickler (``pickle.Unpickler`` subclass) called again and again on the raw bytes, as
``pickle.load`` in a loop or ``torch.load``'s legacy path would (one unpickler reused, and a
new one per pickle), and on every container layer
a loader could peel off (gzip/bz2/xz/zlib, zip and tar members, the pickle after an ``.npy``
object-array header, of any length; gzip as Python's streaming ``gzip`` reader hands it out,
joblib's legacy ZF files), and as ``joblib.load`` reads inline arrays
(:func:`joblib_imports`: the pure-Python unpickler, real ``numpy.dtype`` on literals). Its
``find_class`` records ``(module, name)`` and returns the permissive
stub of ``tests/scan/test_differential.py``; ``persistent_load`` returns it too where the
loader has one (torch's; not ``pickle.load``'s nor joblib's, which raise). Nothing named
in the bytes is ever imported or called.

:func:`unreported` compares that with a :class:`~safeart.scan.ScanResult`: a name the victim
imports that the scanner neither graded nor reported is a scanner bypass.

:class:`Watch` is an audit hook (installed once per process, armed only inside ``with``) that
records process, exec, network and write-open events and imports of modules not explicitly
expected: "nothing executed", checked by the interpreter itself.

:class:`MemoryWatch` notices an input that made the process allocate more than a bound (its
peak RSS grew past it, or an allocation failed with ``MemoryError``, however wrapped), and
:func:`cap_address_space` makes such an allocation fail instead of taking the machine down.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import resource
import sys
import tarfile
import zipfile
import zlib
from typing import Any, Iterable, Iterator

from test_differential import _Any  # the scanner tests' permissive stub, reused

from safeart.scan import ScanResult
from safeart.pickle_facts import compat_name
from safeart.scan.walker import Walker

__all__ = ["victim_imports", "joblib_imports", "unreported", "Watch", "Executed",
           "MemoryWatch", "Exhausted", "cap_address_space"]

#: Largest layer the victim model decompresses or extracts (the fuzzer's inputs are small).
MAX_LAYER = 16 << 20
_MAX_PICKLES = 64
_MAX_DEPTH = 4


class _Victim(pickle.Unpickler):
    """The C unpickler; records each import and hands out an inert stub instead.

    ``persistent``: persistent ids resolve to the stub (torch's loaders) instead of failing
    (plain ``pickle.load``).
    """

    def __init__(self, file: io.BytesIO, calls: list[tuple[str, str]], persistent: bool) -> None:
        super().__init__(file, encoding="latin1")
        self._calls = calls
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        self._calls.append((module, name))
        return _Any

    def persistent_load(self, pid: Any) -> Any:
        if not self._persistent:
            raise pickle.UnpicklingError("no persistent_load")
        return _Any


assert _Victim.__mro__[1].__module__ == "_pickle"  # CPython's C unpickler, the victim's


def _bomb_free(data: bytes) -> bytes:
    """``data`` cut where the first stacked pickle names a huge memo index (the scanner's
    walker finds it): the victim would allocate gigabytes there, the oracle stops short."""
    pos = 0
    for _ in range(_MAX_PICKLES):
        walker = Walker(data, pos, len(data))
        walker.finish()
        if walker.limit and walker.frozen_at is not None:
            return data[:walker.frozen_at]
        if walker.next_start is None or walker.next_start >= len(data):
            break
        pos = walker.next_start
    return data


def pickle_imports(data: bytes) -> list[tuple[str, str]]:
    """Every ``find_class`` call of ``load()`` repeated on ``data`` until it fails, by one
    unpickler (which goes on inside a frame after STOP) and by a new one per pickle, up to
    any memo-index bomb."""
    # A loader with persistent ids (torch) reads a file with a zip header as a zip.
    persistent = not data.startswith((b"PK\x03\x04", b"PK\x05\x06"))
    data = _bomb_free(data)
    calls: list[tuple[str, str]] = []
    for reuse in (True, False):
        stream = io.BytesIO(data)
        victim = _Victim(stream, calls, persistent)
        for _ in range(_MAX_PICKLES):
            if stream.tell() >= len(data) and not reuse:
                break
            try:
                if reuse:  # memo carry-over across loads: a known gap, not modelled here
                    victim.memo.clear()
                (victim if reuse else _Victim(stream, calls, persistent)).load()
            except Exception:  # noqa: BLE001 - a broken pickle still imported what came before
                break
    return calls


def victim_imports(data: bytes, depth: int = 0) -> list[tuple[str, str]]:
    """``(module, name)`` of every import some loader could perform on ``data``."""
    calls = pickle_imports(data)
    if b"NumpyArrayWrapper" in data:
        calls += joblib_imports(data)
    if depth < _MAX_DEPTH:
        for inner in _layers(data):
            calls += victim_imports(inner, depth + 1)
    return calls


def _layers(data: bytes) -> Iterator[bytes]:
    """Every container layer a loader could peel off ``data`` (each bounded)."""
    for wbits in (31, 15):
        yield from _attempt(lambda w=wbits: zlib.decompressobj(w).decompress(data, MAX_LAYER))
    yield from _attempt(lambda: _gzip_stream(data))
    yield from _attempt(lambda: _zfile(data))
    for factory in (bz2.BZ2Decompressor, lzma.LZMADecompressor):
        yield from _attempt(lambda f=factory: f().decompress(data, MAX_LAYER))
    yield from _attempt(lambda: _members(data))
    yield from _attempt(lambda: _tar_members(data))
    yield from _attempt(lambda: _npy_objects(data))


def _attempt(produce: Any) -> Iterator[bytes]:
    try:
        out = produce()
    except Exception:  # noqa: BLE001 - not this kind of container
        return
    for layer in out if isinstance(out, list) else [out]:
        if layer:
            yield layer


def _gzip_stream(data: bytes) -> bytes:
    """What a streaming ``gzip.GzipFile`` reader hands out (every member, NUL padding
    skipped, a bad CRC raised only after the data) before it stops."""
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as reader:
            while out.tell() < MAX_LAYER:
                chunk = reader.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
    except Exception:  # noqa: BLE001 - what came before the error was handed out
        pass
    return out.getvalue()


def _zfile(data: bytes) -> bytes:
    """``joblib.numpy_pickle_compat.read_zfile`` (bounded): joblib's legacy ZF file."""
    if not data.startswith(b"ZF") or int(data[2:21], 16) < 0:
        return b""
    start = 22 if data[21:22] == b" " else 21
    return zlib.decompressobj(15).decompress(data[start:], MAX_LAYER)


def _members(data: bytes) -> list[bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [archive.read(i) for i in archive.infolist()[:64] if i.file_size <= MAX_LAYER]


def _tar_members(data: bytes) -> list[bytes]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers()[:64]:
            if member.isfile() and member.size <= MAX_LAYER:
                out.append(tar.extractfile(member).read())  # type: ignore[union-attr]
    return out


def _npy_objects(data: bytes) -> bytes:
    from numpy.lib import format as npformat

    stream = io.BytesIO(data)
    version = npformat.read_magic(stream)
    read_header = {(1, 0): npformat.read_array_header_1_0,
                   (2, 0): npformat.read_array_header_2_0}[version]
    # what numpy.load(allow_pickle=True) reads: allow_pickle lifts max_header_size, except
    # where numpy's quadratic Python 2 fallback would parse it (the victim hangs there)
    try:
        _, _, dtype = read_header(stream)
    except ValueError:
        import ast

        stream.seek(8)
        width = 2 if version == (1, 0) else 4
        ast.literal_eval(stream.read(int.from_bytes(stream.read(width), "little")).decode(
            "latin-1"))  # SyntaxError: not modelled
        stream.seek(8)
        _, _, dtype = read_header(stream, max_header_size=2**64)
    return data[stream.tell():] if dtype.hasobject else b""


class _JoblibVictim(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """``joblib.load``'s ``NumpyUnpickler`` (the pure-Python unpickler), with the real
    ``numpy.dtype`` (called on literal arguments only, its states checked against the
    numpy bugs they could trigger) and the real ``NumpyArrayWrapper``; everything else is
    the permissive stub. After a wrapper's BUILD the inline array is read as
    ``NumpyArrayWrapper.read_array`` reads it: a fresh unpickler's load for an object dtype,
    else the array's bytes (after the alignment pad), bounded."""

    dispatch = pickle._Unpickler.dispatch.copy()  # type: ignore[attr-defined]

    def __init__(self, file: io.BytesIO, calls: list[tuple[str, str]], arrays: bool) -> None:
        super().__init__(file, encoding="latin1")
        self.file_handle, self._calls, self._arrays = file, calls, arrays

    def find_class(self, module: str, name: str) -> Any:
        self._calls.append((module, name))
        if (module, name) == ("numpy", "dtype"):
            return _literal_dtype
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            from joblib.numpy_pickle import NumpyArrayWrapper

            return NumpyArrayWrapper
        return _Any

    # persistent_load stays pickle._Unpickler's, as in joblib: a persistent id raises.

    def load_build(self) -> None:
        import numpy

        if isinstance(self.stack[-2], numpy.dtype):
            _check_dtype_state(self.stack[-1])
        super().load_build()
        from joblib.numpy_pickle import NumpyArrayWrapper

        if self._arrays and isinstance(self.stack[-1], NumpyArrayWrapper):
            self.stack[-1] = self._read_array(self.stack[-1])

    dispatch[pickle.BUILD[0]] = load_build

    def _read_array(self, wrapper: Any) -> Any:
        import numpy

        shape = wrapper.shape
        count = 1 if len(shape) == 0 else int(numpy.multiply.reduce(
            [numpy.int64(x) for x in shape]))
        if wrapper.dtype.hasobject:
            _JoblibVictim(self.file_handle, self._calls, arrays=False).load()
            return _Any
        if getattr(wrapper, "numpy_array_alignment_bytes", None) is not None:
            self.file_handle.read(self.file_handle.read(1)[0])
        size = count * wrapper.dtype.itemsize
        if not 0 <= size <= MAX_LAYER or len(self.file_handle.read(size)) != size:
            raise pickle.UnpicklingError("array data")
        return _Any


def _literal_dtype(*args: Any, **kwargs: Any) -> Any:
    import numpy

    if not all(type(a) in (str, bytes, int, bool, tuple, list, dict) for a in args) or kwargs:
        raise pickle.UnpicklingError("numpy.dtype of a non-literal: not modelled")
    return numpy.dtype(*args)


def _check_dtype_state(state: Any) -> None:
    """Refuse states numpy's ``__setstate__`` reads undefined memory for (other sizes,
    non-dtype field or subarray entries): the oracle must not corrupt its own process."""
    import numpy

    if type(state) is not tuple or len(state) not in (5, 6, 7, 8, 9) or len(state) == 6:
        raise pickle.UnpicklingError("dtype state not modelled")
    fields = state[2] if len(state) == 5 else state[4]
    subarray = state[1] if len(state) == 5 else state[2]
    entries = list(fields.values()) if type(fields) is dict else []
    if subarray is not None:
        entries.append(subarray)
    if not all(type(e) is tuple and e and isinstance(e[0], numpy.dtype) for e in entries):
        raise pickle.UnpicklingError("dtype state not modelled")


def joblib_imports(data: bytes) -> list[tuple[str, str]]:
    """Every ``find_class`` call ``joblib.load`` makes on ``data`` (joblib's own reading of
    inline arrays), up to any memo-index bomb."""
    calls: list[tuple[str, str]] = []
    try:
        _JoblibVictim(io.BytesIO(_bomb_free(data)), calls, arrays=True).load()
    except Exception:  # noqa: BLE001 - a broken pickle still imported what came before
        pass
    return calls


def unreported(data: bytes, result: ScanResult) -> list[str]:
    """Imports a victim performs on ``data`` that ``result`` does not name anywhere.

    Either spelling counts as reported: the name as written and its protocol < 3 mapping
    (the victim's protocol is not observable from ``find_class``; tests/scan's differential
    test checks the walker's raw names and protocols one by one). Names that are not dotted
    identifiers import nothing, and a scan that stopped on a limit reported that it is
    incomplete: neither is held against the scan. Nor is a read straddling a frame boundary,
    which the scan reports as a dangerous parser differential (tests/scan's differential test
    does not compare those either), nor bytes hidden after STOP inside a frame (reported
    ``unknown``): an unpickler loaded again reads them up to the frame end, then from the
    file, which the scanner does not model (a known gap, docs/adding-a-bypass.md). The reused
    unpickler's memo is cleared between loads: a memo carried over from one pickle to the
    next is the other known gap.
    """
    if any(f.kind == "limit" or (f.kind in ("trailing", "differential") and f.name == "FRAME")
           for f in result.findings):
        return []
    reported = set(result.globals) | {f.name for f in result.findings}
    missing = []
    for module, name in victim_imports(data):
        spellings = {f"{module}.{name}", ".".join(compat_name(module, name, 0))}
        if not any(_importable(n) for n in spellings):
            continue  # ModuleNotFoundError in every victim
        if not spellings & reported:
            missing.append(f"{module}.{name}")
    return missing


def _importable(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


# -- the audit hook -----------------------------------------------------------------------
_EXECUTION = {
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "subprocess.Popen", "pty.spawn", "socket.connect", "socket.bind", "webbrowser.open",
    "ctypes.dlopen", "ctypes.call_function", "os.remove", "os.rename",
    "shutil.rmtree", "shutil.copyfile", "os.chmod", "os.mkdir", "builtins.input",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Executed(AssertionError):
    """Something ran that safeart must never run on untrusted bytes."""


class Watch:
    """``with Watch(expected_modules) as seen: ...`` then ``seen.check()``.

    ``expected`` names modules (and their submodules) the code under test may import on its
    own (lazy imports of safeart and of allowlisted libraries); any other import, any event
    in :data:`_EXECUTION`, an ``exec`` of dynamic code outside an import and an ``open`` for
    writing are recorded. Run the code once before watching it, so that its own lazy
    imports are done.
    """

    _installed = False
    _active: "Watch | None" = None

    def __init__(self, expected: Iterable[str] = ()) -> None:
        self.expected = tuple(expected) + ("encodings",)
        self.events: list[str] = []
        if not Watch._installed:
            sys.addaudithook(Watch._hook)
            Watch._installed = True

    def __enter__(self) -> "Watch":
        self.events.clear()
        Watch._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        Watch._active = None

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        watch = Watch._active
        if watch is None:
            return
        if event in _EXECUTION or (event == "exec" and _is_dynamic(args[0])
                                   and not _importing()):
            watch.events.append(f"{event}{_short(args)}")
        elif event == "import":
            module = str(args[0])
            if not any(module == e or module.startswith(e + ".") for e in watch.expected):
                watch.events.append(f"import {module}")
        elif event == "open":
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            ):
                watch.events.append(f"open{_short(args)}")

    def check(self) -> None:
        if self.events:
            raise Executed(f"executed while handling untrusted bytes: {self.events[:5]}")


def _is_dynamic(code: Any) -> bool:
    """Code that is not a module body being imported from a file (``exec("...")``,
    ``eval``, and the methods a dataclass or namedtuple definition generates)."""
    return str(getattr(code, "co_filename", "<?>")).startswith("<")


def _importing() -> bool:
    """Is an import running (its module's classes ``exec`` generated code)? Imports are
    watched by their own event."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _short(args: tuple[Any, ...]) -> str:
    text = repr(args)
    return text if len(text) < 200 else text[:200] + "...)"


# -- memory --------------------------------------------------------------------------------
class Exhausted(AssertionError):
    """An input made the process allocate more than the bound allows."""


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


class MemoryWatch:
    """``with MemoryWatch(bound) as memory: ...`` (pass any caught error to ``saw``), then
    ``memory.check()``: raises :class:`Exhausted` when the peak RSS grew by more than
    ``bound`` bytes inside, or a ``MemoryError`` was raised (and wrapped by safeart).

    The peak only grows, so an input is reported when it allocates past every earlier one
    by more than ``bound``: in a fresh fuzzing process, past the bound.
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.grew = 0
        self.error: BaseException | None = None

    def __enter__(self) -> "MemoryWatch":
        self.error = None
        self._before = _peak_rss()
        return self

    def __exit__(self, *exc: object) -> None:
        self.grew = _peak_rss() - self._before

    def saw(self, error: BaseException) -> None:
        """Note an error the code under test raised (its causes are searched)."""
        while error is not None and self.error is None:
            if isinstance(error, MemoryError) or "MemoryError" in str(error):
                self.error = error
            error = error.__cause__ or error.__context__  # type: ignore[assignment]

    def check(self) -> None:
        if self.error is not None:
            raise Exhausted(f"an allocation failed (past the address-space cap or the RAM): "
                            f"{str(self.error)[:300]}")
        if self.grew > self.bound:
            raise Exhausted(f"peak RSS grew by {self.grew >> 20} MiB, more than "
                            f"{self.bound >> 20} MiB")


def cap_address_space(headroom: int) -> None:
    """Let this process map at most ``headroom`` bytes more than it does now (an allocation
    past it raises MemoryError instead of exhausting the machine's RAM)."""
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = vm + headroom if hard == resource.RLIM_INFINITY else min(vm + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
