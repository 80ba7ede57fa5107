"""Blob files: ``load_file`` maps the file lazily (or reads it once), ``loads(copy=False)``
shares a buffer handed over, ``save_file`` replaces files by rename; the mapping's lifetime."""

from __future__ import annotations

import gc
import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import safeart
from safeart.errors import FormatError
from safeart.format.layout import read_header
from safeart.limits import Limits


def _mapped_paths() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split(maxsplit=5)[5].strip() for line in maps if len(line.split()) == 6}


def _backing(tensor: torch.Tensor) -> str | None:
    """What ``/proc/self/maps`` says holds the tensor's first byte (a path, ``[heap]``...)."""
    address = tensor.data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return fields[5].strip() if len(fields) == 6 else None
    return None


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "m.safeart"
    safeart.save_file({"w": torch.arange(4096, dtype=torch.float32), "a": np.zeros(3),
                       "b": torch.tensor([True, False] * 4)}, path)
    return path


def test_load_file_maps_the_file_and_reads_nothing_up_front(blob: Path) -> None:
    out = safeart.load_file(blob)
    assert _backing(out["w"]) == str(blob.resolve())
    assert torch.equal(out["w"], torch.arange(4096, dtype=torch.float32))
    assert out["a"].tolist() == [0.0, 0.0, 0.0] and out["a"].flags.writeable


def test_mapped_tensors_are_writable_and_writes_never_reach_the_file(blob: Path) -> None:
    before = blob.read_bytes()
    out = safeart.load_file(blob)
    out["w"] += 1
    out["a"][0] = 2.0
    assert float(out["w"][0]) == 1.0 and out["a"][0] == 2.0
    assert blob.read_bytes() == before


def test_the_mapping_lives_as_long_as_its_tensors_and_then_goes(blob: Path) -> None:
    gc.collect()
    fds = _open_fds()
    out = safeart.load_file(blob)
    weight = out["w"]
    del out
    gc.collect()
    blob.unlink()  # the mapping holds the inode, not the name
    assert float(weight.sum()) == sum(range(4096))
    assert _open_fds() == fds + 1  # Python's mmap keeps a duplicate descriptor
    del weight
    gc.collect()
    assert _open_fds() == fds and str(blob) not in _mapped_paths()


def test_save_file_over_a_loaded_file_replaces_it_and_leaves_the_loaded_objects(blob: Path) -> None:
    out = safeart.load_file(blob)
    safeart.save_file({"w": torch.full((4096,), 7.0)}, blob)
    assert torch.equal(out["w"], torch.arange(4096, dtype=torch.float32))
    assert float(safeart.load_file(blob)["w"][0]) == 7.0
    assert [p.name for p in blob.parent.iterdir()] == [blob.name]  # no temporary left


def test_save_file_that_fails_to_encode_leaves_the_old_file(blob: Path) -> None:
    before = blob.read_bytes()
    with pytest.raises(safeart.errors.EncodeError):
        safeart.save_file({"f": lambda: 0}, blob)
    assert blob.read_bytes() == before and len(list(blob.parent.iterdir())) == 1


