"""Render a :class:`ScanReport` as text, JSON or SARIF 2.1.0."""

from __future__ import annotations

import json
from typing import Any, Callable

from .report import KINDS, Finding, ScanReport, ScanResult


_LEVEL = {"dangerous": "error", "unknown": "warning", "allowed": "note"}


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def _where(f: Finding) -> str:
    parts = []
    if f.offset is not None:
        parts.append(f"offset {f.offset}" + (f" ({f.opcode})" if f.opcode else ""))
    parts.append(f"in {f.location}" if f.location else "")
    return " ".join(p for p in parts if p)


def render_text(report: ScanReport) -> str:
    """One line per scanned object, then an indented line per finding, then a summary."""
    lines = []
    for r in report.results:
        verdict = r.verdict.upper() + ("" if r.complete or r.error else " (incomplete)")
        kinds = ", ".join(r.formats) or "-"
        details = "".join(f"; {k} {v}" for k, v in r.extra.items() if v is not None)
        lines.append(
            f"{verdict:<24} {r.target}  [{_size(r.size)}; {kinds}; {r.seconds:.3f} s{details}]"
        )
        if r.error:
            lines.append(f"    error: {r.error}")
        repeats: dict[tuple[str, str, str, str], int] = {}
        for f in r.findings:
            repeats[(f.grade.value, f.kind, f.name, f.reason)] = repeats.get(
                (f.grade.value, f.kind, f.name, f.reason), 0) + 1
        for f in r.findings:  # each distinct finding once, at its first occurrence
            count = repeats.pop((f.grade.value, f.kind, f.name, f.reason), 0)
            if count:
                more = f"  (and {count - 1} more like it)" if count > 1 else ""
                lines.append(f"    {f.grade.value} {f.kind}: {f.name}  {_where(f)}{more}")
                lines.append(f"        {f.reason}")
    s = report.summary
    lines.append(
        f"{s['scanned']} scanned: {s['clean']} clean, {s['unknown']} unknown, "
        f"{s['dangerous']} dangerous, {s['error']} unreadable, {s['incomplete']} incomplete; "
        f"{_size(s['bytes'])} in {s['seconds']:.2f} s"
    )
    if report.extra:
        lines.append(", ".join(f"{k}: {v}" for k, v in report.extra.items()))
    return "\n".join(lines) + "\n"


def render_json(report: ScanReport) -> str:
    """The report as JSON (``summary`` and ``results``): the summary indented, each result
    on one line (json's C encoder: a whole-datastore report has 100,000s of results)."""
    doc = report.to_dict()
    summary = json.dumps(doc["summary"], indent=2).replace("\n", "\n  ")
    results = ",\n".join("    " + json.dumps(r) for r in doc["results"])
    results = f"[\n{results}\n  ]" if results else "[]"
    return f'{{\n  "summary": {summary},\n  "results": {results}\n}}\n'


def _sarif_result(r: ScanResult, f: Finding) -> dict[str, Any]:
    location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": r.target}}}
    if f.offset is not None and f.location == r.target:
        location["physicalLocation"]["region"] = {"byteOffset": f.offset, "byteLength": 1}
    if f.location:
        location["logicalLocations"] = [{"fullyQualifiedName": f.location, "kind": "member"}]
    at = f" at offset {f.offset}" if f.offset is not None else ""
    return {
        "ruleId": f.kind,
        "level": _LEVEL[f.grade.value],
        "message": {"text": f"{f.grade.value} {f.kind} {f.name}{at} in {f.location}: {f.reason}"},
        "locations": [location],
        "properties": {"grade": f.grade.value, "name": f.name, "offset": f.offset,
                       "opcode": f.opcode, "chain": f.location},
    }


def render_sarif(report: ScanReport) -> str:
    """SARIF 2.1.0: one run, one rule per finding kind, one result per finding."""
    from .. import __version__
    results = []
    for r in report.results:
        results.extend(_sarif_result(r, f) for f in r.findings)
        if r.error:
            results.append({
                "ruleId": "error", "level": "error",
                "message": {"text": f"{r.target}: {r.error}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.target}}}],
            })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "safeart",
                "version": __version__,
                "informationUri": "https://github.com/safeart/safeart",
                "rules": [
                    {"id": kind, "name": kind, "shortDescription": {"text": text}}
                    for kind, text in KINDS.items()
                ],
            }},
            "artifacts": [{"location": {"uri": r.target}, "length": r.size,
                           **({"properties": dict(r.extra)} if r.extra else {})}
                          for r in report.results],
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


FORMATS: dict[str, Callable[[ScanReport], str]] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
}


def render(report: ScanReport, fmt: str = "text") -> str:
    """Render ``report`` as ``text``, ``json`` or ``sarif``."""
    return FORMATS[fmt](report)
