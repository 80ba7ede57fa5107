"""Inputs the fuzzers found, kept as regression tests (each names the target that found it).

Inputs are spelled out when short; longer ones are rebuilt by the canary builders in
tests/payloads.py (``zip_after_broken_pickle``, found by the scan target as a mutation of
``zip_polyglot``), whose samples every test of tests/scan and tests/hardening runs.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from payloads import SAMPLES
from safeart import ConfigError, LimitExceeded, load_policy, scan_bytes
from safeart.unpickle import restricted_loads


def test_unpickle_target_memo_index_in_a_mutated_joblib_name():
    # LONG_BINPUT 1467572594 after a string: CPython resized its memo to ~11 GB.
    data = (b"\x80\x04\x8c\x13joblibn_yu.mppmpyMA" + b"r" + (1467572594).to_bytes(4, "little")
            + b"eia\x00le\x8c\x11NumpyArrayWpeK\x01\x85\x8c\x05R\x8c\nallw\x86R..")
    with pytest.raises(LimitExceeded):
        restricted_loads(data)


def test_scan_target_headerless_pickle_with_a_memo_bomb_is_not_clean():
    # Protocol 0 without PROTO: content sniffing tries it as a pickle; LONG_BINPUT with index
    # 0x280A3249 ("I2\n(") would make pickle.loads allocate a 5 GB memo. The scan said
    # "clean" because nothing was imported before the walker stopped CPython.
    data = b"(dp0\nVa\np1\nI1\n(dp0\nVa\np1\nI1\nrI2\n(lp2sI2\n(lp2\nF3.0\nas."
    result = scan_bytes(data)
    assert "limit" in {f.kind for f in result.findings} and result.fails()


@pytest.mark.parametrize("data", [b"r\xff\xff\xff\x7f" + bytes(64), b"00r\xff\xff\xff\x7fxyz"])
def test_random_bytes_that_read_as_a_memo_bomb_are_still_data(data):
    # The PUT comes first (nothing to store), or CPython fails before it (stack underflow):
    # no victim can be made to allocate, so plain data stays clean.
    result = scan_bytes(data)
    assert result.verdict == "clean" and result.formats == ["data"]


def test_scan_target_pickle_with_ustar_at_offset_257_is_scanned_as_a_pickle():
    # A PROTO-headed pickle whose bytes 257..261 spell "ustar" sniffs as a tar; the pickle is
    # scanned too, strictly (PROTO makes it one): the import after CPython's stack underflow
    # (POP on an empty stack) is reported, as for any pickle.
    filler = 260 - 8
    data = (b"\x80\x020X" + filler.to_bytes(4, "little") + b"x" * 249 + b"ustar" + b"x" * 3
            + b"0cos\nsystem\n.")
    assert data[257:262] == b"ustar"
    result = scan_bytes(data)
    assert result.verdict == "dangerous"
    assert "os.system" in {f.name for f in result.findings}


def test_scan_target_nul_in_an_import_name_does_not_stop_the_scanners_unpickler():
    # The stub class for `a.b\0c` could not be created (type names cannot hold NUL), which
    # stopped CPython at the first import: later imports were only seen by the walker.
    result = scan_bytes(b"\x80\x02ca\nb\x00c\n0cos\nsystem\n0N.")
    assert "os.system" in result.globals  # graded as CPython performed it
    assert result.complete and result.verdict == "dangerous"


@pytest.mark.parametrize("text", ['tool = """"""', "[tool]\nsafeart = 1\n", "tool = [1]\n"])
def test_policy_target_pyproject_whose_tool_is_not_a_table_is_a_config_error(tmp_path, text):
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="tool.safeart"):
        load_policy(path)


@pytest.mark.parametrize("memo", [b"p0\x00x\n", b"p0\ng0\x00x\n0"])
def test_scan_target_nul_in_a_memo_index_line_hides_nothing(memo):
    # CPython reads PUT/GET lines as C strings: '0\0x' is index 0. The walker refused the
    # line, stopped, and the import after it was never seen (headerless: graded clean).
    data = b"(l" + memo + b"cos\nsystem\n(Vtouch canary\ntR."
    result = scan_bytes(data)
    assert "os.system" in result.globals and result.verdict == "dangerous"


def test_scan_target_zip64_archive_after_junk_bytes_is_opened():
    # torch.save writes Zip64 end records; with bytes before the archive the locator's
    # offset misses the Zip64 record, which zipfile then finds right before the locator.
    torch = pytest.importorskip("torch")
    saved = io.BytesIO()
    torch.save({"w": torch.ones(2)}, saved)
    result = scan_bytes(b"\x00\x04x\x06" + saved.getvalue())
    assert "torch._utils._rebuild_tensor_v2" in result.globals


def test_scan_target_unsized_joblib_array_does_not_end_the_scan():
    # A NumpyArrayWrapper whose state joblib cannot size ('shape' misspelt): joblib.load
    # fails there, pickle.load reads on and runs what follows. The scan gave up at it.
    wrapper = (b"\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81}(\x8c\x05s@ape"
               b"K\x01\x85\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93X\x02\x00\x00\x00u1"
               b"\x89\x88\x87Rub")
    data = b"\x80\x04" + wrapper + b"0cbuiltins\nopen\n(Vcanary\nVw\ntR."
    result = scan_bytes(data)
    assert "builtins.open" in {f.name for f in result.findings}
    assert result.verdict == "dangerous"


def test_scan_target_zip_member_running_past_the_end_is_scanned_as_far_as_it_goes():
    # zipfile reads a stored member whose size runs past the end up to the end, and the
    # pickle in it runs; the scan skipped the member.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02cbuiltins\nopen\n(Vcanary\nVw\ntR.")
    data = bytearray(out.getvalue())
    central = data.index(b"PK\x01\x02")
    data[central + 20:central + 24] = (1 << 30).to_bytes(4, "little")  # compressed size
    result = scan_bytes(bytes(data))
    assert "builtins.open" in {f.name for f in result.findings}


def test_scan_target_zip_after_a_broken_pickle_with_a_damaged_central_directory():
    # The end record counts more entries than the central directory holds; zipfile reads
    # the entries there are, so the scan must find the zip anyway.
    data = bytearray(SAMPLES["zip_after_broken_pickle"].build(Path("canary")))
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = (9).to_bytes(2, "little") * 2  # entries on disk / in total
    result = scan_bytes(bytes(data))
    assert "builtins.open" in {f.name for f in result.findings}


def test_scan_target_pickles_after_a_mismatched_legacy_storage_key_list_are_scanned(tmp_path):
    # A legacy torch stream with one pickle too many in its header: the parts shift, the
    # "storage keys" are not a key list, torch.load fails -- but pickle.load in a loop reads
    # on into the pickles after them, which the scan never looked at.
    magic = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
    data = (magic + b"\x80\x02M\xe9\x03." + b"\x80\x02}q\x00." + b"\x80\x02M\xe9\x03."
            + b"\x80\x02}q\x00." + SAMPLES["reduce_builtins_open_p2"].build(tmp_path / "c"))
    result = scan_bytes(data)
    assert "builtins.open" in {f.name for f in result.findings}


def test_a_frame_straddle_hiding_a_huge_binbytes_is_refused_before_loading():
    """Found by the unpickle fuzz target: an opcode straddling a FRAME makes the C unpickler
    read a BINBYTES of 2 GiB the scan never saw; restricted_loads refuses bytes whose scan
    reports a differential (or a break) before it unpickles anything."""
    import base64

    from safeart import FormatError

    data = base64.b64decode("gACVAwAAAAAAAACMCGJ1aWwEb3BlbnJhcHBlcpMpgX0ojAhzdWJjbGFzc4wFbnVtcHmMB25kYXJyYXmTjAVzaGFwZUsBhYwFb3JkZXKMAUOMBWR0eXBljAVudW1weYwFZHR5cGWTWAYAAABvYmplY3SFUowKYWxsb3dfbW1hcIl1YoACQiEAAAB4Qv///394eHhC////f3h4eEL///9/eHh4Qv///394eHiTWCAAAAAvbm9uZXhpc3RlbnQvc2FmZWFydC1mdXp6LWNhbmFyeVgBAAAAd4ZSMQ==")
    with pytest.raises(FormatError, match="refused before loading: differential"):
        restricted_loads(data)
