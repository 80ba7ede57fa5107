"""Which tasks a whole-flow audit reads, taken from the flow's datastore listing.

A scan of every run of a flow (``safeart scan --all``, ``safeart scan Flow``) needs the
tasks of each run and the datastore holding them. The Metaflow client finds those one
object at a time (a call per run, per step, per task, and per task for its ``ds-root``
metadata: ~2 ms a run on a local metadata root, a request each on the metadata service),
which made the enumeration most of a re-scan. Here:

* the **run ids** come from one metadata call per flow (``get_object("flow", "run")``,
  with the tags the namespace rule needs);
* the **tasks** come from the listing of the flow's datastore prefix the scan makes anyway
  (:mod:`.listing`): every ``Flow/run/step/task`` folder holding attempt files;
* each run's **datastore** is what its tasks recorded (``ds-type``/``ds-root``), read from
  the metadata of one listed task the first time the run is seen and kept in the verdict
  cache (by metadata provider, flow and run id). A run recorded in another datastore, and
  a run the metadata lists but the listing lacks, is enumerated through the client as
  before (:func:`~safeart.metaflow.pathspec.resolve_tasks`), so nothing the metadata knows
  is skipped.

Runs the listing has but the metadata does not know (their metadata removed, or written
by another metadata provider) are audited too when every namespace is asked for: the
Metaflow client cannot name them, but their blobs are in the datastore. They are counted
in ``report.extra["datastore_only_runs"]``. A task the metadata lists but whose folder
holds no attempt file at all is not seen on this path (there is nothing of it to load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ConfigError
from .listing import Listing
from .pathspec import metaflow_error
from .stored import RecordCache, RunDatastore, StoreRef

if TYPE_CHECKING:  # pragma: no cover
    from metaflow import Task

    from ..policy import Policy

_ATTEMPT_FILE = re.compile(r"^[0-9]+\.(?:attempt\.json|DONE\.lock|data\.json)$")


@dataclass(frozen=True)
class ListedTask:
    """A task found in a datastore listing (stands in for a client ``Task``)."""

    pathspec: str
    store: StoreRef

    @property
    def path_components(self) -> list[str]:
        """``[flow, run, step, task]``."""
        return self.pathspec.split("/")


class WholeFlows:
    """Every run of some flows: their run ids read from the metadata (one call per flow)
    and their datastore listings started, then :meth:`tasks` per flow.

    Args:
        flows: Flow names.
        store: Lists and reads the datastores (``listed``).
        cache: Keeps each run's recorded datastore between scans; None: read every time.
        rehash: Read each run's recorded datastore again (and cache it anew).
        all_namespaces: Runs of every namespace, and the datastore-only ones; else the
            runs in the current Metaflow namespace.
    """

    def __init__(self, flows: Sequence[str], store: RunDatastore, cache: RecordCache | None,
                 *, all_namespaces: bool, rehash: bool = False) -> None:
        from metaflow import Metaflow, get_namespace
        from metaflow.exception import MetaflowException

        self._provider = Metaflow().metadata
        self._store = store
        self._cache = cache
        self._rehash = rehash
        try:
            self._namespace = None if all_namespaces else get_namespace()
        except MetaflowException as exc:  # e.g. no user name to make the namespace from
            raise metaflow_error(", ".join(flows), exc) from None
        self._runs: dict[str, list[dict[str, Any]]] = {}
        self._refs: dict[str, StoreRef] = {}
        for flow in flows:
            runs = self._runs[flow] = list(
                self._provider.get_object("flow", "run", {}, None, flow) or [])
            try:
                self._refs[flow] = store.configured_store(flow)
            except ConfigError:  # no usable configured datastore: the runs name theirs
                continue
            store.prefetch_listing(self._refs[flow], [_run_id(r) for r in runs])

    def tasks(self, flow: str) -> tuple[list[Any], int] | None:
        """Every task of every run of ``flow``: listed tasks first, then those of the runs
        enumerated through the client; and how many runs only the datastore has. None
        when the configured datastore has no listing (enumerate through the client)."""
        ref = self._refs.get(flow)
        listing = self._store.listing(ref) if ref is not None else None
        if ref is None or listing is None:
            return None
        runs = _in_namespace(self._runs[flow], self._namespace)
        folders = _task_folders(listing, flow)
        where = f"runs:{self._provider.metadata_str()}"
        locations = _locations(self._provider, self._cache, self._rehash, where, flow,
                               {run: _located_task(folders[run]) for run in runs
                                if folders.get(run)})
        tasks: list[Any] = []
        others: list[str] = []
        for run in runs:
            listed = folders.pop(run, None)
            if not listed or (locations[run] or ref) != ref:
                others.append(run)
            else:
                tasks += [ListedTask(spec, ref) for spec in listed]
        unknown = sorted(folders) if self._namespace is None else []
        for run in unknown:
            tasks += [ListedTask(spec, ref) for spec in folders[run]]
        return tasks + client_tasks(flow, others), len(unknown)


def every_task(flows: Sequence[str], store: RunDatastore, cache: RecordCache | None, *,
               latest: bool, last: int | None, policy: "Policy",
               rehash: bool = False) -> tuple[list[Any], int]:
    """The tasks ``safeart scan --all`` reads: of every run of every flow in ``flows``
    (every namespace; ``latest``/``last`` select runs per flow, through the client), and
    how many runs only the datastore has. Flows without a run to scan add nothing."""
    whole = (WholeFlows(flows, store, cache, all_namespaces=True, rehash=rehash)
             if not latest and last is None else None)
    for flow in flows if whole is None else ():  # list the datastores meanwhile
        try:
            store.prefetch_listing(store.configured_store(flow))
        except ConfigError:  # no usable configured datastore: runs name theirs
            break
    tasks: list[Any] = []
    unlisted = 0
    for flow in flows:
        found = whole.tasks(flow) if whole is not None else None
        if found is None:
            tasks += _selected_runs(flow, latest, last, policy, store)
        else:
            tasks += found[0]
            unlisted += found[1]
    return tasks, unlisted


def _selected_runs(flow: str, latest: bool, last: int | None, policy: "Policy",
                   store: RunDatastore) -> list["Task"]:
    from .pathspec import RunSpec, resolve_tasks

    try:
        return resolve_tasks(RunSpec(flow), latest=latest, last=last, all_namespaces=True,
                             policy=policy, store=store)
    except ConfigError as exc:
        if "has no runs" in str(exc) or "has no successful run" in str(exc):
            return []
        raise


def _run_id(run: dict[str, Any]) -> str:
    return str(run.get("run_id") or run["run_number"])


def _in_namespace(objects: list[dict[str, Any]], namespace: str | None) -> list[str]:
    """Run ids in ``namespace`` (None: all), oldest first."""
    picked = [o for o in objects if namespace is None
              or namespace in (o.get("tags") or []) + (o.get("system_tags") or [])]
    picked.sort(key=lambda o: (o.get("ts_epoch") or 0, _run_id(o)))
    return [_run_id(o) for o in picked]


def _task_folders(listing: Listing, flow: str) -> dict[str, list[str]]:
    """Run id -> ``Flow/run/step/task`` folders of the listing holding a task's attempt
    files, in :func:`_task_order` (a local metadata root shares the folders: its ``_meta``
    ones hold no attempt file)."""
    runs: dict[str, list[str]] = {}
    for folder in listing.folders():
        parts = folder.split("/")
        if len(parts) == 4 and parts[0] == flow and parts[1] != "data" and any(
                _ATTEMPT_FILE.match(name) for name in listing.names_in(folder)):
            runs.setdefault(parts[1], []).append(folder)
    for specs in runs.values():
        specs.sort(key=_task_order)
    return runs


def _located_task(specs: list[str]) -> str:
    """The task whose metadata tells the run's datastore: the first of a step of the flow
    (Metaflow's own ``_parameters`` task records none)."""
    return next((spec for spec in specs if not spec.split("/")[2].startswith("_")), specs[0])


def _task_order(spec: str) -> tuple[int, int, str, str]:
    """Execution order where Metaflow numbers tasks (ids increase as tasks start), else
    by step and task id."""
    step, task = spec.rsplit("/", 2)[1:]
    return (0, int(task), step, "") if task.isdigit() else (1, 0, step, task)


def _locations(provider: Any, cache: RecordCache | None, rehash: bool, where: str,
               flow: str, first_task: dict[str, str]) -> dict[str, StoreRef | None]:
    """Run id -> the datastore the run recorded (``ds-type``/``ds-root`` of its task
    ``first_task[run]``; None: none recorded, the configured one), from the cache when
    known, else read from the metadata and cached."""
    paths = {f"{flow}/{run}": run for run in first_task}
    known = (cache.get_records(where, [(path, "") for path in paths])
             if cache is not None and not rehash else {})
    out: dict[str, StoreRef | None] = {}
    for path, run in paths.items():
        record = known.get(path)
        if record is None or not all(isinstance(record.get(k), str)
                                     for k in ("ds_type", "ds_root")):
            meta = provider.get_object("task", "metadata", None, None,
                                       *first_task[run].split("/")) or []
            fields = {m.get("field_name"): m.get("value") for m in meta}
            record = {"ds_type": fields.get("ds-type") or "",
                      "ds_root": fields.get("ds-root") or ""}
            if cache is not None:
                cache.put_record(where, path, "", record)
        out[run] = (StoreRef(record["ds_type"], record["ds_root"], flow)
                    if record["ds_type"] and record["ds_root"] else None)
    return out


def client_tasks(flow: str, runs: list[str]) -> list["Task"]:
    """The client tasks of ``runs`` of ``flow``, each run in execution order."""
    from .pathspec import RunSpec, resolve_tasks

    return [task for run in runs for task in resolve_tasks(RunSpec(flow, run))]
