"""Function references (kind ``fn``): stored by name, resolved by the policy, never called."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import safeart
from safeart import EncodeError, FormatError, Policy, PolicyError, Rule
from format_models import Net, make_blob, manifest_of

ACTIVATIONS = [Rule(name, "an activation", kind="reference") for name in (
    "torch.nn.functional.relu", "torch._C._nn.gelu", "torch.tanh")]
POLICY = Policy(allow=ACTIVATIONS)


def module_level(x: Any) -> Any:
    return x


def names(value: Any) -> list:
    """The ``c`` of every fn node in the blob of ``value``, in manifest order."""
    found: list = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("k") == "fn":
                found.append(node["c"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(manifest_of(safeart.dumps(value)))
    return found


def test_recorded_names_resolve_back_to_the_same_object() -> None:
    assert names([F.relu, F.gelu, torch.tanh, len, np.mean, np.add, nn.Linear, str.upper,
                  dict.fromkeys, module_level]) == [
        ["torch.nn.functional", "relu"], ["torch._C._nn", "gelu"], ["torch", "tanh"],
        ["builtins", "len"], ["numpy", "mean"], ["numpy", "add"],
        ["torch.nn.modules.linear", "Linear"], ["builtins", "str.upper"],
        ["builtins", "dict.fromkeys"], ["test_format_functions", "module_level"]]
    allow = [Rule(f"{m}.{q}", "test", kind="reference") for m, q in names([len, module_level])]
    back = safeart.loads(safeart.dumps([len, module_level, len]), policy=Policy(allow=allow))
    assert back == [len, module_level, len]


@pytest.mark.parametrize("layer", [
    nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
    nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", norm_first=True),
    nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, activation=torch.tanh), 2,
                          enable_nested_tensor=False),
    nn.Transformer(8, 2, 1, 1, 16, batch_first=True),
], ids=["encoder_layer", "gelu", "encoder_tanh", "transformer"])
def test_transformers_store_without_pickle(layer: nn.Module) -> None:
    torch.manual_seed(0)
    layer.eval()
    back = safeart.loads(safeart.dumps(layer), policy=POLICY).eval()
    x = torch.randn(2, 3, 8)
    args = (x, x) if isinstance(layer, nn.Transformer) else (x,)
    with torch.no_grad():
        assert torch.equal(layer(*args), back(*args))
    shared = back.layers[0].activation if isinstance(layer, nn.TransformerEncoder) else None
    assert shared is None or shared is torch.tanh


def test_a_reference_needs_a_policy_entry_naming_the_rule() -> None:
    blob = safeart.dumps({"act": F.relu})
    report = safeart.audit(blob)
    assert [(r.name, r.kind) for r in report.classes] == [("torch.nn.functional.relu", "reference")]
    with pytest.raises(PolicyError, match="reference torch.nn.functional.relu") as info:
        safeart.loads(blob, policy=Policy(include_defaults=False))
    assert info.value.path == "['act']" and "kind='reference'" in info.value.hint


@pytest.mark.parametrize("value, match", [
    (lambda x: x, "lambda"),
    (functools.partial(Net()), "functools.partial of a"),
    (Net().forward, "bound method"),
    ([].append, "bound method"),
])
def test_unreferenceable_callables_are_refused_with_the_path(value: Any, match: str) -> None:
    def local() -> None:
        pass

    for bad, want in ((value, match), (local, "local function")):
        with pytest.raises(EncodeError, match=want) as info:
            safeart.dumps({"cfg": [bad]})
        assert info.value.path == "['cfg'][0]" and info.value.hint


@pytest.mark.parametrize("c, match", [
    (["os", "system"], "reference os.system is not on the allowlist"),
    (["builtins", "eval"], "reference builtins.eval is not on the allowlist"),
    (["builtins", "len(1)"], "dotted identifiers"),
    ("builtins.len", "dotted identifiers"),
])
def test_malformed_or_refused_fn_nodes(c: Any, match: str) -> None:
    report = safeart.audit(make_blob({"k": "list", "v": [{"k": "fn", "c": c}]}))
    assert not report.ok and match in str(report.problems[0])
    assert report.problems[0].path == "[0]"


def test_a_dangerous_object_behind_an_allowed_name_is_refused_when_resolving() -> None:
    blob = make_blob({"k": "fn", "c": ["builtins", "eval"]})
    with pytest.raises(PolicyError, match="may not name"):
        safeart.loads(blob, policy=Policy(allow=[Rule("builtins.eval", "x", kind="reference")]))
    blob = make_blob({"k": "fn", "c": ["safeart", "format"]})  # a module
    with pytest.raises(PolicyError, match="a module"):
        safeart.loads(blob, policy=Policy(allow=[Rule("safeart.format", "x", kind="reference")]))


def test_fn_nodes_share_and_are_never_called() -> None:
    blob = make_blob({"k": "list", "v": [{"k": "fn", "c": ["test_format_functions", "boom"],
                                           "id": 0}, {"k": "ref", "id": 0}]})
    allow = [Rule("test_format_functions.boom", "test", kind="reference")]
    first, second = safeart.loads(blob, policy=Policy(allow=allow))
    assert first is second is boom and not CALLS
    with pytest.raises(FormatError, match="unknown field"):
        safeart.loads(make_blob({"k": "fn", "c": ["builtins", "len"], "v": 1}))


CALLS: list = []


def boom() -> None:
    CALLS.append(1)
