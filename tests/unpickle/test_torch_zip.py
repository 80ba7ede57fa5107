"""safeart.guard.load_torch_file: torch.save zip checkpoints, scanned, then read by the
restricted unpickler (safeart/unpickle/torch_zip.py); torch.load never runs."""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from safeart.errors import FormatError, PolicyError, UnsafeArtifactError
from safeart.guard import load_torch_file
from safeart.scan import scan_bytes
from safeart.unpickle import restricted_load_torch_zip

#: The real torch.load, for reference results only (the fixture below replaces it).
TORCH_LOAD = torch.load


@pytest.fixture(autouse=True)
def no_torch_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.load must never be called by safeart")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)


def _saved(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _reference(data: bytes) -> Any:
    return TORCH_LOAD(io.BytesIO(data), weights_only=True)


def _assert_same(got: Any, expected: Any, path: str = "obj") -> None:
    assert type(got) is type(expected), path
    if isinstance(expected, torch.Tensor):
        assert (got.dtype, got.shape, got.stride(), got.storage_offset()) == (
            expected.dtype, expected.shape, expected.stride(), expected.storage_offset()), path
        assert torch.equal(got, expected), path
    elif isinstance(expected, dict):
        assert list(got) == list(expected), path
        for key in expected:
            _assert_same(got[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), path
        for i, (a, b) in enumerate(zip(got, expected)):
            _assert_same(a, b, f"{path}[{i}]")
    else:
        assert got == expected, path


def _trained() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 1))
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(8, 3)).sum().backward()
    adam.step()
    sgd.step()
    return model, adam, sgd


def _benign() -> dict[str, Any]:
    model, adam, sgd = _trained()
    base = torch.arange(12, dtype=torch.float64)
    return {
        "state_dict": model.state_dict(),
        "adam": adam.state_dict(),
        "sgd": sgd.state_dict(),
        "checkpoint": {"epoch": 3, "model": model.state_dict(), "optimizer": adam.state_dict(),
                       "history": [0.5, 0.25, {"best": (1, 2.5)}], "name": "run-1"},
        "dtypes": [torch.ones(3, dtype=d) for d in (
            torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.bool,
            torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.complex64)]
        + [torch.tensor([True, False, True]), torch.tensor([-1.5, 2.25], dtype=torch.bfloat16),
           torch.zeros(0, 2), torch.tensor(7)],
        "views": [base, base[2:5], base.view(3, 4).t(), base.view(2, 6)[1]],
    }


@pytest.mark.parametrize("key", list(_benign()))
def test_benign_checkpoints_load_as_torch_load_weights_only(key: str) -> None:
    data = _saved(_benign()[key])
    _assert_same(load_torch_file(data), _reference(data))


