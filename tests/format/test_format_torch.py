"""Tensors, parameters and nn.Module trees: bit-for-bit round-trips, identity, interop."""

from __future__ import annotations

import pickle
import time
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

import safeart
from safeart.format.layout import read_header
from safeart.limits import Limits
from format_models import ALLOW, Block, Net, TiedLM, trained

# every dtype safetensors stores (torch name -> safetensors name)
DTYPES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.uint16: "U16", torch.int32: "I32", torch.uint32: "U32", torch.int64: "I64",
    torch.uint64: "U64", torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32",
    torch.float64: "F64", torch.complex64: "C64", torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ", torch.float8_e5m2: "F8_E5M2",
    torch.float8_e5m2fnuz: "F8_E5M2FNUZ", torch.float8_e8m0fnu: "F8_E8M0",
    torch.float4_e2m1fn_x2: "F4",
}


def raw(t: torch.Tensor) -> bytes:
    """The tensor's bytes (bit-for-bit comparison, NaN-safe, any dtype)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    bits = torch.randint(0, 256, (torch.Size(shape).numel() * dtype.itemsize,), dtype=torch.uint8)
    if dtype is torch.bool:
        bits %= 2
    return bits.view(dtype).reshape(shape)


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
            and a.requires_grad == b.requires_grad and raw(a) == raw(b))


def roundtrip(obj: Any, **kw: Any) -> Any:
    return safeart.loads(safeart.dumps(obj), allow=ALLOW, **kw)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_every_safetensors_dtype(dtype: torch.dtype) -> None:
    tensors = [random_tensor(dtype, (3, 4)), random_tensor(dtype, (2,)), random_tensor(dtype, (0, 2))]
    if dtype is not torch.float4_e2m1fn_x2:  # packed pairs: at least one dimension
        tensors.append(random_tensor(dtype, ()))
    out = roundtrip(tensors)
    for a, b in zip(tensors, out):
        assert same_tensor(a, b)
    header = read_header(memoryview(safeart.dumps(tensors[0])), Limits())
    assert [e.dtype for e in header.tensors.values()] == [DTYPES[dtype]]


def test_parameters_requires_grad_and_views() -> None:
    base = torch.arange(24.0).reshape(4, 6)
    value = {
        "param": nn.Parameter(torch.randn(3)),
        "frozen": nn.Parameter(torch.randn(3), requires_grad=False),
        "grad": torch.randn(2, requires_grad=True),
        "nonleaf": torch.randn(2, requires_grad=True) * 2,
        "transposed": base.t(), "strided": base[::2, 1::3], "expanded": torch.ones(3).expand(2, 3),
        "conj": torch.randn(2, dtype=torch.complex64).conj(), "neg": torch.randn(3)._neg_view(),
    }
    out = roundtrip(value)
    assert type(out["param"]) is nn.Parameter and out["param"].requires_grad
    assert type(out["frozen"]) is nn.Parameter and not out["frozen"].requires_grad
    assert type(out["grad"]) is torch.Tensor and out["grad"].requires_grad and out["grad"].is_leaf
    assert out["nonleaf"].requires_grad and out["nonleaf"].is_leaf
    for key in ("transposed", "strided", "expanded", "conj", "neg"):
        assert out[key].is_contiguous() and torch.equal(out[key], value[key].resolve_conj().resolve_neg())
        assert not out[key].is_conj() and not out[key].is_neg()


def test_tied_tensors_are_stored_once_and_stay_tied() -> None:
    t = torch.randn(100)
    blob = safeart.dumps({"a": t, "b": t, "c": [t]})
    assert len(safetensors.torch.load(blob)) == 1
    out = safeart.loads(blob)
    assert out["a"] is out["b"] is out["c"][0]


def test_torch_dtype_device_size() -> None:
    value = [torch.float32, torch.bfloat16, torch.complex128, torch.device("cpu"),
             torch.device("cuda", 1), torch.Size([2, 3]), torch.Size([])]
    out = roundtrip(value)
    assert out == value and [type(o) for o in out] == [type(v) for v in value]


def test_blog_net_roundtrip() -> None:
    net = trained(Net())
    out = roundtrip(net)
    assert type(out) is Net and type(out.linear1) is nn.Linear
    assert out.state_dict().keys() == net.state_dict().keys()
    assert all(raw(a) == raw(b) for a, b in zip(out.state_dict().values(), net.state_dict().values()))
    x = torch.linspace(-2, 2, 17).reshape(-1, 1)
    assert torch.equal(out(x), net(x))


def test_model_with_tied_embedding_batchnorm_dropout_and_shared_block() -> None:
    model = trained(TiedLM()).eval()
    model.block.train()  # mixed flags survive
    out = roundtrip(model)
    assert type(out) is TiedLM and type(out.block) is Block
    assert out.heads["out"].weight is out.embed.weight  # tied
    assert out.layers[0] is out.layers[2] is out.block  # shared submodule
    assert [m.training for m in out.modules()] == [m.training for m in model.modules()]
    sd_in, sd_out = model.state_dict(), out.state_dict()
    assert list(sd_out) == list(sd_in) and "norm.num_batches_tracked" in sd_out
    assert int(sd_out["norm.num_batches_tracked"]) == 2
    assert all(raw(sd_in[k]) == raw(sd_out[k]) and sd_in[k].dtype == sd_out[k].dtype for k in sd_in)
    assert "scale" in dict(out.block.named_buffers()) and "block.scale" not in sd_out  # non-persistent
    assert torch.equal(out.block.scale, model.block.scale)
    out.eval(), model.eval()
    tokens = torch.randint(0, 11, (3, 6))
    assert torch.equal(out(tokens), model(tokens))


def test_sequential_and_parameter_containers() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2), nn.Tanh()))
    params = nn.ParameterList([nn.Parameter(torch.randn(2)) for _ in range(3)])
    pdict = nn.ParameterDict({"a": nn.Parameter(torch.randn(1))})
    out = roundtrip([model, params, pdict])
    x = torch.randn(5, 3)
    assert torch.equal(out[0](x), model(x))
    assert all(torch.equal(a, b) for a, b in zip(out[1], params))
    assert torch.equal(out[2]["a"], pdict["a"])


def test_output_is_a_valid_safetensors_file(tmp_path: Any) -> None:
    net = Net()
    blob = safeart.dumps(net)
    weights = safetensors.torch.load(blob)
    assert set(weights) == set(net.state_dict())  # names follow the object paths
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    seq = nn.Sequential(nn.Linear(2, 2), nn.ModuleList([nn.BatchNorm1d(2)]))
    assert set(safetensors.torch.load(safeart.dumps(seq))) == set(seq.state_dict())
    path = tmp_path / "net.safetensors"
    safeart.save_file({"all": [random_tensor(d, (2, 4)) for d in DTYPES]}, path)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert len(f.keys()) == len(DTYPES) and "safeart" in f.metadata()
        assert {f.get_tensor(k).dtype for k in f.keys()} == set(DTYPES)


def test_device_argument_moves_tensors() -> None:
    out = roundtrip({"w": torch.randn(3), "p": nn.Parameter(torch.randn(2))}, device="meta")
    assert out["w"].device.type == "meta" and type(out["p"]) is nn.Parameter
    assert out["p"].device.type == "meta"


def test_loads_is_faster_than_pickle_for_2000_small_tensors() -> None:
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(1000)])
    pickled, blob = pickle.dumps(model), safeart.dumps(model)

    def best(fn: Any) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    ours, theirs = best(lambda: safeart.loads(blob)), best(lambda: pickle.loads(pickled))
    assert ours < 1.25 * theirs, f"safeart {ours * 1e3:.0f} ms vs pickle {theirs * 1e3:.0f} ms"
