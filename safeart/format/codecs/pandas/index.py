"""Codecs for the pandas Index types: RangeIndex (three integers), MultiIndex (levels and
codes) and the index types over one column state (Index, DatetimeIndex, ...)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ....errors import FormatError
from .arrays import decode_array, encode_array
from .state import FREQ, checked_array, checked_index, codec, declare, fields, import_pandas


def _encode_range(index: Any) -> dict:
    return {"start": index.start, "stop": index.stop, "step": index.step, "name": index.name}


@codec("RangeIndex", _encode_range,
       "three integers and a name; pandas.RangeIndex is lazy, so nothing is allocated")
def _decode_range(state: Any) -> Any:
    fields(state, "pandas.RangeIndex", {"start": int, "stop": int, "step": int, "name": None})
    if not state["step"]:
        raise FormatError("pandas.RangeIndex: step is 0")
    return import_pandas().RangeIndex(state["start"], state["stop"], state["step"],
                                      name=state["name"])


def _encode_multi(index: Any) -> dict:
    return {"levels": list(index.levels), "codes": [np.asarray(c) for c in index.codes],
            "names": list(index.names)}


@codec("MultiIndex", _encode_multi,
       "levels (Index values), integer codes and names, checked by "
       "pandas.MultiIndex(..., verify_integrity=True)")
def _decode_multi(state: Any) -> Any:
    fields(state, "pandas.MultiIndex", {"levels": list, "codes": list, "names": list})
    levels, codes, names = state["levels"], state["codes"], state["names"]
    if not levels or not len(levels) == len(codes) == len(names):
        raise FormatError("pandas.MultiIndex: needs as many codes and names as levels (>= 1)")
    levels = [checked_index(level, f"pandas.MultiIndex level {i}")
              for i, level in enumerate(levels)]
    codes = [checked_array(c, f"pandas.MultiIndex codes {i}", "int", len(codes[0]))
             for i, c in enumerate(codes)]
    return import_pandas().MultiIndex(levels=levels, codes=codes, names=names,
                                      verify_integrity=True)


def _encode_index(index: Any) -> dict:
    pd = import_pandas()
    state = {"data": encode_array(index.array, "index"), "name": index.name}
    if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)):  # and their freq
        state["freq"] = index.freqstr
    return state


def _index_decoder(cls_name: str) -> Callable[[Any], Any]:
    def decode(state: Any) -> Any:
        pd = import_pandas()
        with_freq = cls_name in ("DatetimeIndex", "TimedeltaIndex")
        spec = {"data": dict, "name": None, **({"freq": (str, type(None))} if with_freq else {})}
        fields(state, f"pandas.{cls_name}", spec)
        data = decode_array(state["data"], f"pandas.{cls_name} data", None)
        cls = getattr(pd, cls_name)  # a name from this module's own table, never the state
        if with_freq:
            freq = state["freq"]
            if freq is not None and not FREQ.fullmatch(freq):
                raise FormatError(f"pandas.{cls_name}: {freq[:40]!r} is not a frequency")
            index = cls(data, freq=freq, name=state["name"])
        else:
            index = pd.Index(data, name=state["name"], dtype=data.dtype, copy=False)
        if type(index) is not cls:
            raise FormatError(f"pandas.{cls_name}: the data makes a {type(index).__name__}")
        return index
    return decode


_INDEX_REASON = ("a {what} rebuilt with pandas.{cls}(...) from validated column state (arrays "
                 "of dtypes from a fixed table, lengths checked); no name is taken from the blob")


def _declare_column_indexes() -> None:
    for cls, what in (("Index", "plain index"), ("DatetimeIndex", "datetime index"),
                      ("TimedeltaIndex", "timedelta index"), ("PeriodIndex", "period index"),
                      ("CategoricalIndex", "categorical index"),
                      ("IntervalIndex", "interval index")):
        declare(f"pandas.{cls}", _encode_index, _index_decoder(cls),
                _INDEX_REASON.format(what=what, cls=cls))


_declare_column_indexes()
