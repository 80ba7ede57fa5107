"""Metaflow's side of safeart artifacts: the registered ``ArtifactSerializer``.

Metaflow registers :class:`SafeartSerializer` in every process (see ``mfextinit_safeart``),
so reading safeart artifacts never needs an import. Writing is opt-in per flow: the
serializer claims objects only once the process opted in (a flow file's ``import
safeart.metaflow``; importing a submodule such as ``safeart.metaflow.loader`` does not),
and then delegates every save-time decision to
:mod:`safeart.metaflow.serializer`. This module must therefore never import
``safeart.metaflow`` itself -- Metaflow imports it at start-up in every process.

Artifact names. ``ArtifactSerializer.can_serialize(obj)`` and ``deserialize(data, metadata)``
are not told which artifact they handle, yet safeart must skip Metaflow's internal artifacts,
name the artifact in strict-mode and load errors, and know which flow an artifact belongs
to. :func:`install_hooks` wraps ``TaskDataStore.save_artifacts`` and ``load_artifacts`` (the
only two places Metaflow dispatches to serializers) so that the datastore and artifact name
being handled are visible in a thread-local while Metaflow calls the serializer. The
wrappers change nothing else; they are installed only on Metaflow versions whose
``save_artifacts(self, artifacts_iter, len_hint=0)`` / ``load_artifacts(self, names)``
match what was verified (2.19.26, the first release with pluggable serializers, to
2.19.39).

Policy used for loads (first match wins): :func:`scoped_policy` (``with
safeart.metaflow.allowing(Net): ...``), :func:`set_process_policy`
(``safeart.metaflow.set_policy``), ``$SAFEART_POLICY``, the built-in default. Inside a
process that runs the flow file of the artifact's own flow (a task, ``python flow.py
dump``), that policy also trusts classes *defined in* ``__main__`` (``trust_main``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import threading
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from metaflow.datastore.artifacts.serializer import (
    ArtifactSerializer,
    SerializationFormat,
    SerializationMetadata,
    SerializedBlob,
    SerializerStore,
)

from safeart.errors import SafeartError, UnsupportedVersion
from safeart.policy import Policy
from safeart.policy.files import policy_from_env

__all__ = [
    "ENCODING",
    "SUPPORTED_METAFLOW",
    "ArtifactRef",
    "SafeartSerializer",
    "hooks_installed",
    "inherited",
    "install_hooks",
    "ensure_registered",
    "loading",
    "policy_for",
    "saving",
    "scoped_policy",
    "set_process_policy",
]

#: Metaflow ``encoding`` of a safeart artifact: one blob, exactly ``safeart.format.dumps``
#: output. The blob carries its own format version; this suffix versions the Metaflow
#: layout and bumps only if that changes.
ENCODING = "safeart-v1"
_PREFIX = "safeart-"
#: What Metaflow assumes for artifacts recorded without an encoding (very old runs).
_LEGACY = "gzip+pickle-v2"

#: Metaflow versions whose datastore internals the hooks were verified against.
_VERIFIED = ((2, 19, 26), (2, 20, 0))
SUPPORTED_METAFLOW = ">=2.19.26,<2.20"


@dataclass(frozen=True)
class ArtifactRef:
    """Which artifact is being saved or loaded: ``Flow/run/step/task`` and a name."""

    task: Optional[str]
    name: Optional[str]

    @property
    def flow(self) -> Optional[str]:
        """The flow name, when the task is known."""
        return _flow_of(self.task)

    def __str__(self) -> str:
        return f"{self.task or '<unknown task>'}:{self.name or '<unknown artifact>'}"


class SafeartSerializer(ArtifactSerializer):
    """Stores artifacts as safeart blobs (safetensors + JSON manifest), never pickle.

    Claims an object only once the process opted in (see the module doc);
    decodes every ``safeart-*`` artifact, refusing layouts newer than it knows instead of
    letting another serializer try.
    """

    TYPE = "safeart"
    # Ahead of every other serializer: in strict mode no user artifact may reach a
    # (possibly pickle-based) serializer after this one.
    PRIORITY = 10

    @classmethod
    def setup_imports(cls, context: Any = None) -> None:
        """Called once by Metaflow's registry: install the datastore hooks."""
        install_hooks()

    @classmethod
    def can_serialize(cls, obj: Any) -> bool:
        encoder = _encoder()
        return encoder is not None and encoder.claims(obj, saving())

    @classmethod
    def can_deserialize(cls, metadata: SerializationMetadata) -> bool:
        return str(metadata.encoding).startswith(_PREFIX)

    @classmethod
    def serialize(
        cls, obj: Any, format: SerializationFormat = SerializationFormat.STORAGE
    ) -> Tuple[List[SerializedBlob], SerializationMetadata]:
        if format == SerializationFormat.WIRE:
            raise NotImplementedError("safeart artifacts have no WIRE representation")
        encoder = _encoder()
        if encoder is None:  # only reachable when called outside Metaflow's dispatch
            raise RuntimeError("import safeart.metaflow to store artifacts with safeart")
        blob, info = encoder.serialize(obj, saving())
        return (
            [SerializedBlob(blob, is_reference=False)],
            SerializationMetadata(
                obj_type=str(type(obj)), size=len(blob), encoding=ENCODING, serializer_info=info
            ),
        )

    @classmethod
    def deserialize(
        cls,
        data: List[bytes],
        metadata: Optional[SerializationMetadata] = None,
        format: SerializationFormat = SerializationFormat.STORAGE,
    ) -> Any:
        if format == SerializationFormat.WIRE:
            raise NotImplementedError("safeart artifacts have no WIRE representation")
        from safeart.format import loads

        load = getattr(_LOCAL, "loading", None)
        try:
            _check_layout(metadata.encoding if metadata is not None else ENCODING)
            if load is None:
                return loads(data[0], policy=policy_for(None))
            return loads(data[0], policy=policy_for(load.flow), name=load.cheap_name())
        except SafeartError as err:
            if load is not None:
                err.with_artifact(str(load.ref_for(data[0])))
            raise


