"""Codecs for pandas: DataFrame, Series and the Index types, without pickle.

A frame is stored as its index, its column labels (an Index) and one *column state* per
column: a plain dict naming the dtype (a name from the fixed table :data:`DTYPE_KINDS`) and
holding numpy arrays the safetensors container stores as they are (numeric, bool,
datetime64/timedelta64 values, nullable values plus mask, categorical codes, period ordinals,
UTF-8 text plus offsets for strings). ``object`` columns are lists whose elements the format
stores as values. Nothing pandas-internal (blocks, managers, module paths) is recorded, so
the state reads the same on pandas 2 and 3 and the auditor sees every part of it.

Decoding treats the state as hostile: every field, type, dtype and length is checked (values
as long as the index, codes within their categories, offsets inside the text, time zones as
IANA keys or fixed offsets, never paths) and the objects are built with pandas' public
constructors. No name is looked up from the state. pandas is imported on first use only.
"""

from __future__ import annotations

import datetime
import decimal
import re
import zoneinfo
from typing import Any

import numpy as np

from ...errors import EncodeError, FormatError
from . import Codec

__all__ = ["CODECS", "DTYPE_KINDS"]

VERSION = 1
_UNITS = ("s", "ms", "us", "ns")
#: numpy dtypes a column may have, by their name (native byte order).
_NUMPY_DTYPES = frozenset(
    ["bool", "float16", "float32", "float64", "complex64", "complex128"]
    + [f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)]
    + [f"{k}64[{u}]" for k in ("datetime", "timedelta") for u in _UNITS])
#: pandas nullable dtypes: name -> numpy dtype of the values beside the mask.
_MASKED_DTYPES = {
    **{f"{s}Int{b}": f"{s.lower()}int{b}" for s in ("", "U") for b in (8, 16, 32, 64)},
    "Float32": "float32", "Float64": "float64", "boolean": "bool",
}
#: string dtypes: name -> (storage, NA is NaN). "str" is pandas 3's default string dtype.
_STRING_DTYPES = {"string[python]": ("python", False), "string[pyarrow]": ("pyarrow", False),
                  "str[python]": ("python", True), "str[pyarrow]": ("pyarrow", True)}
#: Every dtype name a column state may carry, and the kind of state that goes with it.
DTYPE_KINDS: dict[str, str] = {
    **dict.fromkeys(_NUMPY_DTYPES, "numpy"), **dict.fromkeys(_MASKED_DTYPES, "masked"),
    **dict.fromkeys(_STRING_DTYPES, "string"), "object": "object", "category": "category",
    "datetimetz": "datetimetz", "period": "period", "interval": "interval",
}
_CLOSED = frozenset(("left", "right", "both", "neither"))
_TZ_KEY = re.compile(r"[A-Za-z0-9_+\-]{1,32}(/[A-Za-z0-9_+\-]{1,32}){0,3}")
_FREQ = re.compile(r"[0-9]{0,9}[A-Za-z]{1,8}(-[A-Za-z]{1,8})?")
#: Element types an ``object`` column may hold besides numpy scalars and codec values.
_PLAIN = frozenset((type(None), bool, int, float, complex, str, bytes, list, tuple, dict,
                    decimal.Decimal, datetime.datetime, datetime.date, datetime.time,
                    datetime.timedelta))
_UNSUPPORTED = ("convert it to a numpy, nullable (Int64, boolean ...), string, categorical, "
                "datetime, timedelta, period or interval dtype with .astype(...)")


def _pd() -> Any:
    import pandas

    return pandas


# -- checking built state -------------------------------------------------------------------
def _fields(state: Any, where: str, spec: dict[str, Any]) -> dict:
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


def _array(value: Any, where: str, dtype: str, length: int | None) -> np.ndarray:
    """A 1-D numpy array of ``length`` whose dtype is named ``dtype`` (a name from this
    module's tables) or, for ``dtype="int"``, any signed integer dtype."""
    if type(value) is not np.ndarray or value.ndim != 1:
        raise FormatError(f"{where}: expected a 1-D numpy array, got {type(value).__name__}")
    ok = value.dtype.kind == "i" if dtype == "int" else value.dtype == np.dtype(dtype)
    if not ok or not value.dtype.isnative:
        raise FormatError(f"{where}: array of dtype {value.dtype}, expected {dtype}")
    if length is not None and len(value) != length:
        raise FormatError(f"{where}: {len(value)} values for an index of length {length}")
    return value


