"""Production loading of Metaflow artifacts with an enforced allowlist.

::

    import safeart
    from mypkg.models import Net

    model = safeart.load("TrainFlow/1234/train/5", "model", allow=[Net])
    model = safeart.load("TrainFlow/1234/train/5:model", allow=[Net])   # the same
    model = safeart.load("TrainFlow/1234", "model", allow=[Net])        # like run.data.model
    model = safeart.load("TrainFlow", "model", allow=[Net])             # latest successful run

Which task an artifact comes from:

* ``Flow/run/step/task``: that task. ``Flow/run/step``: the step's only task (a foreach
  step has several; name one).
* ``Flow/run``: like Metaflow's ``run.data``, the task of the end step (artifacts propagate
  to it). If the run has no end task holding the artifact (it failed or is still running,
  or the artifact was deleted before the end), the most recently started task that stored it.
* ``Flow``: the latest successful run in the current Metaflow namespace, like
  ``Flow(...).latest_successful_run`` (a run is successful when its end task's
  ``_success`` artifact is true, read here through the same guarded path), then as above.
  It is the run ``safeart scan Flow --latest`` scans
  (:func:`safeart.metaflow.pathspec.latest_successful_run` decides for both).
  Switch namespaces with ``metaflow.namespace(...)`` before loading.

How it is loaded. The artifact's record (encoding, content address) comes from its task's
datastore and its bytes are fetched once through Metaflow's datastore layer
(:mod:`safeart.metaflow.stored`), never through ``DataArtifact.data``. A blob that no longer
hashes to its content address was changed in the store and is refused. Then, by the
encoding Metaflow recorded:

* ``safeart-v1``: :func:`safeart.loads` under the policy (every manifest class allowed);
* ``pickle-v2``/``pickle-v4`` (and legacy ``gzip+pickle-*``): :func:`safeart.guard.load_pickle`
  -- scanned with the policy and refused with the findings unless clean, then unpickled by
  the restricted unpickler from the very same bytes. It never falls back to ``pickle``;
* anything else: refused.

The policy is ``policy`` (default ``$SAFEART_POLICY`` or the built-in allowlist:
:func:`safeart.policy.resolve_policy`) plus ``allow``; one Policy or TOML file serves both
encodings. A class object in ``allow`` also stands for ``__main__.<its name>``, the name a
class defined in a flow file is recorded under.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import ConfigError, FormatError, SafeartError, UnsupportedVersion
from ..guard import load_pickle, refuse_unless_clean
from ..policy import AllowSpec, Policy, resolve_policy
from ..scan import ScanResult
from .encodings import SAFEART_ENCODING, is_pickle, is_safeart
from .stored import FetchedBlob, RunDatastore, StoredArtifact
from .pathspec import (
    RunSpec,
    check_artifact_names,
    latest_successful_run,
    parse_pathspec,
    resolve_tasks,
)
from .runscan import tampered_finding

if TYPE_CHECKING:  # pragma: no cover
    from metaflow import Run, Task


def load(
    pathspec: str,
    name: str | None = None,
    *,
    allow: Iterable[AllowSpec] = (),
    policy: Policy | None = None,
    device: Any = None,
) -> Any:
    """Load one Metaflow artifact, admitting only the classes the policy allows.

    Args:
        pathspec: ``Flow/run/step/task``, ``Flow/run/step``, ``Flow/run`` or ``Flow``,
            optionally followed by ``:name`` after a task (see the module doc for which
            task is used).
        name: The artifact name, unless ``pathspec`` ends with ``:name``.
        allow: Extra classes to allow (class objects, ``"module.Class"`` names, ...).
        policy: The base policy; default ``$SAFEART_POLICY`` or the built-in allowlist
            (:func:`safeart.policy.resolve_policy`).
        device: Where tensors go (``"cuda:0"``, a ``torch.device``), like ``map_location``;
            the CPU if None.

    Returns:
        The rebuilt object.

    Raises:
        UnsafeArtifactError: a pickled artifact's scan found something above "allowed",
            or the blob was changed in the datastore; its ``report`` holds the findings.
        PolicyError: a class is not allowed (the hint says what to add).
        FormatError: the blob is malformed, missing, or has an encoding safeart cannot load.
        ConfigError: a bad pathspec, or no such flow, run, task or artifact.

    Every error names the artifact as ``Flow/run/step/task:name``.
    """
    policy = resolve_policy(policy, allow)
    store = RunDatastore()
    record = locate(pathspec, name, policy=policy, store=store)
    return decode(record, fetch(record, store=store), policy, device)


def locate(
    pathspec: str,
    name: str | None = None,
    *,
    policy: Policy | None = None,
    store: RunDatastore | None = None,
) -> StoredArtifact:
    """The stored record of the artifact :func:`load` would load (nothing is deserialized
    except, for a bare flow name, the ``_success`` flags of candidate runs).

    Raises:
        ConfigError: a bad pathspec, or no such flow, run, task or artifact.
    """
    spec = parse_pathspec(pathspec)
    if spec.artifact and name and name != spec.artifact:
        raise ConfigError(f"{pathspec!r} names artifact {spec.artifact!r}, not {name!r}")
    name = name or spec.artifact
    if not name:
        raise ConfigError(
            f"{pathspec!r} names no artifact",
            hint="pass its name: load('Flow/run', 'model') or load('Flow/run/step/task:model')",
        )
    check_artifact_names([name])
    store = store or RunDatastore()
    from metaflow import Run, Step, Task

    with _client_errors(spec):
        if spec.task is not None:
            return _in_task(store, Task(spec.object_pathspec, _namespace_check=False), name)
        if spec.step is not None:
            return _in_task(store, _only_task(Step(spec.object_pathspec, _namespace_check=False)),
                            name)
        if spec.run is not None:
            return _in_run(store, Run(spec.object_pathspec, _namespace_check=False), name)
        run = latest_successful_run(spec.flow, policy=resolve_policy(policy), store=store)
        if run is not None:
            return _in_run(store, run, name)
    raise ConfigError(
        f"flow {spec.flow} has no successful run in the current namespace",
        hint="name a run (Flow/run), or switch namespaces with metaflow.namespace(...)",
    )


def fetch(record: StoredArtifact, *, store: RunDatastore | None = None) -> FetchedBlob:
    """The gunzipped bytes of ``record``'s blob, fetched once through Metaflow's datastore.

    Raises:
        FormatError: the blob is missing, cannot be unpacked, or cannot be read.
        IntegrityError: trust keys are configured and the blob's signature does not verify
            for this flow, run and artifact name.
    """
    (blob,) = (store or RunDatastore()).fetch([record])
    if blob.data is None:
        raise FormatError(
            f"cannot read the stored blob {record.sha} ({blob.problem}): {blob.message}",
            artifact=record.pathspec,
        )
    from .reading import check_signature  # no-op unless $SAFEART_TRUST_KEYS is set

    check_signature(record, blob.data)
    return blob


# -- decoding ------------------------------------------------------------------------------
def decode(record: StoredArtifact, blob: FetchedBlob, policy: Policy, device: Any = None) -> Any:
    """Rebuild the object in ``blob`` (fetched for ``record``) under ``policy``, as
    :func:`load` does: guarded pickle load or safeart decode, by recorded encoding."""
    data = blob.data
    assert data is not None, "fetch() returns readable blobs only"
    if is_pickle(record.encoding):
        integrity = [] if blob.intact else [tampered_finding(record.sha)]
        return load_pickle(data, policy=policy, artifact=record.pathspec, device=device,
                           findings=integrity)
    check_safeart(record, blob, policy)
    from ..format import loads

    try:  # writable data is memory of this load's own (a raw read): tensors share it
        return loads(data, policy=policy, device=device, name=record.name, copy=False)
    except SafeartError as err:
        raise err.with_artifact(record.pathspec)


def check_safeart(record: StoredArtifact, blob: FetchedBlob, policy: Policy) -> None:
    """Refuse a blob that is not an intact ``safeart-v1`` blob (before it is decoded).

    Raises:
        UnsafeArtifactError: the blob does not hash to its content address.
        UnsupportedVersion: a ``safeart-*`` layout this safeart does not know.
        FormatError: an encoding that is neither safeart nor pickle.
    """
    if record.encoding != SAFEART_ENCODING:
        if is_safeart(record.encoding):
            raise UnsupportedVersion(
                f"artifact encoding {record.encoding!r} is not {SAFEART_ENCODING!r}",
                artifact=record.pathspec,
                hint="upgrade safeart where you load this artifact",
            )
        raise FormatError(
            f"artifact encoding {record.encoding!r} is neither a pickle encoding nor "
            f"{SAFEART_ENCODING}; safeart does not load it",
            artifact=record.pathspec,
            hint="load it with the Metaflow extension that wrote it",
        )
    if not blob.intact:
        result = ScanResult(record.pathspec, [tampered_finding(record.sha)], size=len(blob.data or b""))
        refuse_unless_clean(result, policy, record.pathspec)


# -- which task ----------------------------------------------------------------------------
@contextmanager
def _client_errors(spec: RunSpec) -> Iterator[None]:
    """Metaflow client lookups failing (no such flow/run/task) as a ConfigError."""
    from metaflow.exception import MetaflowException

    try:
        yield
    except MetaflowException as exc:
        raise ConfigError(
            f"{spec.object_pathspec}: {exc.headline}: {exc.message}",
            hint="check the pathspec, the Metaflow namespace and configuration "
            "(METAFLOW_PROFILE, metadata service, datastore root)",
        ) from None


def _only_task(step: Iterable["Task"]) -> "Task":
    tasks = list(step)
    if len(tasks) != 1:
        raise ConfigError(
            f"step {step} has {len(tasks)} tasks; name one (Flow/run/step/task)",
        )
    return tasks[0]


def _record(store: RunDatastore, task: "Task", name: str) -> StoredArtifact | None:
    """``task``'s record of ``name``; None when it has none (or no completed attempt)."""
    records, _ = store.artifacts([task], [name])
    return records[0] if records else None


