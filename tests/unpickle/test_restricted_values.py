"""restricted_loads on plain Python values, numpy and pandas, and on malformed bytes."""

from __future__ import annotations

import ipaddress
import pickle
import textwrap

import numpy as np
import pandas as pd
import pytest

from safeart import FormatError, Policy, PolicyError, Rule
from safeart.policy import POLICY_ENV
from safeart.unpickle import restricted_loads
from unpickle_payloads import call

PLAIN = {
    "int": 1,
    "big": 2**100,
    "neg": -7,
    "float": 1.5,
    "nan_free": [0.0, -0.0, float("inf")],
    "str": "héllo",
    "bytes": b"\x00\xff",
    "empty_bytes": b"",
    "bytearray": bytearray(b"ab"),
    "none": None,
    "bools": (True, False),
    "set": {1, 2},
    "frozenset": frozenset({"a"}),
    "complex": 1 + 2j,
    "range": range(1, 10, 3),
    "slice": slice(1, None, 2),
    "nested": [{"a": (1, [2, {3: "x"}])}],
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_every_protocol(protocol):
    assert restricted_loads(pickle.dumps(PLAIN, protocol=protocol)) == PLAIN


def test_shared_and_recursive_references_survive():
    shared = [1, 2]
    value = {"a": shared, "b": shared}
    cyclic: list = []
    cyclic.append(cyclic)
    out = restricted_loads(pickle.dumps((value, cyclic), protocol=4))
    assert out[0]["a"] is out[0]["b"]
    assert out[1][0] is out[1]


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_numpy_arrays_and_scalars(protocol):
    values = [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(6, dtype=">i8")[::2],
        np.array([True, False]),
        np.array(["a", "bc"]),
        np.array([1, "x", None], dtype=object),
        np.zeros((0, 3)),
        np.float64(2.5),
        np.int32(-3),
        np.bool_(True),
        np.dtype("complex64"),
    ]
    data = pickle.dumps(values, protocol=protocol)
    # The reference is what pickle itself rebuilds (it drops e.g. the byte order of a '>i8' view).
    for got, want in zip(restricted_loads(data), pickle.loads(data)):
        assert type(got) is type(want)
        if isinstance(want, np.ndarray):
            assert (got.dtype, got.shape) == (want.dtype, want.shape)
            assert got.tolist() == want.tolist()
        else:
            assert got == want


def test_numpy_1_module_names_load_as_documented_aliases():
    # numpy 1.x wrote numpy.core.multiarray._reconstruct; under numpy 2 that object is
    # numpy._core.multiarray._reconstruct, and both names are on the allowlist.
    data = pickle.dumps(np.arange(3), protocol=2).replace(b"numpy._core", b"numpy.core")
    assert restricted_loads(data).tolist() == [0, 1, 2]


def test_pandas_frames_with_the_default_policy():
    df = pd.DataFrame(
        {"i": [1, 2, 3], "f": [0.5, 1.5, None], "s": ["x", "y", "z"], "b": [True, False, True],
         "o": [None, {"k": 1}, (1, 2)]}
    )
    for obj in (df, df.set_index("s"), df["f"], df.iloc[1:]):
        out = restricted_loads(pickle.dumps(obj, protocol=4))
        assert type(out) is type(obj) and out.equals(obj)


def test_memoryview_and_bytearray_input():
    data = pickle.dumps(PLAIN, protocol=4)
    assert restricted_loads(memoryview(data)) == PLAIN
    assert restricted_loads(bytearray(data)) == PLAIN


def test_every_truncation_is_a_format_error():
    data = pickle.dumps({"a": [1, 2.5, "x"], "b": {1, 2}}, protocol=4)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            restricted_loads(data[:cut], artifact="Flow/1/s/2:x")


@pytest.mark.parametrize(
    "blob", [b"", b"garbage", b"\x80\x04\xff", b"\x80\x05\x95" + b"\xff" * 8, b"(((((.", b"N.trailing"]
)
def test_garbage_is_a_format_error_naming_the_artifact(blob):
    with pytest.raises(FormatError) as info:
        restricted_loads(blob, artifact="Flow/1/start/2:model")
    assert info.value.artifact == "Flow/1/start/2:model"
    assert "Flow/1/start/2:model" in str(info.value)


@pytest.mark.parametrize(
    "data, cause",
    [(call("builtins", "complex", "not a number"), ValueError), (call("builtins", "range", "x"), TypeError)],
)
def test_failing_reconstructor_is_wrapped_with_the_artifact(data, cause):
    with pytest.raises(FormatError, match=cause.__name__) as info:
        restricted_loads(data, artifact="A/1/s/2:b")
    assert info.value.artifact == "A/1/s/2:b" and isinstance(info.value.__cause__, cause)


def test_unlisted_plain_class_is_refused_by_default_and_loadable_when_allowed():
    value = ipaddress.IPv4Address("10.0.0.1")  # pickled as IPv4Address(<int>): a call
    data = pickle.dumps(value, protocol=4)
    with pytest.raises(PolicyError) as info:
        restricted_loads(data)
    assert info.value.name == "ipaddress.IPv4Address"
    assert "allow=['ipaddress.IPv4Address']" in info.value.hint
    rule = Rule("ipaddress.IPv4Address", "an IPv4 address from its integer", "callable")
    assert restricted_loads(data, policy=Policy(allow=[rule])) == value


def test_default_policy_comes_from_the_environment(tmp_path, monkeypatch):
    policy_file = tmp_path / "safeart.toml"
    policy_file.write_text(textwrap.dedent(
        'allow = [{ name = "ipaddress.IPv4Address", kind = "callable", reason = "an address" }]\n'))
    monkeypatch.setenv(POLICY_ENV, str(policy_file))
    data = pickle.dumps(ipaddress.IPv4Address("10.0.0.2"), protocol=4)
    assert restricted_loads(data) == ipaddress.IPv4Address("10.0.0.2")