def _index(value: Any, where: str) -> Any:
    if not isinstance(value, _pd().Index):
        raise FormatError(f"{where}: expected a pandas Index, got {type(value).__name__}")
    return value


def _check_version(version: int, name: str) -> None:
    if version != VERSION:
        raise FormatError(f"{name} codec version {version} is unknown (reads {VERSION})")


# -- columns: encode --------------------------------------------------------------------------
def encode_array(values: Any, where: str) -> dict:
    """The column state of a pandas array (``Series.array``, ``Index.array``)."""
    pd = _pd()
    if type(values) is pd.arrays.NumpyExtensionArray:  # (StringArray is a subclass)
        values = values.to_numpy()  # the ndarray it wraps, not a copy
    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "O":
            return {"dtype": "object", "values": _object_values(np.asarray(values), where)}
        array = np.asarray(values)
        if dtype.name in _NUMPY_DTYPES:
            return {"dtype": dtype.name, "values": array.astype(dtype.newbyteorder("="),
                                                                copy=False)}
    elif isinstance(dtype, pd.StringDtype):
        return _encode_strings(values, dtype)
    elif isinstance(dtype, pd.CategoricalDtype):
        return {"dtype": "category", "codes": np.asarray(values.codes),
                "categories": values.categories, "ordered": bool(values.ordered)}
    elif isinstance(dtype, pd.DatetimeTZDtype):
        return {"dtype": "datetimetz", "unit": dtype.unit, "tz": _encode_tz(dtype.tz, where),
                "values": values.asi8.view(f"M8[{dtype.unit}]")}
    elif isinstance(dtype, pd.PeriodDtype):
        freq = str(dtype)[len("period["):-1]
        if pd.PeriodDtype(freq) != dtype:
            raise EncodeError(f"{where}: period frequency {freq!r} does not round-trip")
        return {"dtype": "period", "freq": freq, "values": values.asi8}
    elif isinstance(dtype, pd.IntervalDtype):
        return {"dtype": "interval", "closed": values.closed,
                "left": encode_array(values.left.array, where),
                "right": encode_array(values.right.array, where)}
    elif str(dtype) in _MASKED_DTYPES:
        fill = np.zeros((), _MASKED_DTYPES[str(dtype)])[()]
        return {"dtype": str(dtype), "mask": np.asarray(values.isna()),
                "values": values.to_numpy(dtype=_MASKED_DTYPES[str(dtype)], na_value=fill)}
    raise EncodeError(f"{where}: dtype {dtype} cannot be stored", hint=_UNSUPPORTED)


def _encode_strings(values: Any, dtype: Any) -> dict:
    storage = "pyarrow" if dtype.storage.startswith("pyarrow") else dtype.storage
    nan_na = dtype.storage == "pyarrow_numpy" or getattr(dtype, "na_value", None) is not _pd().NA
    texts = values.to_numpy(dtype=object, na_value="")
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=offsets[1:])
    return {"dtype": f"{'str' if nan_na else 'string'}[{storage}]", "text": "".join(texts),
            "offsets": offsets, "mask": np.asarray(values.isna())}


def _encode_tz(tz: Any, where: str) -> dict:
    if type(tz) is zoneinfo.ZoneInfo and tz.key is not None and _TZ_KEY.fullmatch(tz.key):
        return {"zone": tz.key}
    if type(tz) is datetime.timezone:
        offset, *name = tz.__getinitargs__()
        return {"offset_us": offset // datetime.timedelta(microseconds=1),
                "name": name[0] if name else None}
    raise EncodeError(f"{where}: time zone {tz!r} ({type(tz).__module__}) cannot be stored",
                      hint="use a zoneinfo zone or a fixed offset: .dt.tz_convert('Europe/Paris')")


def _object_values(array: np.ndarray, where: str) -> list:
    from . import codec_for_type

    values = array.tolist() if array.dtype.kind != "O" else list(array)
    for i, value in enumerate(values):
        cls = type(value)
        if cls not in _PLAIN and not isinstance(value, np.generic) and codec_for_type(cls) is None:
            raise EncodeError(
                f"{where}: object value [{i}] is a {cls.__module__}.{cls.__qualname__}, which an "
                "object column cannot hold", hint=f"store plain values, or {_UNSUPPORTED}")
    return values


