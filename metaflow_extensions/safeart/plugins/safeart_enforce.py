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

from typing import Any, List, Tuple

from metaflow.datastore.artifacts.serializer import (
    SerializationFormat,
    SerializationMetadata,
    SerializedBlob,
)

from .safeart_serializer import HookedSerializer

__all__ = ["EnforcingPickleSerializer"]


class EnforcingPickleSerializer(HookedSerializer):
    """Reads pickled artifacts through safeart's scan and restricted unpickler."""

    TYPE = "safeart_enforce"
    # Ahead of every serializer that may read pickle encodings (the fallback is 9999),
    # after safeart's own (10), which never claims pickle encodings.
    PRIORITY = 20

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
