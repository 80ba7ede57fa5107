"""The signer and verifier the environment configures (read through :mod:`safeart.settings`).

* ``$SAFEART_SIGNING_KEY``: path of the Ed25519 private key (PEM) that signs every artifact
  safeart stores. Unset: nothing is signed.
* ``$SAFEART_TRUST_KEYS``: ``os.pathsep``-separated public key files (PEM). Set: every
  artifact read must carry a signature by one of them. Unset: signatures are not checked.

Both are read on every call (so a test or a notebook may change them) and the key files are
parsed once per path and modification time. Without either variable, ``cryptography`` is
never imported.
"""

from __future__ import annotations

import functools
import os

from ..errors import ConfigError
from ..settings import SIGNING_KEY_ENV, TRUST_KEYS_ENV, env_path, env_paths
from .signature import Signer, Verifier


def signer_from_settings(*, required: bool = False) -> Signer | None:
    """The signer of ``$SAFEART_SIGNING_KEY``, or None when it is unset.

    Raises:
        ConfigError: the file cannot be read or is not an unencrypted Ed25519 private key
            (the message names the variable and the file); unset with ``required=True``.
    """
    path = env_path(SIGNING_KEY_ENV)
    if path is None:
        if required:
            raise _unset(SIGNING_KEY_ENV, "no signing key",
                         "set it to a private key file (`safeart keygen PATH`)")
        return None
    return _signer(path, _stamp(path, SIGNING_KEY_ENV))


def verifier_from_settings(*, required: bool = False) -> Verifier | None:
    """The verifier trusting the keys of ``$SAFEART_TRUST_KEYS``, or None when it is unset.

    Raises:
        ConfigError: a file cannot be read or is not an Ed25519 public key; unset with
            ``required=True``.
    """
    paths = tuple(p.strip() for p in env_paths(TRUST_KEYS_ENV))
    if not paths:
        if required:
            raise _unset(TRUST_KEYS_ENV, "no trust keys", "list the signers' public key files in it")
        return None
    return _verifier(paths, tuple(_stamp(p, TRUST_KEYS_ENV) for p in paths))


def _unset(variable: str, what: str, hint: str) -> ConfigError:
    return ConfigError(f"{what}: ${variable} is not set", hint=hint)


def _stamp(path: str, variable: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        hint = "point it at an existing PEM file (`safeart keygen PATH` makes a pair), or unset it"
        raise ConfigError(f"${variable}: cannot read key file {path}: {exc.strerror}",
                          hint=hint) from None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _signer(path: str, stamp: tuple[int, int]) -> Signer:
    return Signer.from_file(path, source=f"${SIGNING_KEY_ENV}")


@functools.lru_cache(maxsize=8)
def _verifier(paths: tuple[str, ...], stamps: tuple[tuple[int, int], ...]) -> Verifier:
    return Verifier.from_files(list(paths), source=f"${TRUST_KEYS_ENV}")
