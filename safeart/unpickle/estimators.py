"""Estimator-level consistency checks on what the restricted unpickler built.

The C unpickler offers no hook after a BUILD (``__setstate__``), so the scikit-learn
estimators of a pickle are checked once it is loaded, before the result is returned, with
the same checks as safeart's own format
(:func:`safeart.format.codecs.sklearn_checks.check_consistency`). The objects checked are
every object reachable from the result through dicts, lists, tuples, sets, object arrays,
instance ``__dict__`` and ``__slots__``, plus every object in the unpickler's memo (an
estimator held elsewhere, e.g. inside a pandas block, is reached through the memo when the
pickle memoized it, as every pickler does). The walk only runs for loads that resolved a
class with a scikit-learn class in its MRO (:func:`from_sklearn`).
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

from ..errors import FormatError

_ATOMS = frozenset((type(None), bool, int, float, complex, str, bytes, bytearray))


def from_sklearn(obj: object) -> bool:
    """Whether ``obj`` (a global a pickle resolved) is a class derived from a sklearn class."""
    return isinstance(obj, type) and any(
        type(base.__module__) is str and base.__module__.startswith("sklearn.")
        for base in obj.__mro__)


def _children(obj: Any, numpy: Any) -> Iterator[tuple[str, Any]]:
    """(path segment, value) of what ``obj`` holds: items, attributes, slots."""
    kind = type(obj)  # not isinstance: a __class__ property is never run
    if issubclass(kind, dict):
        for key, value in dict.items(obj):
            yield "<key>", key
            yield f"[{key!r}]", value
    elif issubclass(kind, (list, tuple)):
        for i, value in enumerate(tuple.__iter__(obj) if issubclass(kind, tuple)
                                  else list.__iter__(obj)):
            yield f"[{i}]", value
    elif issubclass(kind, (set, frozenset)):
        for value in set.__iter__(obj) if issubclass(kind, set) else frozenset.__iter__(obj):
            yield "<item>", value
    elif numpy is not None and issubclass(kind, numpy.ndarray):
        if obj.dtype == object:
            for index, value in numpy.ndenumerate(obj):
                yield f"[{', '.join(map(str, index))}]", value
        return
    try:  # not getattr: a class __getattr__ is never run
        state = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        state = None
    if type(state) is dict:
        for key, value in state.items():
            yield f".{key}", value
    for cls in type(obj).__mro__:
        slots = vars(cls).get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__"):
                try:
                    yield f".{slot}", object.__getattribute__(obj, slot)
                except (AttributeError, TypeError):
                    continue


def check_loaded(root: Any, memo: dict[Any, Any]) -> None:
    """Refuse the load of ``root`` if an estimator in it (or in ``memo``, the unpickler's
    memoized objects by index) fails its consistency checks; the error names its path
    from the result (``estimators_[3]``, ``<root>``)."""
    from ..format.codecs.sklearn_checks import check_consistency, checks_for

    numpy = sys.modules.get("numpy")
    stack: list[tuple[Any, Any]] = [(value, (None, f"<memo {index}>"))
                                    for index, value in memo.items()]
    stack.append((root, (None, "")))  # popped first: paths from the root
    seen: set[int] = set()
    while stack:
        obj, path = stack.pop()
        if type(obj) in _ATOMS or issubclass(type(obj), type) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if checks_for(type(obj)):
            try:
                check_consistency(obj)
            except FormatError as exc:
                exc.path = _text(path)
                raise
        stack.extend((child, (path, segment)) for segment, child in _children(obj, numpy))


def _text(path: Any) -> str:
    """``root.attr[0]`` text of a (parent, segment) chain; as the manifest's object paths."""
    parts = []
    while path is not None:
        path, segment = path
        parts.append(segment)
    root, text = parts[-1], "".join(reversed(parts[:-1]))
    if root:
        return root + text
    return text[1:] if text.startswith(".") else (text or "<root>")
