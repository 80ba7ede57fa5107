"""Bad input is one clear SafeartError: never a crash, a hang or unbounded memory."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

import safeart
from safeart import FormatError, LimitExceeded, Limits, Policy, UnsupportedVersion
from format_models import make_blob, raw_blob

U8 = {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}
META = {"safeart": json.dumps({"version": 1, "root": None})}


def refused(blob: bytes, kind: type = FormatError, match: str | None = None,
            policy: Policy | None = None) -> Any:
    """loads and audit both refuse ``blob`` with ``kind``."""
    with pytest.raises(kind, match=match) as info:
        safeart.loads(blob, policy=policy)
    report = safeart.audit(blob, policy=policy)
    assert not report.ok and isinstance(report.problems[0], kind)
    return info.value


# -- the safetensors container -------------------------------------------------------------
@pytest.mark.parametrize("blob, match", [
    (b"", "truncated"),
    (b"\x05\x00\x00", "truncated"),
    ((100).to_bytes(8, "little") + b"{}", "truncated"),
    ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
    ((4).to_bytes(8, "little") + b"{\xff\xfe}", "not UTF-8"),
    ((3).to_bytes(8, "little") + b"{x}", "not valid JSON"),
    (raw_blob({"__metadata__": {"a": 1}}), "strings to strings"),
    (raw_blob({"__metadata__": {}}), "no safeart manifest"),
    (raw_blob({"__metadata__": META, "t": {"dtype": "F32", "shape": [2]}}), "exactly dtype"),
    (raw_blob({"__metadata__": META, "t": {**U8, "dtype": "X9"}}, b"abcd"), "unknown dtype"),
    (raw_blob({"__metadata__": META, "t": {**U8, "shape": [5]}}, b"abcd"), "needs 5 bytes"),
    (raw_blob({"__metadata__": META, "t": {**U8, "shape": [-4]}}, b"abcd"), "shape"),
    (raw_blob({"__metadata__": META, "t": {**U8, "shape": [True] * 4}}, b"abcd"), "shape"),
    (raw_blob({"__metadata__": META, "t": {**U8, "data_offsets": [4, 0]}}, b"abcd"), "begin <= end"),
    (raw_blob({"__metadata__": META, "t": {**U8, "data_offsets": [8, 12]}}, b"abcd"), "past the end"),
    (raw_blob({"__metadata__": META, "t": U8}, b"abcdXY"), "trailing bytes"),
    (raw_blob({"__metadata__": META, "t": U8, "u": {**U8, "data_offsets": [2, 6]}}, b"abcdef"),
     "overlaps"),
    (raw_blob({"__metadata__": META, "t": {**U8, "data_offsets": [2, 6]}}, b"abcdef"), "gap"),
    (raw_blob({"__metadata__": META, "t": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}},
              b"a"), "divisible"),
    ((19).to_bytes(8, "little") + b'{"a": 1, "a": 2}   ', "duplicate key"),
    ((15).to_bytes(8, "little") + b'{"a": NaN}     ', "NaN"),
])
def test_bad_container(blob: bytes, match: str) -> None:
    refused(blob, FormatError, match)


def test_header_length_over_the_limit_is_refused_before_reading() -> None:
    blob = (1 << 40).to_bytes(8, "little") + b"{}"
    refused(blob, LimitExceeded, "max_header_bytes")
    small = Policy(limits=Limits(max_header_bytes=64))
    refused(safeart.dumps(list(range(50))), LimitExceeded, "max_header_bytes", small)


def test_every_truncation_of_a_real_blob_is_refused() -> None:
    blob = safeart.dumps({"w": torch.randn(8), "a": np.arange(3), "s": "x" * 2000})
    for cut in range(0, len(blob), 7):
        with pytest.raises(FormatError):
            safeart.loads(blob[:cut])


def test_plain_safetensors_file_is_not_safeart() -> None:
    import safetensors.torch

    blob = safetensors.torch.save({"w": torch.ones(2)})
    assert not safeart.is_safeart(blob)
    err = refused(blob, FormatError, "no safeart manifest")
    assert "safe_open" in err.hint


def test_sniffer_accepts_a_prefix_covering_the_header() -> None:
    blob = safeart.dumps({"w": torch.ones(1000)})
    assert safeart.is_safeart(blob) and safeart.is_safeart(blob[:200])
    assert not safeart.is_safeart(blob[:20]) and not safeart.is_safeart(b"\x80\x04K\x01.")


def test_too_many_tensors_and_too_long_names() -> None:
    blob = safeart.dumps([torch.ones(1) for _ in range(5)])
    refused(blob, LimitExceeded, "max_tensors", Policy(limits=Limits(max_tensors=4)))
    long_name = make_blob(None, {"n" * 2000: np.zeros(1, np.uint8)})
    refused(long_name, LimitExceeded, "max_name_length")


# -- the manifest ----------------------------------------------------------------------------
def test_unknown_versions() -> None:
    refused(make_blob(None, version=3), UnsupportedVersion, "version 3")
    refused(make_blob(None, version="1"), FormatError, "integer 'version'")
    refused(make_blob(None, manifest={"root": None}), FormatError, "integer 'version'")
    refused(make_blob(None, manifest={"version": 1, "root": 1, "x": 2}), FormatError, "exactly")
    refused(make_blob(None, manifest=[1]), FormatError, "integer 'version'")


LINEAR = ["torch.nn.modules.linear", "Linear"]


@pytest.mark.parametrize("root, match", [
    ({"k": "evil"}, "unknown node kind 'evil'"),
    ({"k": 3}, "unknown node kind"),
    ({"v": 1}, "unknown node kind None"),
    ({"k": "list", "v": [], "x": 1}, "unknown field 'x'"),
    ({"k": "obj"}, "without 'c'"),
    ({"k": "list", "v": {"a": 1}}, "must be a list"),
    ({"k": "list", "v": [[1, 2]]}, "JSON list is not a value"),
    ({"k": "dict", "v": [[1]]}, "pairs"),
    ({"k": "dict", "v": [], "m": {}}, "either"),
    ({"k": "dict", "m": [1]}, "either"),
    ({"k": "obj", "c": "torch.nn.Linear"}, "module, qualname"),
    ({"k": "obj", "c": ["os", "system; rm -rf /"]}, "dotted identifiers"),
    ({"k": "obj", "c": ["a", "b", "c"]}, "module, qualname"),
    ({"k": "list", "id": "1"}, "non-negative integer"),
    ({"k": "list", "id": True}, "non-negative integer"),
    ({"k": "list", "v": [{"k": "list", "id": 1}, {"k": "list", "id": 1}]}, "defined twice"),
    ({"k": "ref", "id": 0}, "not defined before"),
    ({"k": "list", "v": [{"k": "ref", "id": 1}, {"k": "list", "id": 1}]}, "not defined before"),
    ({"k": "tuple", "id": 0, "v": [{"k": "list", "v": [{"k": "ref", "id": 0}]}]}, "still being built"),
    ({"k": "obj", "c": LINEAR, "id": 0, "args": [{"k": "ref", "id": 0}]}, "still being built"),
    ({"k": "bytes", "v": "not base64!"}, "invalid syntax"),
    ({"k": "bytes"}, "exactly one of"),
    ({"k": "int", "v": "0x1f"}, "invalid syntax"),
    ({"k": "int", "v": " 1f"}, "invalid syntax"),
    ({"k": "int", "v": "f" * 1001}, "max_name_length"),
    ({"k": "float", "v": "7ff8"}, "invalid syntax"),
    ({"k": "dtype", "v": "Float32()"}, "invalid syntax"),
    ({"k": "device", "v": "cuda:0; x"}, "invalid syntax"),
    ({"k": "size", "v": [1, "2"]}, "integers"),
    ({"k": "tensor", "t": "missing"}, "missing tensor"),
    ({"k": "tensor", "t": 5}, "missing tensor"),
    ({"k": "npscalar", "dt": "<f4", "v": "00"}, "bytes as hex"),
    ({"k": "npscalar", "dt": "|O8", "v": "00" * 8}, "bytes as hex"),
    ({"k": "npscalar", "dt": "|b1", "v": "02"}, "00 or 01"),
    ({"k": "list", "v": ["x" * 1001]}, "max_name_length"),
    ({"k": "dict", "m": {"x" * 1001: 1}}, "max_name_length"),
])
def test_bad_manifest_nodes(root: Any, match: str) -> None:
    refused(make_blob(root), FormatError, match)


def test_non_finite_floats_in_the_manifest() -> None:
    header = {"__metadata__": {"safeart": '{"version": 1, "root": NaN}'}}
    refused(raw_blob(header), FormatError, "NaN")
    header = {"__metadata__": {"safeart": '{"version": 1, "root": {"k": "list", "v": [1e400]}}'}}
    refused(raw_blob(header), FormatError, "non-finite")


def test_huge_int_literal_is_refused_not_parsed() -> None:
    header = {"__metadata__": {"safeart": '{"version": 1, "root": ' + "9" * 50_000 + "}"}}
    refused(raw_blob(header), FormatError, "not valid JSON")


def test_tensor_reference_rules() -> None:
    data = {"a": np.zeros(4, np.uint8)}
    twice = {"k": "list", "v": [{"k": "bytes", "t": "a"}, {"k": "bytes", "t": "a"}]}
    refused(make_blob(twice, data), FormatError, "referenced twice")
    refused(make_blob(None, data), FormatError, "not referenced")
    not_u8 = safeart.dumps(torch.ones(2))
    header = json.loads(not_u8[8:8 + int.from_bytes(not_u8[:8], "little")])
    header["__metadata__"]["safeart"] = json.dumps({"version": 1, "root": {"k": "str", "t": "<root>"}})
    refused(raw_blob(header, not_u8[-8:]), FormatError, "1-D U8")
    nd = {"k": "ndarray", "t": "a", "dt": "<f4"}
    refused(make_blob(nd, data), FormatError, "stored as U8, expected F32")


def test_invalid_tensor_bytes_and_values_found_while_building() -> None:
    refused_at_build = [
        ({"k": "tensor", "t": "b", "rg": True}, {"b": np.ones(2, np.uint8)}, "gradients"),
        ({"k": "dtype", "v": "no_such_dtype"}, None, "no dtype"),
        ({"k": "device", "v": "nodevice"}, None, "invalid torch device"),
        ({"k": "npscalar", "dt": "<M8[xy]", "v": "00" * 8}, None, "invalid numpy dtype"),
        ({"k": "set", "v": [{"k": "list"}]}, None, "cannot build a set"),
        ({"k": "dict", "v": [[{"k": "dict"}, 1]]}, None, "dict key"),
        ({"k": "str", "t": "s"}, {"s": np.frombuffer(b"\xff\xfe", np.uint8)}, "not UTF-8"),
    ]
    for root, tensors, match in refused_at_build:
        blob = make_blob(root, tensors)
        assert safeart.audit(blob).ok, root
        with pytest.raises(FormatError, match=match):
            safeart.loads(blob)


def test_bool_tensor_bytes_must_be_0_or_1() -> None:
    blob = bytearray(safeart.dumps(torch.tensor([True, False, True])))
    blob[-1] = 2
    with pytest.raises(FormatError, match="BOOL"):
        safeart.loads(bytes(blob))


def test_recursion_bomb_in_the_manifest() -> None:
    deep = '{"version": 1, "root": ' + '{"k": "list", "v": [' * 100_000 + "]}" * 100_000 + "}"
    refused(raw_blob({"__metadata__": {"safeart": deep}}), LimitExceeded, "nests too deeply")
    header = ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    refused(len(header).to_bytes(8, "little") + header, LimitExceeded, "nests too deeply")


def test_depth_beyond_the_limit_is_refused_without_recursing() -> None:
    deep = '{"version": 1, "root": ' + '{"k": "list", "v": [' * 400 + "1" + "]}" * 400 + "}"
    refused(raw_blob({"__metadata__": {"safeart": deep}}), LimitExceeded, "max_depth=200")


def test_node_count_limit() -> None:
    blob = safeart.dumps([[i] for i in range(100)])
    refused(blob, LimitExceeded, "max_nodes", Policy(limits=Limits(max_nodes=150)))
    assert len(safeart.loads(blob, policy=Policy(limits=Limits(max_nodes=201)))) == 100


def test_audit_never_raises() -> None:
    for blob in (b"", b"garbage" * 10, make_blob({"k": "nope"}), make_blob(None, version=9)):
        report = safeart.audit(blob)
        assert not report.ok and isinstance(report.problems[0], FormatError)
