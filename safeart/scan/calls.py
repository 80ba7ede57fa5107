"""What an allowlisted call may allocate from the arguments a pickle chooses.

A pickle may call any allowed global with arguments of its choosing (``REDUCE``, ``INST``,
``OBJ``, ``NEWOBJ``). No foreign code runs, but some allowed globals allocate from their
arguments: ``bytes(2**36)`` asks for 64 GiB in 20 bytes of pickle, ``frozenset(range(2**31))``
for ~128 GiB, and calling an allowed *class* runs its ``__init__``
(``nn.Linear(2**17, 2**17)`` allocates 64 GiB of weights). This module is the one rule both
sides apply:

* :func:`check_call` charges a call of a known allocating callable (:data:`CHARGED`) against
  :attr:`~safeart.limits.Limits.max_alloc_bytes`. The scanner's stubs apply it to the literal
  arguments the pickle holds (ints, tuples, ranges, stub results); the restricted unpickler
  applies it to the real arguments before the real callable runs
  (:mod:`safeart.unpickle.bounded`).
* :class:`CallGrader` grades every call CPython makes in the scanner's stub world: charges over
  the limit, and calls of ``class`` and ``reference`` entries. A ``class`` entry promises that
  ``cls.__new__`` plus state is safe (``NEWOBJ``), a ``reference`` entry that holding the
  object is; only a ``callable`` entry admits *calling* it with any arguments. The restricted
  unpickler cannot intercept a call of a class without breaking ``NEWOBJ`` (which needs the
  real class), so this grade is what bounds them: every restricted load scans first.

What is charged is allocation *from arguments*: ``bytes(n)``, a lazily sized iterable
(a ``range``, a stride-0 tensor view) that a container constructor materialises, an array
shape. Data a pickle carries itself (tensor storages, array bytes, ``bytearray(b"...")``, a
list literal handed to ``set``) is bounded by the input size and never charged, so the limit
does not bound model size: real pickles call ``numpy``'s ``_reconstruct`` with shape ``(0,)``
and fill arrays from their own bytes.

Number types are charged in decimal digits instead (:mod:`.digits`: ``Fraction('1e10000000')``
costs CPU, not memory) against CPython's own bound for ``int('9' * 4301)``,
``sys.get_int_max_str_digits()``.

Findings have kind ``resource`` and grade ``unknown``: not code execution, still refused.
"""

from __future__ import annotations

import operator
import reprlib
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..limits import Limits
from ..policy import Grade, Policy
from .context import ScanContext
from .digits import DIGIT_COUNTS, argument as _arg
from .stubs import UNNAMED, DTypeRecord, stub_name


#: What materialising one item of a lazily sized iterable costs, roughly: a hash slot or a
#: pointer plus a fresh int (or tensor) object.
ITEM_BYTES = 64
#: Argument types a pickle spells out item by item: what is built from them is bounded by the
#: pickle's own size.
_MATERIAL = frozenset({bytes, bytearray, str, list, tuple, dict, set, frozenset})
_MAX_DIMS = 64  # numpy's limit; a longer "shape" is refused by numpy itself

#: (bytes asked for, or None when the arguments do not bound it; the argument, shown)
Request = tuple[Optional[int], str]

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


def short(value: Any) -> str:
    """A bounded repr of a pickle-chosen value (a stub shows the global it stands for).
    Never raises: an int past CPython's digit limit has no repr, so it shows its size."""
    name = stub_name(value)
    if name:
        return f"<result of {name}>"
    try:
        return _repr.repr(value)
    except ValueError:  # int('...') past sys.get_int_max_str_digits(), also inside a tuple
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} holding an int too long to show>"


def range_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> range | None:
    """``range(*args)`` when the arguments are plain ints (a range allocates nothing)."""
    if kwargs or not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
        return None
    if len(args) == 3 and args[2] == 0:
        return None
    return range(*args)


