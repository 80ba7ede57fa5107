"""One rule for which policy applies when none is passed (``safeart.policy.resolve_policy``).

explicit ``policy=`` > the file in ``$SAFEART_POLICY`` > the built-in allowlist, and
``allow=`` extends whichever base was chosen -- the same for every entry point.
"""

from __future__ import annotations

import collections
import datetime
import pickle
from pathlib import Path
from typing import Any, Callable

import pytest

import safeart
from safeart.errors import ConfigError, PolicyError, UnsafeArtifactError
from safeart.guard import load_pickle
from safeart.policy import POLICY_ENV, Policy, Rule, resolve_policy
from safeart.unpickle import restricted_loads

#: A value the built-in allowlist admits (OrderedDict, datetime.date), stored both ways.
VALUE = collections.OrderedDict(day=datetime.date(2020, 1, 2))
#: What a base without the built-in allowlist needs for VALUE: the pickle calls both.
NEEDED = [Rule(name, "test value", kind="callable")
          for name in ("collections.OrderedDict", "datetime.date")]
BLOB = safeart.dumps(VALUE)
PICKLE = pickle.dumps(VALUE, protocol=4)


class NotClean(Exception):
    """A scan entry point's report is not clean."""


def _loads(policy: Policy | None = None, allow: tuple = ()) -> Any:
    return safeart.loads(BLOB, policy=policy, allow=allow)


def _load_file(policy: Policy | None = None, allow: tuple = (), *, tmp: Path) -> Any:
    path = tmp / "value.safetensors"
    path.write_bytes(BLOB)
    return safeart.load_file(path, policy=policy, allow=allow)


def _audit(policy: Policy | None = None) -> Any:
    safeart.audit(BLOB, policy=policy).raise_for_problems()
    return VALUE


def _scan_bytes(policy: Policy | None = None) -> Any:
    if safeart.scan_bytes(PICKLE, policy=policy).fails():
        raise NotClean
    return VALUE


def _scan_path(policy: Policy | None = None, *, tmp: Path) -> Any:
    path = tmp / "value.pkl"
    path.write_bytes(PICKLE)
    if safeart.scan_path(path, policy=policy).results[0].fails():
        raise NotClean
    return VALUE


def _restricted(policy: Policy | None = None) -> Any:
    return restricted_loads(PICKLE, policy=policy)


def _load_pickle(policy: Policy | None = None) -> Any:
    return load_pickle(PICKLE, policy=policy)


def _convert(policy: Policy | None = None, allow: tuple = (), *, tmp: Path) -> Any:
    source = tmp / "value.pkl"
    source.write_bytes(PICKLE)
    out = safeart.convert(source, tmp / "out.safetensors", policy=policy, allow=allow)
    return safeart.load_file(out, policy=Policy())


ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    "loads": _loads, "load_file": _load_file, "audit": _audit, "scan_bytes": _scan_bytes,
    "scan_path": _scan_path, "restricted_loads": _restricted, "load_pickle": _load_pickle,
    "convert": _convert,
}
WITH_ALLOW = ("loads", "load_file", "convert")


def _call(name: str, tmp: Path, *args: Any, **kwargs: Any) -> Any:
    fn = ENTRY_POINTS[name]
    if name in ("load_file", "scan_path", "convert"):
        kwargs["tmp"] = tmp
    return fn(*args, **kwargs)


@pytest.fixture
def narrow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$SAFEART_POLICY names a file that drops the built-in allowlist."""
    path = tmp_path / "safeart.toml"
    path.write_text("include_defaults = false\n", encoding="utf-8")
    monkeypatch.setenv(POLICY_ENV, str(path))
    return path


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_without_env_the_built_in_allowlist_applies(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    assert _call(name, tmp_path) == VALUE


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_honours_the_env_policy(name: str, tmp_path: Path,
                                                  narrow_env: Path) -> None:
    with pytest.raises((PolicyError, UnsafeArtifactError, NotClean)):
        _call(name, tmp_path)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_an_explicit_policy_wins_over_the_env(name: str, tmp_path: Path,
                                              narrow_env: Path) -> None:
    assert _call(name, tmp_path, Policy()) == VALUE


@pytest.mark.parametrize("name", WITH_ALLOW)
def test_allow_extends_the_env_base(name: str, tmp_path: Path, narrow_env: Path) -> None:
    assert _call(name, tmp_path, allow=tuple(NEEDED)) == VALUE


@pytest.mark.parametrize("name", WITH_ALLOW)
def test_allow_extends_an_explicit_base(name: str, tmp_path: Path, narrow_env: Path) -> None:
    empty = Policy(include_defaults=False)
    with pytest.raises((PolicyError, UnsafeArtifactError)):
        _call(name, tmp_path, empty, allow=(NEEDED[0],))
    assert _call(name, tmp_path, empty, allow=tuple(NEEDED)) == VALUE


def test_an_unreadable_env_policy_is_an_error_not_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(POLICY_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml"):
        safeart.loads(BLOB)
    with pytest.raises(ConfigError, match="missing.toml"):
        safeart.scan_bytes(PICKLE)


def test_resolve_policy_rule(narrow_env: Path) -> None:
    explicit = Policy()
    assert resolve_policy(explicit) is explicit
    assert resolve_policy().include_defaults is False
    extended = resolve_policy(allow=NEEDED[1:])
    assert extended.include_defaults is False and "datetime.date" in extended.rules
