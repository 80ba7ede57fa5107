"""Audit what a Metaflow run already stored, without deserializing anything.

::

    from safeart.metaflow import scan_run
    report = scan_run("TrainFlow/1234")           # every artifact of every task
    report = scan_run("TrainFlow", latest=True, artifacts=["model"])
    print(safeart.scan.render(report, "text"))

Each artifact is analysed according to the encoding Metaflow recorded for it: pickle
encodings go to the pickle scanner, ``safeart-v1`` blobs are validated with
:func:`safeart.scan.safetensors.audit_findings` -- the loader's own checks (safetensors
header, manifest, classes against the policy), also used for safetensors files -- without
being rebuilt, and any other encoding is an ``unknown`` finding. Blobs are read
raw through Metaflow's datastore layer (:mod:`safeart.metaflow.stored`), each distinct blob
fetched and analysed once however many tasks share it, and checked against its content
address (a blob changed in the datastore no longer hashes to its sha).

Every artifact Metaflow recorded is scanned, its private ones (``_foreach_stack``,
``_graph_info``, ``_exception`` ...) included: the runtime unpickles those too. An artifact
the scan cannot vouch for is never clean: a blob that is missing, no longer hashes to its
sha or that Metaflow cannot unpack, and a task the metadata lists without a completed
attempt in the datastore, are ``unknown`` findings (exit code 1).

Configuration is Metaflow's own: the client's metadata provider (local, or the metadata
service with ``METAFLOW_DEFAULT_METADATA=service``/``METAFLOW_SERVICE_URL`` or a
``METAFLOW_PROFILE``) lists runs and tasks, each run's recorded ``ds-type``/``ds-root``
locates its data, and Metaflow's storage classes read it with their usual S3 endpoint,
credentials and worker settings. Which runs a pathspec names, and how namespaces apply,
is described in :mod:`safeart.metaflow.pathspec`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal

from ..errors import ConfigError
from ..policy import Grade, Policy, policy_from_env
from ..scan import Finding, ScanReport, ScanResult, scan_bytes
from ..scan.api import Progress
from ..scan.safetensors import audit_findings
from .stored import FetchedBlob, RunDatastore, StoredArtifact, StoreRef
from .pathspec import check_artifact_names, is_pathspec, parse_pathspec, resolve_tasks

__all__ = ["scan_run", "scan_target", "tampered_finding", "PICKLE_ENCODINGS", "SAFEART_ENCODING"]

#: Encodings of Metaflow's pickle serializer (what it writes and what it reads).
PICKLE_ENCODINGS = frozenset({"pickle-v2", "pickle-v4", "gzip+pickle-v2", "gzip+pickle-v4"})
#: The encoding safeart's Metaflow serializer records.
SAFEART_ENCODING = "safeart-v1"

Analysis = Literal["pickle", "safeart", "unsupported"]


def scan_run(
    pathspec: str,
    *,
    policy: Policy | None = None,
    artifacts: Iterable[str] | None = None,
    latest: bool = False,
    last: int | None = None,
    all_namespaces: bool = False,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan every stored artifact a Metaflow pathspec names, without unpickling.

    Args:
        pathspec: ``Flow``, ``Flow/run``, ``Flow/run/step``, ``Flow/run/step/task`` or
            ``Flow/run/step/task:artifact``.
        policy: Grades pickle imports and manifest classes; default ``$SAFEART_POLICY``
            or the built-in allowlist.
        artifacts: Only these artifact names (in every task named).
        latest: With a bare flow name: only its latest successful run (current
            namespace): the run ``safeart.load("Flow", ...)`` loads.
        last: With a bare flow name: only its ``last`` most recent runs (any status).
        all_namespaces: With a bare flow name: consider runs of every namespace.
        progress: Called as ``progress(done, total, current)`` per distinct blob.

    Returns:
        One :class:`~safeart.scan.ScanResult` per artifact (``target`` is its pathspec
        ``Flow/run/step/task:name``; ``extra`` holds ``type``, ``encoding`` and ``sha``),
        plus one per task whose artifacts could not be listed. ``report.extra`` holds
        ``tasks``, ``artifacts``, ``blobs_fetched`` (distinct blobs) and ``bytes_fetched``.

    Raises:
        ConfigError: a malformed pathspec, a bad option, an unknown flow/run/step/task, or
            ``artifacts`` that match nothing.
    """
    started = time.perf_counter()
    policy = policy or policy_from_env()
    spec = parse_pathspec(pathspec)
    names = check_artifact_names(artifacts or ()) + ((spec.artifact,) if spec.artifact else ())
    store = RunDatastore()
    tasks = resolve_tasks(spec, latest=latest, last=last, all_namespaces=all_namespaces,
                          policy=policy, store=store)
    records, incomplete = store.artifacts(tasks, names)
    if names and not records and not incomplete:
        raise ConfigError(
            f"no artifact named {', '.join(sorted(set(names)))} in {spec.object_pathspec}",
            hint="list the artifacts with the Metaflow client: Task(...).artifacts",
        )
    scanner = _BlobScanner(policy, _analyses(records))
    fetched = [a for a in records if _analysis_of(a.encoding) != "unsupported"]
    first_use: dict[tuple[StoreRef, str], str] = {}
    for art in fetched:
        first_use.setdefault((art.store, art.sha), art.pathspec)
    total = len(first_use)
    for done, blob in enumerate(store.fetch(fetched)):
        if progress:
            progress(done, total, first_use[(blob.store, blob.sha)])
        scanner.scan(blob)
    if progress:
        progress(total, total, "")
    report = ScanReport(results=[scanner.result_for(a) for a in records])
    report.results.extend(_incomplete_task(task) for task in incomplete)
    report.extra.update(
        tasks=len(tasks),
        artifacts=len(records),
        blobs_fetched=total,
        bytes_fetched=scanner.bytes_read,
    )
    report.seconds = time.perf_counter() - started
    return report


