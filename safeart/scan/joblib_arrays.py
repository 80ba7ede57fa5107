"""joblib's inline arrays, decided the way joblib and numpy decide them.

``joblib.load`` replaces every ``NumpyArrayWrapper`` right after its BUILD by the array stored
inline after it in the stream (``NumpyArrayWrapper.read_array``): if ``wrapper.dtype.hasobject``
a *nested pickle* follows (unpickled by a fresh unpickler), otherwise ``count * itemsize`` raw
bytes (after an alignment pad when the wrapper has ``numpy_array_alignment_bytes``). Whether
bytes are code or data is therefore decided by numpy's ``dtype`` object, which a pickle builds
as ``numpy.dtype(descr, align, copy)`` then ``dtype.__setstate__(state)``; the pickled flags
say "object" whatever the descr says (``'|O'``, ``'object'``, ``'O8'``, ``'V8'`` with flag 1,
a structured or subarray dtype holding objects ...).

This module models both without building anything the stream names:

* :class:`DTypeRecord` is what the scanner's stub ``numpy.dtype`` returns. Its ``descr`` is
  handed to ``numpy.dtype`` only when it is a plain literal (strings, ints, and tuples, lists
  and dicts of them); ``__setstate__`` is numpy's ``arraydescr_setstate`` re-done on a
  :class:`Descr` (read-only facts of the real dtype), never on a real dtype.
* :class:`WrapperRecord` is what the stub ``NumpyArrayWrapper`` returns: its attributes as
  ``__init__`` sets them (a call) and as ``pickle._Unpickler.load_build`` merges every BUILD
  (dict state, slot state).
* :func:`plan` says what joblib reads after the BUILD: ``objects`` (a nested pickle),
  ``data`` (so many bytes), ``fails`` (joblib raises: only ``pickle.load``'s reading goes on)
  or ``undecided`` (a name from the stream decides: the scan reads the bytes both ways).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any


#: Outcomes of modelling numpy: the victim raises here, or a stream name decides.
FAILS, UNDECIDED = "fails", "undecided"
#: numpy's NPY_ITEM_HASOBJECT flag bit and NPY_OBJECT_DTYPE_FLAGS.
_HASOBJECT, _OBJECT_FLAGS = 0x01, 63
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_INT64_MAX = 2**63 - 1
_MAX_LITERAL_NODES = 1_000
_MAX_DEPTH = 32
#: ``NumpyArrayWrapper.__init__`` parameters, with their defaults.
_WRAPPER_PARAMS = ("subclass", "shape", "order", "dtype", "allow_mmap",
                   "numpy_array_alignment_bytes")
_WRAPPER_DEFAULTS = {"allow_mmap": False, "numpy_array_alignment_bytes": 16}
_MISSING = object()


@dataclass
class Descr:
    """The facts of a numpy dtype that its ``__setstate__`` and ``hasobject`` depend on."""

    flags: int
    kind: str
    itemsize: int
    #: numpy's builtin singleton (``fields is None`` in C): ``__setstate__`` does nothing.
    builtin: bool
    #: name -> (Descr | DTypeRecord | other, offset[, title]), as numpy keeps fields.
    fields: dict[Any, Any] | None = None

    @property
    def hasobject(self) -> bool:
        return bool(self.flags & _HASOBJECT)

    @classmethod
    def of(cls, dtype: Any, builtin: bool, depth: int = 0) -> "Descr":
        """The facts of a real ``numpy.dtype`` (read only)."""
        fields = None
        if dtype.fields is not None and depth < _MAX_DEPTH:
            fields = {name: (cls.of(v[0], False, depth + 1), *v[1:])
                      for name, v in dtype.fields.items()}
        return cls(int(dtype.flags), dtype.kind, int(dtype.itemsize), builtin, fields)


def _plain(value: Any, budget: list[int], depth: int = 0) -> bool:
    """A literal numpy may parse: strings, bytes, ints, bools, None, and tuples, lists and
    str-keyed dicts of them (bounded in size and depth)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        return False
    if value is None or type(value) in (str, bytes, int, bool):
        return True
    if type(value) in (tuple, list):
        return all(_plain(v, budget, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, budget, depth + 1) for k, v in value.items())
    return False