# -- columns: decode --------------------------------------------------------------------------
def decode_array(state: Any, where: str, length: int | None) -> Any:
    """Rebuild a pandas array from a column state (``length``: the index length, if known)."""
    if type(state) is not dict or type(state.get("dtype")) is not str:
        raise FormatError(f"{where}: expected a column state with a 'dtype' name")
    name = state["dtype"]
    kind = DTYPE_KINDS.get(name)
    if kind is None:
        raise FormatError(f"{where}: dtype {name[:40]!r} is not one safeart reads")
    return _DECODERS[kind](state, f"{where} ({name})", length)


def _decode_numpy(state: dict, where: str, length: int | None) -> Any:
    _fields(state, where, {"dtype": str, "values": np.ndarray})
    return _array(state["values"], where, state["dtype"], length)


def _decode_object(state: dict, where: str, length: int | None) -> Any:
    values = _fields(state, where, {"dtype": str, "values": list})["values"]
    if length is not None and len(values) != length:
        raise FormatError(f"{where}: {len(values)} values for an index of length {length}")
    return np.fromiter(values, dtype=object, count=len(values))


def _decode_masked(state: dict, where: str, length: int | None) -> Any:
    arrays = _pd().arrays
    _fields(state, where, {"dtype": str, "values": np.ndarray, "mask": np.ndarray})
    values = _array(state["values"], where, _MASKED_DTYPES[state["dtype"]], length)
    mask = _array(state["mask"], f"{where} mask", "bool", len(values))
    cls = {"b": arrays.BooleanArray, "f": arrays.FloatingArray}.get(values.dtype.kind,
                                                                     arrays.IntegerArray)
    return cls(values, mask)


def _decode_strings(state: dict, where: str, length: int | None) -> Any:
    pd = _pd()
    spec = {"dtype": str, "text": str, "offsets": np.ndarray, "mask": np.ndarray}
    text = _fields(state, where, spec)["text"]
    offsets = _array(state["offsets"], f"{where} offsets", "int64", None)
    count = len(offsets) - 1
    if count < 0 or (length is not None and count != length):
        raise FormatError(f"{where}: {len(offsets)} offsets for an index of length {length}")
    mask = _array(state["mask"], f"{where} mask", "bool", count)
    if offsets[0] != 0 or offsets[-1] != len(text) or (np.diff(offsets) < 0).any():
        raise FormatError(f"{where}: offsets are not increasing from 0 to the text length")
    values = _split(text, offsets)
    storage, nan_na = _STRING_DTYPES[state["dtype"]]
    values[mask] = None
    return pd.array(values, dtype=_string_dtype(pd, storage, nan_na, where))


def _split(text: str, offsets: np.ndarray) -> np.ndarray:
    """The strings ``text[offsets[i]:offsets[i + 1]]`` as an object array (offsets checked).

    When the longest string is at most twice the mean length, numpy builds them in C from a
    padded UTF-32 array (about 3x faster than slicing in Python; the padding is bounded by
    twice the text's own size). Strings ending in NUL, which numpy would strip, are sliced.
    """
    lengths = np.diff(offsets)
    count, width = len(lengths), int(lengths.max(initial=0))
    if width and width * count <= 2 * len(text) + 4096:
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        if not (points[offsets[1:][lengths > 0] - 1] == 0).any():
            padded = np.zeros((count, width), np.uint32)
            padded[np.arange(width) < lengths[:, None]] = points
            return padded.view(f"<U{width}").reshape(count).astype(object)
    bounds = offsets.tolist()
    return np.fromiter(map(text.__getitem__, map(slice, bounds[:-1], bounds[1:])),
                       dtype=object, count=count)


def _string_dtype(pd: Any, storage: str, nan_na: bool, where: str) -> Any:
    try:
        return pd.StringDtype(storage, na_value=np.nan if nan_na else pd.NA)
    except TypeError:  # pandas 2.2: no na_value; its NaN string dtype is "pyarrow_numpy"
        if not nan_na:
            return pd.StringDtype(storage)
        if storage == "pyarrow":
            return pd.StringDtype("pyarrow_numpy")
    except ImportError as exc:  # storage "pyarrow" without pyarrow
        raise FormatError(f"{where}: this column needs pyarrow", hint="pip install pyarrow") from exc
    raise FormatError(f"{where}: this pandas has no python-backed NaN string dtype",
                      hint="upgrade to pandas 3")


