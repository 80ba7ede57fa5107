"""Metaflow's own reads of artifacts, through safeart: what the registered serializers do on load.

Every read Metaflow makes -- ``run.data.x``, ``task["x"].data``, a downstream step's
``self.x`` -- dispatches to a serializer by the encoding recorded for the artifact. safeart's
two serializers (``metaflow_extensions.safeart``) hand the bytes to :func:`read`:

* ``safeart-*`` artifacts, always (``SafeartSerializer``);
* pickled ones (``pickle-v2``/``pickle-v4``/legacy ``gzip+pickle-*``) while enforcement is on
  (``EnforcingPickleSerializer``; see :func:`safeart.metaflow.state.enforcing`).

Enforcement protects code that already exists. Turn it on for a whole process -- a notebook,
a serving script, every task of a flow -- without changing how artifacts are read::

    SAFEART_ENFORCE=1 python serve.py           # or, in code:
    safeart.metaflow.enforce()

    model = Flow("TrainFlow").latest_run["end"].task.data.model   # scanned, restricted

In a flow file, ``SAFEART_ENFORCE=1`` protects every task without changing how the flow
stores its artifacts; calling ``safeart.metaflow.enforce()`` there imports
``safeart.metaflow``, which also opts the flow in to safeart-encoded artifacts. Strict mode
(``safeart.metaflow.strict()``, or ``SAFEART_STRICT=1`` in a flow that imports
``safeart.metaflow``) turns it on too. A policy file in ``$SAFEART_POLICY`` (say
``[aliases] "__main__.Net" = "mypkg.models.Net"``) admits the classes a flow file defined.

:func:`read` decodes them exactly as :func:`safeart.load` does, with the same function
(:func:`safeart.metaflow.loader.decode`): the blob must hash to the content address Metaflow
fetched it by (the key in the task's record; a blob changed in the datastore is refused with
an :class:`~safeart.errors.UnsafeArtifactError` naming ``Flow/run/step/task:name``), then a
safeart blob is decoded under the policy and a pickle is scanned and restricted-unpickled.
With ``$SAFEART_TRUST_KEYS`` set, the artifact's signature is checked first
(:func:`check_signature`): unsigned, replayed or altered artifacts raise
:class:`~safeart.signing.IntegrityError`. Pickled artifacts Metaflow writes for itself
by name (``_foreach_stack``, ``name`` ...) cannot carry a signature and are only scanned
and restricted.

Which artifact and which key: the datastore hooks (:mod:`safeart.metaflow.runtime`) record the
load in progress and the key of each blob Metaflow fetches (:func:`safeart.metaflow.state.loading`).
Outside such a load (a direct ``deserialize`` call, an unsupported Metaflow without hooks)
the content address is unknown and only the decode's own checks apply.

The policy: :func:`safeart.metaflow.state.policy_for` (``allowing()``, ``set_policy()``,
``$SAFEART_POLICY``, the built-in allowlist, plus classes defined in the flow file inside the
flow's own tasks).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, Optional

from ..errors import SafeartError
from . import state
from .encodings import is_pickle, is_safeart
from ..signing.runverify import metaflow_owned
from .stored import FetchedBlob, StoredArtifact, StoreRef


def read(
    data: bytes | memoryview, encoding: str, serializer_info: Optional[Mapping[str, Any]]
) -> Any:
    """Rebuild the artifact whose blob Metaflow handed a safeart serializer.

    Args:
        data: The blob, as Metaflow fetched (and gunzipped) it: ``bytes``, or the writable
            memory of its own :func:`safeart.metaflow.storage.read_blobs` reads raw blobs
            into (handed to the decoder read-only when another name of the same load
            decodes the same blob object, so that no two artifacts share memory).
        encoding: The encoding Metaflow recorded (``safeart-v1``, ``pickle-v4`` ...).
        serializer_info: The ``serializer_info`` Metaflow recorded with it (the very dict of
            the task's record, which is how the artifact is told apart from others sharing
            the blob).

    Raises:
        UnsafeArtifactError: the blob does not hash to its content address, a pickle's scan
            is not clean, or (``IntegrityError``) its signature does not verify.
        PolicyError, FormatError, UnsupportedVersion, ConfigError: as :func:`safeart.load`.
    """
    from .loader import decode

    accepts: Callable[[str], bool] = is_pickle if is_pickle(encoding) else is_safeart
    load = state.loading()
    ref = load.current(accepts, serializer_info) if load else state.ArtifactRef(None, None)
    recorded = load.ds._info.get(ref.name, {}) if load else {}
    record = StoredArtifact(
        pathspec=str(ref),
        # Outside a hooked load the key is unknown: the bytes stand for themselves.
        sha=load.key if load and load.key else hashlib.sha1(data).hexdigest(),
        encoding=encoding,
        type=recorded.get("type"),
        size=len(data),
        store=_store_of(load),
        serializer_info=serializer_info or {},
    )
    policy = state.policy_for(ref.flow)
    try:
        if is_pickle(encoding):
            state.check_enforce_env()
        check_signature(record, data, load)
    except SafeartError as err:
        raise err.with_artifact(record.pathspec)
    if isinstance(data, memoryview) and load is not None and load.shared(record.sha):
        data = data.toreadonly()  # the next name decodes this very object: never share it
    return decode(record, FetchedBlob(record.store, record.sha, data), policy)


def check_signature(
    record: StoredArtifact, data: bytes, load: Optional[state.Loading] = None
) -> None:
    """With ``$SAFEART_TRUST_KEYS`` set, refuse ``data`` (the blob of ``record``) unless its
    ``serializer_info["safeart_sig"]`` is a trusted key's signature of these bytes for this
    flow, run and artifact name (:meth:`safeart.signing.Verifier.verify`). Pickled artifacts
    Metaflow writes for itself, by name (``_``-prefixed, ``name``:
    :func:`safeart.signing.runverify.metaflow_owned`, the rule ``safeart verify`` applies),
    are exempt: never signed, still scanned and restricted. Values of ``IncludeFile`` or
    ``@catch`` are public artifacts Metaflow pickles: unsigned, so refused.

    The Metaflow client hands its serializers the metadata service's record of an artifact
    (key and encoding; no type, no ``serializer_info``): during such a ``load`` the record is
    read from the task's own ``data.json`` instead.

    Raises:
        IntegrityError: unsigned, unknown key, bad signature or signed for another artifact.
        ConfigError: a trust key file cannot be read.
    """
    from ..signing import SIG_FIELD, digest, verifier_from_settings

    verifier = verifier_from_settings()
    if verifier is None or (is_pickle(record.encoding) and metaflow_owned(record.name)):
        return
    sig = record.serializer_info.get(SIG_FIELD)
    if sig is None and load is not None and record.type is None:  # a client read
        sig = (_recorded(load, record.name).get("serializer_info") or {}).get(SIG_FIELD)
    verifier.verify(record.pathspec, digest(data), sig)


def _recorded(load: state.Loading, name: str) -> Mapping[str, Any]:
    """The record of ``name`` in the task's ``data.json`` (the attempt ``load`` reads, else
    the latest completed one); empty when there is none."""
    ds = load.ds
    stored = ds.parent_datastore.get_task_datastore(
        ds.run_id, ds.step_name, ds.task_id, attempt=ds._attempt
    )
    return stored._info.get(name, {})


def _store_of(load: Optional[state.Loading]) -> StoreRef:
    if load is None:
        return StoreRef("", "", "")
    flow_ds = load.ds.parent_datastore
    return StoreRef(flow_ds.TYPE, flow_ds.datastore_root, flow_ds.flow_name)