def test_save_file_writes_through_a_symlink_and_keeps_default_permissions(blob: Path) -> None:
    link = blob.parent / "link.safeart"
    link.symlink_to(blob)
    safeart.save_file({"x": 1}, link)
    assert link.is_symlink() and safeart.load_file(blob) == {"x": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert blob.stat().st_mode & 0o777 == 0o666 & ~umask


def test_mapped_bool_tensors_are_checked_on_a_copy(blob: Path) -> None:
    out = safeart.load_file(blob)
    tensors = read_header(memoryview(blob.read_bytes()), Limits()).tensors.values()
    entry = next(e for e in tensors if e.dtype == "BOOL")
    with open(blob, "r+b") as f:  # rewritten in place after the check
        f.seek(entry.begin)
        f.write(b"\x02" * (entry.end - entry.begin))
    assert out["b"].view(torch.uint8).tolist() == [1, 0] * 4
    with pytest.raises(FormatError, match="BOOL"):
        safeart.load_file(blob)


def test_load_file_without_mmap_is_independent_of_the_file(blob: Path) -> None:
    tracemalloc.start()
    try:
        out = safeart.load_file(blob, mmap=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _backing(out["w"]) != str(blob.resolve()) and peak < 1.2 * blob.stat().st_size + 65536
    blob.write_bytes(b"\1" * blob.stat().st_size)  # rewritten in place
    out["w"] += 1
    out["a"][0] = 2.0
    assert float(out["w"][0]) == 1.0 and out["a"].tolist() == [2.0, 0.0, 0.0]


@pytest.mark.parametrize("mmap", [True, False])
def test_load_file_errors_name_the_file(tmp_path: Path, mmap: bool) -> None:
    empty, bad = tmp_path / "empty.safeart", tmp_path / "bad.safeart"
    empty.write_bytes(b"")
    bad.write_bytes(b"\x10" + b"\0" * 7 + b"{}")
    for path, message in ((empty, "empty file"), (bad, "truncated")):
        with pytest.raises(FormatError, match=message) as info:
            safeart.load_file(path, mmap=mmap)
        assert info.value.artifact == str(path)


def test_loads_copy_false_shares_a_writable_buffer_and_copies_bytes() -> None:
    blob = safeart.dumps({"w": torch.zeros(16), "a": np.zeros(4)})
    shared = bytearray(blob)
    out = safeart.loads(shared, copy=False)
    shared[-1] = 0xFF  # the last bytes belong to the last tensor laid out
    changed = [float(out["w"][-1]) != 0.0, out["a"][-1] != 0.0]
    assert changed.count(True) == 1
    copied = safeart.loads(blob, copy=False)  # read-only bytes: copied from
    copied["w"] += 1
    assert bytes(blob) == safeart.dumps({"w": torch.zeros(16), "a": np.zeros(4)})
    assert float(safeart.loads(bytearray(blob))["w"].sum()) == 0.0


def test_a_file_that_cannot_be_mapped_is_read(blob: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmap
    import types

    from safeart.format import fileio

    def refuse(fileno: int, length: int, **kw: Any) -> Any:
        if fileno == -1:
            return mmap.mmap(fileno, length, **kw)
        raise OSError(19, "No such device")

    monkeypatch.setattr(fileio, "mmap", types.SimpleNamespace(
        mmap=refuse, MAP_PRIVATE=mmap.MAP_PRIVATE, ACCESS_COPY=mmap.ACCESS_COPY))
    out = safeart.load_file(blob)
    assert _backing(out["w"]) != str(blob.resolve()) and float(out["w"][1]) == 1.0


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("cryptography")
    from safeart.settings import SIGNING_KEY_ENV, TRUST_KEYS_ENV
    from safeart.signing import keygen

    pair = keygen(tmp_path / "keys" / "key.pem")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(pair.private_path))
    monkeypatch.setenv(TRUST_KEYS_ENV, str(pair.public_path))
    return pair


def test_load_file_verifies_the_signature_over_the_bytes_it_loads(blob: Path, keys: Any) -> None:
    from safeart.signing import IntegrityError, sign_file

    with pytest.raises(IntegrityError) as info:  # trust keys set, file unsigned
        safeart.load_file(blob)
    assert info.value.artifact == str(blob)
    assert float(safeart.load_file(blob, verify=False)["w"][1]) == 1.0
    sign_file(blob)
    out = safeart.load_file(blob)  # verified: read once, checked, built from that copy
    assert _backing(out["w"]) != str(blob.resolve()) and float(out["w"][1]) == 1.0
    with open(blob, "r+b") as f:  # one weight byte changed after signing
        f.seek(-1, os.SEEK_END)
        f.write(b"\x7f")
    with pytest.raises(IntegrityError):
        safeart.load_file(blob)


def test_load_file_verify_true_needs_trust_keys(blob: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safeart.errors import ConfigError
    from safeart.settings import TRUST_KEYS_ENV

    monkeypatch.delenv(TRUST_KEYS_ENV, raising=False)
    with pytest.raises(ConfigError, match="SAFEART_TRUST_KEYS"):
        safeart.load_file(blob, verify=True)
