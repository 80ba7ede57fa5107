"""safeart's process state inside Metaflow processes: switches, load policy, artifact names.

Everything here is per process (or per thread / context) and free of Metaflow imports at
module level: Metaflow's registered serializers (``metaflow_extensions.safeart``) read it in
every Metaflow process, and :mod:`safeart.metaflow.runtime` sets it.

Switches:

* opt-in (:func:`opt_in` / :func:`opted_in`): store this process's public artifacts with
  safeart. An explicit flag, set only by ``import safeart.metaflow`` itself or
  ``safeart.metaflow.strict()``; importing a submodule (what ``safeart.load``,
  ``safeart.export`` and ``safeart scan`` do) leaves it off, so calling the production
  loader inside a flow never changes how that flow stores its artifacts.
* strict mode (:func:`set_strict` / :func:`is_strict`, or ``$SAFEART_STRICT``).
* enforcement (:func:`set_enforced` / :func:`enforced`, or ``$SAFEART_ENFORCE``):
  Metaflow's reads of pickled artifacts are scanned and restricted. A malformed
  ``$SAFEART_ENFORCE`` counts as on -- a typo must not silently switch the protection off --
  and :func:`check_enforce_env` names it as an error when an artifact is read.

Load policy (first match wins): :func:`scoped_policy` (``with safeart.metaflow.allowing(Net):
...``), :func:`set_process_policy` (``safeart.metaflow.set_policy``), ``$SAFEART_POLICY``, the
built-in default. In a process that runs the flow file of the artifact's own flow (a task,
``python flow.py dump``), :func:`policy_for` also trusts classes *defined in* ``__main__``.

Artifact names. Metaflow does not tell a serializer which artifact it handles; the datastore
hooks (:mod:`safeart.metaflow.runtime`) record it in a thread-local while Metaflow calls the
serializer: :func:`saving` during a save, :func:`loading` during a load (with the content
address of the blob being decoded).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Tuple

from .. import settings
from ..errors import SafeartError
from ..policy import Policy, resolve_policy
from .encodings import encoding_of, is_safeart


_switches = {"opted_in": False, "strict": False, "enforced": False}


# -- switches ------------------------------------------------------------------------------
def opt_in() -> None:
    """Store this process's public Metaflow artifacts with safeart from now on."""
    _switches["opted_in"] = True


def opted_in() -> bool:
    """True once the process opted in (``import safeart.metaflow``, ``strict()``)."""
    return _switches["opted_in"]


def set_strict(enabled: bool = True) -> None:
    """Turn strict mode on (or off) for this process (``$SAFEART_STRICT`` still counts)."""
    _switches["strict"] = enabled


def is_strict() -> bool:
    """True when :func:`set_strict` or ``$SAFEART_STRICT`` asks for strict mode.

    Raises:
        ConfigError: ``$SAFEART_STRICT`` holds something other than a boolean word.
    """
    return settings.env_flag(settings.STRICT_ENV) or _switches["strict"]


def set_enforced(enabled: bool = True) -> None:
    """Turn enforcement on (or off) for this process (``$SAFEART_ENFORCE`` still counts)."""
    _switches["enforced"] = enabled


def enforced() -> bool:
    """True when :func:`set_enforced` or ``$SAFEART_ENFORCE`` turned enforcement on; never
    raises (a malformed ``$SAFEART_ENFORCE`` is on)."""
    return _switches["enforced"] or settings.env_flag_failsafe(settings.ENFORCE_ENV)


def enforcing() -> bool:
    """True when Metaflow's reads of pickled artifacts are enforced: :func:`enforced`, or
    strict mode in a process that opted in. Never raises (a malformed switch is on)."""
    if enforced():
        return True
    try:
        return opted_in() and is_strict()
    except SafeartError:  # a malformed $SAFEART_STRICT: stay safe
        return True


def check_enforce_env() -> None:
    """Raise a :class:`~safeart.errors.ConfigError` when ``$SAFEART_ENFORCE`` is not a
    boolean word."""
    settings.env_flag(settings.ENFORCE_ENV)


