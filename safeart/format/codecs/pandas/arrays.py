"""Column states: how one pandas array (a Series' or a column's values, an Index's data) is
stored, and rebuilt from hostile state.

A column state is a plain dict naming the dtype (a name from the fixed table
:data:`DTYPE_KINDS`) and holding numpy arrays the safetensors container stores as they are
(numeric, bool, datetime64/timedelta64 values, nullable values plus mask, categorical codes,
period ordinals, UTF-8 text plus offsets for strings). ``object`` columns are lists whose
elements the format stores as values.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import numpy as np

from ....errors import EncodeError, FormatError
from .state import (
    FREQ,
    UNITS,
    checked_array,
    checked_index,
    checked_unit,
    decode_tz,
    encode_tz,
    fields,
    import_pandas,
)


#: numpy dtypes a column may have, by their name (native byte order).
_NUMPY_DTYPES = frozenset(
    ["bool", "float16", "float32", "float64", "complex64", "complex128"]
    + [f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)]
    + [f"{k}64[{u}]" for k in ("datetime", "timedelta") for u in UNITS])
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
#: Element types an ``object`` column may hold besides numpy scalars and codec values.
_PLAIN = frozenset((type(None), bool, int, float, complex, str, bytes, list, tuple, dict,
                    decimal.Decimal, datetime.datetime, datetime.date, datetime.time,
                    datetime.timedelta))
_UNSUPPORTED = ("convert it to a numpy, nullable (Int64, boolean ...), string, categorical, "
                "datetime, timedelta, period or interval dtype with .astype(...)")


# -- encode -----------------------------------------------------------------------------------
def encode_array(values: Any, where: str) -> dict:
    """The column state of a pandas array (``Series.array``, ``Index.array``)."""
    pd = import_pandas()
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
        return {"dtype": "datetimetz", "unit": dtype.unit, "tz": encode_tz(dtype.tz, where),
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
    na_value = getattr(dtype, "na_value", None)
    nan_na = dtype.storage == "pyarrow_numpy" or na_value is not import_pandas().NA
    texts = values.to_numpy(dtype=object, na_value="")
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=offsets[1:])
    return {"dtype": f"{'str' if nan_na else 'string'}[{storage}]", "text": "".join(texts),
            "offsets": offsets, "mask": np.asarray(values.isna())}


def _object_values(array: np.ndarray, where: str) -> list:
    from .. import codec_for_type

    values = array.tolist() if array.dtype.kind != "O" else list(array)
    for i, value in enumerate(values):
        cls = type(value)
        if cls not in _PLAIN and not isinstance(value, np.generic) and codec_for_type(cls) is None:
            raise EncodeError(
                f"{where}: object value [{i}] is a {cls.__module__}.{cls.__qualname__}, which an "
                "object column cannot hold", hint=f"store plain values, or {_UNSUPPORTED}")
    return values


# -- decode -----------------------------------------------------------------------------------
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
    fields(state, where, {"dtype": str, "values": np.ndarray})
    return checked_array(state["values"], where, state["dtype"], length)


def _decode_object(state: dict, where: str, length: int | None) -> Any:
    values = fields(state, where, {"dtype": str, "values": list})["values"]
    if length is not None and len(values) != length:
        raise FormatError(f"{where}: {len(values)} values for an index of length {length}")
    return np.fromiter(values, dtype=object, count=len(values))


def _decode_masked(state: dict, where: str, length: int | None) -> Any:
    arrays = import_pandas().arrays
    fields(state, where, {"dtype": str, "values": np.ndarray, "mask": np.ndarray})
    values = checked_array(state["values"], where, _MASKED_DTYPES[state["dtype"]], length)
    mask = checked_array(state["mask"], f"{where} mask", "bool", len(values))
    cls = {"b": arrays.BooleanArray, "f": arrays.FloatingArray}.get(values.dtype.kind,
                                                                     arrays.IntegerArray)
    return cls(values, mask)


def _decode_strings(state: dict, where: str, length: int | None) -> Any:
    pd = import_pandas()
    spec = {"dtype": str, "text": str, "offsets": np.ndarray, "mask": np.ndarray}
    text = fields(state, where, spec)["text"]
    offsets = checked_array(state["offsets"], f"{where} offsets", "int64", None)
    count = len(offsets) - 1
    if count < 0 or (length is not None and count != length):
        raise FormatError(f"{where}: {len(offsets)} offsets for an index of length {length}")
    mask = checked_array(state["mask"], f"{where} mask", "bool", count)
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
        raise FormatError(f"{where}: this column needs pyarrow",
                          hint="pip install pyarrow") from exc
    raise FormatError(f"{where}: this pandas has no python-backed NaN string dtype",
                      hint="upgrade to pandas 3")


def _decode_category(state: dict, where: str, length: int | None) -> Any:
    pd = import_pandas()
    spec = {"dtype": str, "codes": np.ndarray, "categories": None, "ordered": bool}
    fields(state, where, spec)
    codes = checked_array(state["codes"], f"{where} codes", "int", length)
    categories = checked_index(state["categories"], f"{where} categories")
    if len(codes) and not -1 <= codes.min() <= codes.max() < len(categories):
        raise FormatError(f"{where}: codes outside [-1, {len(categories)})")
    dtype = pd.CategoricalDtype(categories, ordered=state["ordered"])
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _decode_datetimetz(state: dict, where: str, length: int | None) -> Any:
    spec = {"dtype": str, "unit": str, "tz": dict, "values": np.ndarray}
    fields(state, where, spec)
    unit = checked_unit(state, where)
    values = checked_array(state["values"], where, f"M8[{unit}]", length)
    tz = decode_tz(state["tz"], f"{where} tz")
    return import_pandas().array(values).tz_localize("UTC").tz_convert(tz)


def _decode_period(state: dict, where: str, length: int | None) -> Any:
    pd = import_pandas()
    freq = fields(state, where, {"dtype": str, "freq": str, "values": np.ndarray})["freq"]
    if not FREQ.fullmatch(freq):
        raise FormatError(f"{where}: {freq[:40]!r} is not a period frequency")
    values = checked_array(state["values"], where, "int64", length)
    return pd.arrays.PeriodArray(values, dtype=pd.PeriodDtype(freq))


def _decode_interval(state: dict, where: str, length: int | None) -> Any:
    pd = import_pandas()
    spec = {"dtype": str, "closed": str, "left": dict, "right": dict}
    closed = fields(state, where, spec)["closed"]
    if closed not in _CLOSED:
        raise FormatError(f"{where}: closed={closed[:20]!r} is not one of {sorted(_CLOSED)}")
    left = decode_array(state["left"], f"{where} left", length)
    right = decode_array(state["right"], f"{where} right", len(left))
    return pd.arrays.IntervalArray.from_arrays(left, right, closed=closed)


_DECODERS = {"numpy": _decode_numpy, "object": _decode_object, "masked": _decode_masked,
             "string": _decode_strings, "category": _decode_category,
             "datetimetz": _decode_datetimetz, "period": _decode_period,
             "interval": _decode_interval}