def _check_layout(encoding: str) -> None:
    if encoding != ENCODING:
        raise UnsupportedVersion(
            f"artifact encoding {encoding!r} is not {ENCODING!r}, the only layout this "
            "safeart reads (it was probably written by a newer safeart)",
            hint="upgrade safeart where you load this artifact",
        )


def _encoder() -> Any:
    """``safeart.metaflow.serializer`` when the process opted in, else None.

    Opting in is the explicit flag ``import safeart.metaflow`` sets
    (:func:`safeart.metaflow.modes.opted_in`); having the package loaded is not enough
    (``safeart.load`` loads it to read another run's artifacts).
    """
    modes = sys.modules.get("safeart.metaflow.modes")
    if modes is None or not modes.opted_in():
        return None
    from safeart.metaflow import serializer

    return serializer


# -- load policy ---------------------------------------------------------------------------
_process_policy: Optional[Policy] = None
_scoped_policy: ContextVar[Optional[Policy]] = ContextVar("safeart_scoped_policy", default=None)


def set_process_policy(policy: Optional[Policy]) -> None:
    """Use ``policy`` for every Metaflow load in this process (None: back to the default)."""
    global _process_policy
    _process_policy = policy


@contextmanager
def scoped_policy(policy: Policy) -> Iterator[Policy]:
    """Use ``policy`` for Metaflow loads inside the ``with`` block (this context only)."""
    token = _scoped_policy.set(policy)
    try:
        yield policy
    finally:
        _scoped_policy.reset(token)


def base_policy() -> Policy:
    """The load policy before the in-flow ``trust_main`` adjustment."""
    return _scoped_policy.get() or _process_policy or policy_from_env()


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


# -- datastore hooks -----------------------------------------------------------------------
_LOCAL = threading.local()
_HOOKED = "__safeart_hook__"


def saving() -> ArtifactRef:
    """The artifact Metaflow is saving in this thread (fields None outside a save)."""
    return getattr(_LOCAL, "saving", None) or ArtifactRef(None, None)


def loading() -> Optional["_Loading"]:
    """The artifact load Metaflow is running in this thread (None outside a load)."""
    return getattr(_LOCAL, "loading", None)


def _is_safeart(encoding: str) -> bool:
    return encoding.startswith(_PREFIX)


@dataclass(frozen=True)
class _Loading:
    task: str
    names: Sequence[str]
    ds: Any

    @property
    def flow(self) -> Optional[str]:
        return _flow_of(self.task)

    def _candidates(self, accepts: Callable[[str], bool]) -> list[str]:
        info = self.ds._info  # no encoding recorded: Metaflow's default, as it loads them
        return [
            n for n in self.names if accepts(str(info.get(n, {}).get("encoding", _LEGACY)))
        ]

    def cheap_name(self) -> str:
        """The artifact being decoded when that is clear without hashing, else ``""``."""
        names = self._candidates(_is_safeart)
        return names[0] if len(names) == 1 else ""

    def ref_for(self, blob: bytes, accepts: Callable[[str], bool] = _is_safeart) -> ArtifactRef:
        """Which requested artifact ``blob`` belongs to: the only one requested whose
        encoding ``accepts`` (safeart's by default), else the one whose content address is
        the blob's sha1 (errors only)."""
        names = self._candidates(accepts)
        if len(names) > 1:
            key = hashlib.sha1(blob).hexdigest()
            names = [n for n in names if self.ds._objects.get(n) == key] or names
        return ArtifactRef(self.task, names[0] if len(names) == 1 else "{" + ",".join(names) + "}")