# -- load policy ---------------------------------------------------------------------------
_policy: dict[str, Optional[Policy]] = {"process": None}
_scoped_policy: ContextVar[Optional[Policy]] = ContextVar("safeart_scoped_policy", default=None)


def set_process_policy(policy: Optional[Policy]) -> None:
    """Use ``policy`` for every Metaflow load in this process (None: back to the default)."""
    _policy["process"] = policy


@contextmanager
def scoped_policy(policy: Policy) -> Iterator[Policy]:
    """Use ``policy`` for Metaflow loads inside the ``with`` block (this context only)."""
    token = _scoped_policy.set(policy)
    try:
        yield policy
    finally:
        _scoped_policy.reset(token)


def base_policy() -> Policy:
    """The load policy before the in-flow ``trust_main`` adjustment (the scoped one, else the
    process one, else :func:`safeart.policy.resolve_policy`'s default)."""
    return _scoped_policy.get() or _policy["process"] or resolve_policy()


def policy_for(flow: Optional[str]) -> Policy:
    """The policy for loading (or, at save time, checking) an artifact of ``flow``."""
    policy = base_policy()
    if not policy.trust_main and _runs_flow_file(flow):
        policy = policy.extend(trust_main=True)
    return policy


def _runs_flow_file(flow: Optional[str]) -> bool:
    """True when this process executes the flow file of ``flow``: Metaflow's CLI for
    ``flow`` (a task, ``run``, ``resume``, ``dump`` ...) is running and the ``FlowSpec``
    class of that name is defined in ``__main__`` itself."""
    if not flow:
        return False
    from metaflow import FlowSpec
    from metaflow.metaflow_current import current

    if current.flow_name != flow:
        return False
    cls = getattr(sys.modules.get("__main__"), flow, None)
    return isinstance(cls, type) and issubclass(cls, FlowSpec) and cls.__module__ == "__main__"


# -- artifact names ------------------------------------------------------------------------
@dataclass(frozen=True)
class ArtifactRef:
    """Which artifact is being saved or loaded: ``Flow/run/step/task`` and a name."""

    task: Optional[str]
    name: Optional[str]

    @property
    def flow(self) -> Optional[str]:
        """The flow name, when the task is known."""
        return self.task.split("/", 1)[0] if self.task else None

    def __str__(self) -> str:
        return f"{self.task or '<unknown task>'}:{self.name or '<unknown artifact>'}"


@dataclass
class Loading:
    """One ``TaskDataStore.load_artifacts`` call in progress.

    Attributes:
        task: ``Flow/run/step/task`` of the datastore.
        names: The artifacts requested.
        ds: The ``TaskDataStore`` (its ``_info`` records encodings, ``_objects`` keys).
        key: The content address of the blob Metaflow fetched last (what the serializer
            being called decodes); None until the first blob arrives.
    """

    task: str
    names: Sequence[str]
    ds: Any
    key: Optional[str] = field(default=None)

    @property
    def flow(self) -> Optional[str]:
        """The flow name."""
        return ArtifactRef(self.task, None).flow

    def encoding(self, name: str) -> str:
        """The encoding Metaflow recorded for ``name`` (its legacy default if none)."""
        return encoding_of(self.ds._info.get(name))

    def safeart_keys(self) -> set[str]:
        """The content addresses only safeart-encoded artifacts of this load are stored
        under (a key a pickled artifact also names is left out)."""
        mine = {self.ds._objects.get(n) for n in self.names if is_safeart(self.encoding(n))}
        others = {self.ds._objects.get(n) for n in self.names if not is_safeart(self.encoding(n))}
        return {key for key in mine - others if key}

    def shared(self, key: str) -> bool:
        """True when several requested names are stored under ``key``: Metaflow then hands
        the same blob object to the serializer once per name."""
        return sum(self.ds._objects.get(n) == key for n in self.names) > 1

    def current(
        self,
        accepts: Callable[[str], bool] = is_safeart,
        serializer_info: Optional[Mapping[str, Any]] = None,
    ) -> ArtifactRef:
        """The artifact being decoded: among the requested names whose encoding ``accepts``,
        those stored under :attr:`key`, narrowed to the one whose recorded
        ``serializer_info`` is the very dict Metaflow handed the serializer (several names
        may share one blob; if still ambiguous, all are listed)."""
        names = [n for n in self.names if accepts(self.encoding(n))]
        if self.key is not None:
            names = [n for n in names if self.ds._objects.get(n) == self.key] or names
        if serializer_info is not None and len(names) > 1:
            recorded = {n: self.ds._info.get(n, {}).get("serializer_info") for n in names}
            names = [n for n in names if recorded[n] is serializer_info] or names
        return ArtifactRef(self.task, names[0] if len(names) == 1 else "{" + ",".join(names) + "}")


