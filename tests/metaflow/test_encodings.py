"""safeart/metaflow/encodings.py: the one definition of Metaflow encoding names, checked
against Metaflow's own pickle serializer so the two cannot drift."""

from __future__ import annotations

import pytest

from safeart.metaflow.encodings import (
    LEGACY_ENCODING,
    PICKLE_ENCODINGS,
    SAFEART_ENCODING,
    encoding_of,
    is_pickle,
    is_safeart,
)


def test_pickle_encodings_are_exactly_what_metaflows_pickle_serializer_reads() -> None:
    pytest.importorskip("metaflow")
    from metaflow.datastore.artifacts.serializer import SerializationMetadata
    from metaflow.plugins.datastores.serializers.pickle_serializer import PickleSerializer

    for encoding in PICKLE_ENCODINGS | {SAFEART_ENCODING, "safeart-v2", "json", ""}:
        meta = SerializationMetadata(None, 0, encoding, {})
        assert bool(PickleSerializer.can_deserialize(meta)) == is_pickle(encoding), encoding
    assert set(PickleSerializer._ENCODINGS) == PICKLE_ENCODINGS


def test_safeart_layouts_and_the_legacy_default() -> None:
    assert is_safeart(SAFEART_ENCODING) and is_safeart("safeart-v2")  # v2: refused as unknown
    assert not any(is_safeart(e) for e in PICKLE_ENCODINGS)
    assert is_pickle(LEGACY_ENCODING)
    assert encoding_of(None) == encoding_of({}) == encoding_of({"encoding": ""}) == LEGACY_ENCODING
    assert encoding_of({"encoding": SAFEART_ENCODING}) == SAFEART_ENCODING