def _decode_category(state: dict, where: str, length: int | None) -> Any:
    pd = _pd()
    spec = {"dtype": str, "codes": np.ndarray, "categories": None, "ordered": bool}
    _fields(state, where, spec)
    codes = _array(state["codes"], f"{where} codes", "int", length)
    categories = _index(state["categories"], f"{where} categories")
    if len(codes) and not -1 <= codes.min() <= codes.max() < len(categories):
        raise FormatError(f"{where}: codes outside [-1, {len(categories)})")
    dtype = pd.CategoricalDtype(categories, ordered=state["ordered"])
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _decode_datetimetz(state: dict, where: str, length: int | None) -> Any:
    spec = {"dtype": str, "unit": str, "tz": dict, "values": np.ndarray}
    _fields(state, where, spec)
    if state["unit"] not in _UNITS:
        raise FormatError(f"{where}: unit {state['unit'][:20]!r} is not one of {_UNITS}")
    values = _array(state["values"], where, f"M8[{state['unit']}]", length)
    tz = _decode_tz(state["tz"], f"{where} tz")
    return _pd().array(values).tz_localize("UTC").tz_convert(tz)


def _decode_tz(state: dict, where: str) -> Any:
    if set(state) == {"zone"}:
        key = state["zone"]
        if type(key) is not str or not _TZ_KEY.fullmatch(key):
            raise FormatError(f"{where}: {str(key)[:80]!r} is not an IANA time zone name")
        try:
            return zoneinfo.ZoneInfo(key)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise FormatError(f"{where}: unknown time zone {key!r}",
                              hint="install tzdata (pip install tzdata)") from exc
    _fields(state, where, {"offset_us": int, "name": (str, type(None))})
    offset = datetime.timedelta(microseconds=state["offset_us"])
    if state["name"] is None:
        return datetime.timezone(offset)
    return datetime.timezone(offset, state["name"])


def _decode_period(state: dict, where: str, length: int | None) -> Any:
    pd = _pd()
    freq = _fields(state, where, {"dtype": str, "freq": str, "values": np.ndarray})["freq"]
    if not _FREQ.fullmatch(freq):
        raise FormatError(f"{where}: {freq[:40]!r} is not a period frequency")
    values = _array(state["values"], where, "int64", length)
    return pd.arrays.PeriodArray(values, dtype=pd.PeriodDtype(freq))


def _decode_interval(state: dict, where: str, length: int | None) -> Any:
    pd = _pd()
    spec = {"dtype": str, "closed": str, "left": dict, "right": dict}
    closed = _fields(state, where, spec)["closed"]
    if closed not in _CLOSED:
        raise FormatError(f"{where}: closed={closed[:20]!r} is not one of {sorted(_CLOSED)}")
    left = decode_array(state["left"], f"{where} left", length)
    right = decode_array(state["right"], f"{where} right", len(left))
    return pd.arrays.IntervalArray.from_arrays(left, right, closed=closed)


_DECODERS = {"numpy": _decode_numpy, "object": _decode_object, "masked": _decode_masked,
             "string": _decode_strings, "category": _decode_category,
             "datetimetz": _decode_datetimetz, "period": _decode_period,
             "interval": _decode_interval}


# -- Index types --------------------------------------------------------------------------------
def _encode_index(index: Any) -> dict:
    state = {"data": encode_array(index.array, "index"), "name": index.name}
    if isinstance(index, (_pd().DatetimeIndex, _pd().TimedeltaIndex)):  # and their freq
        state["freq"] = index.freqstr
    return state


def _index_decoder(cls_name: str) -> Any:
    def decode(state: Any, version: int) -> Any:
        pd = _pd()
        _check_version(version, f"pandas.{cls_name}")
        with_freq = cls_name in ("DatetimeIndex", "TimedeltaIndex")
        spec = {"data": dict, "name": None, **({"freq": (str, type(None))} if with_freq else {})}
        _fields(state, f"pandas.{cls_name}", spec)
        data = decode_array(state["data"], f"pandas.{cls_name} data", None)
        cls = getattr(pd, cls_name)  # a name from this module's own table, never the state
        if with_freq:
            freq = state["freq"]
            if freq is not None and not _FREQ.fullmatch(freq):
                raise FormatError(f"pandas.{cls_name}: {freq[:40]!r} is not a frequency")
            index = cls(data, freq=freq, name=state["name"])
        else:
            index = pd.Index(data, name=state["name"], dtype=data.dtype, copy=False)
        if type(index) is not cls:
            raise FormatError(f"pandas.{cls_name}: the data makes a {type(index).__name__}")
        return index
    return decode


