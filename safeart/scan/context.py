"""State shared by every scanner module while one object is scanned."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..limits import Limits
from ..policy import Grade, Policy, Verdict
from .report import Finding, ScanResult

__all__ = ["ScanContext"]


@dataclass
class ScanContext:
    """Collects findings into one :class:`ScanResult` and tracks nesting depth."""

    policy: Policy
    result: ScanResult
    depth: int = 0
    _grades: dict[tuple[str, str], Verdict] = field(default_factory=dict)

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
        entry = self.result.globals.setdefault(
            verdict.name[:500], {"grade": verdict.grade.value, "count": 0}
        )
        entry["count"] += 1
        return verdict

    def format(self, name: str) -> None:
        """Note a recognised container or stream format."""
        if name not in self.result.formats:
            self.result.formats.append(name)

    def mark(self) -> tuple[int, int, bool, dict[str, dict[str, object]]]:
        """A checkpoint for :meth:`rollback` (used when content turns out not to be a pickle)."""
        r = self.result
        return len(r.findings), len(r.formats), r.complete, {k: dict(v) for k, v in r.globals.items()}

    def rollback(self, mark: tuple[int, int, bool, dict[str, dict[str, object]]]) -> None:
        n_findings, n_formats, complete, globals_ = mark
        del self.result.findings[n_findings:]
        del self.result.formats[n_formats:]
        self.result.complete = complete
        self.result.globals = globals_  # type: ignore[assignment]

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
