"""How a pickle uses each global it imports, read from its opcodes (nothing is unpickled).

The allowlist kind of a name follows from its use: a global that is *called* (``REDUCE``,
``OBJ``, ``INST``) needs a ``callable`` entry; one that is instantiated with ``cls.__new__``
(``NEWOBJ``/``NEWOBJ_EX``) or handed to a reconstructor call as an argument
(``_reconstruct(numpy.ndarray, ...)``) is a ``class``; anything else is only held
(``defaultdict(int)``'s factory, ``Ellipsis``, a function kept as a parameter): a
``reference``.

:func:`uses` walks :func:`pickletools.genops` with a shadow stack that only tracks globals,
strings (for ``STACK_GLOBAL``), tuples of globals and marks. It is a tool for building the
default allowlist from benign pickles the generator wrote itself, not a scanner: hostile
input is :mod:`safeart.scan`'s job.
"""

from __future__ import annotations

import pickletools
from typing import Any

from ...pickle_facts import compat_name


CALLED = "called"  #: REDUCE / OBJ / INST target
NEW = "new"  #: NEWOBJ / NEWOBJ_EX target
ARGUMENT = "argument"  #: inside the argument tuple of a call
HELD = "held"  #: anything else (a value in a container, state, a kwarg)

_MARK = object()


class _Global:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Tuple:
    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


def uses(data: bytes) -> dict[str, set[str]]:
    """Every global one plain pickle imports -> how it is used (``CALLED``, ``NEW``, ...)."""
    found: dict[str, set[str]] = {}
    stack: list[Any] = []
    memo: dict[Any, Any] = {}
    protocol = 0

    def mark(item: Any, use: str) -> None:
        if isinstance(item, _Global):
            found[item.name].add(use)
        elif isinstance(item, _Tuple):
            for inner in item.items:
                mark(inner, use)

    def to_mark() -> list[Any]:
        items: list[Any] = []
        while (item := stack.pop()) is not _MARK:
            items.append(item)
        return items[::-1]

    def imported(module: str, name: str) -> _Global:
        full = ".".join(compat_name(module, name, protocol))  # the name CPython imports
        found.setdefault(full, set())
        return _Global(full)

    for op, arg, _ in pickletools.genops(data):
        code = op.name
        if code == "PROTO":
            protocol = arg
        elif code in ("GLOBAL", "INST"):
            glob = imported(*arg.split(" ", 1))
            if code == "GLOBAL":
                stack.append(glob)
            else:
                for item in to_mark():
                    mark(item, ARGUMENT)
                mark(glob, CALLED)
                stack.append(None)
        elif code == "STACK_GLOBAL":
            name, module = stack.pop(), stack.pop()
            stack.append(imported(str(module), str(name)))
        elif code in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            stack.append(arg)
        elif code in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif code == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif code in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        elif code == "DUP":
            stack.append(stack[-1])
        elif code == "MARK":
            stack.append(_MARK)
        elif code in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(code[-1])
            items = stack[-count:]
            del stack[-count:]
            stack.append(_Tuple(items))
        elif code == "TUPLE":
            stack.append(_Tuple(to_mark()))
        elif code == "REDUCE":
            args, func = stack.pop(), stack.pop()
            mark(args, ARGUMENT)
            mark(func, CALLED)
            stack.append(None)
        elif code in ("NEWOBJ", "NEWOBJ_EX"):
            if code == "NEWOBJ_EX":
                mark(stack.pop(), HELD)
            args, cls = stack.pop(), stack.pop()
            mark(args, ARGUMENT)
            mark(cls, NEW)
            stack.append(None)
        elif code == "OBJ":
            cls, *args = to_mark()
            for item in args:
                mark(item, ARGUMENT)
            mark(cls, CALLED)
            stack.append(None)
        else:
            before = op.stack_before
            if pickletools.markobject in before:
                for item in to_mark():
                    mark(item, HELD)
                before = before[: before.index(pickletools.markobject)]
            for _ in before:
                mark(stack.pop(), HELD)
            for kind in op.stack_after:
                stack.append(_MARK if kind is pickletools.markobject else None)
    return found
