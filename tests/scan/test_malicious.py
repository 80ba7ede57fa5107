"""Every published bypass technique in tests/payloads.py is caught, and nothing ever runs."""

import copyreg
import gzip
import pickle

import pytest

from payloads import SAMPLES, canary_reduce_pickle, nested_load_from_bytes_payload
from safeart import Limits, Policy
from safeart.scan import scan_bytes, scan_path


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_is_caught_and_never_runs(name, tmp_path):
    sample = SAMPLES[name]
    canary = tmp_path / "canary"
    result = scan_bytes(sample.build(canary), name=name)
    assert result.fails(), (name, result.findings)
    if sample.expect == "dangerous":
        assert result.verdict == "dangerous", (name, sample.reference, result.findings)
    assert not canary.exists()


def test_whole_corpus_on_disk_never_fires(tmp_path):
    canary = tmp_path / "canary"
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, sample in SAMPLES.items():
        (folder / f"{name}.bin").write_bytes(sample.build(canary))
    report = scan_path(folder)
    assert len(report.results) == len(SAMPLES)
    assert all(r.fails() for r in report.results)
    assert not canary.exists()


def test_registered_extension_code_resolves_to_its_global(tmp_path):
    data = b"\x80\x02\x82\xf1" + pickle.dumps((str(tmp_path / "c"), "w"), protocol=2)[2:-1] + b"R."
    copyreg.add_extension("builtins", "open", 0xF1)
    try:
        result = scan_bytes(data)
        assert copyreg._extension_cache == {}  # no stub leaked into the process-wide cache
    finally:
        copyreg.remove_extension("builtins", "open", 0xF1)
    [finding] = [f for f in result.findings if f.kind == "import"]
    assert (finding.name, finding.opcode, finding.offset) == ("builtins.open", "EXT1", 2)


def test_findings_before_a_break_and_the_break_itself(tmp_path):
    data = canary_reduce_pickle(tmp_path / "c", 2)[:-1] + b"\xff"
    result = scan_bytes(data, name="broken.pkl")
    kinds = [(f.kind, f.grade.value) for f in result.findings]
    assert kinds == [("import", "dangerous"), ("malformed", "unknown")]
    assert result.findings[0].offset == 2 and result.findings[0].opcode == "GLOBAL"
    assert not result.complete and result.fails()


def test_nested_payload_location_chain(tmp_path):
    result = scan_bytes(gzip.compress(nested_load_from_bytes_payload(tmp_path / "c")),
                        name="blob")
    [bad] = [f for f in result.findings if f.grade.value == "dangerous"]
    assert bad.name == "builtins.open"
    assert bad.location.startswith("blob > gzip > _load_from_bytes@")
    assert result.formats[:2] == ["gzip", "pickle"] and "torch-legacy" in result.formats


def test_opcode_limit_reports_and_later_imports_are_dangerous(tmp_path):
    padding = b"N0" * 200
    data = b"\x80\x02" + padding + canary_reduce_pickle(tmp_path / "c", 2)[2:]
    result = scan_bytes(data, policy=Policy(limits=Limits(max_opcodes=100)))
    assert {f.kind for f in result.findings} >= {"limit"}
    assert not result.complete


def test_decompression_ratio_limit():
    bomb = gzip.compress(b"\0" * (20 << 20))
    result = scan_bytes(bomb, policy=Policy(limits=Limits(max_decompression_ratio=50)))
    assert [f.kind for f in result.findings] == ["limit"] and not result.complete


def test_huge_declared_lengths_are_bounded():
    for op, width in ((b"\x8e", 8), (b"\x96", 8), (b"\x8b", 4), (b"\x95", 8)):
        data = b"\x80\x04" + op + (2**31 - 1).to_bytes(width, "little") + b"\x00" * 16
        result = scan_bytes(data)
        assert not result.complete and result.fails()


def test_nothing_named_in_a_pickle_is_imported():
    import sys

    data = b"\x80\x04\x8c\x0bantigravity\x8c\x04geohash\x93)R."
    assert "antigravity" not in sys.modules
    result = scan_bytes(data)
    assert "antigravity" not in sys.modules
    assert result.verdict == "unknown"


def test_legacy_header_cache_never_remembers_a_payload(tmp_path):
    import torch

    from payloads import legacy_torch_stream
    from safeart.scan import streams

    streams._CLEAN_HEADERS.clear()
    evil = legacy_torch_stream(tmp_path / "c", "magic")
    benign = pickle.dumps(torch.ones(3), protocol=4)
    assert scan_bytes(evil).verdict == "dangerous"
    assert scan_bytes(benign).verdict == "clean"  # learns the real header
    assert scan_bytes(benign).verdict == "clean"  # served from the cache
    assert scan_bytes(evil).verdict == "dangerous"
    assert not (tmp_path / "c").exists()