def _flow_of(task: Optional[str]) -> Optional[str]:
    return task.split("/", 1)[0] if task else None


def _task_of(ds: Any) -> str:
    return f"{ds.parent_datastore.flow_name}/{ds.pathspec}"


def _named(ds: Any, pairs: Iterable[Tuple[str, Any]]) -> Iterator[Tuple[str, Any]]:
    task = _task_of(ds)
    for name, obj in pairs:
        # Metaflow serializes each pair before it asks for the next one.
        _LOCAL.saving = ArtifactRef(task, name)
        yield name, obj


def _with_context(load: _Loading, inner: Iterator[Tuple[str, Any]]) -> Iterator[Tuple[str, Any]]:
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
        if record:
            _note_inherited(load, *item)
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


def _records_inherited(load: _Loading) -> bool:
    """True when ``load`` reads the run of the task this process is running."""
    from metaflow.metaflow_current import current

    return bool(current.is_running_flow) and load.task.startswith(
        f"{current.flow_name}/{current.run_id}/"
    )


def _note_inherited(load: _Loading, name: str, obj: Any) -> None:
    if not _is_safeart(str(load.ds._info.get(name, {}).get("encoding", _LEGACY))):
        _inherited[id(obj)] = (obj, name)


def inherited(obj: Any, ref: ArtifactRef) -> bool:
    """True when ``obj`` is the pickled artifact ``ref.name`` this task loaded from its own
    run (an inherited artifact being re-saved, not a new value)."""
    entry = _inherited.get(id(obj))
    return entry is not None and entry[0] is obj and entry[1] == ref.name


def _verified() -> bool:
    from metaflow.datastore.task_datastore import TaskDataStore
    from metaflow.version import metaflow_version

    try:
        version = tuple(int(p) for p in metaflow_version.split("+")[0].split(".")[:3])
    except ValueError:
        return False
    save = list(inspect.signature(TaskDataStore.save_artifacts).parameters)
    load = list(inspect.signature(TaskDataStore.load_artifacts).parameters)
    return (
        _VERIFIED[0] <= version < _VERIFIED[1]
        and save == ["self", "artifacts_iter", "len_hint"]
        and load == ["self", "names"]
    )


def hooks_installed() -> bool:
    """True when the datastore hooks are in place (artifact names are known)."""
    from metaflow.datastore.task_datastore import TaskDataStore

    return getattr(TaskDataStore.save_artifacts, _HOOKED, False)


def install_hooks() -> bool:
    """Wrap ``TaskDataStore.save_artifacts``/``load_artifacts`` (idempotent).

    Returns False, with a warning, on a Metaflow version the wrappers were not verified
    against; safeart then never claims an artifact (strict mode refuses to save).
    """
    from metaflow.datastore.task_datastore import TaskDataStore

    if hooks_installed():
        return True
    if not _verified():
        warnings.warn(
            f"safeart: this Metaflow version is not supported (need {SUPPORTED_METAFLOW}); "
            "artifacts are stored by Metaflow's own serializers",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    save, load = TaskDataStore.save_artifacts, TaskDataStore.load_artifacts

    @functools.wraps(save)
    def save_artifacts(
        self: Any, artifacts_iter: Iterable[Tuple[str, Any]], len_hint: int = 0
    ) -> None:
        encoder = _encoder()
        if encoder is not None:  # opted in: large safeart blobs may be stored raw
            encoder.prepare_save()
        previous = getattr(_LOCAL, "saving", None)
        try:
            return save(self, _named(self, artifacts_iter), len_hint=len_hint)
        finally:  # also when Metaflow's save fails (e.g. a strict-mode refusal)
            _LOCAL.saving = previous
            _inherited.clear()

    @functools.wraps(load)
    def load_artifacts(self: Any, names: Iterable[str]) -> Iterator[Tuple[str, Any]]:
        names = list(names)
        return _with_context(_Loading(_task_of(self), names, self), load(self, names))

    setattr(save_artifacts, _HOOKED, True)
    setattr(load_artifacts, _HOOKED, True)
    TaskDataStore.save_artifacts = save_artifacts
    TaskDataStore.load_artifacts = load_artifacts
    return True


def ensure_registered() -> None:
    """Register :class:`SafeartSerializer` if Metaflow did not discover the extension
    (e.g. ``METAFLOW_EXTENSIONS_SEARCH_DIRS`` excludes it)."""
    if SafeartSerializer not in SerializerStore.get_ordered_serializers():
        SerializerStore.bootstrap_entries(
            [(SafeartSerializer.TYPE, f"{__name__}.SafeartSerializer")], source="safeart"
        )
    install_hooks()