def _encode_range(index: Any) -> dict:
    return {"start": index.start, "stop": index.stop, "step": index.step, "name": index.name}


def _decode_range(state: Any, version: int) -> Any:
    _check_version(version, "pandas.RangeIndex")
    _fields(state, "pandas.RangeIndex", {"start": int, "stop": int, "step": int, "name": None})
    if not state["step"]:
        raise FormatError("pandas.RangeIndex: step is 0")
    return _pd().RangeIndex(state["start"], state["stop"], state["step"], name=state["name"])


def _encode_multi(index: Any) -> dict:
    return {"levels": list(index.levels), "codes": [np.asarray(c) for c in index.codes],
            "names": list(index.names)}


def _decode_multi(state: Any, version: int) -> Any:
    _check_version(version, "pandas.MultiIndex")
    _fields(state, "pandas.MultiIndex", {"levels": list, "codes": list, "names": list})
    levels, codes, names = state["levels"], state["codes"], state["names"]
    if not levels or not len(levels) == len(codes) == len(names):
        raise FormatError("pandas.MultiIndex: needs as many codes and names as levels (>= 1)")
    levels = [_index(level, f"pandas.MultiIndex level {i}") for i, level in enumerate(levels)]
    codes = [_array(c, f"pandas.MultiIndex codes {i}", "int", len(codes[0]))
             for i, c in enumerate(codes)]
    return _pd().MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=True)


# -- Series and DataFrame -----------------------------------------------------------------------
def _flags(obj: Any) -> dict:
    return {"attrs": obj.attrs, "allows_duplicate_labels": obj.flags.allows_duplicate_labels}


def _set_flags(obj: Any, state: dict, where: str) -> Any:
    if type(state["attrs"]) is not dict or type(state["allows_duplicate_labels"]) is not bool:
        raise FormatError(f"{where}: attrs must be a dict and allows_duplicate_labels a bool")
    obj.attrs = state["attrs"]
    obj.flags.allows_duplicate_labels = state["allows_duplicate_labels"]
    return obj


def _encode_series(series: Any) -> dict:
    return {"data": encode_array(series.array, f"Series {series.name!r}"),
            "index": series.index, "name": series.name, **_flags(series)}


def _decode_series(state: Any, version: int) -> Any:
    _check_version(version, "pandas.Series")
    spec = {"data": dict, "index": None, "name": None, "attrs": None,
            "allows_duplicate_labels": None}
    _fields(state, "pandas.Series", spec)
    index = _index(state["index"], "pandas.Series index")
    data = decode_array(state["data"], "pandas.Series data", len(index))
    series = _pd().Series(data, index=index, dtype=data.dtype, name=state["name"], copy=False)
    return _set_flags(series, state, "pandas.Series")


def _encode_frame(frame: Any) -> dict:
    columns = [encode_array(frame.iloc[:, i].array, f"column {i} ({label!r})")
               for i, label in enumerate(frame.columns)]
    return {"index": frame.index, "columns": frame.columns, "data": columns, **_flags(frame)}


def _decode_frame(state: Any, version: int) -> Any:
    pd = _pd()
    _check_version(version, "pandas.DataFrame")
    spec = {"index": None, "columns": None, "data": list, "attrs": None,
            "allows_duplicate_labels": None}
    _fields(state, "pandas.DataFrame", spec)
    index = _index(state["index"], "pandas.DataFrame index")
    columns = _index(state["columns"], "pandas.DataFrame columns")
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


# -- scalars (Series names, object columns) ------------------------------------------------------
def _encode_timestamp(value: Any) -> dict:
    tz = None if value.tz is None else _encode_tz(value.tz, "Timestamp")
    return {"value": int(value.asm8.view("i8")), "unit": value.unit, "tz": tz}


def _decode_timestamp(state: Any, version: int) -> Any:
    _check_version(version, "pandas.Timestamp")
    _fields(state, "pandas.Timestamp", {"value": int, "unit": str, "tz": (dict, type(None))})
    if state["unit"] not in _UNITS:
        raise FormatError(f"pandas.Timestamp: unit {state['unit'][:20]!r} is not one of {_UNITS}")
    value = _pd().Timestamp(np.datetime64(state["value"], state["unit"]))  # UTC if tz-aware
    if state["tz"] is None:
        return value
    return value.tz_localize("UTC").tz_convert(_decode_tz(state["tz"], "pandas.Timestamp tz"))


