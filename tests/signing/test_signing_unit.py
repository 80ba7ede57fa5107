"""safeart.signing without Metaflow: the signature record, every refusal reason, the
inherited-artifact rule, domain separation, keys from the environment, file sidecars."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safeart.errors import ConfigError, UnsafeArtifactError
from safeart.settings import SIGNING_KEY_ENV, TRUST_KEYS_ENV
from safeart.signing import (
    IntegrityError,
    Signer,
    Verifier,
    digest,
    keygen,
    same_artifact,
    sign_file,
    signer_from_settings,
    verifier_from_settings,
    verify_file,
)
from safeart.signing.signature import artifact_message, file_message

PS = "TrainFlow/17/train/4:model"
BLOB = b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"safeart blob bytes"


@pytest.fixture
def pair(tmp_path: Path):
    return keygen(tmp_path / "keys" / "flows.pem")


@pytest.fixture
def signer(pair) -> Signer:
    return Signer.from_file(str(pair.private_path))


@pytest.fixture
def verifier(pair) -> Verifier:
    return Verifier.from_files([str(pair.public_path)])


def refused(verifier: Verifier, pathspec: str, value: str, sig: object) -> IntegrityError:
    with pytest.raises(IntegrityError) as info:
        verifier.verify(pathspec, value, sig)  # type: ignore[arg-type]
    err = info.value
    assert err.artifact == pathspec and str(err).startswith(pathspec + ": ")
    assert err.hint
    return err


# -- the record ------------------------------------------------------------------------------
def test_signature_record_is_json_safe_and_verifies(signer: Signer, verifier: Verifier, pair) -> None:
    record = signer.sign(PS, digest(BLOB))
    assert json.loads(json.dumps(record)) == record
    assert set(record) == {"v", "alg", "key", "ps", "sig"}
    assert (record["v"], record["alg"], record["key"], record["ps"]) == (1, "ed25519", pair.key_id, PS)
    assert len(base64.b64decode(record["sig"])) == 64
    verifier.verify(PS, digest(BLOB), record)


def test_inherited_artifact_verifies_in_a_descendant_task(signer: Signer, verifier: Verifier) -> None:
    record = signer.sign(PS, digest(BLOB))
    verifier.verify("TrainFlow/17/end/9:model", digest(BLOB), record)
    assert same_artifact(PS, "TrainFlow/17/join/12:model")


@pytest.mark.parametrize("read_as, differs", [
    ("TrainFlow/18/train/4:model", "run '17', not '18'"),
    ("OtherFlow/17/train/4:model", "flow 'TrainFlow', not 'OtherFlow'"),
    ("TrainFlow/17/train/4:old_model", "artifact name 'model', not 'old_model'"),
])
def test_replay_under_another_run_flow_or_name_is_refused(
    signer: Signer, verifier: Verifier, read_as: str, differs: str
) -> None:
    err = refused(verifier, read_as, digest(BLOB), signer.sign(PS, digest(BLOB)))
    assert err.reason == "pathspec-mismatch"
    assert PS in err.message and differs in err.message


def test_swapped_blob_is_refused(signer: Signer, verifier: Verifier) -> None:
    err = refused(verifier, PS, digest(BLOB + b"x"), signer.sign(PS, digest(BLOB)))
    assert err.reason == "bad-signature" and isinstance(err, UnsafeArtifactError)


@pytest.mark.parametrize("field, value", [
    ("ps", "TrainFlow/17/train/5:model"),  # rewritten to match: the signature no longer does
    ("sig", base64.b64encode(bytes(64)).decode()),
])
def test_edited_record_is_refused(signer: Signer, verifier: Verifier, field: str, value: str) -> None:
    record = {**signer.sign(PS, digest(BLOB)), field: value}
    assert refused(verifier, PS, digest(BLOB), record).reason == "bad-signature"


def test_record_claiming_another_trusted_key_is_refused(signer: Signer, tmp_path: Path, pair) -> None:
    other = keygen(tmp_path / "other.pem")
    both = Verifier.from_files([str(pair.public_path), str(other.public_path)])
    record = {**signer.sign(PS, digest(BLOB)), "key": other.key_id}
    assert refused(both, PS, digest(BLOB), record).reason == "bad-signature"


def test_unknown_key_is_refused_and_named(tmp_path: Path, verifier: Verifier) -> None:
    stranger = Signer.from_file(str(keygen(tmp_path / "stranger.pem").private_path))
    err = refused(verifier, PS, digest(BLOB), stranger.sign(PS, digest(BLOB)))
    assert err.reason == "unknown-key" and err.key_id == stranger.key_id
    assert stranger.key_id in err.message and "SAFEART_TRUST_KEYS" in (err.hint or "")


def test_unsigned_artifact_is_refused_while_trust_is_configured(verifier: Verifier) -> None:
    err = refused(verifier, PS, digest(BLOB), None)
    assert err.reason == "unsigned" and "SAFEART_SIGNING_KEY" in (err.hint or "")


@pytest.mark.parametrize("mutate", [
    lambda r: "not a dict",
    lambda r: {**r, "v": 2},
    lambda r: {**r, "alg": "rsa"},
    lambda r: {**r, "key": 7},
    lambda r: {**r, "key": "../../etc"},
    lambda r: {**r, "ps": None},
    lambda r: {**r, "ps": "TrainFlow/17:model"},
    lambda r: {**r, "sig": "!!!"},
    lambda r: {**r, "sig": None},
    lambda r: {k: v for k, v in r.items() if k != "sig"},
])
def test_malformed_records_are_refused_never_crash(signer: Signer, verifier: Verifier, mutate) -> None:
    record = mutate(signer.sign(PS, digest(BLOB)))
    assert refused(verifier, PS, digest(BLOB), record).reason == "malformed"


def test_messages_are_domain_separated() -> None:
    value = digest(BLOB)
    assert artifact_message(PS, value) == b"safeart-sig-v1\0" + PS.encode() + b"\0" + value.encode()
    assert file_message("model.safetensors", value).startswith(b"safeart-file-sig-v1\0")
    for bad in ("TrainFlow/17/train:model", "TrainFlow/17/train/4", "a/b/c/d:e\0f"):
        with pytest.raises(ValueError):
            artifact_message(bad, value)
    with pytest.raises(ValueError):
        artifact_message(PS, "sha1:" + "0" * 40)


def test_a_file_signature_does_not_verify_as_an_artifact(signer: Signer, verifier: Verifier,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(BLOB)
    side = json.loads(sign_file(path, signer).sidecar.read_text())
    record = {"v": 1, "alg": "ed25519", "key": side["key"], "ps": PS, "sig": side["sig"]}
    assert refused(verifier, PS, digest(BLOB), record).reason == "bad-signature"


# -- keys and settings -----------------------------------------------------------------------
def test_keygen_refuses_to_replace_a_key(tmp_path: Path, pair) -> None:
    assert pair.public_path.name == "flows.pub.pem"
    assert oct(pair.private_path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConfigError, match="already exists"):
        keygen(pair.private_path)
    assert keygen(pair.private_path, overwrite=True).key_id != pair.key_id


def test_settings_unset_means_no_signing_and_no_cryptography_import(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (SIGNING_KEY_ENV, TRUST_KEYS_ENV)}
    code = ("import sys, safeart.signing as s; "
            "assert s.signer_from_settings() is None and s.verifier_from_settings() is None; "
            "assert 'cryptography' not in sys.modules, 'imported cryptography'")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def test_settings_load_the_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pair) -> None:
    other = keygen(tmp_path / "other.pem")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(pair.private_path))
    monkeypatch.setenv(TRUST_KEYS_ENV, os.pathsep.join([str(pair.public_path), str(other.public_path)]))
    signer = signer_from_settings()
    verifier = verifier_from_settings()
    assert signer is not None and verifier is not None
    assert signer.key_id == pair.key_id and verifier.key_ids == tuple(sorted([pair.key_id, other.key_id]))
    verifier.verify(PS, digest(BLOB), signer.sign(PS, digest(BLOB)))
    keygen(pair.private_path, overwrite=True)  # a replaced key file is read again
    assert signer_from_settings().key_id != pair.key_id  # type: ignore[union-attr]


@pytest.mark.parametrize("variable", [SIGNING_KEY_ENV, TRUST_KEYS_ENV])
def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           pair, variable: str) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "missing.pem"))
    loader = signer_from_settings if variable == SIGNING_KEY_ENV else verifier_from_settings
    with pytest.raises(ConfigError, match=variable):
        loader()
    wrong = pair.public_path if variable == SIGNING_KEY_ENV else pair.private_path
    monkeypatch.setenv(variable, str(wrong))
    with pytest.raises(ConfigError, match=variable):
        loader()


def test_non_ed25519_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        Signer.from_file(str(path))


# -- detached file signatures ----------------------------------------------------------------
def test_file_sidecar_signs_and_verifies(signer: Signer, verifier: Verifier, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(BLOB)
    written = sign_file(path, signer)
    assert written.sidecar == tmp_path / "model.safetensors.sig"
    side = json.loads(written.sidecar.read_text())
    assert (side["file"], side["digest"], side["key"]) == ("model.safetensors", digest(BLOB), signer.key_id)
    assert verify_file(path, verifier).key_id == signer.key_id
    # the caller's bytes are what is checked (the file is not read again)
    assert verify_file(path, verifier, data=memoryview(BLOB)).digest == digest(BLOB)
    with pytest.raises(IntegrityError) as info:
        verify_file(path, verifier, data=BLOB + b"changed after the read")
    assert info.value.reason == "bad-signature"


def test_file_tampering_is_refused(signer: Signer, verifier: Verifier, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(BLOB)
    sign_file(path, signer)
    path.write_bytes(BLOB + b"\0")
    with pytest.raises(IntegrityError) as info:
        verify_file(path, verifier)
    assert info.value.reason == "bad-signature" and info.value.artifact == str(path)


def test_file_renamed_with_its_sidecar_is_refused(signer: Signer, verifier: Verifier,
                                                  tmp_path: Path) -> None:
    old = tmp_path / "old_model.safetensors"
    old.write_bytes(BLOB)
    sign_file(old, signer)
    new = tmp_path / "model.safetensors"
    old.rename(new)
    (tmp_path / "old_model.safetensors.sig").rename(tmp_path / "model.safetensors.sig")
    with pytest.raises(IntegrityError, match="'old_model.safetensors'") as info:
        verify_file(new, verifier)
    assert info.value.reason == "pathspec-mismatch"


@pytest.mark.parametrize("sidecar, reason", [(None, "unsigned"), (b"{not json", "malformed"),
                                             (b"[1, 2]", "malformed")])
def test_missing_or_broken_sidecar_is_refused(verifier: Verifier, tmp_path: Path,
                                              sidecar: bytes | None, reason: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(BLOB)
    if sidecar is not None:
        (tmp_path / "model.safetensors.sig").write_bytes(sidecar)
    with pytest.raises(IntegrityError) as info:
        verify_file(path, verifier)
    assert info.value.reason == reason


# -- the command line (safeart/signing/cli.py's parsers) ---------------------------------------
def _cli(*argv: str) -> int:
    import argparse

    from safeart.signing.cli import add_parser

    parser = argparse.ArgumentParser(prog="safeart")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_keygen_sign_and_verify_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUST_KEYS_ENV, raising=False)
    key = tmp_path / "k.pem"
    assert _cli("keygen", str(key)) == 0
    assert _cli("keygen", str(key)) == 2  # never replaces a key
    model = tmp_path / "model.safetensors"
    model.write_bytes(BLOB)
    assert _cli("sign", str(model), "--key", str(key)) == 0
    public = str(tmp_path / "k.pub.pem")
    capsys.readouterr()
    assert _cli("verify", str(model), "--trust-key", public) == 0
    assert f"{model}: verified: 1 artifacts, 0 failed" in capsys.readouterr().out
    model.write_bytes(BLOB + b"!")
    assert _cli("verify", str(model), "--trust-key", public) == 1
    out = capsys.readouterr().out
    assert f"FAILED {model}: signature check failed" in out and "bad-signature" in out
    assert _cli("verify", str(model)) == 2  # no trust keys anywhere
    assert "no trust keys" in capsys.readouterr().err
    other = tmp_path / "sub" / "head.safetensors"
    other.parent.mkdir()
    other.write_bytes(BLOB)
    assert _cli("sign", str(other), "--key", str(key)) == 0
    assert _cli("verify", str(tmp_path), "--trust-key", public) == 1  # a folder: every file
    out = capsys.readouterr().out
    assert f"{other}  file" in out and f"FAILED {model}:" in out and "2 artifacts, 1 failed" in out
    assert _cli("verify", str(other.parent), "--trust-key", public) == 0


def test_arbitrary_records_only_ever_raise_integrity_errors(signer: Signer, verifier: Verifier) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = signer.sign(PS, digest(BLOB))
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=100)
    values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3)
                          | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8)
    fields = st.sampled_from(sorted(good)) | st.text(max_size=5)

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(fields, values, max_size=6), st.booleans())
    def check(edits: dict, start_from_good: bool) -> None:
        record = {**good, **edits} if start_from_good else edits
        try:
            verifier.verify(PS, digest(BLOB), record)
        except IntegrityError:
            return
        assert record["sig"] == good["sig"] and record["ps"] == PS and record["key"] == good["key"]

    check()