_LOCAL = threading.local()


def saving() -> ArtifactRef:
    """The artifact Metaflow is saving in this thread (fields None outside a save)."""
    return getattr(_LOCAL, "saving", None) or ArtifactRef(None, None)


def loading() -> Optional[Loading]:
    """The artifact load Metaflow is running in this thread (None outside a load)."""
    return getattr(_LOCAL, "loading", None)


@contextmanager
def naming_saves() -> Iterator[Callable[[str, Iterable[Tuple[str, Any]]], Iterator]]:
    """For one ``save_artifacts`` call: yields ``name(task, pairs)``, which makes each
    ``(name, obj)`` pair visible through :func:`saving` while Metaflow serializes it.
    Restores the previous state (and forgets inherited objects) on exit, also when the
    save fails."""
    previous = getattr(_LOCAL, "saving", None)

    def name(task: str, pairs: Iterable[Tuple[str, Any]]) -> Iterator[Tuple[str, Any]]:
        for artifact, obj in pairs:
            # Metaflow serializes each pair before it asks for the next one.
            _LOCAL.saving = ArtifactRef(task, artifact)
            yield artifact, obj

    try:
        yield name
    finally:
        _LOCAL.saving = previous
        forget_inherited()


def naming_loads(load: Loading, inner: Iterator[Tuple[str, Any]]) -> Iterator[Tuple[str, Any]]:
    """Metaflow's ``load_artifacts`` iterator ``inner``, with ``load`` visible through
    :func:`loading` while each item is produced (that is when Metaflow deserializes)."""
    record = _records_inherited(load)
    while True:
        previous = getattr(_LOCAL, "loading", None)
        _LOCAL.loading = load
        try:
            item = next(inner)
        except StopIteration:
            return
        finally:
            _LOCAL.loading = previous
        if record and not is_safeart(load.encoding(item[0])):
            _inherited[id(item[1])] = (item[1], item[0])
        yield item


# -- inherited artifacts -------------------------------------------------------------------
# Metaflow re-saves every artifact a step *read* (``FlowSpec.__getattr__`` caches it on the
# flow object and ``TaskDataStore.persist`` saves everything in ``dir(flow)``), so each
# later step that only reads an artifact dispatches it to ``can_serialize`` again. For a
# pickled one that re-ran the fallback decision and warned again in every reading step.
# The load hook remembers the objects a task loaded from its own run under a pickle
# encoding; a save of that very object under the same name is the inherited artifact, not a
# new one (it is stored as where it was first stored, and was warned about there).
_inherited: dict[int, Tuple[Any, str]] = {}  # id -> (obj, name), kept until the next save


def _records_inherited(load: Loading) -> bool:
    """True when ``load`` reads the run of the task this process is running."""
    from metaflow.metaflow_current import current

    return bool(current.is_running_flow) and load.task.startswith(
        f"{current.flow_name}/{current.run_id}/"
    )


def inherited(obj: Any, ref: ArtifactRef) -> bool:
    """True when ``obj`` is the pickled artifact ``ref.name`` this task loaded from its own
    run (an inherited artifact being re-saved, not a new value)."""
    entry = _inherited.get(id(obj))
    return entry is not None and entry[0] is obj and entry[1] == ref.name


def forget_inherited() -> None:
    """Drop the inherited objects remembered so far (after a save)."""
    _inherited.clear()
