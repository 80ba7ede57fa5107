"""Ed25519 key files: generate a pair, load a private key or public trust keys.

Keys are PEM files: the private key as unencrypted PKCS#8 (``-----BEGIN PRIVATE KEY-----``,
written with mode 0600), the public key as SubjectPublicKeyInfo (``-----BEGIN PUBLIC
KEY-----``) -- what ``openssl genpkey -algorithm ed25519`` and ``openssl pkey -pubout``
write, so either tool can make the keys. A key is named by its *key id*: the first
:data:`KEY_ID_HEX` hex digits of the sha256 of its raw 32-byte public key.

This is the only module that imports ``cryptography`` (``pip install 'safeart[signing]'``);
it is imported only once a key is actually used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
except ImportError as exc:  # pragma: no cover -- the dev environment has it
    raise ConfigError(
        "signing needs the 'cryptography' package, which is not installed",
        hint="pip install 'safeart[signing]' (or unset SAFEART_SIGNING_KEY / SAFEART_TRUST_KEYS)",
    ) from exc


#: Hex digits of the key id (64 bits: names a key among a few trust keys; the signature,
#: not the id, is what is checked).
KEY_ID_HEX = 16
#: Larger "key files" are refused unread (a PEM Ed25519 key is ~120 bytes).
_MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class KeyPair:
    """What :func:`keygen` wrote."""

    private_path: Path
    public_path: Path
    key_id: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id of ``public_key``: sha256 of its raw bytes, first :data:`KEY_ID_HEX` hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


def keygen(
    private_path: str | os.PathLike[str],
    public_path: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
) -> KeyPair:
    """Generate an Ed25519 key pair and write it as PEM files.

    Args:
        private_path: The private key file (created with mode 0600). Point
            ``$SAFEART_SIGNING_KEY`` at it where flows run.
        public_path: The public key file; default ``<private_path without .pem>.pub.pem``.
            List it in ``$SAFEART_TRUST_KEYS`` where artifacts are read.
        overwrite: Replace existing files (default: refuse, so a key is never lost).

    Raises:
        ConfigError: a file exists (without ``overwrite``) or cannot be written.
    """
    private = Path(private_path)
    public = Path(public_path) if public_path is not None else _public_default(private)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private, public):
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} already exists; not replacing a key",
                              hint="choose another path, or pass overwrite=True (--force)")
    _write(private, private_pem, 0o600, overwrite)
    _write(public, public_pem, 0o644, overwrite)
    return KeyPair(private, public, key_id(key.public_key()))


def load_private_key(path: str | os.PathLike[str], *, source: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``.

    Args:
        source: Where the path came from, for errors (``$SAFEART_SIGNING_KEY``, ``--key``).

    Raises:
        ConfigError: unreadable, not PEM, encrypted, or not an Ed25519 private key.
    """
    data = _read(path, source)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted, and no password given
        raise ConfigError(
            f"{source}: {path} is an encrypted private key",
            hint="safeart reads unencrypted PKCS#8 keys; protect the file (mode 0600, a "
            "secret mount) instead: openssl pkey -in KEY -out PLAIN.pem",
        ) from None
    except ValueError as exc:
        raise _not_pem(path, source, "private", exc, "make one with `safeart keygen PATH`") from None
    return _ed25519(key, Ed25519PrivateKey, path, source, "safeart signs with Ed25519 keys: "
                    "`safeart keygen PATH`")


def load_public_key(path: str | os.PathLike[str], *, source: str) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM file ``path``.

    Raises:
        ConfigError: unreadable, not PEM, or not an Ed25519 public key (a private key
            file is refused too: trust lists should never hold private keys).
    """
    try:
        key = serialization.load_pem_public_key(_read(path, source))
    except ValueError as exc:
        raise _not_pem(path, source, "public", exc,
                       "list public key files (`safeart keygen` writes *.pub.pem)") from None
    return _ed25519(key, Ed25519PublicKey, path, source, "safeart verifies Ed25519 signatures only")


def _not_pem(path: object, source: str, kind: str, exc: ValueError, hint: str) -> ConfigError:
    return ConfigError(f"{source}: {path} is not a PEM {kind} key: {exc}", hint=hint)


_Key = TypeVar("_Key", Ed25519PrivateKey, Ed25519PublicKey)


def _ed25519(key: object, expected: type[_Key], path: object, source: str, hint: str) -> _Key:
    if not isinstance(key, expected):
        raise ConfigError(f"{source}: {path} holds a {type(key).__name__}, not an Ed25519 key",
                          hint=hint)
    return key


def _public_default(private: Path) -> Path:
    stem = private.name[: -len(".pem")] if private.name.endswith(".pem") else private.name
    return private.with_name(f"{stem}.pub.pem")


def _read(path: str | os.PathLike[str], source: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read key file {path}: {exc.strerror}",
                          hint="check the path (make a key pair with `safeart keygen PATH`)") from None
    if len(data) > _MAX_KEY_FILE:
        raise ConfigError(f"{source}: {path} is larger than a key file can be")
    return data


def _write(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(path, mode)
    except OSError as exc:
        raise ConfigError(f"cannot write key file {path}: {exc.strerror}") from None