def _in_task(store: RunDatastore, task: "Task", name: str) -> StoredArtifact:
    records, incomplete = store.artifacts([task], [name])
    if records:
        return records[0]
    if incomplete:
        raise ConfigError(f"task {task.pathspec} has no completed attempt in the datastore")
    raise ConfigError(
        f"task {task.pathspec} has no artifact named {name!r}",
        hint="list them with the Metaflow client: Task(...).artifacts",
    )


def _in_run(store: RunDatastore, run: "Run", name: str) -> StoredArtifact:
    end = run.end_task
    found = _record(store, end, name) if end is not None else None
    if found is not None:
        return found
    flow, run_id = run.path_components
    records, _ = store.artifacts(resolve_tasks(RunSpec(flow, run_id)), [name])
    if records:
        return records[-1]
    raise ConfigError(f"no task of run {run.pathspec} stored an artifact named {name!r}")


def run_succeeded(run: "Run", *, policy: Policy, store: RunDatastore | None = None) -> bool:
    """``run.successful`` without Metaflow's unpickling: the end task's ``_success`` flag,
    loaded like any artifact (a pickled flag is scanned, then restricted-unpickled)."""
    store = store or RunDatastore()
    end = run.end_task
    record = _record(store, end, "_success") if end is not None else None
    if record is None:
        return False
    return decode(record, fetch(record, store=store), policy) is True
