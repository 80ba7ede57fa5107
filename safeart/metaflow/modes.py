"""The process-level switches: opt-in (store artifacts with safeart), strict mode and the
``SAFEART_STRICT`` environment knob.

Opt-in is an explicit flag, set only by ``import safeart.metaflow`` itself (the package
``__init__``) or :func:`safeart.metaflow.strict`. Importing a submodule -- what
``safeart.load``, ``safeart.export`` and ``safeart scan`` do -- leaves it off, so calling
the production loader inside a flow never changes how that flow stores its artifacts.
Metaflow's registered serializer reads the flag through :func:`opted_in`.

Kept free of Metaflow imports so that ``import safeart.metaflow`` stays cheap.
"""

from __future__ import annotations

from ..guard import env_flag

__all__ = ["STRICT_ENV", "opt_in", "opted_in", "set_strict", "is_strict"]

#: Environment switch for strict mode (``1``/``true``/``yes``/``on``).
STRICT_ENV = "SAFEART_STRICT"

_strict = False
_opted_in = False


def opt_in() -> None:
    """Store this process's public Metaflow artifacts with safeart from now on."""
    global _opted_in
    _opted_in = True


def opted_in() -> bool:
    """True once the process opted in (``import safeart.metaflow``, ``strict()``)."""
    return _opted_in


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