def _truth(value: Any) -> bool | None:
    """``PyArray_BoolConverter`` of a literal; None for anything a stream name built."""
    if value is None or type(value) in (bool, int, float, complex, str, bytes, tuple, list,
                                        dict, set, frozenset):
        return bool(value)
    return None


def _c_int(value: Any) -> int | str:
    """``PyArg_ParseTuple``'s ``i``: an int in C int range, :data:`FAILS` where it raises,
    :data:`UNDECIDED` for an object the stream built (it may have ``__index__``)."""
    if type(value) in (int, bool):
        return int(value) if _INT_MIN <= value <= _INT_MAX else FAILS
    return FAILS if _truth(value) is not None else UNDECIDED


class DTypeRecord:
    """What the scanner's stub ``numpy.dtype(descr, align=False, copy=False, metadata=None)``
    returns: the call's arguments and a model of the dtype numpy builds (:attr:`model`: a
    :class:`Descr`, :data:`FAILS` or :data:`UNDECIDED`)."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
        self.args = args
        self.kwargs = dict(kwargs or {})
        self.state: Any = None
        self.model: Descr | str = _construct(args, self.kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state
        if isinstance(self.model, Descr):
            self.model = _setstate(self.model, state)


def _construct(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Descr | str:
    names = ("dtype", "align", "copy", "metadata")
    if len(args) > 4 or set(kwargs) - set(names) or any(n in kwargs for n in names[:len(args)]):
        return FAILS
    bound = dict(zip(names, args), **kwargs)
    if "dtype" not in bound:
        return FAILS
    align, copy = _truth(bound.get("align", False)), _truth(bound.get("copy", False))
    metadata = bound.get("metadata")
    if align is None or copy is None or _truth(metadata) is None:
        return UNDECIDED
    if not (metadata is None or type(metadata) is dict):
        return FAILS
    descr = bound["dtype"]
    if isinstance(descr, DTypeRecord):  # numpy returns that very dtype (copied if builtin)
        model = descr.model
        if not isinstance(model, Descr):
            return model
        return Descr(model.flags, model.kind, model.itemsize,
                     model.builtin and not copy and metadata is None, model.fields)
    if not _plain(descr, [_MAX_LITERAL_NODES]):
        return UNDECIDED
    import numpy

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a deprecated alias still builds the dtype
            dtype = numpy.dtype(descr, bool(align))
    except Exception:  # noqa: BLE001 - numpy refuses it: the victim's load fails here
        return FAILS
    return Descr.of(dtype, dtype.isbuiltin == 1 and not copy and metadata is None)


def _setstate(d: Descr, state: Any) -> Descr | str:
    """numpy's ``arraydescr_setstate`` (numpy 2.x) on the model; what it changes is
    ``flags`` (hence ``hasobject``), ``itemsize`` of flexible types and ``fields``."""
    if d.kind == "T":  # StringDType: "Cannot unpickle new style DType"
        return FAILS
    if d.builtin:
        return d
    if type(state) is not tuple:
        return FAILS
    size = len(state)
    if size not in (5, 6, 7, 8, 9):
        version = state[0] if size > 5 else -1
        # numpy goes on with unset variables when the version looks valid: undefined
        return UNDECIDED if type(version) is int and 0 <= version <= 4 else FAILS
    if size == 5:
        version, (endian, subarray, fields, elsize, alignment) = 0, state
        names: Any = _MISSING
        flags: Any = 0
    elif size == 6:
        version, endian, subarray, fields, elsize, alignment = state
        names, flags = _MISSING, 0
    else:
        version, endian, subarray, names, fields, elsize, alignment = state[:7]
        flags = state[7] if size >= 8 else 0
    ints = [_c_int(v) for v in (version, elsize, alignment, flags)]
    for bad in (FAILS, UNDECIDED):
        if bad in ints:
            return bad
    version, elsize, _, flags = ints  # type: ignore[assignment]
    if any(_truth(v) is None for v in (endian, names, fields) if v is not _MISSING):
        return UNDECIDED  # built by a call: it may be the str, tuple or dict numpy wants
    if not 0 <= version <= 4:
        return FAILS
    if version <= 1:
        if fields is not None:
            if type(fields) is not dict or -1 not in fields:
                return FAILS
            names = fields.pop(-1)  # numpy takes the names out of the fields dict
        else:
            names = None
    if names is _MISSING:  # a 6-tuple of version >= 2: numpy reads an unset pointer
        return UNDECIDED
    if not _endian_ok(endian):
        return FAILS
    if (fields is None) != (names is None) or (names is not None and type(names) is not tuple) \
            or (fields is not None and type(fields) is not dict):
        return FAILS
    checked = _subarray_ok(subarray)
    if checked is not True:
        return checked
    if fields is not None and not all(type(n) is str for n in names):
        if not all((type(n) is str or type(n) is bytes and n.isascii()) and n in fields
                   for n in names):
            return FAILS
        fields = {n if type(n) is str else n.decode("ascii"): fields[n] for n in names}
    out = Descr(d.flags, d.kind, d.itemsize, False, d.fields if fields is None else fields)
    if d.kind in "SUV":  # flexible types take their size from the state
        out.itemsize = elsize
    out.flags = (flags + 128 if -128 <= flags < 0 else flags) & (2**64 - 1)
    if version < 3:
        found = _find_object(out, 0)
        if found is UNDECIDED:
            return UNDECIDED
        out.flags = found  # type: ignore[assignment]
    return out


def _endian_ok(endian: Any) -> bool:
    if type(endian) is str:
        return endian.isascii() and len(endian) == 1
    return type(endian) is bytes and len(endian) == 1


def _subarray_ok(subarray: Any) -> bool | str:
    if subarray is None:
        return True
    if type(subarray) is not tuple or len(subarray) != 2:
        return FAILS
    base, shape = subarray
    if not isinstance(base, DTypeRecord):
        return FAILS if _truth(base) is not None else UNDECIDED
    if base.model == FAILS:
        return FAILS
    if type(shape) in (int, bool):
        return True
    if type(shape) is float:
        return True if shape == shape and abs(shape) != float("inf") else FAILS
    if type(shape) is tuple:
        if all(type(n) in (int, bool) for n in shape):
            return True
        return UNDECIDED if any(_truth(n) is None for n in shape) else FAILS
    return FAILS if _truth(shape) is not None else UNDECIDED


def _find_object(d: Descr, depth: int) -> int | str:
    """numpy's ``_descr_find_object``, which sets ``flags`` of a version < 3 state (and marks
    the field dtype it found objects in)."""
    if d.flags or d.kind == "O":
        return _OBJECT_FLAGS
    if d.fields is None:
        return 0
    for key, value in d.fields.items():
        if type(value) is tuple and len(value) == 3 and value[2] is key:
            continue  # a title's entry
        if type(value) is not tuple or not 2 <= len(value) <= 3:
            return 0  # numpy stops looking at the first entry it cannot parse
        offset = _c_int(value[1])
        if offset == UNDECIDED:
            return UNDECIDED
        if offset == FAILS:
            return 0
        sub = value[0]
        model = sub.model if isinstance(sub, DTypeRecord) else sub
        if not isinstance(model, Descr) or depth >= _MAX_DEPTH:
            return UNDECIDED  # numpy reads the flags of whatever object is there
        found = _find_object(model, depth + 1)
        if found is UNDECIDED or found:
            if found:
                model.flags = _OBJECT_FLAGS
            return found
    return 0


@dataclass
class WrapperRecord:
    """A ``NumpyArrayWrapper`` as joblib's unpickler has it: :attr:`attrs` from ``__init__``
    (when called, not when made by ``NEWOBJ``) and every BUILD; :attr:`status` is
    :data:`FAILS` once joblib would have raised, :data:`UNDECIDED` once a non-literal state
    made the attributes unknowable."""

    attrs: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    @classmethod
    def made(cls, args: tuple[Any, ...], kwargs: dict[str, Any], new: bool) -> "WrapperRecord":
        record = cls()
        if new:  # cls.__new__(cls, *args): object.__new__, no __init__
            return record
        if len(args) > len(_WRAPPER_PARAMS) or set(kwargs) - set(_WRAPPER_PARAMS) \
                or any(p in kwargs for p in _WRAPPER_PARAMS[:len(args)]):
            record.status = FAILS
            return record
        bound = {**_WRAPPER_DEFAULTS, **dict(zip(_WRAPPER_PARAMS, args)), **kwargs}
        if any(p not in bound for p in _WRAPPER_PARAMS):
            record.status = FAILS
        record.attrs = bound
        return record

    def build(self, state: Any) -> None:
        """``pickle._Unpickler.load_build`` (the wrapper has no ``__setstate__``)."""
        slots = None
        if type(state) is tuple and len(state) == 2:
            state, slots = state
        for part, setattr_rules in ((state, False), (slots, True)):
            if _truth(part) is None:
                self.status = self.status or UNDECIDED  # a call result: its items are unknown
                continue
            if not part:
                continue
            if type(part) is not dict or (setattr_rules and not all(type(k) is str
                                                                     for k in part)):
                self.status = FAILS  # no .items(), or setattr with a non-str name
                return
            self.attrs.update((k, v) for k, v in part.items() if type(k) is str)


@dataclass(frozen=True)
class Plan:
    """What ``joblib.load`` reads right after a wrapper's BUILD."""

    kind: str  # "objects", "data", FAILS or UNDECIDED
    size: int = 0  # data: array bytes
    padded: bool = False  # data: a pad-length byte and that many bytes come first
    why: str = ""