def scan_target(
    arg: str,
    *,
    policy: Policy,
    artifacts: Iterable[str] = (),
    latest: bool = False,
    last: int | None = None,
    all_namespaces: bool = False,
    progress: Progress | None = None,
) -> ScanReport | None:
    """The ``safeart scan`` resolver: scan ``arg`` as a run if it is a Metaflow pathspec.

    Returns None when ``arg`` is not shaped like a pathspec (the CLI then reports a missing
    file); otherwise what :func:`scan_run` returns, with the same errors.
    """
    if not is_pathspec(arg):
        return None
    return scan_run(arg, policy=policy, artifacts=artifacts, latest=latest, last=last,
                    all_namespaces=all_namespaces, progress=progress)


def _analysis_of(encoding: str) -> Analysis:
    if encoding in PICKLE_ENCODINGS:
        return "pickle"
    if encoding == SAFEART_ENCODING:
        return "safeart"
    return "unsupported"


def _analyses(records: list[StoredArtifact]) -> dict[tuple[StoreRef, str], set[Analysis]]:
    """Which analyses each blob to fetch needs (one recorded under two encodings: both)."""
    needed: dict[tuple[StoreRef, str], set[Analysis]] = {}
    for art in records:
        analysis = _analysis_of(art.encoding)
        if analysis != "unsupported":
            needed.setdefault((art.store, art.sha), set()).add(analysis)
    return needed


@dataclass
class _Outcome:
    """What one analysis of one blob found (shared by every artifact using the blob)."""

    findings: list[Finding]
    size: int = 0
    complete: bool = True
    formats: tuple[str, ...] = ()
    globals: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


