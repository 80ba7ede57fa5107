"""The scan reads every container format exactly as the victim's loader reads it (issue 12,
"Misses"): joblib's legacy ZF files, V7 tar headers, joblib array dtypes however spelled,
gzip members with NUL padding or headers zlib refuses, npz members compressed with LZMA or
bzip2, npy headers past 10 kB, lzma-alone with any dictionary size, bzip2 magic that is a
pickle too.

Each test builds the file, checks with the victim's own reader that it *would* be read
(format detection, or decompress-and-compare; a payload is never unpickled; a benign twin
may go through the real loader), asserts the scan grades the payload dangerous, and that a
benign file of the same kind stays clean.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import lzma
import pickle
import pickletools
import tarfile
import zipfile
import zlib

import joblib
import numpy as np
import pytest
from joblib.numpy_pickle_compat import read_zfile, write_zfile
from joblib.numpy_pickle_utils import _detect_compressor

from payloads import (
    SAMPLES, _dtype, canary_reduce_pickle, joblib_wrapper, npy_long_header, stack_global,
    v7_tar,
)
from safeart.scan import scan_bytes
from safeart.scan.joblib_arrays import FAILS, Descr, DTypeRecord

try:  # numpy >= 2
    from numpy.lib._format_impl import _read_array_header
except ImportError:  # pragma: no cover
    from numpy.lib.format import _read_array_header  # type: ignore[attr-defined,no-redef]

BENIGN = {"weights": [1.5, 2.5], "name": "model", "n": 3}


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    yield path
    assert not path.exists()


def _sample(name: str, canary) -> bytes:
    return SAMPLES[name].build(canary)


def _dangerous(data: bytes) -> None:
    result = scan_bytes(data)
    assert result.verdict == "dangerous", result.findings
    assert "builtins.open" in {f.name for f in result.findings if f.grade.value == "dangerous"}


def _clean(data: bytes, fmt: str) -> None:
    result = scan_bytes(data)
    assert result.verdict == "clean" and result.complete, result.findings
    assert fmt in result.formats, result.formats


# -- joblib's legacy ZF files ------------------------------------------------------------
def test_joblib_zfile_is_read_as_read_zfile_reads_it(canary, tmp_path):
    data = _sample("joblib_zfile_legacy", canary)
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert _detect_compressor(f) == "compat"  # joblib.load(path) -> load_compatibility
        assert read_zfile(f) == canary_reduce_pickle(canary, 2)
    _dangerous(data)


@pytest.mark.parametrize("field", [None, " 0x{:_x}", "+{:x}", "{:X}\t"])
@pytest.mark.parametrize("space", [b"", b" "])
def test_benign_zfile_is_clean(tmp_path, field, space):
    inner = pickle.dumps(BENIGN, protocol=2)
    path = tmp_path / "old.pkl"
    with open(path, "wb") as f:
        if field is None:
            write_zfile(f, inner)
        else:  # other length spellings int(..., 16) takes, and joblib <= 0.8.4's extra space
            length = field.format(len(inner)).encode()
            f.write(b"ZF" + length.ljust(19) + space + zlib.compress(inner))
    with pytest.warns(DeprecationWarning):
        assert joblib.load(path) == BENIGN  # the real loader reads it
    _clean(path.read_bytes(), "zfile")


# -- tar headers as tarfile reads them ----------------------------------------------------
def test_v7_tar_is_read_as_tarfile_reads_it(canary):
    data = _sample("legacy_torch_tar_v7_headers", canary)
    assert b"ustar" not in data[:512]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:  # torch's legacy loader
        assert tar.extractfile("storages").read() == canary_reduce_pickle(canary, 2)
    _dangerous(data)


@pytest.mark.parametrize("fmt", ["v7", tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.PAX_FORMAT])
def test_benign_tar_of_every_header_format_is_clean(fmt):
    members = {"sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
               "pickle": pickle.dumps(BENIGN, protocol=2)}
    if fmt == "v7":
        data = v7_tar(members)
    else:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
            for name, blob in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        data = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        assert tar.getnames() == list(members)
    _clean(data, "tar")


def test_a_block_tarfile_refuses_is_not_tar():
    data = bytearray(v7_tar({"pickle": pickle.dumps(BENIGN, protocol=2)}))
    data[148:156] = b"0000001\0"  # wrong checksum
    with pytest.raises(tarfile.ReadError):
        tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:")
    assert "tar" not in scan_bytes(bytes(data)).formats


# -- joblib array dtypes, decided as numpy decides them ---------------------------------
DTYPE_SPELLINGS = {
    "joblib_dtype_pipe_O": (_dtype("|O", False, True), "dict"),
    "joblib_dtype_object_name": (_dtype("object"), "dict"),
    "joblib_dtype_state_flag": (
        _dtype("V8", False, True, state=(3, "|", None, None, None, 8, 1, 1)), "dict"),
    "joblib_dtype_structured_object_field": (
        _dtype([("a", "<f8"), ("b", "|O")], False, True), "dict"),
    "joblib_dtype_subarray_objects": (_dtype("(2,)O", False, True), "dict"),
    "joblib_dtype_given_as_class": (stack_global("numpy", "dtype"), "dict"),
    "joblib_wrapper_slot_state": (_dtype("O8", False, True), "slots"),
    "joblib_wrapper_init_args": (_dtype("O8", False, True), "init"),
}


@pytest.mark.parametrize("name", sorted(DTYPE_SPELLINGS))
def test_joblib_reads_objects_for_every_dtype_spelling(name, canary):
    dtype_ops, layout = DTYPE_SPELLINGS[name]
    twin = joblib_wrapper(dtype_ops, pickle.dumps(np.array([1, "x"], dtype=object), protocol=2),
                          layout)
    loaded = joblib.load(io.BytesIO(twin))  # benign twin: joblib reads a nested pickle
    assert loaded.dtype == object and list(loaded) == [1, "x"]
    twin_result = scan_bytes(twin)
    assert twin_result.verdict != "dangerous", twin_result.findings
    if name != "joblib_dtype_given_as_class":  # a class from the stream decides: unknown
        assert not [f for f in twin_result.findings if f.name == "NumpyArrayWrapper"]
    _dangerous(_sample(name, canary))


def test_numeric_joblib_arrays_stay_clean():
    for array in (np.arange(6.0).reshape(2, 3), np.zeros((0, 4), "<i2"), np.array(["ab", "c"]),
                  np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4")]), np.asfortranarray(np.eye(3))):
        buf = io.BytesIO()
        joblib.dump({"x": array}, buf)
        _clean(buf.getvalue(), "pickle")


def _record(dtype: np.dtype) -> DTypeRecord:
    """The scanner's model of ``dtype``'s own pickle (nested dtypes modelled too)."""
    _, args, state = dtype.__reduce__()
    record = DTypeRecord(args)
    record.__setstate__(_modelled(state))
    return record


def _modelled(value):
    if isinstance(value, np.dtype):
        return _record(value)
    if type(value) is tuple:
        return tuple(_modelled(v) for v in value)
    if type(value) is dict:
        return {k: _modelled(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("dtype", ["f8", "<i2", "O", "U5", "S3", "M8[s]", "V16", "(2,)O",
                                   "(3,)f4", [("a", "<f8"), ("b", "O")], [("a", "<f8")],
                                   {"names": ["x"], "formats": ["O"], "titles": ["t"]}])
def test_dtype_model_of_real_pickles_matches_numpy(dtype):
    real = np.dtype(dtype)
    model = _record(real).model
    assert isinstance(model, Descr)
    assert (model.hasobject, model.itemsize) == (real.hasobject, real.itemsize)


STATES = [  # (numpy.dtype arguments, __setstate__ state): hand-made, as a pickle may say
    (("f8", False, True), (3, "<", None, None, None, -1, -1, 1)),
    (("f8", False, False), (3, "<", None, None, None, -1, -1, 1)),  # builtin: ignored
    (("O8", False, True), (3, "|", None, None, None, -1, -1, 0)),  # object flag cleared
    (("V8", False, False), (3, "|", None, None, None, 16, 1, 1)),
    (("V8", False, True), (2, "|", None, None, None, 16, 1, 5)),  # version < 3: any flag
    (("V8", False, True), (2, "|", None, None, None, 16, 1, 0)),
    (("V8", False, True), (3, "|", None, None, None, 24, 1, -127)),  # signed char flags
    (("V8", False, True), (3, "|", None, None, None, 24, 1, -128)),
    (("U5", False, True), (3, "<", None, None, None, 40, 4, 8)),
    (("V8", False, True), ("|", None, None, 8, 1)),  # 5-tuple: version 0
    (("V8", False, True), (9, "|", None, None, None, 8, 1, 1)),  # bad version
    (("V8", False, True), (3, "||", None, None, None, 8, 1, 1)),  # bad endian
    (("V8", False, True), (3, "|", None, ("a",), None, 8, 1, 1)),  # names without fields
    (("V8", False, True), (3, "|", None, None, None, 8.0, 1, 1)),  # float elsize
    (("V8", False, True), [3, "|", None, None, None, 8, 1, 1]),  # not a tuple
    (("|O", False, True), None),
    (("nonsense",), None),
]


@pytest.mark.parametrize("args,state", STATES)
def test_dtype_state_model_matches_numpy(args, state):
    """numpy itself on literal states (only in this test): same hasobject/itemsize, or both
    refuse."""
    record = DTypeRecord(args)
    try:
        real = np.dtype(*args)
        if state is not None:
            real.__setstate__(state)
    except Exception:  # noqa: BLE001 - numpy refuses: so must the model
        if state is not None and isinstance(record.model, Descr):
            record.__setstate__(state)
        assert record.model == FAILS
        return
    if state is not None:
        record.__setstate__(state)
    assert isinstance(record.model, Descr), record.model
    assert (record.model.hasobject, record.model.itemsize) == (real.hasobject, real.itemsize)


# -- gzip as Python's gzip module reads it -----------------------------------------------
def test_gzip_members_and_padding_as_the_gzip_module_reads_them(canary):
    data = _sample("gzip_nul_padded_members", canary)
    assert gzip.decompress(data) == canary_reduce_pickle(canary, 2)
    assert zlib.decompressobj(31).decompress(data) == canary_reduce_pickle(canary, 2)[:2]
    _dangerous(data)


def test_gzip_header_zlib_refuses(canary):
    data = _sample("gzip_header_zlib_refuses", canary)
    assert gzip.GzipFile(fileobj=io.BytesIO(data)).read() == canary_reduce_pickle(canary, 2)
    with pytest.raises(zlib.error):
        zlib.decompress(data, 31)
    _dangerous(data)


def test_benign_padded_gzip_is_clean_and_a_bad_crc_is_reported():
    inner = pickle.dumps(BENIGN, protocol=4)
    data = gzip.compress(inner[:10], mtime=0) + bytes(100) + gzip.compress(inner[10:], mtime=0)
    assert pickle.loads(gzip.decompress(data)) == BENIGN  # the real loader reads it
    _clean(data, "gzip")
    broken = bytearray(gzip.compress(inner, mtime=0))
    broken[-8] ^= 0xFF  # CRC
    result = scan_bytes(bytes(broken))
    assert result.verdict == "unknown"
    assert [f.kind for f in result.findings] == ["archive"]


# -- npz members as zipfile reads them ---------------------------------------------------
@pytest.mark.parametrize("method,name", [(zipfile.ZIP_LZMA, "npz_lzma_member"),
                                         (zipfile.ZIP_BZIP2, "npz_bzip2_member")])
def test_npz_members_compressed_as_zipfile_reads_them(method, name, canary):
    data = _sample(name, canary)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.getinfo("ok.npy").compress_type == method
        assert z.read("ok.npy").startswith(b"\x93NUMPY")
    _dangerous(data)
    twin = io.BytesIO()
    with zipfile.ZipFile(twin, "w", compression=method) as z:
        member = io.BytesIO()
        np.save(member, np.arange(5.0))
        z.writestr("ok.npy", member.getvalue())
    with np.load(io.BytesIO(twin.getvalue())) as npz:  # the real loader reads it
        assert list(npz["ok"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    _clean(twin.getvalue(), "zip")


# -- npy headers numpy.load(allow_pickle=True) accepts ------------------------------------
def test_npy_header_over_10k_as_read_array_reads_it(canary):
    data = _sample("npy_header_over_10k", canary)
    with pytest.raises(ValueError, match="max_header_size"):
        _read_array_header(io.BytesIO(data[8:]), (1, 0))
    _, _, dtype = _read_array_header(io.BytesIO(data[8:]), (1, 0), max_header_size=2**64)
    assert dtype.hasobject  # so read_array unpickles what follows, with allow_pickle=True
    _dangerous(data)


def test_benign_npy_with_a_long_header_is_clean():
    numeric = npy_long_header("<f8", (3,), np.arange(3.0).tobytes())
    assert list(np.load(io.BytesIO(numeric), max_header_size=10**6)) == [0.0, 1.0, 2.0]
    _clean(numeric, "npy")
    objects = npy_long_header("|O", (2,),
                              pickle.dumps(np.array([1, "x"], dtype=object), protocol=3))
    assert np.load(io.BytesIO(objects), allow_pickle=True).dtype == object
    assert scan_bytes(objects).verdict != "dangerous"


# -- lzma-alone and bzip2 as joblib's readers take them -----------------------------------
def test_lzma_alone_with_any_dictionary_size(canary):
    data = _sample("lzma_alone_small_dictionary", canary)
    assert _detect_compressor(io.BytesIO(data)) == "lzma"  # joblib: LZMAFile, FORMAT_AUTO
    assert lzma.decompress(data) == canary_reduce_pickle(canary, 2)
    _dangerous(data)
    twin = io.BytesIO()
    joblib.dump(BENIGN, twin, compress=("lzma", 3))
    assert joblib.load(io.BytesIO(twin.getvalue())) == BENIGN
    _clean(twin.getvalue(), "xz")
    small = lzma.compress(pickle.dumps(BENIGN), format=lzma.FORMAT_ALONE,
                          filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 12 << 10}])
    assert joblib.load(io.BytesIO(small)) == BENIGN
    _clean(small, "xz")


def test_bzip2_magic_that_is_also_a_pickle(canary):
    data = _sample("bzip2_magic_pickle", canary)
    assert _detect_compressor(io.BytesIO(data)) == "bz2"
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]  # parsed, never run
    assert ops[0][0] == "BINBYTES" and ("GLOBAL", "builtins open") in ops
    _dangerous(data)
    _clean(bz2.compress(pickle.dumps(BENIGN)), "bzip2")


def test_a_long_header_only_numpys_slow_fallback_parses_is_refused_unparsed(canary):
    # Found by the scan fuzz target: past 10 kB, a header ast.literal_eval refuses goes to
    # numpy's tokenizing Python 2 fallback, quadratic in the header length (20 s for 12 kB).
    data = _sample("npy_header_over_10k", canary).replace(b"(2,), ", b"(2L,),", 1)
    with pytest.raises(SyntaxError):
        ast.literal_eval(data[10:10 + 12_000].decode())
    result = scan_bytes(data)
    assert [f.kind for f in result.findings] == ["limit"] and not result.complete


# -- a zip after a tar ---------------------------------------------------------------------
def test_zip_after_a_tar_is_read_as_zipfile_reads_it(canary):
    """zipfile finds a zip by its end record whatever precedes it, a tar included: a tar whose
    member list ends before an appended torch zip scanned clean (found by the scan fuzz
    target in CI's seeded smoke run)."""
    from payloads import malicious_torch_zip

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("sys_info")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x80\x02N."))
    data = buf.getvalue() + malicious_torch_zip(canary)
    assert any(n.lower().endswith("data.pkl") for n in zipfile.ZipFile(io.BytesIO(data)).namelist())
    _dangerous(data)
