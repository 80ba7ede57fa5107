"""dumps refuses everything that would need code to rebuild, naming the object path."""

from __future__ import annotations

import array
import datetime
import functools
import os
import re
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import safeart
from safeart import EncodeError
from format_models import CustomReduce, Net


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(2, 2)
        self.act = lambda x: x  # a lambda on a module


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(2, 2)])
        self.head = Head()


def refusal(obj: Any, name: str = "") -> EncodeError:
    with pytest.raises(EncodeError) as info:
        safeart.dumps(obj, name=name)
    return info.value


def test_lambda_inside_a_module_names_its_path() -> None:
    err = refusal(Model(), name="model")
    assert err.path == "model.head.act"
    assert "<lambda>" in err.message and "module-level" in err.message
    assert str(err).startswith("at model.head.act: lambda test_format_encode_errors.Head.__init__"
                               ".<locals>.<lambda>")
    assert "kind='reference'" in err.hint


def test_module_list_children_read_as_positions() -> None:
    model = Model()
    model.head.act = nn.ReLU()
    model.layers[0].weight = nn.Parameter(torch.zeros(2, 2, dtype=torch.complex128))
    assert refusal(model, name="model").path == "model.layers[0].weight"


def test_paths_for_items_and_positions() -> None:
    assert refusal({"cfg": {"lr": lambda: 0}}, name="cfg").path == "cfg['cfg']['lr']"
    assert refusal([1, (2, [re.compile("x")])]).path == "[1][1][0]"
    assert refusal({3: {os}}).path == "[3][0]"


@pytest.mark.parametrize("value, reason", [
    (CustomReduce(), "rebuilt by calling print"),
    (functools.partial(Net()), "functools.partial of a"),
    ((x for x in range(3)), "cannot be encoded"),
    (open(os.devnull), "cannot be encoded"),
    (os, "modules cannot be stored"),
    (Net().forward, "bound method"),
    ([].append, "bound method"),
    (lambda: 0, "lambda"),
    (torch.zeros(2, dtype=torch.complex128), "no safetensors equivalent"),
    (torch.zeros(2).to_sparse(), "cannot be stored"),
    (torch.zeros(2, device="meta"), "cannot be stored"),
    (np.zeros(2, dtype="V4"), "numpy dtype |V4 cannot be stored"),
    (re.compile("x"), "rebuilt by calling _compile"),
])
def test_unstorable_values(value: Any, reason: str) -> None:
    err = refusal({"x": value})
    assert err.path == "['x']" and reason in err.message


class Items(list):
    pass


def test_list_subclass_local_class_and_tensor_subclass() -> None:
    assert "list/dict subclass" in refusal(Items([1])).message

    class Local:
        pass

    assert "local class" in refusal(Local()).message
    assert "tensor subclass" in refusal(torch.nn.parameter.UninitializedParameter()).message


def test_registered_hook_is_refused_with_its_path() -> None:
    model = Net()
    model.register_forward_hook(lambda *args: None)
    err = refusal(model, name="net")
    assert err.path.startswith("net._forward_hooks[")


def test_cycle_through_a_tuple_is_refused() -> None:
    items: list = []
    t = (items,)
    items.append(t)
    assert "cycles cannot be stored" in refusal(t).message


def test_too_deep_is_refused_at_dumps_time() -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    assert "max_depth" in refusal(value).message


def test_nothing_partial_is_written(tmp_path: Any) -> None:
    path = tmp_path / "out.safeart"
    with pytest.raises(EncodeError):
        safeart.save_file({"ok": torch.ones(3), "bad": lambda: 0}, path)
    assert not path.exists()


class Day(datetime.date):
    pass


@pytest.mark.parametrize("value, hint", [
    (CustomReduce(), "drop the custom __reduce__"),  # the user's own class
    (Day(2020, 1, 1), "safeart stores exact datetime.date values (codec datetime.date), not "
                      "subclasses"),
    (torch.Generator(), "generator.get_state()"),
    (re.compile("x"), "pattern.pattern"),
    (array.array("i", [1]), "safeart has no codec for array.array: store its data"),
])
def test_refusal_hints_fit_the_class(value: Any, hint: str) -> None:
    err = refusal({"x": value})
    assert err.path == "['x']" and hint in err.hint
    assert ("__reduce__" in err.hint) == isinstance(value, CustomReduce)
