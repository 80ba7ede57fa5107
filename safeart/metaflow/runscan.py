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

Whole datastores: :func:`scan_all` (``safeart scan --all``) scans every run of every flow
the metadata provider knows, in every namespace. With a :class:`~safeart.metaflow.verdicts.
VerdictCache` (``--all`` keeps one by default) a blob already analysed under the same policy
and scanner is not fetched again; what that skips, and ``rehash``, are described in
:mod:`safeart.metaflow.verdicts`. ``jobs`` batches of records and blobs load at once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import ConfigError
from ..policy import Grade, Policy, resolve_policy
from ..scan import Finding, ScanReport, ScanResult, scan_bytes
from ..scan.api import Progress
from ..scan.safetensors import audit_findings
from .encodings import PICKLE_ENCODINGS, SAFEART_ENCODING, is_pickle
from .enumerate import WholeFlows, every_task
from .pathspec import check_artifact_names, is_pathspec, parse_pathspec, resolve_tasks
from .stored import DEFAULT_JOBS, FetchedBlob, RunDatastore, StoredArtifact, StoreRef
from .verdicts import Analysis, Outcome, VerdictCache

if TYPE_CHECKING:  # pragma: no cover
    from metaflow import Task


_Key = tuple[StoreRef, str]


def scan_run(
    pathspec: str,
    *,
    policy: Policy | None = None,
    artifacts: Iterable[str] | None = None,
    latest: bool = False,
    last: int | None = None,
    all_namespaces: bool = False,
    progress: Progress | None = None,
    cache: VerdictCache | None = None,
    jobs: int = DEFAULT_JOBS,
    rehash: bool = False,
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
        cache: Verdicts of blobs analysed before under this policy and scanner (bound to
            ``policy`` when opened); new outcomes are added to it. None: no cache.
        jobs: Batches of task records and of blobs loaded at once.
        rehash: With ``cache``: fetch every blob anyway and use a cached outcome only for
            bytes that still hash to their content address.

    Returns:
        One :class:`~safeart.scan.ScanResult` per artifact (``target`` is its pathspec
        ``Flow/run/step/task:name``; ``extra`` holds ``type``, ``encoding`` and ``sha``),
        plus one per task whose artifacts could not be listed. ``report.extra`` holds
        ``tasks``, ``artifacts``, ``blobs`` (distinct blobs), ``blobs_fetched``,
        ``bytes_fetched`` and, with a cache, ``blobs_cached`` (outcomes taken from it).

    Raises:
        ConfigError: a malformed pathspec, a bad option, an unknown flow/run/step/task, or
            ``artifacts`` that match nothing.
    """
    started = time.perf_counter()
    policy = resolve_policy(policy)
    spec = parse_pathspec(pathspec)
    names = check_artifact_names(artifacts or ()) + ((spec.artifact,) if spec.artifact else ())
    listed = spec.run is None and not latest  # many runs of the flow: list it once
    store = RunDatastore(jobs=jobs, listed=listed, record_cache=cache)
    whole = (WholeFlows([spec.flow], store, cache, all_namespaces=all_namespaces,
                        rehash=rehash).tasks(spec.flow) if listed and last is None else None)
    tasks, unlisted = whole if whole and whole[0] else (
        resolve_tasks(spec, latest=latest, last=last, all_namespaces=all_namespaces,
                      policy=policy, store=store), 0)
    report = _scan_tasks(tasks, names, policy, store, cache, rehash, progress)
    if unlisted:
        report.extra["datastore_only_runs"] = unlisted
    if names and not report.results:
        raise ConfigError(
            f"no artifact named {', '.join(sorted(set(names)))} in {spec.object_pathspec}",
            hint="list the artifacts with the Metaflow client: Task(...).artifacts",
        )
    report.seconds = time.perf_counter() - started
    return report


def scan_all(
    *,
    policy: Policy | None = None,
    artifacts: Iterable[str] | None = None,
    latest: bool = False,
    last: int | None = None,
    progress: Progress | None = None,
    cache: VerdictCache | None = None,
    jobs: int = DEFAULT_JOBS,
    rehash: bool = False,
) -> ScanReport:
    """Scan every run of every flow the Metaflow metadata provider lists, every namespace
    (``latest``/``last`` select runs per flow). Flows without a run to scan are skipped.
    Arguments and result as for :func:`scan_run` (``report.extra`` adds ``flows``)."""
    started = time.perf_counter()
    policy = resolve_policy(policy)
    names = check_artifact_names(artifacts or ())
    store = RunDatastore(jobs=jobs, listed=True, record_cache=cache)
    flows = list_flows()
    tasks, unlisted = every_task(flows, store, cache, latest=latest, last=last,
                                 policy=policy, rehash=rehash)
    report = _scan_tasks(tasks, names, policy, store, cache, rehash, progress)
    report.extra = {"flows": len(flows), **report.extra}
    if unlisted:
        report.extra["datastore_only_runs"] = unlisted
    report.seconds = time.perf_counter() - started
    return report


def list_flows() -> list[str]:
    """The names of every flow the configured metadata provider knows (any namespace)."""
    from metaflow import Metaflow

    return sorted(f["flow_id"] for f in Metaflow().metadata.get_object("root", "flow", None, None)
                  or [])


def scan_target(arg: str, **options: Any) -> ScanReport | None:
    """The ``safeart scan`` resolver: scan ``arg`` as a run if it is a Metaflow pathspec.

    Returns None when ``arg`` is not shaped like a pathspec (the CLI then reports a missing
    file); otherwise ``scan_run(arg, **options)``, with its options and errors.
    """
    if not is_pathspec(arg):
        return None
    return scan_run(arg, **options)


def _scan_tasks(
    tasks: list["Task"], names: tuple[str, ...], policy: Policy, store: RunDatastore,
    cache: VerdictCache | None, rehash: bool, progress: Progress | None,
) -> ScanReport:
    records, incomplete = store.artifacts(tasks, names)
    scanner = _BlobScanner(policy, _analyses(records), cache, store)
    fetched = [a for a in records if _analysis_of(a.encoding) != "unsupported"]
    first_use: dict[_Key, str] = {}
    for art in fetched:
        first_use.setdefault((art.store, art.sha), art.pathspec)
    cached = set() if rehash else scanner.from_cache()
    to_fetch = [a for a in fetched if (a.store, a.sha) not in cached]
    total = len(first_use) - len(cached)
    for done, blob in enumerate(store.fetch(to_fetch)):
        if progress:
            progress(done, total, first_use[(blob.store, blob.sha)])
        scanner.scan(blob)
    if progress:
        progress(total, total, "")
    if cache is not None:
        cache.commit()
    report = ScanReport(results=[scanner.result_for(a) for a in records])
    report.results.extend(_incomplete_task(task) for task in incomplete)
    report.extra.update(tasks=len(tasks), artifacts=len(records), blobs=len(first_use),
                        blobs_fetched=total, bytes_fetched=scanner.bytes_read)
    if cache is not None:
        report.extra["blobs_cached"] = scanner.cache_hits
    return report


def _analysis_of(encoding: str) -> Analysis | str:
    if is_pickle(encoding):
        return "pickle"
    if encoding == SAFEART_ENCODING:
        return "safeart"
    return "unsupported"


def _analyses(records: list[StoredArtifact]) -> dict[_Key, set[Analysis]]:
    """Which analyses each blob to fetch needs (one recorded under two encodings: both)."""
    needed: dict[_Key, set[Analysis]] = {}
    for art in records:
        analysis = _analysis_of(art.encoding)
        if analysis != "unsupported":
            needed.setdefault((art.store, art.sha), set()).add(analysis)  # type: ignore[arg-type]
    return needed


def _where(store: StoreRef) -> str:
    return f"{store.ds_type}:{store.ds_root.rstrip('/')}/{store.flow}"


def _identity(store: RunDatastore, ref: StoreRef, sha: str) -> str | None:
    """What the listing says about blob ``sha`` ("" without a listing; None: not listed)."""
    listing = store.listing(ref)
    return "" if listing is None else listing.blob_identity(ref.flow, sha)


class _BlobScanner:
    """Analyses each fetched blob once per needed analysis and remembers the outcome."""

    def __init__(self, policy: Policy, needed: dict[_Key, set[Analysis]],
                 cache: VerdictCache | None, store: RunDatastore):
        self._policy = policy
        self._needed = needed
        self._cache = cache
        self._store = store
        self._outcomes: dict[tuple[StoreRef, str, Analysis], Outcome] = {}
        self._reported: set[tuple[StoreRef, str, Analysis]] = set()
        self.bytes_read = 0
        self.cache_hits = 0

    def from_cache(self) -> set[_Key]:
        """Take every blob whose every needed analysis is cached (one lookup for all);
        return their keys."""
        if self._cache is None:
            return set()
        wanted: list[tuple[StoreRef, str, Analysis, str]] = []
        for (store, sha), analyses in self._needed.items():
            identity = _identity(self._store, store, sha)
            if identity is not None:
                wanted += [(store, sha, a, identity) for a in analyses]
        found = self._cache.get_many([(_where(st), sha, a, i) for st, sha, a, i in wanted])
        hits = {(store, sha) for store, sha, _, _ in wanted}
        for i, (store, sha, analysis, _) in enumerate(wanted):
            if i in found:
                self._outcomes[(store, sha, analysis)] = replace(found[i], seconds=0.0)
            else:
                hits.discard((store, sha))
        self.cache_hits += len(hits)
        return hits

    def scan(self, blob: FetchedBlob) -> None:
        intact = blob.intact
        identity = _identity(self._store, blob.store, blob.sha) if intact else None
        cache = self._cache if identity is not None else None
        for analysis in self._needed[(blob.store, blob.sha)]:
            where = _where(blob.store)
            cached = cache.get(where, blob.sha, analysis, identity) if cache else None
            outcome = (replace(cached, seconds=0.0) if cached is not None
                       else self._analyse(blob, analysis, intact))
            self._outcomes[(blob.store, blob.sha, analysis)] = outcome
            if cached is not None:
                self.cache_hits += 1
            elif cache is not None:
                cache.put(where, blob.sha, analysis, outcome, identity)  # type: ignore[arg-type]
        self.bytes_read += len(blob.data or b"")

    def _analyse(self, blob: FetchedBlob, analysis: Analysis, intact: bool) -> Outcome:
        if blob.data is None:
            return _unreadable(blob)
        started = time.perf_counter()
        if analysis == "pickle":
            result = scan_bytes(blob.data, policy=self._policy, name=blob.sha)
            outcome = Outcome(result.findings, complete=result.complete,
                              formats=tuple(result.formats), globals=result.globals,
                              error=result.error)
        else:
            findings, complete = audit_findings(blob.data, self._policy, blob.sha)
            outcome = Outcome(findings, complete=complete,
                              formats=("safetensors", SAFEART_ENCODING))
        if not intact:
            outcome.findings.insert(0, tampered_finding(blob.sha))
        outcome.size = len(blob.data)
        outcome.seconds = time.perf_counter() - started
        return outcome

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
        outcome = self._outcomes[key]  # type: ignore[index]
        first = key not in self._reported  # the time is spent once, on the first artifact
        self._reported.add(key)  # type: ignore[arg-type]
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


def _unreadable(blob: FetchedBlob) -> Outcome:
    if blob.problem == "io":
        return Outcome([], complete=False, error=f"cannot read blob {blob.sha}: {blob.message}")
    kind, reason = {
        "missing": ("integrity", "the blob Metaflow recorded is missing from the datastore"),
        "corrupt": ("malformed", f"Metaflow cannot unpack the stored blob: {blob.message}"),
    }[blob.problem or "corrupt"]
    return Outcome([Finding(Grade.UNKNOWN, kind, blob.sha, reason, location=blob.sha)],
                    complete=False)


def _incomplete_task(pathspec: str) -> ScanResult:
    finding = Finding(
        Grade.UNKNOWN, "integrity", pathspec,
        "the metadata lists this task but the datastore has no completed attempt of it "
        "(still running, killed, or its records were removed): its artifacts were not "
        "scanned", location=pathspec,
    )
    return ScanResult(pathspec, [finding], complete=False)
