"""The scan report model: findings, one result per scanned object, a report per scan.

Grades come from the shared policy (:class:`safeart.policy.Grade`). A result's verdict is its
worst finding: ``clean`` (nothing above allowed), ``unknown`` or ``dangerous``. A result that
could not be analysed completely (parse error, limit hit, scanner crash) is never clean: it
carries a finding graded at least unknown and ``complete=False``, and it fails at any
threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..policy import Grade


#: Finding kinds.
KINDS = {
    "import": "a global the unpickler imports (graded by the policy)",
    "nested": "a nested payload that cannot be scanned (or its scan failed)",
    "malformed": "the pickle or container is broken; what follows the break is unknown",
    "limit": "a resource limit was hit; the rest was not analysed",
    "resource": "an allowlisted global is called with arguments that allocate more than the "
    "limits allow, or called although its entry admits no call (a class's __init__ runs)",
    "differential": "bytes that CPython's unpicklers or scanners would read differently",
    "persistent-id": "a persistent id whose meaning is up to the loader",
    "trailing": "data after the end of a pickle or archive that is not a known structure",
    "archive": "an archive anomaly used to hide members from scanners",
    "unsupported": "a container format the scanner cannot open",
    "error": "the scanner failed on this object",
    "class": "a class a safeart manifest names (graded by the policy)",
    "integrity": "stored data that no longer matches what the storing system recorded "
    "(changed or missing)",
}


@dataclass(frozen=True)
class Finding:
    """One thing the scanner found.

    Attributes:
        grade: How bad it is (``allowed`` findings are not recorded).
        kind: One of :data:`KINDS`.
        name: The offending global (``os.system``), opcode, member or limit.
        reason: Why it is graded so, and what to do.
        offset: Byte offset of the opcode (or member) inside the innermost stream.
        location: Where: ``file.pt > archive/data.pkl > _load_from_bytes@123``.
        opcode: The opcode that performs the import (``STACK_GLOBAL``), when relevant.
    """

    grade: Grade
    kind: str
    name: str
    reason: str
    offset: int | None = None
    location: str = ""
    opcode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grade"] = self.grade.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        """The finding :meth:`to_dict` gave (``ValueError``/``KeyError`` if it is not)."""
        return cls(Grade(data["grade"]), str(data["kind"]), str(data["name"]),
                   str(data["reason"]), offset=data.get("offset"),
                   location=str(data.get("location", "")), opcode=data.get("opcode"))


def verdict_of(findings: list[Finding]) -> str:
    """``clean``, ``unknown`` or ``dangerous``: the worst grade among ``findings``."""
    worst = max((f.grade.rank for f in findings), default=0)
    return {0: "clean", 1: "unknown", 2: "dangerous"}[worst]


@dataclass
class ScanResult:
    """The outcome for one scanned object (a file, a blob, an artifact).

    Attributes:
        target: What was scanned (a path, or the name given to :func:`scan_bytes`).
        findings: Every finding above "allowed", in stream order.
        size: Bytes read from the target (before decompression).
        complete: False when something could not be analysed (never clean then).
        formats: Containers and streams recognised, outermost first (``gzip``, ``pickle``).
        globals: Every global the pickles import, with its grade and count.
        seconds: Time spent on this object.
        error: An I/O error that prevented the scan, if any.
        extra: Metadata added by callers (a run scanner adds pathspec, type, encoding).
    """

    target: str
    findings: list[Finding] = field(default_factory=list)
    size: int = 0
    complete: bool = True
    formats: list[str] = field(default_factory=list)
    globals: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``clean``, ``unknown`` or ``dangerous`` (``error`` when it could not be read)."""
        if self.error is not None:
            return "error"
        return verdict_of(self.findings)

    def fails(self, threshold: Grade = Grade.UNKNOWN) -> bool:
        """True when a finding reaches ``threshold`` or the analysis was incomplete."""
        if self.error is not None or not self.complete:
            return True
        return any(f.grade.rank >= threshold.rank for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": self.verdict,
            "complete": self.complete,
            "size": self.size,
            "seconds": round(self.seconds, 6),
            "formats": list(self.formats),
            "findings": [f.to_dict() for f in self.findings],
            "globals": dict(self.globals),
            "error": self.error,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScanResult":
        """The result :meth:`to_dict` gave (its ``verdict`` is recomputed)."""
        return cls(
            target=str(data["target"]),
            findings=[Finding.from_dict(f) for f in data["findings"]],
            size=int(data["size"]), complete=bool(data["complete"]),
            formats=list(data["formats"]), globals=dict(data["globals"]),
            seconds=float(data["seconds"]), error=data["error"], extra=dict(data["extra"]),
        )


@dataclass
class ScanReport:
    """All results of one scan, with totals.

    Attributes:
        extra: Totals added by callers, merged into :attr:`summary` (a run scanner adds
            tasks, artifacts and distinct blobs).
    """

    results: list[ScanResult] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        """Counts per verdict, incomplete results, bytes read and seconds."""
        counts = {"clean": 0, "unknown": 0, "dangerous": 0, "error": 0}
        for r in self.results:
            counts[r.verdict] += 1
        return {
            "scanned": len(self.results),
            **counts,
            "incomplete": sum(1 for r in self.results if not r.complete),
            "findings": sum(len(r.findings) for r in self.results),
            "bytes": sum(r.size for r in self.results),
            "seconds": round(self.seconds, 6),
            **self.extra,
        }

    def fails(self, threshold: Grade = Grade.UNKNOWN) -> bool:
        """True when any result fails at ``threshold``."""
        return any(r.fails(threshold) for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScanReport":
        """The report :meth:`to_dict` (or ``render(report, "json")``) gave; the caller
        totals in ``summary`` (keys beyond the computed counts) come back as ``extra``."""
        computed = set(cls().summary)
        summary = data.get("summary", {})
        return cls(results=[ScanResult.from_dict(r) for r in data["results"]],
                   seconds=float(summary.get("seconds", 0.0)),
                   extra={k: v for k, v in summary.items() if k not in computed})

    def merge(self, other: "ScanReport") -> None:
        """Add ``other``'s results and sum its numeric totals into this report's."""
        self.results.extend(other.results)
        for key, value in other.extra.items():
            self.extra[key] = self.extra.get(key, 0) + value
