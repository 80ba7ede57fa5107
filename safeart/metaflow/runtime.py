"""safeart inside Metaflow processes: the patches of Metaflow internals, the one check that
guards them, serializer registration, and the switches a flow or notebook calls.

Metaflow registers safeart's two serializers (``metaflow_extensions.safeart``) in every
process; they call :func:`install_hooks` when Metaflow's registry sets them up. The library
never imports that extension: it only asks Metaflow's registry, by class path, to load the
entries the extension declares when Metaflow did not discover them (:func:`ensure_registered`).

The patches. Metaflow has no API to tell a serializer which artifact it handles, which blob
it was handed, or to store a blob uncompressed, so safeart wraps four methods:

* ``TaskDataStore.save_artifacts`` / ``load_artifacts`` (the only places Metaflow dispatches
  to serializers): the datastore and artifact being handled become visible to the serializer
  through :mod:`safeart.metaflow.state` (names in errors, Metaflow's internal artifacts
  skipped, the flow an artifact belongs to).
* ``ContentAddressedStore.load_blobs``: during such a load, the content address (key) of
  each blob it yields is noted, so that the serializer checks the bytes it decodes against
  the key Metaflow fetched them by (:mod:`safeart.metaflow.reading`); safeart blobs stored
  raw are read without Metaflow's extra copies (:func:`safeart.metaflow.storage.read_blobs`).
* ``ContentAddressedStore.save_blobs``: large safeart blobs stored uncompressed
  (:mod:`safeart.metaflow.storage`), only in processes that opted in, right before a save.

The naming wrappers call Metaflow's own methods and change nothing else; the two store
replacements do what Metaflow's methods do, with the per-blob differences
:mod:`safeart.metaflow.storage` describes (and fall back to them otherwise). One check guards
them all (:func:`unsupported`): the Metaflow version is in :data:`SUPPORTED_METAFLOW` (2.19.26, the
first release with pluggable serializers, to 2.19.x) and each method has the signature safeart
was verified against. Otherwise nothing is patched and one ``RuntimeWarning`` says so: safeart
then never claims an artifact (strict mode refuses to save). Raw storage is further guarded
by a self-test against Metaflow's own ``save_blobs``/``load_blobs``
(:func:`safeart.metaflow.storage.works`).
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Optional, Tuple, Union

from ..policy import AllowSpec, Policy
from . import state


SUPPORTED_METAFLOW = ">=2.19.26,<2.20"
_VERIFIED = ((2, 19, 26), (2, 20, 0))
#: The patched methods and the parameters each was verified with.
_SIGNATURES = {
    ("TaskDataStore", "save_artifacts"): ["self", "artifacts_iter", "len_hint"],
    ("TaskDataStore", "load_artifacts"): ["self", "names"],
    ("ContentAddressedStore", "load_blobs"): ["self", "keys", "force_raw", "is_transfer"],
    ("ContentAddressedStore", "save_blobs"):
        ["self", "blob_iter", "raw", "len_hint", "is_transfer"],
}
#: What :func:`ensure_registered` asks Metaflow's registry to load (``mfextinit_safeart``).
_PLUGIN = "metaflow_extensions.safeart.plugins"
_SERIALIZERS = (
    ("safeart", f"{_PLUGIN}.safeart_serializer.SafeartSerializer"),
    ("safeart_enforce", f"{_PLUGIN}.safeart_enforce.EnforcingPickleSerializer"),
)
_MARK = "__safeart_patch__"
_decided: dict[str, Any] = {}  # "unsupported": Optional[str], "raw": bool -- once a process


def _classes() -> dict[str, type]:
    from metaflow.datastore.content_addressed_store import ContentAddressedStore
    from metaflow.datastore.task_datastore import TaskDataStore

    return {"TaskDataStore": TaskDataStore, "ContentAddressedStore": ContentAddressedStore}


def unsupported() -> Optional[str]:
    """Why this Metaflow is not what safeart's patches were verified against; None when it
    is. Decided once per process (before any patch, so the answer is Metaflow's own)."""
    if "unsupported" not in _decided:
        _decided["unsupported"] = _check(_classes())
    return _decided["unsupported"]


def _check(classes: Mapping[str, type]) -> Optional[str]:
    from metaflow.version import metaflow_version

    try:
        version = tuple(int(p) for p in metaflow_version.split("+")[0].split(".")[:3])
    except ValueError:
        version = ()
    if not _VERIFIED[0] <= version < _VERIFIED[1]:
        return f"Metaflow {metaflow_version} is not {SUPPORTED_METAFLOW}"
    for (cls, method), expected in _SIGNATURES.items():
        found = list(inspect.signature(getattr(classes[cls], method)).parameters)
        if found != expected:
            return f"{cls}.{method}{tuple(found)} is not {tuple(expected)}"
    return None


def _patched(cls: type, method: str) -> bool:
    return getattr(getattr(cls, method), _MARK, False)


def _patch(cls: type, method: str, wrapper: Any) -> None:
    functools.update_wrapper(wrapper, getattr(cls, method))
    setattr(wrapper, _MARK, True)
    setattr(cls, method, wrapper)


def _stock(cls: type, method: str) -> Any:
    """Metaflow's own ``cls.method``, beneath safeart's wrapper if there is one."""
    found = getattr(cls, method)
    return found.__wrapped__ if getattr(found, _MARK, False) else found


def hooks_installed() -> bool:
    """True when the datastore hooks are in place (artifact names and keys are known)."""
    return _patched(_classes()["TaskDataStore"], "load_artifacts")


def install_hooks() -> bool:
    """Wrap ``save_artifacts``/``load_artifacts`` and ``load_blobs`` (idempotent).

    Returns False, with a warning, on a Metaflow the wrappers were not verified against.
    """
    if hooks_installed():
        return True
    problem = unsupported()
    if problem is not None:
        warnings.warn(
            f"safeart: this Metaflow is not supported ({problem}; need {SUPPORTED_METAFLOW}): "
            "artifacts are stored by Metaflow's own serializers and safeart cannot check "
            "which blob it decodes",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    classes = _classes()
    tds, cas = classes["TaskDataStore"], classes["ContentAddressedStore"]
    save, load, load_blobs = tds.save_artifacts, tds.load_artifacts, cas.load_blobs

    def save_artifacts(
        self: Any, artifacts_iter: Iterable[Tuple[str, Any]], len_hint: int = 0
    ) -> None:
        if state.opted_in():  # large safeart blobs may be stored raw
            install_raw_storage()
        with state.naming_saves() as named:
            return save(self, named(_task_of(self), artifacts_iter), len_hint=len_hint)

    def load_artifacts(self: Any, names: Iterable[str]) -> Iterator[Tuple[str, Any]]:
        names = list(names)
        return state.naming_loads(state.Loading(_task_of(self), names, self), load(self, names))

    def noting_load_blobs(
        self: Any, keys: Iterable[str], force_raw: bool = False, is_transfer: bool = False
    ) -> Iterator[tuple]:
        current = state.loading()
        if current is None or force_raw or is_transfer:
            return load_blobs(self, keys, force_raw=force_raw, is_transfer=is_transfer)
        own = current.safeart_keys()
        if own and _raw_storage_works():
            from . import storage

            return _noting(current, storage.read_blobs(self, keys, load_blobs, own))
        return _noting(current, load_blobs(self, keys))

    _patch(cas, "load_blobs", noting_load_blobs)
    _patch(tds, "save_artifacts", save_artifacts)
    _patch(tds, "load_artifacts", load_artifacts)
    return True


def _noting(current: state.Loading, blobs: Iterator[tuple]) -> Iterator[tuple]:
    for item in blobs:
        current.key = item[0]  # Metaflow deserializes this blob before it asks for the next
        yield item


def _task_of(ds: Any) -> str:
    return f"{ds.parent_datastore.flow_name}/{ds.pathspec}"


def raw_storage_installed() -> bool:
    """True when safeart's ``save_blobs`` replaces Metaflow's in this process."""
    return _patched(_classes()["ContentAddressedStore"], "save_blobs")


def install_raw_storage() -> bool:
    """Replace ``ContentAddressedStore.save_blobs`` if the guard passes (idempotent).

    Returns whether the replacement is in place. Raises ``ConfigError`` for a malformed
    ``$SAFEART_RAW_STORAGE`` (before Metaflow starts saving).
    """
    from . import storage  # imports safeart.format (numpy): only where a flow saves

    storage.enabled()
    if raw_storage_installed():
        return True
    if _raw_storage_works():
        cas = _classes()["ContentAddressedStore"]
        _patch(cas, "save_blobs", storage.replacement(cas.save_blobs))
    return _decided["raw"]


def _raw_storage_works() -> bool:
    """Whether raw blobs may be written and read safeart's way (:func:`storage.works`, run
    once per process before ``save_blobs`` is replaced; warns once when not)."""
    if "raw" not in _decided:
        from . import storage

        cas = _classes()["ContentAddressedStore"]
        _decided["raw"] = unsupported() is None and storage.works(
            cas, _stock(cas, "save_blobs"), _stock(cas, "load_blobs")
        )
        if not _decided["raw"]:
            warnings.warn(
                "safeart: Metaflow's content-addressed store is not what safeart verified; "
                "blobs are stored gzip-compressed and read as Metaflow does (slower, still safe)",
                RuntimeWarning,
                stacklevel=3,
            )
    return _decided["raw"]


def ensure_registered() -> None:
    """Make sure safeart's serializers are active in Metaflow's registry (and its hooks
    installed), also when Metaflow did not discover the extension (e.g.
    ``METAFLOW_EXTENSIONS_SEARCH_DIRS`` excludes it). Imports Metaflow."""
    from metaflow.datastore.artifacts.serializer import SerializerStore

    active = {cls.TYPE for cls in SerializerStore.get_ordered_serializers()}
    missing = [entry for entry in _SERIALIZERS if entry[0] not in active]
    if missing:
        SerializerStore.bootstrap_entries(missing, source="safeart")
    install_hooks()


# -- what flows and notebooks call (re-exported by safeart.metaflow) -----------------------
def opt_in_on_import() -> None:
    """What ``import safeart.metaflow`` does: opt the process in, fail now on a malformed
    ``$SAFEART_STRICT`` instead of at save time, and register the serializers if Metaflow
    is already loaded (the flow imported it first) or strict mode is requested."""
    state.opt_in()
    if state.is_strict() or "metaflow" in sys.modules:
        ensure_registered()


def strict(enabled: bool = True) -> None:
    """Forbid pickle fallback for public artifacts of this flow (call at flow-file top).

    With strict mode on, a step whose artifact safeart cannot store fails at save time
    naming the artifact, its type, the object path and the reason. ``strict()`` also opts
    the process in, like ``import safeart.metaflow``, and turns enforcement on.
    ``SAFEART_STRICT=1`` in the environment does the same for every flow that imports
    ``safeart.metaflow``.
    """
    state.set_strict(enabled)
    if enabled:
        state.opt_in()
    ensure_registered()


def is_strict() -> bool:
    """True when strict mode is on (:func:`strict` or ``$SAFEART_STRICT``).

    Raises:
        ConfigError: ``$SAFEART_STRICT`` holds something other than a boolean word.
    """
    return state.is_strict()


def set_policy(policy: Optional[Policy]) -> None:
    """Use ``policy`` for every Metaflow artifact load in this process.

    In a flow file, this is how classes from your own packages become loadable in
    downstream steps (``set_policy(Policy(allow=[mypkg.Net]))``); ``None`` restores the
    default (``$SAFEART_POLICY`` or the built-in allowlist).
    """
    state.set_process_policy(policy)


@contextmanager
def allowing(
    *allow: AllowSpec,
    aliases: Optional[Mapping[str, Union[type, str]]] = None,
    policy: Optional[Policy] = None,
) -> Iterator[Policy]:
    """Load Metaflow artifacts inside the block with extra classes allowed.

    Args:
        allow: Classes (or ``module.Class`` names) to allow. A class object also stands for
            ``__main__.<its name>``, so ``allowing(Net)`` loads a ``Net`` that a flow file
            defined, as long as your ``Net`` has the same name.
        aliases: Recorded name -> class standing for it (``{"__main__.Net": MyNet}``).
        policy: Start from this policy instead of the current one.
    """
    base = policy if policy is not None else state.base_policy()
    with state.scoped_policy(base.extend(allow, aliases=aliases)) as scoped:
        yield scoped


def enforce(enabled: bool = True) -> None:
    """Scan and restrict every pickled artifact Metaflow loads in this process.

    ``enforce(False)`` turns the switch off again (``$SAFEART_ENFORCE`` and strict mode
    still count). See :mod:`safeart.metaflow.reading`.
    """
    state.set_enforced(enabled)
    if enabled:
        ensure_registered()


def is_enforced() -> bool:
    """True when Metaflow's reads of pickled artifacts are enforced in this process."""
    return state.enforcing()
