"""torch.nn.Buffer-marked tensors, and tiny Hugging Face models built from a config (no hub)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import safeart
from safeart import FormatError, Policy
from format_models import make_blob

BUFFER = "torch.nn.parameter.Buffer"


class WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ids = nn.Buffer(torch.arange(4), persistent=False)  # marks the tensor


def test_buffer_marked_tensors_keep_their_marks_and_sharing() -> None:
    model = WithBuffer()
    back = safeart.loads(safeart.dumps([model, model.ids]), policy=Policy(allow=[WithBuffer, BUFFER]))
    assert torch.equal(back[0].ids, model.ids) and back[0].ids is back[1]
    assert vars(back[1]) == {"_is_buffer": True, "persistent": False}
    assert "ids" not in back[0].state_dict()


@pytest.mark.parametrize("state, match", [
    ({"k": "dict", "m": {"data": 1, "persistent": True}}, "plain tensor and a bool"),
    ({"k": "dict", "m": {"persistent": True}}, "data, persistent"),
])
def test_malformed_buffer_states(state: dict, match: str) -> None:
    node = {"k": "val", "c": ["torch.nn.parameter", "Buffer"], "cv": 1, "v": state}
    with pytest.raises(FormatError, match=match):
        safeart.loads(make_blob(node), policy=Policy(allow=[BUFFER]))


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_tiny_transformers_models_round_trip(family: str) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if family == "bert":
        config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=32,
                                         max_position_embeddings=32)
        model = transformers.BertModel(config).eval()
    else:
        config = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2,
                                         n_positions=32, bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config).eval()
    blob = safeart.dumps(model)
    needed = sorted({problem.name for problem in safeart.audit(blob).problems})
    assert all(name.startswith(("transformers.", BUFFER)) for name in needed), needed
    back = safeart.loads(blob, allow=needed).eval()
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids)[0], back(ids)[0])
    assert back.config.to_dict() == model.config.to_dict()
