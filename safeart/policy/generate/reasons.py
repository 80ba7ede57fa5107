"""The reviewed part of the generated allowlist: why each family of names is safe, and what
is left out.

The generator finds names by pickling benign samples; this module decides whether each one
may be admitted and says why. The reviewed reasons are data, ``reasons.toml`` beside this
module (review changes there). A name no rule covers stops the generator
(:class:`Unreviewed`): a new library version that pickles something new needs a person to
read it and write its reason, not a catch-all string.

Rules are matched in order; the first whose pattern covers the name and whose kinds include
the entry's kind gives the reason. Patterns are exact names or ``prefix.*`` families; the
entries they produce are always exact names (the generated lists hold no wildcards).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


#: The reviewed reasons (``[excluded]``, ``[required_stdlib]``, ``[sklearn]``, ``rules``).
REASONS_FILE = Path(__file__).resolve().with_name("reasons.toml")
_DATA = tomllib.loads(REASONS_FILE.read_text(encoding="utf-8"))


class Unreviewed(Exception):
    """A sample pickle imports a name no rule reviews."""


#: Names or families never admitted even if a benign pickle names them, and why.
EXCLUDED: dict[str, str] = _DATA["excluded"]
#: Standard-library names the format's value codecs and real pickles need, with the kind
#: they get when no sample pickle shows another use (``class``: rebuilt from state).
REQUIRED_STDLIB: dict[str, str] = _DATA["required_stdlib"]
#: (pattern, kinds, reason), in matching order.
RULES: list[tuple[str, tuple[str, ...], str]] = [
    (rule["pattern"], tuple(rule["kinds"]), rule["reason"]) for rule in _DATA["rules"]
]
_ESTIMATOR_STATE: str = _DATA["sklearn"]["estimator_state"]
_SKLEARN_STATE: dict[str, str] = _DATA["sklearn"]["state"]


def excluded(name: str) -> str | None:
    """Why ``name`` is never admitted, or None."""
    for pattern, why in EXCLUDED.items():
        if fnmatch.fnmatchcase(name, pattern):
            return why
    return None


def reason_for(name: str, kind: str, obj: Any) -> str:
    """The reviewed reason for admitting ``name`` as a ``kind`` entry.

    scikit-learn estimators (``BaseEstimator`` subclasses) get their subpackage's state
    description; everything else needs a rule.

    Raises:
        Unreviewed: no rule covers the name with this kind.
    """
    if kind == "class" and name.startswith("sklearn.") and _is_estimator(obj):
        package = name.split(".")[1].lstrip("_")
        state = _SKLEARN_STATE.get(package)
        if state:
            return f"scikit-learn estimator ({package}): {state}; {_ESTIMATOR_STATE}"
    for pattern, kinds, reason in RULES:
        if kind in kinds and fnmatch.fnmatchcase(name, pattern):
            return reason
    raise Unreviewed(f"{name} ({kind}) is imported by a benign sample pickle but no rule in "
                     "safeart/policy/generate/reasons.toml reviews it")


def _is_estimator(obj: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return False
    return isinstance(obj, type) and issubclass(obj, BaseEstimator)
