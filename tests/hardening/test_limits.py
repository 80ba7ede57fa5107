"""Resource limits: every bomb is a finding (scan) or a clear error (load), never a crash,
and stays under a stated memory bound, measured in a fresh interpreter (:func:`isolated`).

The bound is :data:`BOMB_BOUND_MB` of peak RSS growth for each bomb below; no test asserts
a duration.
"""

from __future__ import annotations

import gzip
import json
import struct

import pytest

from isolation import BOMB_BOUND_MB, isolated
from payloads import canary_reduce_pickle
from safeart import Limits, LimitExceeded, Policy, SafeartError, audit, loads, scan_bytes
from safeart.unpickle import restricted_loads


def _limits(**values: int) -> Policy:
    return Policy(limits=Limits(**values))


def _kinds(result) -> set[str]:
    return {f.kind for f in result.findings}


# -- memo / DUP expansion ("billion laughs") ------------------------------------------------
def test_persistent_id_of_shared_tuples_is_reported_without_expanding_it():
    # (x, x) nested 40 times by DUP + TUPLE2: 82 opcodes, 2**40 leaves when printed in full.
    result = isolated("""
        data = b"\\x80\\x02K\\x01" + b"2\\x86" * 40 + b"Q."
        result = safeart.scan_bytes(data)
        report(kinds=[f.kind for f in result.findings], longest=max(len(f.name) for f in result.findings))
    """)
    assert "persistent-id" in result.values["kinds"] and result.values["longest"] <= 500
    assert result.grew_mb < BOMB_BOUND_MB


def test_shared_values_stay_shared_in_scan_and_restricted_load():
    laughs = b"\x80\x02K\x01" + b"2\x86" * 60 + b"."
    assert scan_bytes(laughs).verdict == "clean"
    value = restricted_loads(laughs)
    assert value[0] is value[1]  # 2**60 leaves, 61 objects


def test_repeated_codecs_encode_of_one_memoized_string_allocates_it_once():
    # _codecs.encode(s, 'latin1') is how protocol 2 spells bytes; the scanner's stub builds
    # the bytes. 1 MB string, 2,000 calls through the memo: 2 GB if each call copied it.
    result = isolated("""
        text = b"X" + (1 << 20).to_bytes(4, "little") + b"a" * (1 << 20)
        call = b"h\\x00h\\x01\\x8c\\x06latin1\\x86R"
        data = (b"\\x80\\x04\\x8c\\x07_codecs\\x8c\\x06encode\\x93\\x94" + text + b"\\x94]("
                + call * 2000 + b"e.")
        report(verdict=safeart.scan_bytes(data).verdict)
    """)
    assert result.values["verdict"] == "clean"
    assert result.grew_mb < BOMB_BOUND_MB


def test_a_nested_payload_called_repeatedly_is_scanned_once(tmp_path):
    inner = canary_reduce_pickle(tmp_path / "canary", 2)
    literal = b"B" + struct.pack("<I", len(inner)) + inner
    data = (b"\x80\x04\x8c\rtorch.storage\x8c\x10_load_from_bytes\x93\x94" + literal
            + b"\x94](" + b"h\x00h\x01\x85R" * 2000 + b"e.")
    result = scan_bytes(data)
    dangerous = [f for f in result.findings if f.name == "builtins.open"]
    assert len(dangerous) == 1 and result.verdict == "dangerous"


def test_memo_index_bomb_is_refused_by_scan_and_restricted_load():
    data = b"\x80\x02N" + b"r" + struct.pack("<I", 0x0FFFFFFF) + b"."  # 2 GB memo table
    assert "limit" in _kinds(scan_bytes(data))
    result = isolated(f"""
        try:
            safeart.unpickle.restricted_loads({data!r})
            report(error=None)
        except safeart.SafeartError as exc:
            report(error=type(exc).__name__)
    """)
    assert result.values["error"] == "LimitExceeded"
    assert result.grew_mb < BOMB_BOUND_MB


# -- huge declared lengths -------------------------------------------------------------------
_LENGTHS = {"BINBYTES8": (b"\x8e", 8), "BYTEARRAY8": (b"\x96", 8), "LONG4": (b"\x8b", 4),
            "BINUNICODE8": (b"\x8d", 8), "BINUNICODE": (b"X", 4), "BINSTRING": (b"T", 4)}


def test_huge_declared_lengths_allocate_nothing():
    pickles = {}
    for name, (opcode, width) in _LENGTHS.items():
        declared = (1 << (8 * width - 2)) - 1  # far past the data, and past any RAM
        pickles[name] = b"\x80\x05" + opcode + declared.to_bytes(width, "little") + bytes(64) + b"."
    result = isolated(f"""
        for name, data in {pickles!r}.items():
            scan = safeart.scan_bytes(data)
            try:
                safeart.unpickle.restricted_loads(data)
                error = None
            except safeart.SafeartError as exc:
                error = type(exc).__name__
            report(**{{name: ["malformed" in {{f.kind for f in scan.findings}}, error]}})
    """)
    assert result.values == {name: [True, "FormatError"] for name in _LENGTHS}
    assert result.grew_mb < BOMB_BOUND_MB


