"""Both ways CPython is fed (walked first, or read as it is validated) on files, where the
buffer is a memory map the reader must let go of: bytes that are no pickle, a stream whose
first opcode is already invalid, a large pickle and a zip of large members."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest

from safeart.scan import scan_path
from safeart.scan.stubs import _EAGER_MAX


@pytest.mark.parametrize("size", [1000, _EAGER_MAX + 1000])
@pytest.mark.parametrize("head", [b"\xff", b"\x80\x04\x95", b"K"])
def test_files_that_are_no_pickle_scan_without_error(tmp_path: Path, size: int, head: bytes):
    path = tmp_path / "blob.bin"
    path.write_bytes(head + os.urandom(size))
    result = scan_path(path).results[0]
    assert not [f for f in result.findings if f.kind == "error"], result.findings


def test_a_zip_of_large_members_and_a_large_pickle_scan_clean(tmp_path: Path):
    rows = [{"id": i, "name": f"row{i}", "score": i / 7} for i in range(60_000)]
    data = pickle.dumps(rows, protocol=4)
    assert len(data) > _EAGER_MAX
    big = tmp_path / "rows.pkl"
    big.write_bytes(data)
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        z.writestr("model/data/0", os.urandom(_EAGER_MAX + 4096))
        z.writestr("model/data/1", b"\xff" + os.urandom(300))
    for path in (big, archive):
        result = scan_path(path).results[0]
        assert result.verdict == "clean", result.findings