def plan(wrapper: WrapperRecord) -> Plan:
    """``NumpyArrayWrapper.read_array`` (joblib 1.x, ``mmap_mode=None``) on ``wrapper``."""
    if wrapper.status:
        return Plan(wrapper.status, why="the wrapper's construction or state")
    attrs = wrapper.attrs
    shape = attrs.get("shape", _MISSING)
    count, exact = _count(shape)
    if count == FAILS:
        return Plan(FAILS, why=f"shape {shape!r:.60}")
    dtype = attrs.get("dtype", _MISSING)
    if not isinstance(dtype, DTypeRecord):
        if dtype is _MISSING or _truth(dtype) is not None:
            return Plan(FAILS, why="a dtype without hasobject")  # AttributeError
        return Plan(UNDECIDED, why="a dtype built by another name than numpy.dtype")
    model = dtype.model
    if not isinstance(model, Descr):
        return Plan(model, why=f"numpy.dtype{dtype.args!r:.80}")
    if count == UNDECIDED:
        return Plan(UNDECIDED, why=f"shape {shape!r:.60}")
    if model.hasobject:
        return Plan("objects")
    if not exact or not isinstance(count, int) or count < 0 or count > _INT64_MAX:
        return Plan(FAILS, why=f"shape {shape!r:.60}")  # numpy.empty or reshape raises
    if model.itemsize <= 0:
        return Plan(FAILS if model.itemsize == 0 else UNDECIDED, why="dtype itemsize")
    padded = attrs.get("numpy_array_alignment_bytes") is not None
    return Plan("data", count * model.itemsize, padded)


def _count(shape: Any) -> tuple[int | str, bool]:
    """``numpy.multiply.reduce([numpy.int64(x) for x in shape])`` (1 for an empty shape),
    and whether ``reshape(shape)`` then takes the shape as given (a tuple or list of ints).
    A negative count stands for one ``numpy.empty``/``reshape`` refuses."""
    if shape is _MISSING or _truth(shape) is not None and not hasattr(shape, "__len__"):
        return FAILS, False  # no len()
    if type(shape) not in (tuple, list, str, bytes, dict, set, frozenset):
        return UNDECIDED, False  # built by a call
    exact, count = type(shape) in (tuple, list), 1
    for n in shape:  # what iterating gives: items, characters, byte values, keys
        if type(n) is float:
            if n != n or abs(n) == float("inf"):
                return FAILS, False
            n, exact = int(n), False  # numpy.int64 truncates; reshape refuses a float
        elif type(n) not in (int, bool):
            return (UNDECIDED if type(n) is str or _truth(n) is None else FAILS), False
        if not -(2**63) <= n <= _INT64_MAX:
            return FAILS, False  # numpy.int64 overflows
        count = -1 if n < 0 or count < 0 else count * n
    return count, exact
