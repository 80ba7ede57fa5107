"""Codecs for pandas.DataFrame and pandas.Series: an index, column states, labels, flags."""

from __future__ import annotations

from typing import Any

from ....errors import FormatError
from .arrays import decode_array, encode_array
from .state import checked_index, codec, fields, import_pandas

#: What a frame or series keeps besides its data: ``attrs`` and the duplicate-labels flag.
_FLAGS = {"attrs": None, "allows_duplicate_labels": None}


def _flags(obj: Any) -> dict:
    return {"attrs": obj.attrs, "allows_duplicate_labels": obj.flags.allows_duplicate_labels}


def _set_flags(obj: Any, state: dict, where: str) -> Any:
    if type(state["attrs"]) is not dict or type(state["allows_duplicate_labels"]) is not bool:
        raise FormatError(f"{where}: attrs must be a dict and allows_duplicate_labels a bool")
    obj.attrs = state["attrs"]
    obj.flags.allows_duplicate_labels = state["allows_duplicate_labels"]
    return obj


def _encode_frame(frame: Any) -> dict:
    columns = [encode_array(frame.iloc[:, i].array, f"column {i} ({label!r})")
               for i, label in enumerate(frame.columns)]
    return {"index": frame.index, "columns": frame.columns, "data": columns, **_flags(frame)}


@codec("DataFrame", _encode_frame,
       "index, column labels and one validated column state per column, assembled with "
       "pandas.DataFrame(dict of arrays); attrs and the duplicate-labels flag are plain data")
def _decode_frame(state: Any) -> Any:
    pd = import_pandas()
    fields(state, "pandas.DataFrame", {"index": None, "columns": None, "data": list, **_FLAGS})
    index = checked_index(state["index"], "pandas.DataFrame index")
    columns = checked_index(state["columns"], "pandas.DataFrame columns")
    if len(columns) != len(state["data"]):
        raise FormatError(f"pandas.DataFrame: {len(state['data'])} columns of data for "
                          f"{len(columns)} column labels")
    arrays = {}
    for i, column in enumerate(state["data"]):
        data = decode_array(column, f"pandas.DataFrame column {i}", len(index))
        if data.dtype == object:  # a bare object array would be inferred as strings
            data = pd.Series(data, index=index, dtype=object, copy=False)
        arrays[i] = data
    frame = pd.DataFrame(arrays, index=index, copy=False)
    frame.columns = columns
    return _set_flags(frame, state, "pandas.DataFrame")


def _encode_series(series: Any) -> dict:
    return {"data": encode_array(series.array, f"Series {series.name!r}"),
            "index": series.index, "name": series.name, **_flags(series)}


@codec("Series", _encode_series,
       "one validated column state, an index of the same length and a name, assembled "
       "with pandas.Series(...)")
def _decode_series(state: Any) -> Any:
    fields(state, "pandas.Series", {"data": dict, "index": None, "name": None, **_FLAGS})
    index = checked_index(state["index"], "pandas.Series index")
    data = decode_array(state["data"], "pandas.Series data", len(index))
    series = import_pandas().Series(data, index=index, dtype=data.dtype, name=state["name"],
                                    copy=False)
    return _set_flags(series, state, "pandas.Series")
