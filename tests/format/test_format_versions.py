"""Format versions: the writer writes only the newest; blobs of version 1 stay readable."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import safeart
from safeart import FormatError, Policy
from format_models import ALLOW, Color, Pair, TiedLM, TrainConfig, make_blob, manifest_of

DATA = Path(__file__).parent / "data"
POLICY = Policy(allow=ALLOW)


def test_writer_writes_the_newest_version() -> None:
    assert safeart.FORMAT_VERSION == 2
    assert manifest_of(safeart.dumps([1]))["version"] == 2


def test_committed_version_1_model_loads() -> None:
    blob = (DATA / "v1_model.safeart").read_bytes()
    assert manifest_of(blob)["version"] == 1
    assert safeart.audit(blob, policy=POLICY).version == 1
    torch.manual_seed(0)  # how data/v1_model.safeart was made, by safeart's version-1 writer
    expected = TiedLM()
    model = safeart.loads(blob, policy=POLICY)
    assert type(model) is TiedLM and model.heads["out"].weight is model.embed.weight
    assert model.layers[0] is model.layers[2] is model.block
    for key, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_committed_version_1_values_load() -> None:
    values = safeart.loads((DATA / "v1_values.safeart").read_bytes(), policy=POLICY)
    assert values["cfg"] == TrainConfig() and values["pair"] == Pair(1, (2, 3))
    assert values["color"] is Color.GREEN and values["big"] == 2**80 and math.isnan(values["nan"])
    assert values["arr"].dtype == np.dtype(">i4") and values["self"][0] is values["arr"]
    assert values["long"] == "y" * 1500 and values["bytes"] == b"z" * 2000
    assert values["dtype"] is torch.int8 and values["size"] == torch.Size([3])


@pytest.mark.parametrize("node", [
    {"k": "fn", "c": ["builtins", "len"]},
    {"k": "val", "c": ["datetime", "timedelta"], "cv": 1, "v": [1, 0, 0]},
])
def test_version_1_has_no_version_2_kinds(node: dict) -> None:
    with pytest.raises(FormatError, match="unknown node kind"):
        safeart.loads(make_blob(node, version=1))
