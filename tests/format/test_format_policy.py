"""Only allowlisted classes are rebuilt; the audit names every class without importing it."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import safeart
from safeart import FormatError, Policy, PolicyError
from format_models import (ALLOW, Color, Migrating, Net, NewReturnsOther, Pair, TrainConfig,
                           make_blob)


def test_disallowed_class_names_class_path_and_fix() -> None:
    blob = safeart.dumps({"model": nn.Sequential(Net())}, name="art")
    with pytest.raises(PolicyError) as info:
        safeart.loads(blob, name="art")
    err = info.value
    assert err.name == f"{Net.__module__}.Net"
    assert err.path == "art['model'][0]"
    assert "allow=" in err.hint and Net.__module__ in err.hint
    assert safeart.loads(blob, allow=[Net])["model"][0].linear1.out_features == 5


def test_main_class_resolves_through_the_class_object_alias() -> None:
    obj = {"k": "obj", "c": ["__main__", "Net"]}
    blob = make_blob(obj)
    with pytest.raises(PolicyError, match=r"allow=\[Net\]"):
        safeart.loads(blob)
    assert type(safeart.loads(blob, allow=[Net])) is Net  # Net stands for __main__.Net


def test_nothing_is_imported_for_a_disallowed_class() -> None:
    module = "safeart_never_imported_xyz"
    blob = make_blob({"k": "obj", "c": [module, "Payload"], "state": {"k": "dict"}})
    report = safeart.audit(blob)
    assert [(c.name, c.path) for c in report.classes] == [(f"{module}.Payload", "<root>")]
    assert isinstance(report.problems[0], PolicyError)
    with pytest.raises(PolicyError):
        safeart.loads(blob)
    assert module not in sys.modules


def test_one_disallowed_class_stops_the_whole_load_before_building() -> None:
    built: list = []
    blob = make_blob({"k": "list", "v": [
        {"k": "obj", "c": [TrainConfig.__module__, "TrainConfig"]},
        {"k": "obj", "c": ["os", "system"]},
    ]})
    with pytest.raises(PolicyError, match="os.system"):
        safeart.loads(blob, allow=[TrainConfig])
    assert built == []


def test_functions_are_never_classes_even_if_allowed() -> None:
    blob = make_blob({"k": "obj", "c": ["os", "system"], "args": ["id"]})
    with pytest.raises(PolicyError, match="does not name a class"):
        safeart.loads(blob, allow=["os.system"])
    callable_rule = make_blob({"k": "obj", "c": ["torch._utils", "_rebuild_tensor_v2"]})
    with pytest.raises(PolicyError):
        safeart.loads(callable_rule)  # callable entries never admit manifest classes


def test_audit_lists_every_class_and_collects_every_refusal() -> None:
    blob = safeart.dumps({"net": Net(), "cfg": TrainConfig(), "pair": Pair(1, 2)}, name="x")
    report = safeart.audit(blob, name="x")
    assert not report.ok and report.version == safeart.FORMAT_VERSION
    assert report.tensors == 4
    names = [c.name for c in report.classes]
    assert names.count("torch.nn.modules.linear.Linear") == 2
    assert {c.path for c in report.classes if c.qualname == "Linear"} == {"x['net'].linear1",
                                                                           "x['net'].linear2"}
    refused = {e.name.rsplit(".", 1)[1] for e in report.problems}
    assert refused == {"Net", "TrainConfig", "Pair"}
    assert safeart.audit(blob, policy=Policy(allow=ALLOW)).ok


def test_enum_node_on_a_non_enum_class_is_refused() -> None:
    blob = make_blob({"k": "enum", "c": [TrainConfig.__module__, "TrainConfig"], "v": 1})
    with pytest.raises(FormatError, match="not an Enum"):
        safeart.loads(blob, allow=[TrainConfig])
    ok = make_blob({"k": "enum", "c": [Color.__module__, "Color"], "v": "green"})
    assert safeart.loads(ok, allow=[Color]) is Color.GREEN


def test_new_must_return_exactly_the_audited_class() -> None:
    blob = make_blob({"k": "obj", "c": [NewReturnsOther.__module__, "NewReturnsOther"]})
    with pytest.raises(FormatError, match="returned a Pair"):
        safeart.loads(blob, allow=[NewReturnsOther, Pair])


def test_setstate_must_not_change_the_class() -> None:
    blob = make_blob({"k": "obj", "c": [Migrating.__module__, "Migrating"], "state": {"k": "dict"}})
    with pytest.raises(FormatError, match="changed its class"):
        safeart.loads(blob, allow=[Migrating])


def test_state_errors_become_format_errors_with_the_path() -> None:
    blob = make_blob({"k": "list", "v": [
        {"k": "obj", "c": ["torch.nn.modules.linear", "Linear"], "state": {"k": "list", "v": [1, 2]}}]})
    with pytest.raises(FormatError) as info:
        safeart.loads(blob)
    assert info.value.path == "[0]" and "cannot set the state" in info.value.message


def test_policy_limits_apply_to_loading() -> None:
    blob = safeart.dumps([[[[1]]]])
    tight = Policy(limits=safeart.Limits(max_depth=2))
    with pytest.raises(safeart.LimitExceeded, match="max_depth=2"):
        safeart.loads(blob, policy=tight)
    assert safeart.loads(blob, policy=Policy(limits=safeart.Limits(max_depth=3))) == [[[[1]]]]


def test_allow_extends_a_given_policy() -> None:
    policy = Policy(allow=[TrainConfig])
    blob = safeart.dumps([TrainConfig(), Pair(1, 2)])
    with pytest.raises(PolicyError, match="Pair"):
        safeart.loads(blob, policy=policy)
    assert safeart.loads(blob, policy=policy, allow=[Pair])[1] == Pair(1, 2)


def test_tensors_alone_need_no_allowlist() -> None:
    blob = safeart.dumps({"w": torch.ones(2)})
    assert safeart.audit(blob, policy=Policy(include_defaults=False)).ok
