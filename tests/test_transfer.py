"""safeart.transfer: convert (pickle file -> safeart file) and the signature both it and
export write when ``$SAFEART_SIGNING_KEY`` is set."""

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
