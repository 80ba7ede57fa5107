"""Codecs for pandas scalars (a Series name, an object column's elements): Timestamp,
Timedelta, and the NaT and NA singletons."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ....errors import FormatError
from .state import checked_unit, codec, declare, decode_tz, encode_tz, fields, import_pandas


def _encode_timestamp(value: Any) -> dict:
    tz = None if value.tz is None else encode_tz(value.tz, "Timestamp")
    return {"value": int(value.asm8.view("i8")), "unit": value.unit, "tz": tz}


@codec("Timestamp", _encode_timestamp,
       "an int64 count of a unit from a fixed table and a time zone (IANA key or fixed "
       "offset), rebuilt with pandas.Timestamp(numpy.datetime64(...))")
def _decode_timestamp(state: Any) -> Any:
    fields(state, "pandas.Timestamp", {"value": int, "unit": str, "tz": (dict, type(None))})
    unit = checked_unit(state, "pandas.Timestamp")
    value = import_pandas().Timestamp(np.datetime64(state["value"], unit))  # UTC if tz-aware
    if state["tz"] is None:
        return value
    return value.tz_localize("UTC").tz_convert(decode_tz(state["tz"], "pandas.Timestamp tz"))


def _encode_timedelta(value: Any) -> dict:
    return {"value": int(value.asm8.view("i8")), "unit": value.unit}


@codec("Timedelta", _encode_timedelta,
       "an int64 count of a unit from a fixed table, rebuilt with "
       "pandas.Timedelta(numpy.timedelta64(...))")
def _decode_timedelta(state: Any) -> Any:
    fields(state, "pandas.Timedelta", {"value": int, "unit": str})
    unit = checked_unit(state, "pandas.Timedelta")
    return import_pandas().Timedelta(np.timedelta64(state["value"], unit))


def _singleton(name: str) -> Callable[[Any], Any]:
    def decode(state: Any) -> Any:
        if state is not None:
            raise FormatError(f"pandas.api.typing.{name}Type: the state of pandas.{name} is None")
        return import_pandas().NaT if name == "NaT" else import_pandas().NA
    return decode


def _declare_singletons() -> None:
    for name, pandas2 in (("NaT", "pandas._libs.tslibs.nattype.NaTType"),
                          ("NA", "pandas._libs.missing.NAType")):
        declare(f"pandas.api.typing.{name}Type", lambda value: None, _singleton(name),
                f"the pandas.{name} singleton; no state", pandas2)


_declare_singletons()
