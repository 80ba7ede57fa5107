"""Fuzzing: mutated, truncated and restructured blobs raise SafeartError subclasses only."""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import zoneinfo
from collections import OrderedDict, defaultdict, deque
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeart
from safeart import Policy, SafeartError
from format_models import ALLOW, Color, Pair, TiedLM, TrainConfig

POLICY = Policy(allow=[*ALLOW, safeart.Rule("builtins.list", "a factory", kind="reference"),
                       safeart.Rule("torch.nn.functional.relu", "activation", kind="reference")])
SEEDS = [
    safeart.dumps(TiedLM()),
    safeart.dumps({
        "cfg": TrainConfig(), "pair": Pair(1, (2, 3)), "color": Color.GREEN,
        "arr": np.arange(6, dtype=">i4").reshape(2, 3), "u": np.array(["ab"]), "s": np.float16(2),
        "o": OrderedDict(a={1, 2}, b=frozenset({b"x"})), "big": 2**80, "nan": float("nan"),
        "t": torch.tensor([True, False]), "bf": torch.ones(2, dtype=torch.bfloat16),
        "long": "y" * 1500, "bytes": b"z" * 2000, "dtype": torch.int8, "size": torch.Size([3]),
    }),
    safeart.dumps({  # version 2: codec values and function references
        "when": datetime.datetime(2020, 3, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC"), fold=1),
        "d": decimal.Decimal("-1.50E+3"), "z": 1 + 2j, "dd": defaultdict(list, {"k": [1]}),
        "q": deque([b"x"], 3), "act": torch.nn.functional.relu,
        "enc": torch.nn.TransformerEncoderLayer(4, 1, 8),
    }),
]
FUZZ = settings(max_examples=250, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def load_or_refuse(blob: bytes) -> None:
    """Either loads, or raises a SafeartError; audit never raises."""
    safeart.audit(blob, policy=POLICY)
    try:
        safeart.loads(blob, policy=POLICY)
    except SafeartError:
        pass


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_byte_mutations_and_truncations(seed: bytes, data: st.DataObject) -> None:
    blob = bytearray(seed)
    header_end = 8 + int.from_bytes(seed[:8], "little")
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.sampled_from(["length", "header", "data"]))
        lo, hi = {"length": (0, 7), "header": (8, header_end - 1),
                  "data": (header_end, len(blob) - 1)}[where]
        blob[data.draw(st.integers(lo, hi))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    load_or_refuse(bytes(blob if cut is None else blob[:cut]))


# -- structural fuzzing: valid JSON, wrong manifest ------------------------------------------
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(allow_nan=False,
              allow_infinity=False), st.sampled_from(["", "k", "v", "t", "id", "obj", "ref", "list",
              "dict", "tensor", "param", "ndarray", "<f4", "|b1", "00", "ff", "float32", "cpu",
              "torch.nn.modules.linear", "Linear", "__main__", "builtins", "os", "system",
              "embed.weight", "<root>", "val", "fn", "datetime", "date", "collections",
              "defaultdict", "deque", "zoneinfo", "ZoneInfo", "../x", "list", "eval"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["k", "v", "m", "t", "c", "id", "rg",
                                                             "dt", "args", "state", "cv"]), inner,
                                            max_size=4)),
    max_leaves=8,
)


def _slots(node: Any, out: list) -> list:
    """Every (container, key) position in a parsed manifest."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append((node, key))
        _slots(value, out)
    return out


def _with_manifest(seed: bytes, manifest: Any) -> bytes:
    """``seed`` with its manifest replaced; the tensor table and bytes are kept."""
    size = int.from_bytes(seed[:8], "little")
    header = json.loads(seed[8:8 + size])
    header["__metadata__"]["safeart"] = json.dumps(manifest)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + seed[8 + size:]


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_structural_manifest_mutations(seed: bytes, data: st.DataObject) -> None:
    size = int.from_bytes(seed[:8], "little")
    manifest = json.loads(json.loads(seed[8:8 + size])["__metadata__"]["safeart"])
    for _ in range(data.draw(st.integers(1, 3))):
        slots = _slots(manifest, [])
        if not slots:
            break
        container, key = data.draw(st.sampled_from(slots))
        action = data.draw(st.sampled_from(["replace", "delete", "swap"]))
        if action == "replace":
            container[key] = data.draw(_json)
        elif action == "delete":
            del container[key]
            if isinstance(container, list):
                break  # positions moved; draw fresh slots next round
        else:
            other, other_key = data.draw(st.sampled_from(slots))
            container[key] = copy.deepcopy(other[other_key])
    load_or_refuse(_with_manifest(seed, manifest))


@pytest.mark.parametrize("seed", SEEDS, ids=["model", "values", "v2_values"])
def test_seeds_load(seed: bytes) -> None:
    safeart.loads(seed, policy=POLICY)