def _encode_timedelta(value: Any) -> dict:
    return {"value": int(value.asm8.view("i8")), "unit": value.unit}


def _decode_timedelta(state: Any, version: int) -> Any:
    _check_version(version, "pandas.Timedelta")
    _fields(state, "pandas.Timedelta", {"value": int, "unit": str})
    if state["unit"] not in _UNITS:
        raise FormatError(f"pandas.Timedelta: unit {state['unit'][:20]!r} is not one of {_UNITS}")
    return _pd().Timedelta(np.timedelta64(state["value"], state["unit"]))


def _singleton(name: str) -> Any:
    def decode(state: Any, version: int) -> Any:
        _check_version(version, f"pandas.api.typing.{name}Type")
        if state is not None:
            raise FormatError(f"pandas.api.typing.{name}Type: the state of pandas.{name} is None")
        return _pd().NaT if name == "NaT" else _pd().NA
    return decode


# -- the codecs ---------------------------------------------------------------------------------
_PANDAS2_MODULES = {  # where pandas 2 defines each class (pandas 3 says "pandas")
    "DataFrame": "core.frame", "Series": "core.series", "Index": "core.indexes.base",
    "RangeIndex": "core.indexes.range", "MultiIndex": "core.indexes.multi",
    "DatetimeIndex": "core.indexes.datetimes", "TimedeltaIndex": "core.indexes.timedeltas",
    "PeriodIndex": "core.indexes.period", "CategoricalIndex": "core.indexes.category",
    "IntervalIndex": "core.indexes.interval", "Timestamp": "_libs.tslibs.timestamps",
    "Timedelta": "_libs.tslibs.timedeltas",
}
_INDEX_REASON = ("a {what} rebuilt with pandas.{cls}(...) from validated column state (arrays "
                 "of dtypes from a fixed table, lengths checked); no name is taken from the blob")


def _codec(cls: str, encode: Any, decode: Any, reason: str) -> Codec:
    types = (f"pandas.{cls}", f"pandas.{_PANDAS2_MODULES[cls]}.{cls}")
    return Codec(f"pandas.{cls}", types, VERSION, encode, decode, reason)


CODECS: tuple[Codec, ...] = (
    _codec("DataFrame", _encode_frame, _decode_frame,
           "index, column labels and one validated column state per column, assembled with "
           "pandas.DataFrame(dict of arrays); attrs and the duplicate-labels flag are plain data"),
    _codec("Series", _encode_series, _decode_series,
           "one validated column state, an index of the same length and a name, assembled "
           "with pandas.Series(...)"),
    _codec("RangeIndex", _encode_range, _decode_range,
           "three integers and a name; pandas.RangeIndex is lazy, so nothing is allocated"),
    _codec("MultiIndex", _encode_multi, _decode_multi,
           "levels (Index values), integer codes and names, checked by "
           "pandas.MultiIndex(..., verify_integrity=True)"),
    *(_codec(cls, _encode_index, _index_decoder(cls), _INDEX_REASON.format(what=what, cls=cls))
      for cls, what in (("Index", "plain index"), ("DatetimeIndex", "datetime index"),
                        ("TimedeltaIndex", "timedelta index"), ("PeriodIndex", "period index"),
                        ("CategoricalIndex", "categorical index"),
                        ("IntervalIndex", "interval index"))),
    _codec("Timestamp", _encode_timestamp, _decode_timestamp,
           "an int64 count of a unit from a fixed table and a time zone (IANA key or fixed "
           "offset), rebuilt with pandas.Timestamp(numpy.datetime64(...))"),
    _codec("Timedelta", _encode_timedelta, _decode_timedelta,
           "an int64 count of a unit from a fixed table, rebuilt with "
           "pandas.Timedelta(numpy.timedelta64(...))"),
    *(Codec(f"pandas.api.typing.{name}Type", (f"pandas.api.typing.{name}Type", pandas2), VERSION,
            lambda value: None, _singleton(name), f"the pandas.{name} singleton; no state")
      for name, pandas2 in (("NaT", "pandas._libs.tslibs.nattype.NaTType"),
                            ("NA", "pandas._libs.missing.NAType"))),
)
