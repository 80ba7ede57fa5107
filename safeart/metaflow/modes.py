"""Strict mode: the flow-level switch and the ``SAFEART_STRICT`` environment knob.

Kept free of Metaflow imports so that ``import safeart.metaflow`` stays cheap.
"""

from __future__ import annotations

import os

from ..errors import ConfigError

__all__ = ["STRICT_ENV", "set_strict", "is_strict"]

#: Environment switch for strict mode (``1``/``true``/``yes``/``on``).
STRICT_ENV = "SAFEART_STRICT"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_strict = False


def set_strict(enabled: bool = True) -> None:
    """Turn strict mode on (or off) for this process."""
    global _strict
    _strict = enabled


def is_strict() -> bool:
    """True when :func:`set_strict` or ``$SAFEART_STRICT`` asks for strict mode.

    Raises:
        ConfigError: ``$SAFEART_STRICT`` holds something other than a boolean word.
    """
    raw = os.environ.get(STRICT_ENV, "").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ConfigError(
            f"{STRICT_ENV}={raw!r} is not a boolean", hint="use 1/true/yes/on or 0/false/no/off"
        )
    return _strict or raw in _TRUE