def _length(value: Any) -> int | None:
    """The length of a lazily sized value, without iterating it; None when unknown."""
    if isinstance(value, range):  # len() overflows past sys.maxsize; arithmetic does not
        step = value.step
        span = value.stop - value.start + (step - 1 if step > 0 else step + 1)
        return max(0, span // step)
    try:
        n = operator.length_hint(value, -1)
    except Exception:  # noqa: BLE001 - an object whose __len__ fails has no known length
        return None
    return n if n >= 0 else None


def _materialising(value: Any, item_bytes: int) -> Request | None:
    """What building a container out of ``value`` asks for beyond ``value`` itself."""
    if type(value) in _MATERIAL:
        return None
    n = _length(value)
    return (None if n is None else n * item_bytes), short(value)


def _bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    source = args[0] if args else kwargs.get("source")
    if source is None:
        return None
    if isinstance(source, int):  # bytes(n), bytearray(n): n zero bytes
        return max(int(source), 0), short(source)
    return _materialising(source, 1)  # bytes(range(n)) preallocates n bytes


def _container(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    return _materialising(args[0], ITEM_BYTES) if args else None


def _defaultdict(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    return _container(args[1:], kwargs)  # defaultdict(factory, items)


def _range(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    lazy = range_of(args, kwargs)
    return None if lazy is None else (_length(lazy) * ITEM_BYTES, short(lazy))  # type: ignore[operator]


def _elements(shape: Any) -> int | None:
    """Elements of an array ``shape`` (an int or a tuple/list of ints); None if not one."""
    if isinstance(shape, int):
        return max(int(shape), 0)
    if not (isinstance(shape, (tuple, list)) and len(shape) <= _MAX_DIMS
            and all(isinstance(n, int) for n in shape)):
        return None
    if any(n <= 0 for n in shape):
        return 0
    count = 1
    for n in shape:
        count *= n
        if count >> 64:  # past any limit; stop multiplying pickle-sized ints
            break
    return count


def _itemsize(dtype: Any, default: int) -> int:
    """Bytes per element of ``dtype`` (a numpy/torch dtype, a type code, the scanner's
    record of a ``numpy.dtype`` call); ``default`` when it cannot be told."""
    if isinstance(dtype, DTypeRecord):
        dtype = dtype.args[0] if dtype.args else None
    size = getattr(dtype, "itemsize", None) if not isinstance(dtype, (str, bytes)) else None
    if type(size) is int:
        return max(size, 1)
    if isinstance(dtype, (str, bytes)) and len(dtype) <= 100:
        import numpy

        try:  # parses a type code such as 'f8'; imports nothing named in the pickle
            return max(numpy.dtype(dtype if isinstance(dtype, str) else dtype.decode("latin-1"))
                       .itemsize, 1)
        except Exception:  # noqa: BLE001 - not a type code numpy knows
            pass
    return default


def _array(shape: Any, dtype: Any, default_itemsize: int, extra: int = 0) -> Request | None:
    """An uninitialised array of ``shape`` (``extra`` more bytes per element: a mask)."""
    count = _elements(shape)
    if count == 0:
        return None
    size = None if count is None else count * (_itemsize(dtype, default_itemsize) + extra)
    return size, f"shape {short(shape)}"


def _reconstruct(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    # numpy's _reconstruct(subtype, shape, dtype): an uninitialised array of that shape
    return _array(args[1], args[2] if len(args) > 2 else None, 1) if len(args) > 1 else None


def _mareconstruct(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    # numpy.ma's _mareconstruct(subtype, baseclass, baseshape, basetype): data plus a mask
    return _array(args[2], args[3] if len(args) > 3 else None, 1, 1) if len(args) > 2 else None


def _sklearn_tree(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    # Tree(n_features, n_classes, n_outputs): __cinit__ allocates n_outputs counts
    n_outputs = _arg(args, kwargs, 2, "n_outputs")
    return (max(int(n_outputs), 0) * 8, f"n_outputs={short(n_outputs)}") \
        if isinstance(n_outputs, int) else None


def _ndarray(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    # ndarray(shape, dtype=float, buffer=None, ...): with a buffer, a view numpy size-checks
    if _arg(args, kwargs, 2, "buffer") is not None:
        return None
    return _array(_arg(args, kwargs, 0, "shape"), _arg(args, kwargs, 1, "dtype"), 8)


def _numpy_factory(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    return _array(_arg(args, kwargs, 0, "shape"), _arg(args, kwargs, 1, "dtype"), 8)


def _torch_factory(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    # torch.empty(2, 3) or torch.empty((2, 3)); torch.full(size, fill_value)
    size = args if args and isinstance(args[0], int) else _arg(args, kwargs, 0, "size")
    return _array(size, kwargs.get("dtype"), 4)


def _in_digits(count: Callable[[tuple[Any, ...], dict[str, Any]], Optional[int]]) -> Callable[
        [tuple[Any, ...], dict[str, Any]], Optional[Request]]:
    """A charge in decimal digits (:mod:`.digits`): 0 digits charges nothing."""
    def charge(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        found = count(args, kwargs)
        return None if found == 0 else (found, short(args[0] if len(args) == 1 else args))
    return charge


#: Callables charged in decimal digits of the numbers they build (against
#: ``sys.get_int_max_str_digits()``), not in bytes.
_NUMBERS = {name: _in_digits(count) for name, count in DIGIT_COUNTS.items()}

#: Allocating callables by the name a pickle imports -> what a call asks for. A name here is
#: charged when a policy allows it as a ``callable`` entry (the defaults allow the first
#: group; torch/numpy factories only if a user policy does).
CHARGED: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], Optional[Request]]] = {
    "builtins.bytes": _bytes,
    "builtins.bytearray": _bytes,
    "builtins.set": _container,
    "builtins.frozenset": _container,
    "builtins.list": _container,
    "builtins.tuple": _container,
    "builtins.dict": _container,
    "collections.OrderedDict": _container,
    "collections.Counter": _container,
    "collections.deque": _container,
    "collections.defaultdict": _defaultdict,
    "torch.Size": _container,
    "builtins.range": _range,
    "numpy.core.multiarray._reconstruct": _reconstruct,
    "numpy._core.multiarray._reconstruct": _reconstruct,
    "numpy.ndarray": _ndarray,
    "numpy.ma.core._mareconstruct": _mareconstruct,
    "sklearn.tree._tree.Tree": _sklearn_tree,
    **{f"numpy.{name}": _numpy_factory for name in ("empty", "zeros", "ones")},
    **{f"torch.{name}": _torch_factory
       for name in ("empty", "zeros", "ones", "full", "rand", "randn")},
    **_NUMBERS,
}


def _size(n: int) -> str:
    if n.bit_length() > 64:  # no float division (it overflows past 2**1024)
        return f"2**{n.bit_length() - 1} bytes"
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Excess:
    """A call that asks for more than ``max_alloc_bytes``, or for an amount its arguments
    do not bound."""

    name: str
    argument: str
    requested: int | None
    limit: int
    #: What ``requested`` and ``limit`` count: ``bytes``, or ``digits`` of a number.
    unit: str = "bytes"

    @property
    def message(self) -> str:
        if self.unit == "digits":
            built = ("a number its arguments do not bound (built by another call)"
                     if self.requested is None else f"a number of ~{self.requested} digits")
            return (f"{self.name} called with {self.argument} builds {built}; numbers past "
                    f"{self.limit} digits (sys.get_int_max_str_digits(), CPython's bound on "
                    "int/str conversion) cost superlinear time")
        asked = ("an amount its arguments do not bound (built by another call)"
                 if self.requested is None else f"~{_size(self.requested)}")
        return (f"{self.name} called with {self.argument} asks for {asked}; "
                f"max_alloc_bytes is {_size(self.limit)}")


def check_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               limits: Limits) -> Excess | None:
    """The excess of calling the allowed callable ``name`` with these arguments, if any."""
    charge = CHARGED.get(name)
    try:
        request = charge(args, kwargs) if charge is not None else None
    except Exception:  # noqa: BLE001 - arguments it cannot measure bound nothing
        request = (None, f"arguments of types {', '.join(type(a).__name__ for a in args)}")
    if request is None:
        return None
    requested, shown = request
    unit, limit = (("digits", sys.get_int_max_str_digits()) if name in _NUMBERS
                   else ("bytes", limits.max_alloc_bytes))
    if (requested is not None and requested <= limit) or (unit == "digits" and limit == 0):
        return None
    return Excess(name, shown, requested, limit, unit)


def entry_kind(policy: Policy, name: str) -> str | None:
    """The kind of the allowlist entry admitting the pickle global ``name`` (``class`` for a
    class of the running flow file under ``trust_main``), or None when nothing admits it
    (a ``codec`` entry admits no pickle global)."""
    rule = policy.rule_for(name)
    if rule is not None:
        return None if rule.kind == "codec" else rule.kind
    module, _, rest = name.partition(".")
    if policy.trust_main and module == "__main__" and rest and "." not in rest:
        return "class"
    return None


def resource_hint(policy: Policy, name: str) -> str:
    """What admits a ``resource`` finding on ``name``, for artifacts the user trusts."""
    if entry_kind(policy, name) == "callable" and name in _NUMBERS:
        return ("raise sys.set_int_max_str_digits() (PYTHONINTMAXSTRDIGITS) only for "
                "artifacts you trust")
    if entry_kind(policy, name) == "callable":
        return ("raise Limits.max_alloc_bytes (max_alloc_bytes under [limits] in safeart.toml) "
                "only for artifacts you trust")
    rule = policy.rule_for(name)
    target = rule.name if rule is not None else name
    return ("only a 'callable' entry admits calling it; " + policy.how_to_allow(target, "callable")
            + ", only if its constructor is safe with any arguments")


class CallGrader:
    """Grades the calls CPython makes in the scanner's stub world (one per pickle stream).

    At most one finding per callable and stream, so a call repeated through the memo is
    reported once.
    """

    def __init__(self, ctx: ScanContext, location: str) -> None:
        self.ctx, self.location = ctx, location
        self._reported: set[str] = set()
        self._kinds: dict[str, str | None] = {}  # name -> entry kind, looked up once

    def called(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               new: bool) -> Any:
        """CPython called the stub for ``name``: ``cls.__new__(cls, *args)`` when ``new``
        (NEWOBJ, NEWOBJ_EX, OBJ/INST without arguments), ``name(*args)`` otherwise.
        Returns the value the scanner models the call by (a lazy ``range``), else None."""
        if name not in self._reported:
            self._grade(name, args, kwargs, new)
        return range_of(args, kwargs) if name == "builtins.range" and not new else None

    def _grade(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               new: bool) -> None:
        policy = self.ctx.policy
        if name == stub_name(UNNAMED):
            self._add(name, "a global imported past the scanner's distinct-name capacity is "
                      "called: its entry kind and arguments cannot be graded",
                      "scan this artifact on its own")
            return
        kind = self._kinds.get(name, "")
        if kind == "":
            kind = self._kinds[name] = entry_kind(policy, name)
        if kind is None or (kind == "class" and new):
            return  # not allowed (graded as an import), or what a class entry promises
        if kind != "callable":
            how = "cls.__new__ plus state" if kind == "class" else "holding it by name"
            self._add(name, f"a '{kind}' entry is called ({'NEWOBJ' if new else 'REDUCE/INST/OBJ'}"
                      f" with arguments {short(args)}): that runs its constructor, whose "
                      f"allocation safeart cannot bound; a '{kind}' entry admits {how}",
                      resource_hint(policy, name))
            return
        excess = check_call(name, args, kwargs, policy.limits)
        if excess is not None:
            self._add(name, excess.message, resource_hint(policy, name))

    def _add(self, name: str, problem: str, hint: str) -> None:
        self._reported.add(name)
        self.ctx.add(Grade.UNKNOWN, "resource", name, f"{problem}; {hint}",
                     location=self.location)