# -- deep nesting ----------------------------------------------------------------------------
def test_deeply_nested_pickle_neither_recurses_nor_crashes():
    deep = b"\x80\x04" + b"]" * 200_000 + b"a" * 199_999 + b"."  # lists 200,000 deep
    assert scan_bytes(deep).verdict == "clean"
    value = restricted_loads(deep)
    assert isinstance(value, list)


def test_nested_compression_stops_at_max_nesting(tmp_path):
    data = canary_reduce_pickle(tmp_path / "canary")
    for _ in range(5):
        data = gzip.compress(data, mtime=0)
    result = scan_bytes(data, policy=_limits(max_nesting=3))
    assert "limit" in _kinds(result) and result.fails() and not result.complete
    assert scan_bytes(data).verdict == "dangerous"  # the default (8) reaches the payload


def test_deep_manifest_json_is_a_limit_error():
    blob = _blob(manifest='{"version":1,"root":' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(LimitExceeded):
        loads(blob)
    assert any(isinstance(p, LimitExceeded) for p in audit(blob).problems)


# -- decompression bombs ---------------------------------------------------------------------
_DEFLATE_BOMB = """
import zlib, struct
def deflate(mb, wbits):
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1 << 20)
    return b"".join(c.compress(block) for _ in range(mb)) + c.flush()
def zip_bomb(mb):
    raw, name = deflate(mb, -15), b"data.pkl"
    size = (mb << 20) & 0xFFFFFFFF
    local = struct.pack("<4sHHHHHIIIHH", b"PK\\x03\\x04", 20, 0, 8, 0, 0, 0, len(raw), size,
                        len(name), 0) + name
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\\x01\\x02", 20, 20, 0, 8, 0, 0, 0,
                          len(raw), size, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\\x05\\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(raw), 0)
    return local + raw + central + end
"""


@pytest.mark.parametrize("kind", ["gzip", "zip member"])
def test_decompression_bomb_is_a_limit_finding_within_the_memory_bound(kind):
    make = "deflate(400, 31)" if kind == "gzip" else "zip_bomb(400)"  # ~400 kB -> 400 MB
    result = isolated(f"""
        data = {make}
        findings = safeart.scan_bytes(data).findings
        report(kinds=sorted({{f.kind for f in findings}}), size=len(data))
    """, setup=_DEFLATE_BOMB)
    assert result.values["kinds"] == ["limit"] and result.values["size"] < 1 << 20
    assert result.grew_mb < BOMB_BOUND_MB


def test_decompression_ratio_is_configurable():
    data = gzip.compress(bytes(20 << 20))  # ratio ~1000
    assert _kinds(scan_bytes(data, policy=_limits(max_decompression_ratio=100))) == {"limit"}
    assert scan_bytes(data, policy=_limits(max_decompression_ratio=5000)).verdict == "clean"


# -- safetensors headers ---------------------------------------------------------------------
def _blob(header: dict | None = None, *, manifest: str | None = None) -> bytes:
    header = dict(header or {})
    if manifest is not None:
        header["__metadata__"] = {"safeart": manifest}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


@pytest.mark.parametrize("declared", [1 << 63, (100 << 20) + 1])
def test_huge_declared_header_length_is_refused_before_reading(declared):
    blob = declared.to_bytes(8, "little") + b"{}"
    with pytest.raises(LimitExceeded):
        loads(blob)


def test_header_larger_than_max_header_bytes_is_refused():
    blob = _blob(manifest='{"version":1,"root":"' + "x" * 5000 + '"}')
    with pytest.raises(LimitExceeded):
        loads(blob, policy=_limits(max_header_bytes=4096))


def test_millions_of_declared_tensors_are_refused_within_the_memory_bound():
    # 600,000 zero-size tensors declared in a ~33 MB header; max_tensors=10,000.
    result = isolated("""
        entry = '"t%d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}'
        raw = ("{" + ",".join(entry % i for i in range(600_000)) + "}").encode()
        blob = len(raw).to_bytes(8, "little") + raw
        del raw
        policy = safeart.Policy(limits=safeart.Limits(max_tensors=10_000))
        try:
            safeart.loads(blob, policy=policy)
            report(error=None)
        except safeart.SafeartError as exc:
            report(error=type(exc).__name__)
    """, timeout=240)
    assert result.values["error"] == "LimitExceeded"
    assert result.grew_mb < BOMB_BOUND_MB


# -- very long names -------------------------------------------------------------------------
def test_very_long_pickle_global_name():
    name = "a" * (8 << 20)
    data = b"\x80\x02c" + name.encode() + b"\nb\n)R."
    result = scan_bytes(data)
    assert result.verdict == "unknown" and all(len(f.name) <= 500 for f in result.findings)
    with pytest.raises(SafeartError):
        restricted_loads(data)


def test_very_long_manifest_class_name_is_a_limit_error():
    manifest = json.dumps({"version": 1, "root": {"k": "obj", "c": ["m" * 5000, "C"]}})
    with pytest.raises(SafeartError):
        loads(_blob(manifest=manifest))
    assert audit(_blob(manifest=manifest)).problems