def test_a_path_is_read_and_named_and_views_keep_sharing(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(_benign()["views"], path)
    views = load_torch_file(path, device="cpu")
    assert len({v.untyped_storage().data_ptr() for v in views}) == 1
    views[1][0] = -1.0  # writable, and shared as in torch.load
    assert views[0][2].item() == -1.0 and views[2][2, 0].item() == -1.0


def _rezip(data: bytes, edit: Callable[[str, bytes], bytes | None] = lambda n, b: b,
           extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """``data`` (a zip) rewritten member by member: ``edit`` returns new bytes or None (drop)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = edit(name, src.read(name))
            if content is not None:
                dst.writestr(name, content)
        for name, content in extra:
            dst.writestr(name, content)
    return out.getvalue()


def test_a_big_endian_checkpoint_is_byte_swapped_as_torch_does() -> None:
    values = [torch.arange(5, dtype=torch.float32) / 3,
              torch.tensor([1 + 2j, -3.5j], dtype=torch.complex64),
              torch.tensor([1.5, -2.0], dtype=torch.bfloat16), torch.tensor([True, False])]
    data = _saved(values)
    dtypes = {str(i): v.dtype for i, v in enumerate(values)}

    def swap(name: str, content: bytes) -> bytes:
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/data/", 1)[-1]
        if "/data/" in name and key in dtypes:
            size = dtypes[key].itemsize // (2 if dtypes[key].is_complex else 1)
            return b"".join(content[i:i + size][::-1] for i in range(0, len(content), size))
        return content

    big = _rezip(data, swap)
    assert big != data
    _assert_same(load_torch_file(big), _reference(data))
    _assert_same(load_torch_file(big), _reference(big))


# ---- canaries and malformed checkpoints -----------------------------------------------


class _Pid:
    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class _Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(<persistent id>, offset, size, stride, ...)."""

    def __init__(self, pid: tuple[Any, ...], size: tuple[int, ...]) -> None:
        self.pid, self.size = pid, size

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch._utils._rebuild_tensor_v2,
                (_Pid(self.pid), 0, self.size, (1,) * len(self.size), False,
                 collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, _Pid) else None


def _checkpoint(obj: Any, records: dict[str, bytes], prefix: str = "archive/") -> bytes:
    """A torch.save-shaped zip: ``data.pkl`` pickling ``obj`` (protocol 2, as torch), records."""
    pkl = io.BytesIO()
    _Pickler(pkl, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(f"{prefix}data.pkl", pkl.getvalue())
        z.writestr(f"{prefix}byteorder", b"little")
        for key, content in records.items():
            z.writestr(f"{prefix}data/{key}", content)
        z.writestr(f"{prefix}version", b"3\n")
    return out.getvalue()


def _float_tensor(numel: int = 2, key: str = "0") -> _Tensor:
    return _Tensor(("storage", torch.FloatStorage, key, "cpu", numel), (numel,))


def test_the_handmade_checkpoint_loads_when_well_formed() -> None:
    data = _checkpoint({"w": _float_tensor()}, {"0": torch.tensor([1.0, 2.0]).numpy().tobytes()})
    assert load_torch_file(data)["w"].tolist() == [1.0, 2.0]


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def test_code_in_data_pkl_is_refused_before_anything_is_unpickled(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pt"
    path.write_bytes(_checkpoint({"w": _float_tensor(), "x": _System(f"touch {canary}")},
                                 {"0": b"\0" * 8}))
    with pytest.raises(UnsafeArtifactError) as info:
        load_torch_file(path)
    assert "os.system" in str(info.value) or "posix.system" in str(info.value)
    assert info.value.artifact == str(path) and info.value.hint
    # The restricted unpickler refuses it on its own too (handed the unclean scan).
    data = path.read_bytes()
    with pytest.raises(PolicyError, match="system"):
        restricted_load_torch_zip(data, scanned=scan_bytes(data), artifact=str(path))
    assert not canary.exists()


def test_a_record_shorter_than_its_storage_is_a_format_error_naming_it() -> None:
    data = _saved({"w": torch.arange(6, dtype=torch.float32)})
    short = _rezip(data, lambda n, b: b[:-4] if "/data/" in n and "serialization" not in n
                   else b)
    with pytest.raises(FormatError, match=r"record archive/data/0 holds 20 bytes.*24 bytes") \
            as info:
        load_torch_file(short, artifact="ckpt.pt")
    assert info.value.artifact == "ckpt.pt" and info.value.hint
    assert "ckpt.pt" in str(info.value)
    longer = _rezip(data, lambda n, b: b + b"\0" * 4 if n == "archive/data/0" else b)
    with pytest.raises(FormatError, match="record archive/data/0 holds 28 bytes"):
        load_torch_file(longer)


def test_a_missing_record_is_a_format_error_naming_it() -> None:
    data = _checkpoint({"w": _float_tensor(key="7")}, {"0": b"\0" * 8})
    with pytest.raises(FormatError, match="record archive/data/7 is missing"):
        load_torch_file(data)


def test_an_unknown_storage_type_is_refused() -> None:
    # Not on the allowlist: the scan refuses it.
    pid = ("storage", torch.nn.Linear, "0", "cpu", 2)
    data = _checkpoint({"w": _Tensor(pid, (2,))}, {"0": b"\0" * 8})
    with pytest.raises(UnsafeArtifactError):
        load_torch_file(data)
    # An allowed global that is no storage type: the loader refuses it as a storage.
    pid = ("storage", collections.OrderedDict, "0", "cpu", 2)
    data = _checkpoint({"w": _Tensor(pid, (2,))}, {"0": b"\0" * 8})
    with pytest.raises((UnsafeArtifactError, FormatError)):
        load_torch_file(data)
    with pytest.raises(FormatError, match="not a storage of a known type in archive/data.pkl"):
        restricted_load_torch_zip(data, scanned=scan_bytes(data), artifact="x.pt")


@pytest.mark.parametrize("pid", [
    ("storage", torch.FloatStorage, "0", "cpu", 2, None),  # the legacy 6-tuple: scans clean
    ("storage", torch.FloatStorage, "0", "cpu"),
    ("storage", torch.FloatStorage, 0, "cpu", 2),
    ("storage", torch.FloatStorage, "0", "cpu", -2),
    ("module", torch.FloatStorage, "0", "cpu", 2),
])
def test_a_persistent_id_of_the_wrong_shape_is_refused(pid: tuple[Any, ...]) -> None:
    data = _checkpoint({"w": _Tensor(pid, (2,))}, {"0": b"\0" * 8})
    with pytest.raises((UnsafeArtifactError, FormatError)):
        load_torch_file(data)
    with pytest.raises(FormatError, match="archive/data.pkl") as info:
        restricted_load_torch_zip(data, scanned=scan_bytes(data), artifact="x.pt")
    assert info.value.artifact == "x.pt"


def test_the_legacy_six_item_persistent_id_scans_clean_and_is_refused_on_load() -> None:
    pid = ("storage", torch.FloatStorage, "0", "cpu", 2, None)
    data = _checkpoint({"w": _Tensor(pid, (2,))}, {"0": b"\0" * 8})
    assert not scan_bytes(data).findings
    with pytest.raises(FormatError, match="unsupported persistent id in archive/data.pkl"):
        load_torch_file(data)


def test_two_data_pkl_prefixes_are_a_refused_differential() -> None:
    benign = _checkpoint({"w": _float_tensor()}, {"0": b"\0" * 8}, prefix="a/")
    other = _checkpoint({"w": _float_tensor(), "x": [1]}, {"0": b"\0" * 8}, prefix="b/")
    with zipfile.ZipFile(io.BytesIO(other)) as z:
        both = _rezip(benign, extra=tuple((n, z.read(n)) for n in z.namelist()))
    assert not scan_bytes(both).findings  # each copy alone is harmless: the scan is clean
    with pytest.raises(FormatError, match="2 top-level folders.*differential") as info:
        load_torch_file(both, artifact="two.pt")
    assert info.value.hint and info.value.artifact == "two.pt"


def test_members_no_torch_save_writes_and_zips_that_are_no_checkpoint_are_refused() -> None:
    data = _saved([torch.ones(2)])
    script = _rezip(data, extra=(("archive/constants.pkl", pickle.dumps(1, protocol=2)),))
    with pytest.raises(FormatError, match="archive/constants.pkl.*not part of a torch.save"):
        load_torch_file(script)
    no_pickle = _rezip(data, lambda n, b: None if n.endswith("data.pkl") else b)
    with pytest.raises(FormatError, match="no archive/data.pkl"):
        load_torch_file(no_pickle)
    bad_order = _rezip(data, lambda n, b: b"middle" if n.endswith("byteorder") else b)
    with pytest.raises(FormatError, match="archive/byteorder"):
        load_torch_file(bad_order)
    with pytest.raises(FormatError, match="not a readable zip"):
        restricted_load_torch_zip(b"not a zip at all", artifact="x")


def test_trailing_bytes_after_data_pkl_are_refused() -> None:
    data = _saved([torch.ones(2)])
    padded = _rezip(data, lambda n, b: b + b"junk" if n.endswith("data.pkl") else b)
    with pytest.raises((UnsafeArtifactError, FormatError)):
        load_torch_file(padded)
    with pytest.raises(FormatError, match="trailing bytes after the pickle in archive/data.pkl"):
        restricted_load_torch_zip(padded, scanned=scan_bytes(padded))
