"""Enforcement: Metaflow's own reads of pickled artifacts, scanned and restricted.

:class:`EnforcingPickleSerializer` is registered in every Metaflow process (see
``mfextinit_safeart``) but claims nothing until enforcement is on -- ``SAFEART_ENFORCE=1``,
``safeart.metaflow.enforce()``, or strict mode (``safeart.metaflow.strict()`` /
``SAFEART_STRICT=1`` in a flow that imports ``safeart.metaflow``). Then it claims, on load
only, exactly the encodings Metaflow's pickle serializer reads (``pickle-v2``, ``pickle-v4``
and the legacy ``gzip+pickle-*``): its PRIORITY is lower than the pickle fallback's (9999),
so Metaflow's dispatch (``TaskDataStore.load_artifacts``) hands these artifacts to it first.
Every read goes through :func:`safeart.guard.load_pickle` -- scan, refuse with the findings,
else the restricted unpickler on the same bytes -- so ``run.data.model``,
``task["model"].data`` and the artifacts a downstream step reads are protected without
changing any code. It never claims on save: writing stays with the other serializers.

The policy is the one safeart uses for every Metaflow load (``allowing()``/``set_policy()``
/ ``$SAFEART_POLICY`` / the built-in allowlist, plus classes defined in the flow file when
the process runs that flow; see ``safeart_serializer``). A refusal raises a safeart error
naming ``Flow/run/step/task:name``; Metaflow never retries it with pickle.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional, Tuple

from metaflow.datastore.artifacts.serializer import (
    ArtifactSerializer,
    SerializationFormat,
    SerializationMetadata,
    SerializedBlob,
    SerializerStore,
)
from metaflow.plugins.datastores.serializers.pickle_serializer import PickleSerializer

from safeart import guard
from safeart.errors import SafeartError

from .safeart_serializer import install_hooks, loading, policy_for

__all__ = ["EnforcingPickleSerializer", "enforcing", "ensure_registered"]


def enforcing() -> bool:
    """True when enforcement is on in this process (never raises)."""
    if guard.enforced():
        return True
    modes = sys.modules.get("safeart.metaflow.modes")  # strict mode needs safeart.metaflow
    try:
        return modes is not None and modes.is_strict()
    except SafeartError:  # a malformed $SAFEART_STRICT: stay safe
        return True


def _is_pickle(encoding: str) -> bool:
    """True for the encodings Metaflow's pickle serializer reads."""
    return bool(PickleSerializer.can_deserialize(SerializationMetadata(None, 0, encoding, {})))


class EnforcingPickleSerializer(ArtifactSerializer):
    """Reads pickled artifacts through safeart's scan and restricted unpickler."""

    TYPE = "safeart_enforce"
    # Ahead of every serializer that may read pickle encodings (the fallback is 9999),
    # after safeart's own (10), which never claims pickle encodings.
    PRIORITY = 20

    @classmethod
    def setup_imports(cls, context: Any = None) -> None:
        """Called once by Metaflow's registry: install the hooks that name artifacts."""
        install_hooks()

    @classmethod
    def can_serialize(cls, obj: Any) -> bool:
        return False

    @classmethod
    def can_deserialize(cls, metadata: SerializationMetadata) -> bool:
        return PickleSerializer.can_deserialize(metadata) and enforcing()

    @classmethod
    def serialize(
        cls, obj: Any, format: SerializationFormat = SerializationFormat.STORAGE
    ) -> Tuple[List[SerializedBlob], SerializationMetadata]:
        raise NotImplementedError("safeart enforcement only reads artifacts")

    @classmethod
    def deserialize(
        cls,
        data: List[bytes],
        metadata: Optional[SerializationMetadata] = None,
        format: SerializationFormat = SerializationFormat.STORAGE,
    ) -> Any:
        if format == SerializationFormat.WIRE:
            raise NotImplementedError("pickled artifacts have no WIRE representation")
        load = loading()
        artifact = None
        if load is not None:
            artifact = str(load.ref_for(data[0], _is_pickle))
        try:
            guard.check_env()
        except SafeartError as err:
            raise err.with_artifact(artifact) if artifact else err
        return guard.load_pickle(
            data[0], policy=policy_for(load.flow if load else None), artifact=artifact
        )


def ensure_registered() -> None:
    """Register :class:`EnforcingPickleSerializer` if Metaflow did not discover the extension."""
    if EnforcingPickleSerializer not in SerializerStore.get_ordered_serializers():
        SerializerStore.bootstrap_entries(
            [(EnforcingPickleSerializer.TYPE, f"{__name__}.EnforcingPickleSerializer")],
            source="safeart",
        )
    install_hooks()
