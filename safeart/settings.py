"""Every ``SAFEART_*`` environment setting, in one place.

=========================  =========================================================
``SAFEART_POLICY``         path of a policy file (``safeart.toml`` / ``pyproject.toml``)
``SAFEART_STRICT``         boolean: strict mode (refuse to store what safeart cannot)
``SAFEART_ENFORCE``        boolean: refuse pickle-encoded artifacts unless scan-clean
``SAFEART_RAW_STORAGE``    boolean, default on: store large safeart blobs uncompressed
``SAFEART_SIGNING_KEY``    path of an Ed25519 private key (PEM): sign stored artifacts
``SAFEART_TRUST_KEYS``     ``os.pathsep``-separated public key files (PEM): verify on load
=========================  =========================================================

Booleans take ``1/true/yes/on`` or ``0/false/no/off``; anything else is a
:class:`~safeart.errors.ConfigError` naming the variable. Kept free of heavy imports: every
Metaflow process reads these.
"""

from __future__ import annotations

import os

from .errors import ConfigError

POLICY_ENV = "SAFEART_POLICY"
STRICT_ENV = "SAFEART_STRICT"
ENFORCE_ENV = "SAFEART_ENFORCE"
RAW_STORAGE_ENV = "SAFEART_RAW_STORAGE"
SIGNING_KEY_ENV = "SAFEART_SIGNING_KEY"
TRUST_KEYS_ENV = "SAFEART_TRUST_KEYS"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def env_flag(name: str, default: bool = False) -> bool:
    """The boolean environment variable ``name``; ``default`` when unset or empty.

    Raises:
        ConfigError: it holds anything other than a boolean word.
    """
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE | _FALSE:
        raise ConfigError(
            f"{name}={raw!r} is not a boolean", hint="use 1/true/yes/on or 0/false/no/off"
        )
    return raw in _TRUE


def env_flag_failsafe(name: str) -> bool:
    """The boolean environment variable ``name`` for a switch that protects: never raises,
    and anything but an explicit off word (``0/false/no/off``, or unset/empty) is on -- a
    typo must not silently switch the protection off. Pair it with :func:`env_flag` where
    the error can be reported."""
    return os.environ.get(name, "").strip().lower() not in _FALSE


def env_path(name: str) -> str | None:
    """The path in environment variable ``name``, or None when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_paths(name: str) -> list[str]:
    """The ``os.pathsep``-separated paths in environment variable ``name`` (empty when unset)."""
    return [p for p in os.environ.get(name, "").split(os.pathsep) if p.strip()]
