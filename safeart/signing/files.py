"""Detached signatures of files (exported ``.safetensors`` files): ``<file>.sig``.

::

    safeart.signing.sign_file("serving/model.safetensors")     # writes model.safetensors.sig
    safeart.signing.verify_file("serving/model.safetensors")   # raises IntegrityError

The sidecar is one JSON object::

    {"v": 1, "alg": "ed25519", "key": "<key id>", "file": "model.safetensors",
     "digest": "sha256:<hex of the whole file>", "sig": "<base64>"}

signing ``b"safeart-file-sig-v1\\0" + file name + b"\\0" + digest``
(:func:`safeart.signing.signature.file_message`). The name is bound, so a signed file and
its sidecar cannot stand in for another file of the directory; the digest covers every
byte (safetensors header, safeart manifest, tensors).

Interop with OpenSSF model signing (``model_signing``, sigstore/model-transparency) is not
offered: its format is a Sigstore bundle holding a DSSE envelope of an in-toto statement
(a protobuf-JSON stack that needs ``sigstore`` models to write), and its key-based signing
takes ECDSA P-256/384/521 keys, not Ed25519. Both can sign the same export: run
``model_signing sign key --private_key ec.pem serving/`` next to ``safeart sign``; each
verifier ignores the other's file (``model.sig`` there, ``<file>.sig`` here).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .errors import IntegrityError
from .signature import Signer, Verifier, digest, file_message


SIDECAR_SUFFIX = ".sig"
_MAX_SIDECAR = 64 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSignature:
    """A verified (or just written) detached signature."""

    path: Path
    sidecar: Path
    key_id: str
    digest: str


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the signature of ``path`` lives: ``<path>.sig``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def sign_file(path: str | os.PathLike[str], signer: Signer | None = None) -> FileSignature:
    """Write ``<path>.sig``, the signature of the file ``path`` (replacing an older one).

    Args:
        signer: Default :func:`~safeart.signing.signer_from_settings` (``$SAFEART_SIGNING_KEY``).

    Raises:
        ConfigError: no signer given or configured, or the file cannot be read or written.
    """
    if signer is None:
        from .configured import signer_from_settings

        signer = signer_from_settings(required=True)
    path = Path(path)
    value = _file_digest(path)
    record = signer._record(file_message(path.name, value), file=path.name, digest=value)
    sidecar = sidecar_path(path)
    try:
        sidecar.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {sidecar}: {exc.strerror}") from None
    return FileSignature(path, sidecar, signer.key_id, value)


def verify_file(
    path: str | os.PathLike[str],
    verifier: Verifier | None = None,
    *,
    data: bytes | bytearray | memoryview | None = None,
) -> FileSignature:
    """Check ``<path>.sig`` against the file ``path`` and the trust keys.

    Args:
        verifier: Default :func:`~safeart.signing.verifier_from_settings` (``$SAFEART_TRUST_KEYS``).
        data: The file's bytes as the caller read them (then ``path`` is not read again):
            pass the very bytes you will load, so that nothing can change between the check
            and the load (``data = read_file(p); verify_file(p, data=data); loads(data)``).

    Raises:
        IntegrityError: no sidecar, a malformed one, an untrusted key, a file changed since
            signing, or a signature made for a file of another name.
        ConfigError: no verifier given or configured, or the file cannot be read.
    """
    if verifier is None:
        from .configured import verifier_from_settings

        verifier = verifier_from_settings(required=True)
    path = Path(path)
    where = str(path)
    record = verifier._trusted(_read_sidecar(sidecar_path(path), where), where, "file")
    value = digest(data) if data is not None else _file_digest(path)
    signed_name = record.get("file")
    if not isinstance(signed_name, str) or not signed_name or "/" in signed_name:
        raise IntegrityError(f"{sidecar_path(path).name} names no file", reason="malformed",
                             artifact=where, hint="re-sign the file with `safeart sign`")
    verifier._check(record, file_message(signed_name, value), where, value)
    if signed_name != path.name:
        raise IntegrityError(
            f"the signature was made for a file named {signed_name!r}, not {path.name!r}",
            reason="pathspec-mismatch", artifact=where, key_id=record["key"],
            hint=f"use the file under the name it was signed as ({signed_name}), "
            "or sign this one with `safeart sign`",
        )
    return FileSignature(path, sidecar_path(path), record["key"], value)


def _read_sidecar(sidecar: Path, where: str) -> object:
    try:
        with open(sidecar, "rb") as file:
            data = file.read(_MAX_SIDECAR + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {sidecar}: {exc.strerror}") from None
    try:
        if len(data) > _MAX_SIDECAR:
            raise ValueError("too large")
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise IntegrityError(f"{sidecar.name} is not a signature file: {exc}",
                             reason="malformed", artifact=where,
                             hint="re-sign the file with `safeart sign`") from None


def _file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                sha.update(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return "sha256:" + sha.hexdigest()
