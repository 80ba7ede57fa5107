"""Torch objects as Metaflow pickles them (protocol 4), and the nested legacy torch stream."""

from __future__ import annotations

import pickle
import sys
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch
import torch.nn as nn
import torch.storage

from safeart import (
    FormatError,
    LimitExceeded,
    Limits,
    Policy,
    PolicyError,
    SafeartError,
    UnsupportedVersion,
)
from safeart.unpickle import restricted_loads
pytestmark = pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")

from unpickle_payloads import (
    Reduce,
    call,
    canary_call,
    float_stream,
    raw_storage,
    storage_pid,
    torch_stream,
)


class Net(nn.Module):
    """The blog's model."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(autouse=True)
def _never_torch_load(monkeypatch):
    """The real _load_from_bytes calls torch.load: nothing here may reach it."""

    def boom(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", boom)


def _load_storage(stream: bytes, **kw):
    return restricted_loads(call("torch.storage", "_load_from_bytes", stream), **kw)


def _raw(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.requires_grad == b.requires_grad
        and torch.equal(_raw(a), _raw(b))
    )


@pytest.mark.parametrize(
    "tensor",
    [
        torch.randn(3, 4),
        torch.randn(4, 5).t(),  # non-contiguous view
        torch.arange(10)[2:8:2],  # storage offset and stride
        torch.tensor(3.5, dtype=torch.float64),
        torch.zeros(0, 3),
        torch.randn(2, 2, dtype=torch.complex64),
        torch.randn(5).to(torch.bfloat16),
        torch.randn(5).half(),
        torch.tensor([True, False]),
        torch.tensor([-3, 4], dtype=torch.int8),
        torch.randn(3, requires_grad=True),
    ],
    ids=lambda t: f"{t.dtype}-{tuple(t.shape)}",
)
def test_tensors_bit_for_bit(tensor):
    out = restricted_loads(pickle.dumps(tensor, protocol=4))
    assert _same_bits(out, tensor) and out.storage_offset() == tensor.storage_offset()


def test_parameter():
    param = nn.Parameter(torch.randn(4, 2))
    out = restricted_loads(pickle.dumps(param, protocol=4))
    assert type(out) is nn.Parameter and _same_bits(out, param)


def test_net_needs_allow_and_then_loads_bit_for_bit():
    torch.manual_seed(0)
    net = Net()
    data = pickle.dumps(net, protocol=4)
    with pytest.raises(PolicyError) as info:
        restricted_loads(data, artifact="TrainFlow/7/train/1:model")
    assert info.value.name == f"{__name__}.Net" and "allow=[" in info.value.hint

    loaded = restricted_loads(data, policy=Policy(allow=[Net]), artifact="TrainFlow/7/train/1:model")
    assert type(loaded) is Net and type(loaded.fc1) is nn.Linear
    want, got = net.state_dict(), loaded.state_dict()
    assert list(want) == list(got) and all(_same_bits(got[k], want[k]) for k in want)
    x = torch.randn(5, 8)
    assert torch.equal(loaded(x), net(x))


def test_net_written_from_a_flow_file_loads_with_allow(monkeypatch):
    net = Net()
    with monkeypatch.context() as m:  # as if Net were defined in the flow file (__main__)
        m.setattr(Net, "__module__", "__main__")
        m.setattr(sys.modules["__main__"], "Net", Net, raising=False)
        data = pickle.dumps(net, protocol=4)
    assert b"__main__" in data
    with pytest.raises(PolicyError, match=r"allow=\[Net\]"):
        restricted_loads(data)
    x = torch.randn(2, 8)
    assert torch.equal(restricted_loads(data, policy=Policy(allow=[Net]))(x), net(x))


def test_trust_main_admits_classes_of_the_running_flow_file(monkeypatch):
    monkeypatch.setattr(Net, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "Net", Net, raising=False)
    data = pickle.dumps(Net(), protocol=4)
    assert type(restricted_loads(data, policy=Policy(trust_main=True))) is Net
    monkeypatch.setattr(sys.modules["__main__"], "Net", lambda: None)  # not a class: refused
    with pytest.raises(PolicyError):
        restricted_loads(data, policy=Policy(trust_main=True))


def test_state_dict_and_containers_of_default_layers():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
    model(torch.randn(1, 1, 5, 5))  # materialise the lazy layer
    model.eval()
    loaded = restricted_loads(pickle.dumps(model, protocol=4))
    x = torch.randn(2, 1, 5, 5)
    assert torch.equal(loaded(x), model(x))
    state = restricted_loads(pickle.dumps(model.state_dict(), protocol=4))
    assert type(state) is OrderedDict
    assert all(_same_bits(state[k], v) for k, v in model.state_dict().items())


def test_tensors_sharing_nothing_but_a_dict_round_trip():
    values = {"w": torch.randn(3), "n": 3, "nested": [torch.ones(2, dtype=torch.int64)]}
    out = restricted_loads(pickle.dumps(values, protocol=4))
    assert _same_bits(out["w"], values["w"]) and _same_bits(out["nested"][0], values["nested"][0])


def test_storage_saved_on_another_device_is_rebuilt_on_cpu():
    storage = _load_storage(float_stream([1.0, 2.0], location="cuda:0"))
    assert storage.device.type == "cpu" and storage.tolist() == [1.0, 2.0]


# -- hostile nested payloads --------------------------------------------------------------


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a refused payload ran"


def test_malicious_inner_pickle_is_refused(canary, monkeypatch):
    hidden = torch_stream(canary_call(canary, 2), [])
    fake_tensor = Reduce(
        torch._utils._rebuild_tensor_v2,
        Reduce(torch.storage._load_from_bytes, hidden),
        0, (1,), (1,), False, OrderedDict(),
    )
    data = pickle.dumps(fake_tensor, protocol=4)
    with pytest.raises(PolicyError) as info:
        restricted_loads(data, artifact="F/1/s/2:t")
    assert info.value.name == "builtins.open" and info.value.artifact == "F/1/s/2:t"

    monkeypatch.undo()  # prove the payload is live: the real loader runs it
    live = canary.with_name("live")
    live_payload = Reduce(torch.storage._load_from_bytes, torch_stream(canary_call(live, 2), []))
    pickle.loads(pickle.dumps(live_payload, protocol=4)).close()
    assert live.exists()


@pytest.mark.parametrize(
    "main, name",
    [(storage_pid("EvilStorage"), "torch.EvilStorage"), (storage_pid(module="os"), "os.FloatStorage")],
)
def test_unknown_storage_types_are_refused(main, name):
    with pytest.raises(PolicyError) as info:
        _load_storage(torch_stream(main, ["0"], raw_storage(1, b"\0" * 4)))
    assert info.value.name == name


def test_storage_types_are_inert_tags_not_constructors():
    with pytest.raises(FormatError, match="not callable"):
        _load_storage(torch_stream(call("torch", "FloatStorage", 10**12, protocol=2), []))
    with pytest.raises(PolicyError):  # outside a torch stream they are not allowed at all
        restricted_loads(call("torch", "FloatStorage", 10**12))


def test_truncated_inner_streams_are_format_errors():
    stream = float_stream([1.0, 2.0, 3.0])
    for cut in range(len(stream)):
        with pytest.raises(FormatError):
            _load_storage(stream[:cut])


@pytest.mark.parametrize(
    "stream, error",
    [
        (b"garbage", FormatError),
        (torch_stream(storage_pid(numel=2**40), ["0"], raw_storage(2**40, b"")), FormatError),
        (torch_stream(storage_pid(numel=2**62), ["0"]), FormatError),
        (torch_stream(storage_pid(numel=-1), ["0"]), FormatError),
        (torch_stream(storage_pid(numel=2), ["0"], raw_storage(3, b"\0" * 8)), FormatError),
        (torch_stream(storage_pid(numel=2), ["0"], raw_storage(2, b"\0" * 8) + b"x"), FormatError),
        (torch_stream(storage_pid(numel=1), ["0", "0"], raw_storage(1, b"\0" * 4) * 2), FormatError),
        (torch_stream(storage_pid(numel=1), [], raw_storage(1, b"\0" * 4)), FormatError),
        (torch_stream(storage_pid(numel=1), ["1"], raw_storage(1, b"\0" * 4)), FormatError),
        (torch_stream(storage_pid(numel=1, view=("1", 0, 1)), ["0"], raw_storage(1, b"\0" * 4)), FormatError),
        (torch_stream(storage_pid(numel=1, kind="module"), ["0"], raw_storage(1, b"\0" * 4)), FormatError),
        (torch_stream(storage_pid(numel=1, key=7), ["0"], raw_storage(1, b"\0" * 4)), FormatError),
        (torch_stream(storage_pid(), ["0"], raw_storage(1, b"\0" * 4), magic=1), FormatError),
        (torch_stream(storage_pid(), ["0"], raw_storage(1, b"\0" * 4), version=1000), UnsupportedVersion),
        (torch_stream(storage_pid(), ["0"], raw_storage(1, b"\0" * 4), little_endian=False), UnsupportedVersion),
    ],
)
def test_malformed_inner_streams(stream, error):
    with pytest.raises(error) as info:
        _load_storage(stream, artifact="F/1/s/2:x")
    assert info.value.artifact == "F/1/s/2:x"


def test_declared_sizes_are_charged_before_allocating(monkeypatch):
    from safeart.unpickle import torch_legacy

    allocated = []

    class TorchSpy:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def UntypedStorage(nbytes):
            allocated.append(nbytes)
            return torch.UntypedStorage(nbytes)

    monkeypatch.setattr(torch_legacy, "torch", TorchSpy())
    assert _load_storage(float_stream([1.0, 2.0])).tolist() == [1.0, 2.0] and allocated == [8]
    # Many storages, each fitting in the stream, but not all together.
    main = b"\x80\x02(" + b"".join(storage_pid(key=str(i), numel=64)[2:-1] for i in range(50)) + b"l."
    raw = raw_storage(64, b"\0" * 256) * 4
    stream = torch_stream(main, [str(i) for i in range(50)], raw)
    with pytest.raises(FormatError, match="more than the stream holds"):
        _load_storage(stream)
    assert 0 < sum(allocated[1:]) < len(stream) < 50 * 256
    allocated.clear()
    with pytest.raises(FormatError, match="more than the stream holds"):
        _load_storage(torch_stream(storage_pid(numel=2**31), ["0"], b"\0" * 64))
    assert allocated == []


def test_payload_must_be_bytes():
    with pytest.raises(FormatError, match="must be bytes"):
        restricted_loads(call("torch.storage", "_load_from_bytes", "a str"))


def test_nesting_is_bounded():
    stream = float_stream([1.0])
    for _ in range(3):
        stream = torch_stream(call("torch.storage", "_load_from_bytes", stream, protocol=2), [])
    assert _load_storage(stream).tolist() == [1.0]
    with pytest.raises(LimitExceeded):
        _load_storage(stream, policy=Policy(limits=Limits(max_nesting=3)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_model_pickles_only_raise_safeart_errors(data):
    blob = bytearray(_NET_PICKLE)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(blob) // 2, len(blob)))
    try:
        restricted_loads(bytes(blob[:cut]))
    except SafeartError:
        pass


_NET_PICKLE = pickle.dumps(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), protocol=4)
