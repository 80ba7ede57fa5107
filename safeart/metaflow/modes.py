"""Strict mode: the flow-level switch and the ``SAFEART_STRICT`` environment knob.

Kept free of Metaflow imports so that ``import safeart.metaflow`` stays cheap.
"""

from __future__ import annotations

from ..guard import env_flag

__all__ = ["STRICT_ENV", "set_strict", "is_strict"]

#: Environment switch for strict mode (``1``/``true``/``yes``/``on``).
STRICT_ENV = "SAFEART_STRICT"

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
    return env_flag(STRICT_ENV) or _strict
