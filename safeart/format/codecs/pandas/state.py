"""What every pandas codec shares: checks of built state, time zones, and how a codec is
declared (:func:`codec`; the package's ``CODECS`` are the declared ones, in order)."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from typing import Any, Callable

import numpy as np

from ....errors import EncodeError, FormatError
from .. import Codec


#: The version every pandas codec writes and reads.
VERSION = 1
#: Time units of datetime64/timedelta64 values.
UNITS = ("s", "ms", "us", "ns")
#: Period and index frequencies: a count and an offset alias (``3D``, ``W-SUN``).
FREQ = re.compile(r"[0-9]{0,9}[A-Za-z]{1,8}(-[A-Za-z]{1,8})?")
_TZ_KEY = re.compile(r"[A-Za-z0-9_+\-]{1,32}(/[A-Za-z0-9_+\-]{1,32}){0,3}")


def import_pandas() -> Any:
    """pandas, imported on first use only (codec modules are imported eagerly)."""
    import pandas

    return pandas


# -- checking built state -------------------------------------------------------------------
def fields(state: Any, where: str, spec: dict[str, Any]) -> dict:
    """``state`` must be a dict with exactly the keys of ``spec``, each value of exactly its
    type (or one of a tuple of types; None: any value)."""
    if type(state) is not dict:
        raise FormatError(f"{where}: expected a dict, got {type(state).__name__}")
    if set(state) != set(spec):
        raise FormatError(f"{where}: fields {sorted(map(str, state))}, expected {sorted(spec)}")
    for key, types in spec.items():
        if types is not None and type(state[key]) not in (types if type(types) is tuple
                                                          else (types,)):
            raise FormatError(f"{where}: field {key!r} is a {type(state[key]).__name__}")
    return state


def checked_array(value: Any, where: str, dtype: str, length: int | None) -> np.ndarray:
    """A 1-D numpy array of ``length`` whose dtype is named ``dtype`` (a name from the
    codecs' tables) or, for ``dtype="int"``, any signed integer dtype."""
    if type(value) is not np.ndarray or value.ndim != 1:
        raise FormatError(f"{where}: expected a 1-D numpy array, got {type(value).__name__}")
    ok = value.dtype.kind == "i" if dtype == "int" else value.dtype == np.dtype(dtype)
    if not ok or not value.dtype.isnative:
        raise FormatError(f"{where}: array of dtype {value.dtype}, expected {dtype}")
    if length is not None and len(value) != length:
        raise FormatError(f"{where}: {len(value)} values for an index of length {length}")
    return value


def checked_index(value: Any, where: str) -> Any:
    """``value``, which must be a pandas Index (already built by its own codec)."""
    if not isinstance(value, import_pandas().Index):
        raise FormatError(f"{where}: expected a pandas Index, got {type(value).__name__}")
    return value


def checked_unit(state: dict, where: str) -> str:
    """``state["unit"]``, which must be one of :data:`UNITS`."""
    unit = state["unit"]
    if unit not in UNITS:
        raise FormatError(f"{where}: unit {unit[:20]!r} is not one of {UNITS}")
    return unit


# -- time zones (a datetimetz column, a Timestamp) --------------------------------------------
def encode_tz(tz: Any, where: str) -> dict:
    """A zoneinfo zone as its IANA key, a fixed offset as microseconds and a name."""
    if type(tz) is zoneinfo.ZoneInfo and tz.key is not None and _TZ_KEY.fullmatch(tz.key):
        return {"zone": tz.key}
    if type(tz) is datetime.timezone:
        offset, *name = tz.__getinitargs__()
        return {"offset_us": offset // datetime.timedelta(microseconds=1),
                "name": name[0] if name else None}
    raise EncodeError(f"{where}: time zone {tz!r} ({type(tz).__module__}) cannot be stored",
                      hint="use a zoneinfo zone or a fixed offset: .dt.tz_convert('Europe/Paris')")


def decode_tz(state: dict, where: str) -> Any:
    """The time zone :func:`encode_tz` stored: a key matched against a strict pattern (never
    a path) or a fixed offset."""
    if set(state) == {"zone"}:
        key = state["zone"]
        if type(key) is not str or not _TZ_KEY.fullmatch(key):
            raise FormatError(f"{where}: {str(key)[:80]!r} is not an IANA time zone name")
        try:
            return zoneinfo.ZoneInfo(key)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise FormatError(f"{where}: unknown time zone {key!r}",
                              hint="install tzdata (pip install tzdata)") from exc
    fields(state, where, {"offset_us": int, "name": (str, type(None))})
    offset = datetime.timedelta(microseconds=state["offset_us"])
    if state["name"] is None:
        return datetime.timezone(offset)
    return datetime.timezone(offset, state["name"])


# -- declaring codecs ---------------------------------------------------------------------------
#: The codecs the package's modules declare, in declaration order.
DECLARED: list[Codec] = []

_PANDAS2_MODULES = {  # where pandas 2 defines each class (pandas 3 says "pandas")
    "DataFrame": "core.frame", "Series": "core.series", "Index": "core.indexes.base",
    "RangeIndex": "core.indexes.range", "MultiIndex": "core.indexes.multi",
    "DatetimeIndex": "core.indexes.datetimes", "TimedeltaIndex": "core.indexes.timedeltas",
    "PeriodIndex": "core.indexes.period", "CategoricalIndex": "core.indexes.category",
    "IntervalIndex": "core.indexes.interval", "Timestamp": "_libs.tslibs.timestamps",
    "Timedelta": "_libs.tslibs.timedeltas",
}


def declare(name: str, encode: Callable[[Any], Any], decode: Callable[[Any], Any], reason: str,
            pandas2: str | None = None) -> None:
    """Declare the codec ``name`` (``pandas.X``): ``decode`` gets the built state once the
    version is known. It encodes exactly the type ``name`` and its pandas 2 path
    (``pandas2``, by default from :data:`_PANDAS2_MODULES`)."""
    short = name.rsplit(".", 1)[-1]
    types = (name, pandas2 or f"pandas.{_PANDAS2_MODULES[short]}.{short}")

    def decode_version(state: Any, version: int) -> Any:
        if version != VERSION:
            raise FormatError(f"{name} codec version {version} is unknown (reads {VERSION})")
        return decode(state)

    DECLARED.append(Codec(name, types, VERSION, encode, decode_version, reason))


def codec(cls: str, encode: Callable[[Any], Any], reason: str
          ) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Decorator: the function decodes the state ``encode`` writes for ``pandas.<cls>``."""
    def decorate(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
        declare(f"pandas.{cls}", encode, decode, reason)
        return decode
    return decorate
