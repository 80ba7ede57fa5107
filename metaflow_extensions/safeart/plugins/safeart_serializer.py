"""Metaflow's side of safeart artifacts: the registered ``ArtifactSerializer``.

Metaflow registers :class:`SafeartSerializer` in every process (see ``mfextinit_safeart``),
so reading safeart artifacts never needs an import. Writing is opt-in per flow: the
serializer claims objects only once the process opted in (a flow file's ``import
safeart.metaflow``; importing a submodule such as ``safeart.metaflow.loader`` does not).

Everything is decided by the library; this class only adapts Metaflow's interface:

* :mod:`safeart.metaflow.runtime` installs the datastore hooks that tell it which artifact
  it handles (called from :meth:`SafeartSerializer.setup_imports`);
* :mod:`safeart.metaflow.serializer` decides what is stored and encodes it (strict mode,
  fallback warnings, signatures);
* :mod:`safeart.metaflow.reading` checks and decodes what is read (content address,
  signature, policy).

The library is imported when Metaflow sets the serializer up, never the other way round.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from metaflow.datastore.artifacts.serializer import (
    ArtifactSerializer,
    SerializationFormat,
    SerializationMetadata,
    SerializedBlob,
)

__all__ = ["HookedSerializer", "SafeartSerializer"]


class HookedSerializer(ArtifactSerializer):
    """Base of safeart's serializers (``TYPE = None``: not registered itself): when Metaflow's
    registry sets a subclass up, safeart's datastore hooks are installed."""

    @classmethod
    def setup_imports(cls, context: Any = None) -> None:
        """Called once by Metaflow's registry: install the datastore hooks."""
        from safeart.metaflow.runtime import install_hooks

        install_hooks()

    @classmethod
    def deserialize(
        cls,
        data: List[bytes],
        metadata: Optional[SerializationMetadata] = None,
        format: SerializationFormat = SerializationFormat.STORAGE,
    ) -> Any:
        """Every read goes through :func:`safeart.metaflow.reading.read`: content address,
        signature, then the safeart decoder or the guarded pickle load, by encoding."""
        if format == SerializationFormat.WIRE:
            raise NotImplementedError(f"{cls.TYPE}: artifacts have no WIRE representation")
        from safeart.metaflow.encodings import SAFEART_ENCODING
        from safeart.metaflow.reading import read

        if metadata is None:  # only a safeart blob is claimed without metadata
            return read(data[0], SAFEART_ENCODING, None)
        return read(data[0], str(metadata.encoding), metadata.serializer_info)


class SafeartSerializer(HookedSerializer):
    """Stores artifacts as safeart blobs (safetensors + JSON manifest), never pickle.

    Claims an object only once the process opted in; decodes every ``safeart-*`` artifact,
    refusing layouts newer than it knows instead of letting another serializer try.
    """

    TYPE = "safeart"
    # Ahead of every other serializer: in strict mode no user artifact may reach a
    # (possibly pickle-based) serializer after this one.
    PRIORITY = 10

    @classmethod
    def can_serialize(cls, obj: Any) -> bool:
        from safeart.metaflow import state

        if not state.opted_in():
            return False
        from safeart.metaflow import serializer

        return serializer.claims(obj, state.saving())

    @classmethod
    def can_deserialize(cls, metadata: SerializationMetadata) -> bool:
        from safeart.metaflow.encodings import is_safeart

        return is_safeart(str(metadata.encoding))

    @classmethod
    def serialize(
        cls, obj: Any, format: SerializationFormat = SerializationFormat.STORAGE
    ) -> Tuple[List[SerializedBlob], SerializationMetadata]:
        if format == SerializationFormat.WIRE:
            raise NotImplementedError("safeart artifacts have no WIRE representation")
        from safeart.metaflow import serializer, state
        from safeart.metaflow.encodings import SAFEART_ENCODING

        if not state.opted_in():  # only reachable when called outside Metaflow's dispatch
            raise RuntimeError("import safeart.metaflow to store artifacts with safeart")
        blob, info = serializer.serialize(obj, state.saving())
        return (
            [SerializedBlob(blob, is_reference=False)],
            SerializationMetadata(
                obj_type=str(type(obj)), size=len(blob), encoding=SAFEART_ENCODING,
                serializer_info=info,
            ),
        )
