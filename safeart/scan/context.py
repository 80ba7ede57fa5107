"""State shared by every scanner module while one object is scanned."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..limits import Limits
from ..policy import Grade, Policy, Verdict
from .report import Finding, ScanResult


@dataclass
class ScanContext:
    """Collects findings into one :class:`ScanResult` and tracks nesting depth."""

    policy: Policy
    result: ScanResult
    depth: int = 0
    _grades: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    #: Every tally of ``result.globals`` in order, so that :meth:`rollback` can undo them.
    _tallied: list[str] = field(default_factory=list)

    @property
    def limits(self) -> Limits:
        return self.policy.limits

    def add(
        self,
        grade: Grade,
        kind: str,
        name: str,
        reason: str,
        *,
        location: str,
        offset: int | None = None,
        opcode: str | None = None,
    ) -> None:
        """Record a finding; malformed/limit/error findings make the result incomplete."""
        if kind in ("malformed", "limit", "error"):
            self.result.complete = False
        if grade is Grade.ALLOWED:
            return
        self.result.findings.append(
            Finding(grade, kind, name[:500], reason, offset, location, opcode)
        )

    def grade(self, module: str, name: str) -> Verdict:
        """The policy's verdict on an import, tallied in ``result.globals``."""
        key = (module, name)
        verdict = self._grades.get(key)
        if verdict is None:
            verdict = self._grades[key] = self.policy.grade(module, name)
        return self._tally(verdict)

    def grade_as(self, resolved: tuple[str, str], grade: Grade, reason: str) -> Verdict:
        """A contextual verdict (a torch storage tag inside a torch stream), tallied."""
        return self._tally(Verdict(grade, ".".join(resolved), reason))

    def _tally(self, verdict: Verdict) -> Verdict:
        key = verdict.name[:500]
        entry = self.result.globals.setdefault(key, {"grade": verdict.grade.value, "count": 0})
        entry["count"] += 1
        self._tallied.append(key)
        return verdict

    def format(self, name: str) -> None:
        """Note a recognised container or stream format."""
        if name not in self.result.formats:
            self.result.formats.append(name)

    def mark(self) -> tuple[int, int, bool, int]:
        """A checkpoint for :meth:`rollback` (used when content turns out not to be a pickle)."""
        r = self.result
        return len(r.findings), len(r.formats), r.complete, len(self._tallied)

    def unchanged_since(self, mark: tuple[int, int, bool, int]) -> bool:
        """No finding added and no import graded since ``mark``."""
        return len(self.result.findings) == mark[0] and len(self._tallied) == mark[3]

    def rollback(self, mark: tuple[int, int, bool, int]) -> None:
        n_findings, n_formats, complete, n_tallied = mark
        del self.result.findings[n_findings:]
        del self.result.formats[n_formats:]
        self.result.complete = complete
        globals_ = self.result.globals
        for key in reversed(self._tallied[n_tallied:]):  # counts only grow: undo each tally
            entry = globals_[key]
            entry["count"] -= 1
            if not entry["count"]:
                del globals_[key]
        del self._tallied[n_tallied:]

    @contextmanager
    def nested(self, location: str) -> Iterator[bool]:
        """Enter one nesting level; yields False (after a limit finding) when too deep."""
        if self.depth >= self.limits.max_nesting:
            self.add(Grade.UNKNOWN, "limit", "max_nesting",
                     f"nesting deeper than {self.limits.max_nesting} levels was not scanned",
                     location=location)
            yield False
            return
        self.depth += 1
        try:
            yield True
        finally:
            self.depth -= 1
