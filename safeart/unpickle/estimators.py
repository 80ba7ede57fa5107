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

import functools
import sys
from typing import Any, Iterator

from ..errors import FormatError

_ATOMS = frozenset((type(None), bool, int, float, complex, str, bytes, bytearray))


def from_sklearn(obj: object) -> bool:
    """Whether ``obj`` (a global a pickle resolved) is a class derived from a sklearn class."""
    return isinstance(obj, type) and any(
        type(base.__module__) is str and base.__module__.startswith("sklearn.")
        for base in obj.__mro__)


def _children(obj: Any, numpy: Any) -> Iterator[tuple[str, Any, Any]]:
    """(format, argument, value) of what ``obj`` holds (items, attributes, slots): its path
    segment is ``format.format(argument)``, formatted only for an error."""
    kind = type(obj)  # not isinstance: a __class__ property is never run
    if issubclass(kind, dict):
        for key, value in dict.items(obj):
            yield "<key>", None, key
            yield "[{!r}]", key, value
    elif issubclass(kind, (list, tuple)):
        for i, value in enumerate(tuple.__iter__(obj) if issubclass(kind, tuple)
                                  else list.__iter__(obj)):
            yield "[{}]", i, value
    elif issubclass(kind, (set, frozenset)):
        for value in set.__iter__(obj) if issubclass(kind, set) else frozenset.__iter__(obj):
            yield "<item>", None, value
    elif numpy is not None and issubclass(kind, numpy.ndarray):
        if obj.dtype == object:
            for index, value in numpy.ndenumerate(obj):
                yield "[{}]", ", ".join(map(str, index)), value
        return
    has_dict, slots = _layout(kind)
    if has_dict:
        try:  # not getattr: a class __getattr__ is never run
            state = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            state = None
        if type(state) is dict:
            for key, value in state.items():
                yield ".{}", key, value
    for slot in slots:
        try:
            yield ".{}", slot, object.__getattribute__(obj, slot)
        except (AttributeError, TypeError):
            continue


@functools.lru_cache(maxsize=None)
def _layout(kind: type) -> tuple[bool, tuple[str, ...]]:
    """Whether instances of ``kind`` have a ``__dict__``, and the names of their slots."""
    slots: list[str] = []
    for cls in kind.__mro__:
        names = vars(cls).get("__slots__", ())
        slots.extend((names,) if isinstance(names, str) else names)
    has_dict = any("__dict__" in vars(cls) for cls in kind.__mro__)
    return has_dict, tuple(name for name in slots if name not in ("__dict__", "__weakref__"))


def check_loaded(root: Any, memo: dict[Any, Any]) -> None:
    """Refuse the load of ``root`` if an estimator in it (or in ``memo``, the unpickler's
    memoized objects by index) fails its consistency checks; the error names its path
    from the result (``estimators_[3]``, ``<root>``)."""
    from ..format.codecs.sklearn_checks import check_consistency, checks_for

    numpy = sys.modules.get("numpy")
    # (object, parent path, segment format, its argument); a path is (parent, format, arg)
    stack: list[tuple[Any, Any, str, Any]] = [(root, None, "", None)]
    memo_items = iter(memo.items())
    seen: set[int] = set()
    while True:
        if not stack:  # then the memo: objects held where the walk does not look
            index, value = next(memo_items, (None, None))
            if index is None:
                return
            stack.append((value, None, "<memo {}>", index))
        obj, parent, form, arg = stack.pop()
        if type(obj) in _ATOMS or id(obj) in seen or issubclass(type(obj), type):
            continue
        seen.add(id(obj))
        path = (parent, form, arg)
        if checks_for(type(obj)):
            try:
                check_consistency(obj)
            except FormatError as exc:
                exc.path = _text(path)
                raise
        stack.extend((child, path, form, arg) for form, arg, child in _children(obj, numpy)
                     if type(child) not in _ATOMS)


def _text(path: Any) -> str:
    """``root.attr[0]`` text of a (parent, format, argument) chain, as the manifest's."""
    parts = []
    while path is not None:
        path, form, arg = path
        parts.append(form.format(arg))
    root, text = parts[-1], "".join(reversed(parts[:-1]))
    if root:
        return root + text
    return text[1:] if text.startswith(".") else (text or "<root>")
