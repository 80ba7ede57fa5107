"""Codecs for standard-library value types (format version 2, manifest kind ``val``).

Each codec turns a value of one exact type into a small tuple/str/dict of plain values and
back. Decoding validates the built state's types and shape, then calls only the type's own
public constructor, which checks ranges itself (``date(2024, 13, 1)`` is a ``ValueError``,
reported as a ``FormatError`` with the object path). Nothing named by the state is looked
up or called: a ``defaultdict`` factory or a ``functools.partial`` function arrives as an
object the policy already resolved (an ``fn`` reference) and is only stored.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import functools
import pathlib
import re
import types
import uuid
import zoneinfo
from typing import Any, Callable

from ...errors import EncodeError
from . import Codec, type_name


def _state(state: Any, size: int, what: str) -> tuple:
    """``state`` as a tuple of ``size`` items, or a TypeError."""
    if type(state) is not tuple or len(state) != size:
        raise TypeError(f"a {what} state must be a tuple of {size} items")
    return state


def _ints(values: tuple, what: str) -> tuple:
    if not all(type(v) is int for v in values):
        raise TypeError(f"a {what} state holds integers only")
    return values


def _text(state: Any, what: str) -> str:
    if type(state) is not str:
        raise TypeError(f"a {what} state must be a string")
    return state


# -- datetime ------------------------------------------------------------------------------
_TZ_TYPES = (datetime.timezone, zoneinfo.ZoneInfo)


def _tzinfo(tz: Any) -> Any:
    if tz is not None and type(tz) not in _TZ_TYPES:
        raise EncodeError(f"tzinfo {type(tz).__module__}.{type(tz).__qualname__} cannot be "
                          "stored", hint="convert it to zoneinfo.ZoneInfo(key) or a fixed "
                          "datetime.timezone(offset) first (dt.astimezone(...))")
    return tz


def _built_tz(tz: Any) -> Any:
    if tz is not None and type(tz) not in _TZ_TYPES:
        raise TypeError("tzinfo must be None, a datetime.timezone or a zoneinfo.ZoneInfo")
    return tz


def _fold(fold: Any) -> int:
    if type(fold) is not int or fold not in (0, 1):
        raise ValueError("fold must be 0 or 1")
    return fold


def _enc_date(d: datetime.date) -> tuple:
    return (d.year, d.month, d.day)


def _dec_date(state: Any, version: int) -> datetime.date:
    return datetime.date(*_ints(_state(state, 3, "date"), "date"))


def _enc_time(t: datetime.time) -> tuple:
    return (t.hour, t.minute, t.second, t.microsecond, _tzinfo(t.tzinfo), t.fold)


def _dec_time(state: Any, version: int) -> datetime.time:
    *fields, tz, fold = _state(state, 6, "time")
    return datetime.time(*_ints(tuple(fields), "time"), tzinfo=_built_tz(tz), fold=_fold(fold))


def _enc_datetime(d: datetime.datetime) -> tuple:
    return (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond,
            _tzinfo(d.tzinfo), d.fold)


def _dec_datetime(state: Any, version: int) -> datetime.datetime:
    *fields, tz, fold = _state(state, 9, "datetime")
    return datetime.datetime(*_ints(tuple(fields), "datetime"), tzinfo=_built_tz(tz),
                             fold=_fold(fold))


def _enc_timedelta(d: datetime.timedelta) -> tuple:
    return (d.days, d.seconds, d.microseconds)


def _dec_timedelta(state: Any, version: int) -> datetime.timedelta:
    days, seconds, micros = _ints(_state(state, 3, "timedelta"), "timedelta")
    return datetime.timedelta(days, seconds, micros)


def _enc_timezone(tz: datetime.timezone) -> tuple:
    offset = tz.utcoffset(None)
    name = tz.tzname(None)
    return (offset, None if name == datetime.timezone(offset).tzname(None) else name)


def _dec_timezone(state: Any, version: int) -> datetime.timezone:
    offset, name = _state(state, 2, "timezone")
    if type(offset) is not datetime.timedelta or not (name is None or type(name) is str):
        raise TypeError("a timezone state is (timedelta offset, name or None)")
    return datetime.timezone(offset) if name is None else datetime.timezone(offset, name)


#: IANA keys: ``Europe/Paris``, ``America/Argentina/Buenos_Aires``, ``Etc/GMT+5``, ``UTC``.
_ZONE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,29}(?:/[A-Za-z0-9][A-Za-z0-9_+\-]{0,29}){0,3}\Z")


def _enc_zone(tz: zoneinfo.ZoneInfo) -> str:
    key = tz.key
    if key is None or not _ZONE_KEY.match(key):
        raise EncodeError("a ZoneInfo read from a file (no IANA key) cannot be stored",
                          hint="use zoneinfo.ZoneInfo('<Area/City>') or a datetime.timezone")
    return key


def _dec_zone(state: Any, version: int) -> zoneinfo.ZoneInfo:
    key = _text(state, "ZoneInfo")
    if not _ZONE_KEY.match(key):  # never a path: no '.', no leading '/', no '\'
        raise ValueError(f"{key[:40]!r} is not an IANA time zone key")
    return zoneinfo.ZoneInfo(key)  # ZoneInfoNotFoundError is a KeyError: reported


# -- numbers -------------------------------------------------------------------------------
def _dec_decimal(state: Any, version: int) -> decimal.Decimal:
    text = _text(state, "Decimal")
    value = decimal.Decimal(text)  # exact: constructing from a string never rounds
    if str(value) != text:
        raise ValueError(f"{text[:40]!r} is not a Decimal in its canonical spelling")
    return value


def _terms(num: int, den: int) -> tuple[int, int]:
    """``(num, den)`` when each has at most ``sys.get_int_max_str_digits()`` digits, else a
    ValueError: ``Fraction(num, den)`` runs a quadratic gcd (two 3-million-bit terms: ~15 s).
    CPython's own bound, checked by ``str()`` before it converts anything; pickle writes a
    Fraction as that string, so no Fraction a pickle holds is refused."""
    str(num), str(den)
    return num, den


def _enc_fraction(f: fractions.Fraction) -> tuple:
    try:
        return _terms(f.numerator, f.denominator)
    except ValueError as exc:
        raise EncodeError(f"a Fraction term is too long: {exc}", hint="raise the bound with "
                          "sys.set_int_max_str_digits() where it is written and loaded") from None


def _dec_fraction(state: Any, version: int) -> fractions.Fraction:
    num, den = _terms(*_ints(_state(state, 2, "Fraction"), "Fraction"))
    if den <= 0:
        raise ValueError("a Fraction's denominator must be positive")
    value = fractions.Fraction(num, den)
    if value.denominator != den:
        raise ValueError("a Fraction state must be in lowest terms")
    return value


def _dec_complex(state: Any, version: int) -> complex:
    real, imag = _state(state, 2, "complex")
    if type(real) is not float or type(imag) is not float:
        raise TypeError("a complex state is (float real, float imag)")
    return complex(real, imag)


def _dec_uuid(state: Any, version: int) -> uuid.UUID:
    text = _text(state, "UUID")
    value = uuid.UUID(text)
    if str(value) != text:
        raise ValueError(f"{text[:40]!r} is not a UUID in its canonical spelling")
    return value


# -- paths ---------------------------------------------------------------------------------
def _path_codec(cls: type) -> Codec:
    name = f"pathlib.{cls.__name__}"

    def decode(state: Any, version: int) -> Any:
        try:
            return cls(_text(state, cls.__name__))  # a pure string operation: no file access
        except NotImplementedError as exc:  # WindowsPath on POSIX and vice versa
            raise ValueError(f"{exc}; load it as pathlib.Pure{cls.__name__}") from None

    own = f"{cls.__module__}.{cls.__qualname__}"  # pathlib._local.PosixPath on Python 3.13
    return Codec(name, tuple(dict.fromkeys((name, own))), 1, str, decode,
                 "a path is its string; building a path object touches no file")


# -- containers and other builtins ---------------------------------------------------------
def _dec_range(state: Any, version: int) -> range:
    return range(*_ints(_state(state, 3, "range"), "range"))  # step 0: ValueError


def _dec_slice(state: Any, version: int) -> slice:
    return slice(*_state(state, 3, "slice"))  # a slice only holds its three values


def _dec_bytearray(state: Any, version: int) -> bytearray:
    if type(state) is not bytes:
        raise TypeError("a bytearray state must be bytes")
    return bytearray(state)


#: What only an ``fn`` node builds (no codec returns one, and an ``obj`` node builds
#: instances of allowed classes): a value of one of these types in a built state went
#: through ``Policy.check_reference`` in the audit and ``resolve_reference`` in the build.
_REFERENCE_TYPES = (type, types.FunctionType, types.BuiltinFunctionType,
                    types.MethodDescriptorType, types.WrapperDescriptorType)


def _referenced(obj: Any) -> bool:
    """Whether ``obj`` is a function, class or numpy ufunc, held by an ``fn`` reference."""
    return isinstance(obj, _REFERENCE_TYPES) or type_name(type(obj)) == "numpy.ufunc"


def _fields(state: Any, keys: tuple[str, ...], what: str) -> tuple:
    """The values of a dict state with exactly ``keys``, or a TypeError."""
    if type(state) is not dict or state.keys() != set(keys):
        raise TypeError(f"a {what} state must be a dict of {', '.join(keys)}")
    return tuple(state[key] for key in keys)


def _enc_defaultdict(d: collections.defaultdict) -> dict:
    return {"factory": d.default_factory, "items": dict(d)}


def _dec_defaultdict(state: Any, version: int) -> collections.defaultdict:
    factory, items = _fields(state, ("factory", "items"), "defaultdict")
    if not (factory is None or _referenced(factory) or type(factory) is functools.partial):
        raise TypeError("a defaultdict factory must be None, a referenced function/class or "
                        "a functools.partial of one")
    if type(items) is not dict:
        raise TypeError("defaultdict items must be a dict")
    return collections.defaultdict(factory, items)  # stored, not called


def _dec_counter(state: Any, version: int) -> collections.Counter:
    if type(state) is not dict:
        raise TypeError("a Counter state must be a dict")
    counter: collections.Counter = collections.Counter()
    dict.update(counter, state)  # exactly the stored counts (no addition)
    return counter


def _enc_deque(d: collections.deque) -> dict:
    return {"items": list(d), "maxlen": d.maxlen}


def _dec_deque(state: Any, version: int) -> collections.deque:
    items, maxlen = _fields(state, ("items", "maxlen"), "deque")
    if type(items) is not list or not (maxlen is None or type(maxlen) is int):
        raise TypeError("a deque state is (list items, int maxlen or None)")
    if maxlen is not None and not 0 <= len(items) <= maxlen:
        raise ValueError("deque maxlen must be non-negative and hold every item")
    return collections.deque(items, maxlen)


def _enc_namespace(ns: types.SimpleNamespace) -> dict:
    return dict(vars(ns))


def _dec_namespace(state: Any, version: int) -> types.SimpleNamespace:
    if type(state) is not dict or not all(type(key) is str for key in state):
        raise TypeError("a SimpleNamespace state must be a dict with string keys")
    namespace = types.SimpleNamespace()
    vars(namespace).update(state)
    return namespace


# -- functions -----------------------------------------------------------------------------
_PARTIAL = ("func", "args", "keywords", "attrs")


def _enc_partial(p: functools.partial) -> dict:
    if not _referenced(p.func):
        raise EncodeError(f"a functools.partial of a {type_name(type(p.func))} cannot be stored: "
                          "its function is stored as a reference", hint="wrap a module-level "
                          "function or class (its name allowed as a kind='reference' rule)")
    return {"func": p.func, "args": p.args, "keywords": p.keywords, "attrs": dict(vars(p))}


def _str_keys(value: Any, what: str) -> dict:
    if type(value) is not dict or not all(type(key) is str for key in value):
        raise TypeError(f"a functools.partial's {what} must be a dict with string keys")
    return value


def _dec_partial(state: Any, version: int) -> functools.partial:
    func, args, keywords, attrs = _fields(state, _PARTIAL, "functools.partial")
    if not _referenced(func):  # an instance with __call__, another partial: not a reference
        raise TypeError("a functools.partial's func must be a referenced function or class")
    if type(args) is not tuple:
        raise TypeError("a functools.partial's args must be a tuple")
    value = functools.partial(func, *args, **_str_keys(keywords, "keywords"))
    vars(value).update(_str_keys(attrs, "attrs"))  # plain attributes (update_wrapper's)
    return value  # stored, never called: calling it is the caller's, as for any reference


def _codec(name: str, encode: Callable[[Any], Any], decode: Callable[[Any, int], Any],
           reason: str) -> Codec:
    return Codec(name, (name,), 1, encode, decode, reason)


CODECS: tuple[Codec, ...] = (
    _codec("datetime.date", _enc_date, _dec_date, "(year, month, day) integers"),
    _codec("datetime.time", _enc_time, _dec_time,
           "integer fields, a timezone/ZoneInfo value or None, and fold"),
    _codec("datetime.datetime", _enc_datetime, _dec_datetime,
           "integer fields, a timezone/ZoneInfo value or None, and fold"),
    _codec("datetime.timedelta", _enc_timedelta, _dec_timedelta,
           "(days, seconds, microseconds) integers"),
    _codec("datetime.timezone", _enc_timezone, _dec_timezone,
           "a fixed offset (timedelta) and an optional name"),
    _codec("zoneinfo.ZoneInfo", _enc_zone, _dec_zone,
           "an IANA key matched against a strict pattern, never a path; reads the system "
           "time zone database only"),
    _codec("decimal.Decimal", str, _dec_decimal,
           "its canonical string (exact digits, NaN, sNaN, Infinity)"),
    _codec("fractions.Fraction", _enc_fraction, _dec_fraction,
           "numerator and positive denominator in lowest terms"),
    _codec("builtins.complex", lambda z: (z.real, z.imag), _dec_complex,
           "(real, imag) floats: the manifest has no complex literal"),
    _codec("uuid.UUID", str, _dec_uuid, "its canonical 36-character string"),
    *(_path_codec(cls) for cls in (pathlib.PurePosixPath, pathlib.PureWindowsPath,
                                   pathlib.PosixPath, pathlib.WindowsPath)),
    _codec("builtins.range", lambda r: (r.start, r.stop, r.step), _dec_range,
           "(start, stop, step) integers; nothing is allocated"),
    _codec("builtins.slice", lambda s: (s.start, s.stop, s.step), _dec_slice,
           "its three stored values; a slice calls nothing"),
    _codec("builtins.bytearray", bytes, _dec_bytearray, "its bytes"),
    _codec("collections.defaultdict", _enc_defaultdict, _dec_defaultdict,
           "a factory the policy allowed as a reference (stored, never called on load) and "
           "its items"),
    _codec("collections.Counter", dict, _dec_counter, "its items and counts, as a dict"),
    _codec("collections.deque", _enc_deque, _dec_deque, "its items and maxlen"),
    _codec("types.SimpleNamespace", _enc_namespace, _dec_namespace,
           "its attributes, as a dict of string keys"),
    _codec("functools.partial", _enc_partial, _dec_partial,
           "a function or class held by reference (checked as a reference entry, never "
           "called on load), its arguments and keywords as stored values, and a dict of "
           "attributes; calling it later is what calling that reference with those values "
           "does"),
)
