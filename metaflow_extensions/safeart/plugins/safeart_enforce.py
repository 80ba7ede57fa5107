"""Enforcement: Metaflow's own reads of pickled artifacts, scanned and restricted.

:class:`EnforcingPickleSerializer` is registered in every Metaflow process (see
``mfextinit_safeart``) but claims nothing until enforcement is on -- ``SAFEART_ENFORCE=1``,
``safeart.metaflow.enforce()``, or strict mode in a flow that imports ``safeart.metaflow``
(:func:`safeart.metaflow.state.enforcing`). Then it claims, on load only, exactly the
encodings Metaflow's pickle serializer reads (``pickle-v2``, ``pickle-v4`` and the legacy
``gzip+pickle-*``): its PRIORITY is lower than the pickle fallback's (9999), so Metaflow's
dispatch (``TaskDataStore.load_artifacts``) hands these artifacts to it first. Every read
goes through :func:`safeart.metaflow.reading.read` -- the content address checked, then
:func:`safeart.guard.load_pickle`: scan, refuse with the findings, else the restricted
unpickler on the same bytes -- so ``run.data.model``, ``task["model"].data`` and the
artifacts a downstream step reads are protected without changing any code. It never claims
on save: writing stays with the other serializers. A refusal raises a safeart error naming
``Flow/run/step/task:name``; Metaflow never retries it with pickle.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from metaflow.datastore.artifacts.serializer import (
    ArtifactSerializer,
    SerializationFormat,
    SerializationMetadata,
    SerializedBlob,
)

__all__ = ["EnforcingPickleSerializer"]


class EnforcingPickleSerializer(ArtifactSerializer):
    """Reads pickled artifacts through safeart's scan and restricted unpickler."""

    TYPE = "safeart_enforce"
    # Ahead of every serializer that may read pickle encodings (the fallback is 9999),
    # after safeart's own (10), which never claims pickle encodings.
    PRIORITY = 20

    @classmethod
    def setup_imports(cls, context: Any = None) -> None:
        """Called once by Metaflow's registry: install the hooks that name artifacts."""
        from safeart.metaflow.runtime import install_hooks

        install_hooks()

    @classmethod
    def can_serialize(cls, obj: Any) -> bool:
        return False

    @classmethod
    def can_deserialize(cls, metadata: SerializationMetadata) -> bool:
        from safeart.metaflow.encodings import is_pickle
        from safeart.metaflow.state import enforcing

        return is_pickle(str(metadata.encoding)) and enforcing()

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
        from safeart.metaflow.reading import read

        assert metadata is not None, "claimed by can_deserialize(metadata) only"
        return read(data[0], str(metadata.encoding), metadata.serializer_info)
