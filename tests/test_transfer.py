"""safeart.transfer: convert (pickle file or torch.save checkpoint -> safeart file) and the
signature both it and export write when ``$SAFEART_SIGNING_KEY`` is set."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest

import safeart
from safeart.settings import SIGNING_KEY_ENV, TRUST_KEYS_ENV

pytest.importorskip("cryptography")

VALUE = collections.OrderedDict(a=[1, 2.5, "x"])


def _pickle_file(tmp_path: Path) -> Path:
    source = tmp_path / "legacy.pkl"
    source.write_bytes(pickle.dumps(VALUE, protocol=4))
    return source


def test_convert_writes_no_signature_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    out = safeart.convert(_pickle_file(tmp_path), tmp_path / "m.safetensors")
    assert safeart.load_file(out) == VALUE
    assert not Path(f"{out}.sig").exists()


def test_convert_signs_what_it_wrote_with_the_configured_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safeart.signing import keygen, verify_file
    from safeart.transfer.convert import sign_written

    pair = keygen(tmp_path / "key.pem")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(pair.private_path))
    monkeypatch.setenv(TRUST_KEYS_ENV, str(pair.public_path))
    out = safeart.convert(_pickle_file(tmp_path), tmp_path / "m.safetensors")
    assert Path(f"{out}.sig").exists()
    verify_file(out)
    assert sign_written(out) == Path(f"{out}.sig")


def _assert_same_tree(got: object, expected: object) -> None:
    import torch

    assert type(got) is type(expected)
    if isinstance(expected, torch.Tensor):
        assert got.dtype == expected.dtype and torch.equal(got, expected)
    elif isinstance(expected, dict):
        assert list(got) == list(expected)  # type: ignore[arg-type]
        for key in expected:
            _assert_same_tree(got[key], expected[key])  # type: ignore[index]
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)  # type: ignore[arg-type]
        for a, b in zip(got, expected):  # type: ignore[call-overload]
            _assert_same_tree(a, b)
    else:
        assert got == expected


def _torch_checkpoint(tmp_path: Path) -> tuple[Path, object]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "epoch": 2, "half": torch.ones(2, dtype=torch.bfloat16)}
    source = tmp_path / "model.pt"
    torch.save(checkpoint, source)
    return source, checkpoint


def test_convert_reads_torch_save_checkpoints_without_torch_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from safeart.cli import main

    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    source, checkpoint = _torch_checkpoint(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", refuse)
    out = safeart.convert(source, tmp_path / "model.safetensors")
    _assert_same_tree(safeart.load_file(out), checkpoint)
    assert main(["convert", str(source), str(tmp_path / "cli.safetensors")]) == 0
    _assert_same_tree(safeart.load_file(tmp_path / "cli.safetensors"), checkpoint)


def test_convert_refuses_a_checkpoint_whose_data_pkl_runs_code(tmp_path: Path) -> None:
    import os
    import zipfile

    canary = tmp_path / "canary"

    class System:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {canary}",))

    source = tmp_path / "evil.pt"
    with zipfile.ZipFile(source, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": System()}, protocol=2))
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/version", b"3\n")
    with pytest.raises(safeart.UnsafeArtifactError) as info:
        safeart.convert(source, tmp_path / "out.safetensors")
    assert info.value.artifact == str(source)
    assert not (tmp_path / "out.safetensors").exists() and not canary.exists()
