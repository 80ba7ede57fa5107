"""Metaflow pathspecs as scan targets: parse ``Flow[/run[/step[/task]]][:artifact]`` and
resolve them to tasks through the Metaflow client.

Enumeration goes through the client objects (``Flow``/``Run``/``Step``/``Task``), so it
works with whichever metadata provider Metaflow is configured with (local or the metadata
service) and never touches artifact data.

Which run a bare flow name means is decided here, once, for the loader and the scanner:
:func:`latest_successful_run` is the run ``safeart.load("Flow", ...)`` loads *and* the run
``safeart scan Flow --latest`` scans (the newest run whose end task recorded success, like
``Flow(...).latest_successful_run``), so the gate scans exactly what the loader loads.
``--last N`` and a bare flow name select the most recent runs whatever their status (an
audit of history; failed runs included). Enumeration never touches artifact data except
the end tasks' ``_success`` flags, read through the loader's guarded path.

Namespaces: a pathspec that names a run (or a step or task in it) is scanned whatever
namespace it belongs to -- an ID is unambiguous and a security audit must not silently skip
what it was asked to check. A bare flow name (all runs, ``latest``, ``last=N``) lists runs
in the *current* Metaflow namespace (``user:$USERNAME`` by default, or whatever
``metaflow.namespace()`` set), like ``Flow(...).runs()``; ``all_namespaces=True`` lists
runs of every namespace.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from metaflow import Run, Task
    from metaflow.exception import MetaflowException

    from ..policy import Policy
    from .stored import RunDatastore


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ID = r"[^/:\s]+"
_PATHSPEC = re.compile(
    rf"^(?P<flow>{_IDENT})(?:/(?P<run>{_ID})(?:/(?P<step>{_IDENT})(?:/(?P<task>{_ID}))?)?)?"
    rf"(?::(?P<artifact>{_IDENT}))?$"
)
_ARTIFACT = re.compile(rf"^{_IDENT}$")


@dataclass(frozen=True)
class RunSpec:
    """A parsed Metaflow pathspec: a flow, optionally narrowed to a run, step, task and
    one artifact (``Flow/run/step/task:name``)."""

    flow: str
    run: str | None = None
    step: str | None = None
    task: str | None = None
    artifact: str | None = None

    @property
    def object_pathspec(self) -> str:
        """The client pathspec of the object named (without ``:artifact``)."""
        return "/".join(p for p in (self.flow, self.run, self.step, self.task) if p)

    def __str__(self) -> str:
        suffix = f":{self.artifact}" if self.artifact else ""
        return self.object_pathspec + suffix


def is_pathspec(text: str) -> bool:
    """True when ``text`` is shaped like a Metaflow pathspec (``Flow``, ``Flow/run`` ...)."""
    return _PATHSPEC.match(text) is not None


def parse_pathspec(text: str) -> RunSpec:
    """Parse ``Flow``, ``Flow/run``, ``Flow/run/step``, ``Flow/run/step/task`` or any of
    them followed by ``:artifact`` (only after a task).

    Raises:
        ConfigError: ``text`` is not a pathspec of one of these forms.
    """
    match = _PATHSPEC.match(text)
    if match is None:
        raise ConfigError(
            f"{text!r} is neither an existing file nor a Metaflow pathspec",
            hint="use Flow, Flow/run, Flow/run/step, Flow/run/step/task or "
            "Flow/run/step/task:artifact",
        )
    spec = RunSpec(**match.groupdict())
    if spec.artifact and not spec.task:
        raise ConfigError(
            f"{text!r}: ':artifact' needs a task pathspec (Flow/run/step/task:artifact)",
            hint="to pick an artifact in every task, use --artifact NAME",
        )
    return spec


def check_artifact_names(names: Iterable[str]) -> tuple[str, ...]:
    """Validate ``--artifact`` names (Python identifiers); return them as a tuple."""
    out = tuple(names)
    for name in out:
        if not _ARTIFACT.match(name):
            raise ConfigError(f"{name!r} is not an artifact name (a Python identifier)")
    return out


def latest_successful_run(
    flow: str,
    *,
    policy: "Policy",
    store: "RunDatastore | None" = None,
    all_namespaces: bool = False,
) -> "Run | None":
    """The run ``safeart.load("Flow", ...)`` loads and ``safeart scan Flow --latest`` scans:
    the newest run (current namespace, or any with ``all_namespaces``) whose end task's
    ``_success`` flag is true, read with ``policy`` through the loader's guarded path.
    None when the flow has no such run.

    Raises:
        UnsafeArtifactError, PolicyError, FormatError: a ``_success`` flag the loader refuses.
    """
    from .loader import run_succeeded

    for run in _runs(flow, all_namespaces):
        if run_succeeded(run, policy=policy, store=store):
            return run
    return None


def resolve_tasks(
    spec: RunSpec,
    *,
    latest: bool = False,
    last: int | None = None,
    all_namespaces: bool = False,
    policy: "Policy | None" = None,
    store: "RunDatastore | None" = None,
) -> list["Task"]:
    """The client ``Task`` objects ``spec`` names, oldest run first, in step order.

    Args:
        spec: The parsed pathspec.
        latest: With a bare flow name: only its latest successful run
            (:func:`latest_successful_run`, read with ``policy`` and ``store``).
        last: With a bare flow name: only its ``last`` most recent runs (any status).
        all_namespaces: With a bare flow name: list runs of every namespace.
        policy: Reads the ``_success`` flags for ``latest``; default ``$SAFEART_POLICY``
            or the built-in allowlist.
        store: Reads them (a :class:`~safeart.metaflow.stored.RunDatastore` to reuse).

    Raises:
        ConfigError: bad option combination, or the flow/run/step/task does not exist.
    """
    from metaflow import Run, Step, Task, get_namespace
    from metaflow.exception import MetaflowException

    if (latest or last is not None) and spec.run is not None:
        raise ConfigError(
            f"--latest/--last select runs of a flow; {spec} already names a run",
            hint=f"pass the bare flow name: {spec.flow}",
        )
    if last is not None and last < 1:
        raise ConfigError(f"--last must be a positive number of runs, got {last}")
    try:
        if spec.task is not None:
            return [Task(spec.object_pathspec, _namespace_check=False)]
        if spec.step is not None:
            return _step_tasks(Step(spec.object_pathspec, _namespace_check=False))
        if spec.run is not None:
            return _run_tasks(Run(spec.object_pathspec, _namespace_check=False))
        if latest:
            from ..policy import resolve_policy

            run = latest_successful_run(spec.flow, policy=resolve_policy(policy),
                                        store=store, all_namespaces=all_namespaces)
            if run is not None:
                return _run_tasks(run)
            if next(_runs(spec.flow, all_namespaces), None) is not None:
                raise ConfigError(
                    f"flow {spec.flow} has no successful run"
                    + ("" if all_namespaces else f" in this namespace ({get_namespace()})"),
                    hint="--latest is the latest successful run (what safeart.load loads); "
                    "name a run (Flow/run) or pass --last N to scan failed ones",
                )
        else:
            runs = list(itertools.islice(_runs(spec.flow, all_namespaces), last))
            if runs:
                return [task for run in reversed(runs) for task in _run_tasks(run)]
    except MetaflowException as exc:
        raise metaflow_error(spec.object_pathspec, exc) from None
    if all_namespaces:
        raise ConfigError(f"flow {spec.flow} has no runs")
    raise ConfigError(
        f"flow {spec.flow} has no runs in this namespace ({get_namespace()})",
        hint="pass --all-namespaces to list every run",
    )


def metaflow_error(what: str, exc: "MetaflowException") -> ConfigError:
    """The :class:`ConfigError` for a Metaflow client error met while resolving ``what``."""
    return ConfigError(
        f"{what}: {exc.headline}: {exc.message}",
        hint="check the pathspec and the Metaflow configuration (METAFLOW_PROFILE, "
        "metadata service, datastore root, USERNAME) this command runs with",
    )


def _runs(name: str, all_namespaces: bool) -> Iterator["Run"]:
    """The flow's runs in the current namespace (or all), newest first (none when the flow
    exists but has no run in this namespace)."""
    from metaflow import Flow
    from metaflow.exception import MetaflowNamespaceMismatch

    try:
        flow = Flow(name, _namespace_check=not all_namespaces)
    except MetaflowNamespaceMismatch:
        return
    yield from flow


def _run_tasks(run: "Run") -> list["Task"]:
    # The client lists children newest first; scan in execution order.
    return [task for step in reversed(list(run)) for task in _step_tasks(step)]


def _step_tasks(step: Iterable["Task"]) -> list["Task"]:
    return sorted(step, key=lambda t: (t.created_at, t.id))
