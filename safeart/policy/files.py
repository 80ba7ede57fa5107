"""Policy files: ``safeart.toml`` (top-level keys) or ``[tool.safeart]`` in ``pyproject.toml``.

.. code-block:: toml

    allow = [
        "mypkg.models.Net",
        { name = "mypkg.models.Head", reason = "reviewed 2026-11, plain state" },
    ]
    include_defaults = true   # start from the built-in allowlist
    trust_main = false        # allow classes defined in the running __main__

    [aliases]                 # recorded name -> class that stands for it
    "__main__.Net" = "mypkg.models.Net"

    [limits]
    max_depth = 100

The parser accepts exactly these keys; anything else is a :class:`~safeart.errors.ConfigError`
naming the key, so a typo never silently widens or narrows the policy.

Which policy applies when a caller passes none is decided once, by :func:`resolve_policy`,
for every entry point (``loads``, ``load_file``, ``audit``, ``scan_*``, ``load``, ``export``,
``convert``, the restricted unpickler, the CLI and Metaflow's reads).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from ..limits import Limits
from ..settings import POLICY_ENV, env_path
from .model import KINDS, AllowSpec, Policy, Rule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


_KEYS = {"allow", "aliases", "include_defaults", "trust_main", "limits"}


def _rule(entry: Any, where: str) -> Rule:
    if isinstance(entry, str):
        return Rule(entry, f"allowed in {where}")
    if isinstance(entry, dict) and set(entry) <= {"name", "reason", "kind"} and "name" in entry:
        kind = entry.get("kind", "class")
        if kind not in KINDS:
            raise ConfigError(f"{where}: allow entry kind must be one of {', '.join(KINDS)}, "
                              f"got {kind!r}")
        if not isinstance(entry["name"], str) or not isinstance(entry.get("reason", ""), str):
            raise ConfigError(f"{where}: allow entry name and reason must be strings: {entry!r}")
        return Rule(entry["name"], entry.get("reason") or f"allowed in {where}", kind)
    raise ConfigError(
        f"{where}: invalid allow entry {entry!r}",
        hint='use "module.Class" or { name = "module.Class", reason = "..." }',
    )


def policy_from_mapping(data: dict[str, Any], where: str = "policy") -> Policy:
    """Build a :class:`Policy` from the parsed TOML table ``data``."""
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
            hint=f"known keys: {', '.join(sorted(_KEYS))}",
        )
    allow = data.get("allow", [])
    if not isinstance(allow, list):
        raise ConfigError(f"{where}: 'allow' must be a list")
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise ConfigError(f"{where}: 'aliases' must map names to class names (strings)")
    flags = {}
    for key in ("include_defaults", "trust_main"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ConfigError(f"{where}: {key!r} must be true or false")
            flags[key] = data[key]
    limits = data.get("limits", {})
    if not isinstance(limits, dict):
        raise ConfigError(f"{where}: 'limits' must be a table")
    return Policy(
        allow=[_rule(e, where) for e in allow],
        aliases=aliases,
        limits=Limits().updated(limits),
        **flags,
    )


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read a policy from ``safeart.toml`` or from ``[tool.safeart]`` in ``pyproject.toml``.

    Raises:
        ConfigError: the file is missing, is not TOML, or holds unknown keys or bad values.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {p}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {p} is not valid TOML: {exc}") from None
    if p.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("safeart") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise ConfigError(f"{p} has no [tool.safeart] table")
        return policy_from_mapping(table, f"{p} [tool.safeart]")
    return policy_from_mapping(data, str(p))


def resolve_policy(policy: Policy | None = None, allow: Iterable[AllowSpec] = ()) -> Policy:
    """The policy an entry point uses: the one rule, for every safeart entry point.

    1. ``policy``, when the caller passes one: an explicit policy is used as is and
       ``$SAFEART_POLICY`` is not read;
    2. else the policy file named by ``$SAFEART_POLICY`` (``safeart.toml`` or a
       ``pyproject.toml`` with ``[tool.safeart]``), read on every call;
    3. else the built-in allowlist (``Policy()``, built once per process: it is immutable).

    ``allow`` then extends whichever base was chosen (as :meth:`Policy.extend`), so
    ``allow=[Net]`` never drops what the base admits or forbids, and never replaces a file
    that sets ``include_defaults = false``. A ``$SAFEART_POLICY`` that cannot be read or
    parsed is an error, never a silent fall back to the built-in allowlist.

    Raises:
        ConfigError: ``$SAFEART_POLICY`` names a missing or invalid policy file.
    """
    if policy is None:
        path = env_path(POLICY_ENV)
        policy = load_policy(path) if path else _builtin()
    allow = tuple(allow)
    return policy.extend(allow) if allow else policy


@functools.lru_cache(maxsize=None)
def _builtin() -> Policy:
    return Policy()

