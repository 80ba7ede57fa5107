"""Scan one pickle, or several stacked ones, without unpickling them.

:func:`scan_pickle` runs :class:`~safeart.scan.stubs.StubUnpickler` (CPython's parser with
inert stubs) driven by the :class:`~safeart.scan.walker.Walker`, then grades what CPython
imported, what the walker saw after CPython stopped, and every disagreement between the two.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..pickle_facts import compat_name
from ..policy import Grade, Verdict
from .calls import CallGrader
from .context import ScanContext
from .joblib_arrays import UNDECIDED, WrapperRecord, plan
from .stubs import GuardedReader, StubUnpickler, stub_name
from .walker import Buffer, ImportOp, Walker


#: How nested payloads are scanned: (ctx, buf, start, end, location, hint) -> None.
BlobScanner = Callable[[ScanContext, Buffer, int, int, str, str], None]

_AFTER_ERROR = (
    "CPython stops before this import, but deny by default: another unpickler may not stop, "
    "and a broken stream is a known way to hide a payload from scanners"
)


@dataclass
class PickleOutcome:
    """What one pickle scan established."""

    #: False when the bytes turned out not to be a pickle (lenient mode only).
    is_pickle: bool
    #: True when CPython parsed it to STOP without error.
    complete: bool = False
    #: Where the next stacked pickle would start.
    next_start: int | None = None
    #: The value CPython built (stubs for imported objects); None on error.
    result: Any = None
    persistent_ids: tuple[Any, ...] = ()


def _is_identifier(module: str | None, name: str | None) -> bool:
    return bool(module and name) and all(
        part.isidentifier() for part in f"{module}.{name}".split(".")
    )


def scan_pickle(
    ctx: ScanContext,
    buf: Buffer,
    start: int,
    end: int,
    location: str,
    *,
    strict: bool,
    nested: BlobScanner,
    torch_storages: Mapping[str, str] | None = None,
) -> PickleOutcome:
    """Scan the pickle at ``buf[start:]`` (bounded by ``end``) and record findings.

    Args:
        strict: The bytes must be a pickle (a PROTO header, or a ``.pkl`` member). Otherwise
            bytes that break before importing anything are "not a pickle" and leave no trace.
        nested: Scans payloads found inside (``_load_from_bytes`` bytes, joblib object arrays).
        torch_storages: Persistent ids are expected to be torch storage references, tagged
            by these storage types (:data:`~safeart.pickle_facts.TORCH_ZIP_STORAGE_TYPES` in a
            checkpoint's ``data.pkl``, ``TORCH_LEGACY_STORAGE_TYPES`` in a legacy stream).
    """
    mark = ctx.mark()
    walker = Walker(buf, start, end, ctx.limits)
    hooks = _Hooks(ctx, walker, location, nested)
    run = hooks.run = StubUnpickler(walker, hooks)
    run.run()
    walker.finish()
    complete = run.error is None and walker.stop is not None
    if not strict and not complete and not _imports_something(walker, run) \
            and not _victim_reaches_limit(walker, run):
        ctx.rollback(mark)
        return PickleOutcome(is_pickle=False)
    _grade_imports(ctx, walker, run, location, torch_storages)
    _grade_stream(ctx, walker, run, location, complete)
    _grade_persistent_ids(ctx, run, walker, location, torch_storages)
    if walker.stop is not None and walker.next_start and walker.next_start > walker.stop + 1:
        hidden = walker.stop + 1
        nested(ctx, buf, hidden, walker.next_start, f"{location} > after-STOP@{hidden}",
               "trailing")
    return PickleOutcome(
        True, complete, walker.next_start, run.result if complete else None,
        tuple(run.persistent_ids),
    )


def _imports_something(walker: Walker, run: StubUnpickler) -> bool:
    """Did the bytes reach an import that looks like one (not random data)?"""
    return bool(run.calls or run.persistent_ids) or any(
        _is_identifier(op.module, op.name) for op in walker.imports
    )


def _victim_reaches_limit(walker: Walker, run: StubUnpickler) -> bool:
    """Did CPython parse everything up to where the walker stopped it on a limit (a memo
    index bomb), past a first opcode? Then ``pickle.loads`` runs into it: not random data."""
    frozen = walker.frozen_at
    if walker.limit is None or frozen is None or frozen <= walker.start or run.position() < frozen:
        return False
    semantic = walker.semantic_error  # computed on demand (replays the stack model): last
    return semantic is None or semantic[0] >= frozen


def _name(op: ImportOp) -> str:
    if op.module is not None and op.name is not None:
        module, name = compat_name(op.module, op.name, op.proto)
        return f"{module}.{name}"
    if op.ext_code is not None:
        return f"<extension code {op.ext_code}>"
    return "<unresolved STACK_GLOBAL operands>"


def _grade_imports(ctx: ScanContext, walker: Walker, run: StubUnpickler, loc: str,
                   torch_storages: Mapping[str, str] | None) -> None:
    performed = set()
    for call in run.calls:
        op = call.op
        offset = op.offset if op else None
        opcode = op.opcode if op else None
        module, name = call.resolved
        if torch_storages is not None and f"{module}.{name}" in torch_storages:
            verdict = ctx.grade_as(call.resolved, Grade.ALLOWED, "storage type tag of a torch "
                                   "persistent id (torch maps it to a dtype)")
        else:
            verdict = ctx.grade(module, name)
        if not _is_identifier(*call.resolved) and verdict.grade is not Grade.ALLOWED:
            verdict = Verdict(Grade.DANGEROUS, verdict.name,
                              "import name is not a plain dotted identifier (obfuscation)")
        ctx.add(verdict.grade, "import", verdict.name, verdict.reason,
                location=loc, offset=offset, opcode=opcode)
        if op is None:
            ctx.add(Grade.DANGEROUS, "differential", verdict.name,
                    "CPython imported this but the opcode walker saw no such opcode",
                    location=loc)
            continue
        performed.add(id(op))
        if op.module is not None and (op.module, op.name) != (call.module, call.name):
            ctx.add(Grade.DANGEROUS, "differential", verdict.name,
                    f"the opcode walker read {op.module}.{op.name} here: parsers disagree",
                    location=loc, offset=offset, opcode=opcode)
    for op in walker.imports:
        if id(op) in performed:
            continue
        if op.opcode.startswith("EXT") and op.module is None:
            ctx.add(Grade.DANGEROUS, "import", _name(op),
                    "extension code not registered with copyreg here: the loading process "
                    "may map it to any global (unresolvable import)",
                    location=loc, offset=op.offset, opcode=op.opcode)
        elif op.calls_find_class:
            reason = _AFTER_ERROR
            if op.opcode == "STACK_GLOBAL" and op.module is None:
                reason = "STACK_GLOBAL operands are not literal strings (obfuscated import); " + reason
            ctx.add(Grade.DANGEROUS, "import", _name(op), reason,
                    location=loc, offset=op.offset, opcode=op.opcode)


def _grade_stream(
    ctx: ScanContext, walker: Walker, run: StubUnpickler, loc: str, complete: bool
) -> None:
    for offset in walker.straddles[:10]:
        ctx.add(Grade.DANGEROUS, "differential", "FRAME",
                "an opcode straddles a FRAME boundary: pickle.load drops the rest of the frame "
                "while pickle.loads parses on (parser-differential trick)",
                location=loc, offset=offset)
    if walker.limit:
        ctx.add(Grade.UNKNOWN, "limit", "pickle", walker.limit + "; CPython was not given "
                "the rest", location=loc, offset=walker.frozen_at)
    elif not complete:
        if walker.fatal:
            message, offset = walker.fatal, walker.frozen_at
        elif walker.error:
            message, offset = walker.error, walker.error_offset
        else:
            semantic = walker.semantic_error
            offset = semantic[0] if semantic else run.position()
            message = f"{type(run.error).__name__}: {run.error}"
        ctx.add(Grade.UNKNOWN, "malformed", "pickle",
                f"unpickling fails here ({message}); every import before this point runs",
                location=loc, offset=offset)
    if walker.stop is not None and walker.next_start and walker.next_start > walker.stop + 1:
        ctx.add(Grade.UNKNOWN, "trailing", "FRAME",
                f"{walker.next_start - walker.stop - 1} bytes hidden after STOP inside its "
                "frame", location=loc, offset=walker.stop + 1)


def _grade_persistent_ids(
    ctx: ScanContext, run: StubUnpickler, walker: Walker, loc: str,
    torch_storages: Mapping[str, str] | None,
) -> None:
    for i, pid in enumerate(run.persistent_ids):
        if torch_storages is not None and _is_torch_pid(pid, torch_storages):
            continue
        offset = walker.persids[i] if i < len(walker.persids) else None
        # reprlib: a pid of shared tuples (DUP + TUPLE2, "billion laughs") prints in full
        # as 2**n leaves; its bounded repr stays short.
        ctx.add(Grade.UNKNOWN, "persistent-id", reprlib.repr(pid),
                "a persistent id is resolved by the loader's persistent_load; outside a torch "
                "checkpoint its meaning is unknown", location=loc, offset=offset)


def _is_torch_pid(pid: Any, storages: Mapping[str, str]) -> bool:
    """A persistent id as torch writes it: ``('storage', <one of storages>, key, location,
    numel[, view])``, or legacy ``('module', <class>, source file, source)`` (the class is
    graded as an import on its own)."""
    if type(pid) is not tuple or not pid or stub_name(pid[1] if len(pid) > 1 else None) is None:
        return False
    if pid[0] == "storage":
        return (len(pid) in (5, 6) and stub_name(pid[1]) in storages
                and type(pid[2]) is str and type(pid[3]) is str and type(pid[4]) is int)
    return pid[0] == "module" and len(pid) == 4 and all(type(v) is str for v in pid[2:])


class _Hooks:
    """Acting stubs report here: nested torch payloads and joblib inline arrays."""

    run: StubUnpickler

    def __init__(self, ctx: ScanContext, walker: Walker, loc: str, nested: BlobScanner):
        self.ctx, self.walker, self.loc, self.nested = ctx, walker, loc, nested
        self._literal = 0  # next candidate in walker.byte_literals
        # Work done once per object, however often the memo hands it out again (a payload
        # called 2,000 times, one string encoded 2,000 times): id -> (object, result).
        self._once: dict[int, tuple[Any, Any]] = {}
        self.called = CallGrader(ctx, loc).called  # every call: what it may allocate

    def _offset_of(self, data: bytes | bytearray) -> int | None:
        lits = self.walker.byte_literals
        for i in range(self._literal, len(lits)):
            if lits[i][1] == len(data):
                self._literal = i + 1
                return lits[i][0]
        return None

    def load_from_bytes(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if len(args) != 1 or kwargs or type(args[0]) not in (bytes, bytearray):
            self.ctx.add(Grade.DANGEROUS, "nested", "torch.storage._load_from_bytes",
                         "its argument is not a literal bytes object the scanner can see "
                         "(built by another call): it runs torch.load on unknown bytes",
                         location=self.loc)
            return
        data = args[0]
        if id(data) in self._once:  # the same payload again: scanned already
            return
        self._once[id(data)] = (data, None)
        reader = self.run.reader
        index = reader.literal_of(data) if isinstance(reader, GuardedReader) else None
        if index is not None:  # a large literal CPython never copied: scan it in place
            self._literal = index + 1
            start, size = self.walker.byte_literals[index]
            self.nested(self.ctx, self.walker.buf, start, start + size,
                        f"{self.loc} > _load_from_bytes@{start}", "torch")
            return
        offset = self._offset_of(data)
        where = f"{self.loc} > _load_from_bytes@{offset if offset is not None else '?'}"
        buf = bytes(data) if type(data) is bytearray else data
        self.nested(self.ctx, buf, 0, len(buf), where, "torch")

    def encode_latin1(self, text: str) -> bytes:
        done = self._once.get(id(text))
        if done is None:
            done = self._once[id(text)] = (text, text.encode("latin-1"))
        return done[1]  # type: ignore[no-any-return]

    def storage_called(self, name: str) -> None:
        self.ctx.add(Grade.UNKNOWN, "import", name,
                     "a torch storage type is called (allocates a storage from pickled "
                     "arguments) instead of tagging a persistent id", location=self.loc)

    def joblib_array(self, wrapper: WrapperRecord) -> None:
        reader = self.run.reader
        if not isinstance(reader, GuardedReader):  # the wrapper's name was not in the bytes
            self.ctx.add(Grade.DANGEROUS, "differential", "NumpyArrayWrapper",
                         "a joblib array wrapper reached without its name in the stream "
                         "(EXT code or computed name): its inline data cannot be located",
                         location=self.loc)
            return
        pos, buf, end = self.run.position(), self.walker.buf, self.walker.end
        where = f"{self.loc} > joblib-array@{pos}"
        todo = plan(wrapper)  # what joblib.load reads here, decided as joblib and numpy do
        if todo.kind == "objects":  # a nested pickle, read by a fresh unpickler
            outcome = scan_pickle(self.ctx, buf, pos, end, where, strict=True,
                                  nested=self.nested)
            self.walker.jump(outcome.next_start if outcome.complete else end)
        elif todo.kind == "data":
            skip = todo.size + (1 + (buf[pos] if pos < end else 0) if todo.padded else 0)
            stop = min(pos + skip, end)
            # joblib.load reads the array's bytes; pickle.load reads them as opcodes.
            scan_pickle(self.ctx, buf, pos, stop, f"{where} > as-pickle", strict=False,
                        nested=self.nested)
            self.walker.jump(stop)
        else:  # pickle.load reads on from here: so does the scan
            if todo.kind == UNDECIDED:
                self.ctx.add(Grade.UNKNOWN, "nested", "NumpyArrayWrapper",
                             f"whether joblib.load reads a nested pickle or raw bytes here "
                             f"depends on {todo.why}, built from names in the stream: both "
                             "readings are scanned", location=where, offset=pos)
                scan_pickle(self.ctx, buf, pos, end, f"{where} > as-objects", strict=True,
                            nested=self.nested)
            else:
                self.ctx.add(Grade.UNKNOWN, "malformed", "NumpyArrayWrapper",
                             f"joblib.load raises at this array ({todo.why}); what follows is "
                             "scanned as the pickle opcodes pickle.load reads there",
                             location=where, offset=pos)
            self.walker.jump(pos)
        reader.seek(self.walker.pos)
