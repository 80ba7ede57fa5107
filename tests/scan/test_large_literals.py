"""Large bytes literals (tensor storages, array data) are scanned in place, never copied into
CPython's unpickler, and payloads in them are caught exactly as in small ones."""

import pickle
import struct
import tracemalloc

import pytest

from payloads import TORCH_MAGIC, _call, _p4, glob, stack_global
from safeart.scan import scan_bytes, scan_path

torch = pytest.importorskip("torch")


def _legacy_stream(numel: int, canary=None, where: str = "magic") -> bytes:
    """The legacy torch stream of a float32 storage of ``numel`` elements (what a plain
    pickle of a tensor hands to ``_load_from_bytes``), with an optional payload."""
    import pickletools

    pickled = pickle.dumps(torch.ones(numel), protocol=4)
    stream = next(a for op, a, _ in pickletools.genops(pickled) if op.name == "BINBYTES")
    if canary is None:
        return stream
    payload = b"\x80\x02" + _call(glob("builtins", "open"), str(canary), "w") + b"0"
    if where == "magic":
        magic = pickle.dumps(TORCH_MAGIC, protocol=2)
        return payload + magic[2:] + stream[len(magic):]
    return stream + payload[:-1] + b"."  # a pickle after the raw storage record


def _tensor_calls(*streams: bytes) -> bytes:
    """A protocol 4 pickle (no frames) calling ``_load_from_bytes`` on each stream."""
    load = stack_global("torch.storage", "_load_from_bytes")
    return _p4(b"(" + b"".join(_call(load, s) for s in streams) + b"l")


@pytest.mark.parametrize("where", ["magic", "trailing"])
def test_payload_in_a_large_storage_is_caught_in_place(tmp_path, where):
    evil = _legacy_stream(400_000, tmp_path / "canary", where)  # 1.6 MB: a hole
    data = _tensor_calls(_legacy_stream(1000), evil)
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    for result in (scan_bytes(data, name="blob"), scan_path(path).results[0]):
        [bad] = [f for f in result.findings if f.grade.value == "dangerous"]
        assert bad.name == "builtins.open"
        assert f"> _load_from_bytes@{data.index(evil)}" in bad.location
    assert not (tmp_path / "canary").exists()


def test_small_and_framed_literals_next_to_holes_are_still_scanned(tmp_path):
    evil = _legacy_stream(10, tmp_path / "canary")  # a small payload: copied as before
    framed_body = _call(stack_global("torch.storage", "_load_from_bytes"),
                        _legacy_stream(100_000, tmp_path / "canary")) + b"0"
    framed = b"\x95" + struct.pack("<Q", len(framed_body)) + framed_body
    data = _tensor_calls(_legacy_stream(400_000), evil)
    data = data[:2] + framed + data[2:]  # a large literal inside a FRAME: not a hole
    result = scan_bytes(data)
    assert [f.name for f in result.findings if f.grade.value == "dangerous"] == [
        "builtins.open", "builtins.open"]
    assert not (tmp_path / "canary").exists()


def test_large_literals_are_not_copied():
    data = pickle.dumps(torch.zeros(8 << 20, dtype=torch.uint8), protocol=4)  # 8 MiB storage
    tracemalloc.start()
    try:
        result = scan_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.verdict == "clean"
    assert peak < 1 << 20  # the storage (8 MiB) was never materialised