class _BlobScanner:
    """Analyses each fetched blob once per needed analysis and remembers the outcome."""

    def __init__(self, policy: Policy, needed: dict[tuple[StoreRef, str], set[Analysis]]):
        self._policy = policy
        self._needed = needed
        self._outcomes: dict[tuple[StoreRef, str, Analysis], _Outcome] = {}
        self._reported: set[tuple[StoreRef, str, Analysis]] = set()
        self.bytes_read = 0

    def scan(self, blob: FetchedBlob) -> None:
        for analysis in self._needed[(blob.store, blob.sha)]:
            self._outcomes[(blob.store, blob.sha, analysis)] = self._analyse(blob, analysis)
        self.bytes_read += len(blob.data or b"")

    def _analyse(self, blob: FetchedBlob, analysis: Analysis) -> _Outcome:
        if blob.data is None:
            return _unreadable(blob)
        started = time.perf_counter()
        if analysis == "pickle":
            outcome = self._scan_pickle(blob.data, blob.sha)
        else:
            outcome = self._audit_safeart(blob.data, blob.sha)
        if not blob.intact:
            outcome.findings.insert(0, tampered_finding(blob.sha))
        outcome.size = len(blob.data)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _scan_pickle(self, data: bytes, sha: str) -> _Outcome:
        result = scan_bytes(data, policy=self._policy, name=sha)
        return _Outcome(
            result.findings, complete=result.complete, formats=tuple(result.formats),
            globals=result.globals, error=result.error,
        )

    def _audit_safeart(self, data: bytes, sha: str) -> _Outcome:
        findings, complete = audit_findings(data, self._policy, sha)
        return _Outcome(findings, complete=complete, formats=("safetensors", SAFEART_ENCODING))

    def result_for(self, art: StoredArtifact) -> ScanResult:
        """The artifact's result, built from its blob's shared outcome."""
        extra = {"type": art.type, "encoding": art.encoding, "sha": art.sha}
        analysis = _analysis_of(art.encoding)
        if analysis == "unsupported":
            return ScanResult(
                art.pathspec, [_unsupported(art.encoding, art.pathspec)], size=art.size,
                extra=extra,
            )
        key = (art.store, art.sha, analysis)
        outcome = self._outcomes[key]
        first = key not in self._reported  # the time is spent once, on the first artifact
        self._reported.add(key)
        return ScanResult(
            target=art.pathspec,
            findings=[_relocated(f, art.sha, art.pathspec) for f in outcome.findings],
            size=outcome.size,
            complete=outcome.complete,
            formats=list(outcome.formats),
            globals=dict(outcome.globals),
            seconds=outcome.seconds if first else 0.0,
            error=outcome.error,
            extra=extra,
        )


def _relocated(finding: Finding, sha: str, pathspec: str) -> Finding:
    """The finding with its location under the artifact's pathspec instead of the sha."""
    if finding.location.startswith(sha):
        return replace(finding, location=pathspec + finding.location[len(sha):])
    return finding


def tampered_finding(sha: str) -> Finding:
    """The finding for a blob whose bytes no longer hash to its content address ``sha``."""
    return Finding(
        Grade.DANGEROUS, "integrity", sha,
        "the blob does not hash to its content address: it was changed in the datastore "
        "after Metaflow stored it", location=sha,
    )


def _unsupported(encoding: str, pathspec: str) -> Finding:
    return Finding(
        Grade.UNKNOWN, "unsupported", encoding,
        f"encoding {encoding!r} is neither a pickle encoding "
        f"({', '.join(sorted(PICKLE_ENCODINGS))}) nor {SAFEART_ENCODING}; its loader is "
        "unknown, so it was not analysed",
        location=pathspec,
    )


def _unreadable(blob: FetchedBlob) -> _Outcome:
    if blob.problem == "io":
        return _Outcome([], complete=False, error=f"cannot read blob {blob.sha}: {blob.message}")
    kind, reason = {
        "missing": ("integrity", "the blob Metaflow recorded is missing from the datastore"),
        "corrupt": ("malformed", f"Metaflow cannot unpack the stored blob: {blob.message}"),
    }[blob.problem or "corrupt"]
    return _Outcome([Finding(Grade.UNKNOWN, kind, blob.sha, reason, location=blob.sha)],
                    complete=False)


def _incomplete_task(pathspec: str) -> ScanResult:
    finding = Finding(
        Grade.UNKNOWN, "integrity", pathspec,
        "the metadata lists this task but the datastore has no completed attempt of it "
        "(still running, killed, or its records were removed): its artifacts were not "
        "scanned", location=pathspec,
    )
    return ScanResult(pathspec, [finding], complete=False)
