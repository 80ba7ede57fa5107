"""pandas DataFrame / Series / Index through safeart's codecs: every dtype family round-trips
(``equals`` and identical dtypes, index and column types, names, attrs, flags), nothing is
pickled, unsupported variants are refused naming the column, and hostile state is refused
with a FormatError naming the path."""

from __future__ import annotations

import datetime
import decimal
import json
import pickle
import zoneinfo
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

import safeart
from safeart import EncodeError, FormatError, Policy
from safeart.format.codecs import codec_named
from safeart.format.codecs import pandas as pandas_codecs

NAMES = [codec.name for codec in pandas_codecs.CODECS]
POLICY = Policy()
N = 7
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def roundtrip(obj: Any) -> Any:
    return safeart.loads(safeart.dumps(obj, name="df"), policy=POLICY)


def assert_same_index(a: pd.Index, b: pd.Index) -> None:
    assert type(a) is type(b) and a.dtype == b.dtype and list(a.names) == list(b.names)
    assert a.equals(b), (a, b)
    if isinstance(a, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        assert a.freq == b.freq
    if isinstance(a, pd.MultiIndex):
        for x, y in zip(a.levels, b.levels):
            assert_same_index(x, y)


def assert_same(a: Any, b: Any) -> None:
    """Equal in pandas' sense and in every dtype, index type, name, attr and flag."""
    assert type(a) is type(b)
    if isinstance(a, pd.Index):
        return assert_same_index(a, b)
    assert a.equals(b)
    assert a.attrs == b.attrs
    assert a.flags.allows_duplicate_labels == b.flags.allows_duplicate_labels
    assert_same_index(a.index, b.index)
    if isinstance(a, pd.Series):
        assert a.dtype == b.dtype and a.name == b.name
        return
    assert list(a.dtypes) == list(b.dtypes)
    assert_same_index(a.columns, b.columns)


# -- every dtype family ---------------------------------------------------------------------
NUMPY = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "float16", "float32", "float64", "complex64", "complex128"]
SERIES: dict[str, Callable[[], pd.Series]] = {
    **{dt: (lambda dt=dt: pd.Series(np.arange(N) % 3, dtype=dt, name=dt)) for dt in NUMPY},
    "float nan inf": lambda: pd.Series([np.nan, -np.inf, np.inf, -0.0, 1e-300, 5.0, 6.0]),
    **{dt: (lambda dt=dt: pd.Series([1, None, 3, 0, None, 6, 7], dtype=dt))
       for dt in ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                  "Float32", "Float64"]},
    "boolean": lambda: pd.Series([True, None, False, True, None, False, True], dtype="boolean"),
    "str (pandas 3 default)": lambda: pd.Series(["a", "é", None, "", "日本", "x" * 5000, "🙂"]),
    "str[python], a lone surrogate": lambda: pd.Series(["\ud800", "a", None, "", "b", "c", "d"],
                                                     dtype="string[python]"),
    "str ending in NUL, all empty": lambda: pd.Series(["a\x00", "\x00", "", "b", None, "", "c"]),
    "str all empty": lambda: pd.Series([""] * N),
    "string[python]": lambda: pd.Series(["a", None, "b", "", "c", "d", "🙂"],
                                        dtype="string[python]"),
    "category": lambda: pd.Series(pd.Categorical(["b", "a", None, "b", "c", "a", "a"])),
    "category ordered, int categories": lambda: pd.Series(pd.Categorical(
        [3, 1, 2, 3, 1, 2, None], categories=[3, 2, 1], ordered=True)),
    **{f"datetime64[{u}]": (lambda u=u: pd.Series(pd.date_range("2021-03-27", periods=N, unit=u,
                                                                 freq="7h")))
       for u in ("s", "ms", "us", "ns")},
    "datetime NaT": lambda: pd.Series([pd.Timestamp("2020-01-01"), pd.NaT] * 3 + [pd.NaT]),
    **{f"datetime64[{u}, Europe/Paris]": (lambda u=u: pd.Series(pd.date_range(
        "2021-03-27", periods=N, freq="7h", tz=PARIS, unit=u))) for u in ("s", "ms", "us", "ns")},
    "datetime64[ns, UTC]": lambda: pd.Series(pd.date_range("2020", periods=N, tz="UTC")),
    "datetime fixed offset": lambda: pd.Series(pd.date_range("2020", periods=N, tz=datetime.timezone(
        datetime.timedelta(hours=-3, minutes=-30)))),
    "datetime named offset": lambda: pd.Series(pd.date_range("2020", periods=N, tz=datetime.timezone(
        datetime.timedelta(hours=5), "PKT"))),
    **{f"timedelta64[{u}]": (lambda u=u: pd.Series(pd.to_timedelta(np.arange(N) - 3, unit="h")
                                                   .as_unit(u))) for u in ("s", "ms", "us", "ns")},
    "period[M]": lambda: pd.Series(pd.period_range("2020-01", periods=N, freq="M")),
    "period[2Q-NOV]": lambda: pd.Series(pd.period_range("2020", periods=N, freq="2Q-NOV")),
    "period[h] with NaT": lambda: pd.Series([pd.Period("2020-01-01 10:00", "h"), pd.NaT] * 3
                                            + [pd.NaT], dtype="period[h]"),
    "interval int": lambda: pd.Series(pd.interval_range(0, N, closed="left")),
    "interval float, missing": lambda: pd.Series(pd.arrays.IntervalArray.from_arrays(
        [0.0, np.nan, 1.5, 2, 3, 4, 5], [1.0, np.nan, 2.5, 3, 4, 5, 6], closed="both")),
    "interval datetime": lambda: pd.Series(pd.interval_range(pd.Timestamp("2020"), periods=N)),
    "object plain values": lambda: pd.Series(
        [1, "a", None, 2.5, True, decimal.Decimal("1.10"), datetime.date(2020, 1, 2)], dtype=object),
    "object pandas scalars": lambda: pd.Series(
        [pd.Timestamp("2020-01-01 10:00:00.5", tz=PARIS), pd.Timestamp("1677-09-22").as_unit("s"),
         pd.NaT, pd.NA, pd.Timedelta(90, "s").as_unit("s"), pd.Timedelta(1), None], dtype=object),
    "object datetimes and containers": lambda: pd.Series(
        [datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.timezone.utc), datetime.timedelta(3),
         [1, 2], {"a": (1, 2)}, b"raw", np.float32(1.5), float("nan")], dtype=object),
}


@pytest.mark.parametrize("make", SERIES.values(), ids=SERIES.keys())
def test_series_of_every_dtype(make: Callable[[], pd.Series]) -> None:
    series = make()
    assert_same(series, roundtrip(series))


@pytest.mark.parametrize("make", SERIES.values(), ids=SERIES.keys())
def test_every_dtype_as_a_frame_column(make: Callable[[], pd.Series]) -> None:
    frame = pd.DataFrame({"x": make(), "n": np.arange(N)})
    assert_same(frame, roundtrip(frame))


def test_string_pyarrow() -> None:
    pytest.importorskip("pyarrow")
    try:
        nan_strings = pd.StringDtype("pyarrow", np.nan)
    except TypeError:  # pandas 2.2
        nan_strings = pd.StringDtype("pyarrow_numpy")
    frame = pd.DataFrame({"s": pd.Series(["a", None, "é"], dtype="string[pyarrow]"),
                          "t": pd.Series(["a", None, "é"], dtype=nan_strings)})
    assert_same(frame, roundtrip(frame))


# -- Index types -------------------------------------------------------------------------------
INDEXES: dict[str, Callable[[], pd.Index]] = {
    "RangeIndex": lambda: pd.RangeIndex(10, -20, -3, name="r"),
    "Index int": lambda: pd.Index([5, 3, 3, 1], name=("a", 1)),
    "Index str": lambda: pd.Index(["x", "y", None], name="s"),
    "Index object": lambda: pd.Index([1, "a", None, 2.5], dtype=object),
    "Index bool": lambda: pd.Index([True, False]),
    "Index Int64": lambda: pd.Index([1, None], dtype="Int64"),
    "Index empty": lambda: pd.Index([], dtype=object),
    "DatetimeIndex freq": lambda: pd.date_range("2020", periods=5, freq="D", tz=PARIS, name="t"),
    "DatetimeIndex month end": lambda: pd.date_range("2020", periods=5, freq="ME"),
    "DatetimeIndex no freq": lambda: pd.DatetimeIndex(["2020-01-03", "2019-01-01", None]),
    "TimedeltaIndex": lambda: pd.timedelta_range("1 day", periods=4, freq="6h"),
    "PeriodIndex": lambda: pd.period_range("2020", periods=4, freq="W-SUN", name="p"),
    "CategoricalIndex": lambda: pd.CategoricalIndex(["a", "b", "a"], categories=["b", "a"],
                                                    ordered=True, name="c"),
    "IntervalIndex": lambda: pd.interval_range(0.0, 2.0, periods=4, name="i"),
    "MultiIndex": lambda: pd.MultiIndex.from_product(
        [["a", "b"], [1, 2], pd.date_range("2020", periods=2)], names=["k", None, "t"]),
    "MultiIndex with NaN": lambda: pd.MultiIndex.from_arrays([["a", None, "b"], [1.5, 2.5, np.nan]]),
}


@pytest.mark.parametrize("make", INDEXES.values(), ids=INDEXES.keys())
def test_index_types(make: Callable[[], pd.Index]) -> None:
    index = make()
    assert_same(index, roundtrip(index))
    frame = pd.DataFrame({"v": np.arange(len(index))}, index=index)
    assert_same(frame, roundtrip(frame))


# -- frames ---------------------------------------------------------------------------------------
def mixed_frame() -> pd.DataFrame:
    """One column of each family, a named string index, attrs."""
    frame = pd.DataFrame({name: make().array for name, make in SERIES.items()})
    frame.index = pd.Index([f"r{i}" for i in range(N)], name="row")
    frame.attrs = {"source": "test", "version": 3, "when": datetime.date(2020, 1, 1)}
    return frame


def test_mixed_frame() -> None:
    frame = mixed_frame()
    assert_same(frame, roundtrip(frame))


def test_labels_duplicate_non_string_and_column_multiindex() -> None:
    frame = pd.DataFrame(np.arange(12.0).reshape(3, 4), columns=[1, "a", 1, (2, "x")])
    frame["cat"] = pd.Categorical(["u", "v", "u"])
    assert_same(frame, roundtrip(frame))
    columns = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["top", "sub"])
    frame = pd.DataFrame([[1, 2.5, "x"], [3, 4.5, "y"]], columns=columns,
                         index=pd.Index([10, 10], name="dup"))
    assert_same(frame, roundtrip(frame))
    back = roundtrip(frame)
    assert back[("a", 2)].tolist() == [2.5, 4.5]


@pytest.mark.parametrize("value", [
    pd.Timestamp("2021-03-28 01:30", tz=PARIS).as_unit("ms"), pd.Timestamp("2020-01-01").as_unit("ns"),
    pd.Timestamp(0, tz=datetime.timezone(datetime.timedelta(hours=2))), pd.Timedelta(-3, "ms"),
    pd.NaT, pd.NA,
], ids=repr)
def test_pandas_scalars(value: Any) -> None:
    back = roundtrip(value)
    assert type(back) is type(value)
    if value is pd.NaT or value is pd.NA:
        assert back is value
    else:
        assert back == value and back.unit == value.unit and getattr(back, "tz", None) == getattr(
            value, "tz", None)
    series = pd.Series([1.5], name=value if value is not pd.NA and value is not pd.NaT else "x")
    assert_same(series, roundtrip(series))


def test_flags_and_attrs() -> None:
    series = pd.Series([1, 2], index=["a", "b"], name=0).set_flags(allows_duplicate_labels=False)
    series.attrs["unit"] = "kg"
    assert_same(series, roundtrip(series))
    frame = pd.DataFrame({"a": [1]}).set_flags(allows_duplicate_labels=False)
    assert_same(frame, roundtrip(frame))


@pytest.mark.parametrize("frame", [
    pd.DataFrame(), pd.DataFrame(index=pd.RangeIndex(5)),
    pd.DataFrame({"a": pd.Series([], dtype="Int64"), "b": pd.Series([], dtype="str"),
                  "c": pd.Series([], dtype="category")}),
], ids=["empty", "no columns", "no rows"])
def test_empty_frames(frame: pd.DataFrame) -> None:
    assert_same(frame, roundtrip(frame))


def test_shared_frames_keep_their_identity() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    a, b = roundtrip([frame, frame])
    assert a is b
    assert_same(frame, a)


def test_nothing_is_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither side goes near pickle or pandas' reducers; the auditor sees plain state."""
    frame = mixed_frame()

    def no(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was used")

    for cls in (pd.DataFrame, pd.Series, pd.Index, pd.Categorical):
        for name in ("__reduce__", "__reduce_ex__", "__getstate__", "__setstate__"):
            monkeypatch.setattr(cls, name, no, raising=False)
    monkeypatch.setattr(pickle, "loads", no)
    monkeypatch.setattr(pickle, "dumps", no)
    blob = safeart.dumps(frame)
    assert_same(frame, safeart.loads(blob, policy=POLICY))
    report = safeart.audit(blob, policy=POLICY)
    assert report.ok
    assert {ref.name for ref in report.classes if ref.kind == "codec"} >= {
        "pandas.DataFrame", "pandas.Index", "decimal.Decimal"}


def test_large_columns_are_arrays_not_manifest_values() -> None:
    frame = pd.DataFrame({"f": np.random.default_rng(0).random(100_000), "s": pd.array(["abc"] * 100_000, dtype="string"),
                          "i": pd.array(np.arange(100_000), dtype="Int32")})
    blob = safeart.dumps(frame)
    assert safeart.audit(blob, policy=POLICY).nodes < 100
    assert_same(frame, safeart.loads(blob, policy=POLICY))


@pytest.mark.parametrize("name", NAMES)
def test_default_policy_allows_every_pandas_codec(name: str) -> None:
    module, _, qualname = name.rpartition(".")
    Policy().check_codec(module, qualname)


def test_codec_names_are_allowlist_gated() -> None:
    blob = safeart.dumps(pd.Series([1.0], index=pd.DatetimeIndex(["2020-01-01"])))
    others = Policy(include_defaults=False, allow=[n for n in NAMES if "Datetime" not in n])
    with pytest.raises(safeart.PolicyError, match="pandas.DatetimeIndex"):
        safeart.loads(blob, policy=others)


# -- what is refused when encoding ------------------------------------------------------------------
class Opaque:
    pass


@pytest.mark.parametrize("frame, match", [
    (pd.DataFrame({"col": [Opaque()]}, dtype=object), r"column 0 \('col'\).*Opaque"),
    (pd.DataFrame({"sp": pd.arrays.SparseArray([0, 1, 0])}), r"column 0 \('sp'\).*Sparse"),
    (pd.DataFrame({"tz": pd.date_range("2020", periods=2, tz="dateutil/Europe/Paris")}),
     r"column 0 \('tz'\).*time zone"),
    (pd.DataFrame({"f": [lambda: 0]}, dtype=object), r"column 0 \('f'\).*function"),
])
def test_unsupported_columns_are_refused_naming_the_column(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(EncodeError, match=match) as info:
        safeart.dumps(frame, name="df")
    assert info.value.path.startswith("df")


def test_arrow_backed_dtypes_are_refused() -> None:
    pytest.importorskip("pyarrow")
    with pytest.raises(EncodeError, match="int64\\[pyarrow\\]") as info:
        safeart.dumps(pd.DataFrame({"a": pd.array([1], dtype="int64[pyarrow]")}))
    assert ".astype" in info.value.hint


# -- hostile state -------------------------------------------------------------------------------
def tamper(blob: bytes, edit: Callable[[dict], None]) -> bytes:
    """``blob`` with ``edit`` applied to the state map of the first column state in its
    manifest (the tensors and their dtypes are kept as they are)."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    manifest = json.loads(header["__metadata__"]["safeart"])
    stack = [manifest]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "dtype" in node.get("m", ()):
                edit(node["m"])
                break
            stack.extend(reversed(node.values()))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    header["__metadata__"]["safeart"] = json.dumps(manifest)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + blob[8 + size:]


def set_field(key: str, value: Any) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state[key] = value
    return edit


HOSTILE = {
    "unknown dtype": (pd.Series([1.0]), set_field("dtype", "pandas.io.pickle"), "not one safeart reads"),
    "dtype name not matching the array": (pd.Series([1.0]), set_field("dtype", "float32"),
                                          "expected float32"),
    "nullable dtype over float values": (pd.Series([1.5], dtype="Float64"), set_field("dtype", "Int64"),
                                         "expected int64"),
    "extra field": (pd.Series([1.0]), set_field("exec", "x"), "fields"),
    "tz as a path": (pd.Series(pd.date_range("2020", periods=1, tz=PARIS)),
                     set_field("tz", {"k": "dict", "m": {"zone": "../../../../etc/passwd"}}),
                     "not an IANA time zone"),
    "tz absolute path": (pd.Series(pd.date_range("2020", periods=1, tz=PARIS)),
                         set_field("tz", {"k": "dict", "m": {"zone": "/etc/localtime"}}),
                         "not an IANA time zone"),
    "unknown tz": (pd.Series(pd.date_range("2020", periods=1, tz=PARIS)),
                   set_field("tz", {"k": "dict", "m": {"zone": "Mars/Olympus"}}), "unknown time zone"),
    "tz offset out of range": (pd.Series(pd.date_range("2020", periods=1, tz="UTC")),
                               set_field("tz", {"k": "dict", "m": {"offset_us": 10**12, "name": None}}),
                               "timezone|offset"),
    "bad unit": (pd.Series(pd.date_range("2020", periods=1, tz=PARIS)), set_field("unit", "Y"),
                 "unit"),
    "bad period freq": (pd.Series(pd.period_range("2020", periods=1, freq="M")),
                        set_field("freq", "M; import os"), "not a period frequency"),
    "unknown period freq": (pd.Series(pd.period_range("2020", periods=1, freq="M")),
                            set_field("freq", "XYZ"), "freq|frequency"),
    "bad interval closure": (pd.Series(pd.interval_range(0, 2)), set_field("closed", "all"),
                             "closed"),
    "ordered not a bool": (pd.Series(pd.Categorical(["a"])), set_field("ordered", 1), "ordered"),
    "string offsets past the text": (pd.Series(["ab", "c"], dtype="string"), set_field("text", "a"),
                                      "offsets"),
    "object values shorter than the index": (pd.Series([1, "a"], dtype=object),
                                             set_field("values", {"k": "list", "v": [1]}), "1 values for an index of length 2"),
}


@pytest.mark.parametrize("series, edit, match", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_column_state_is_refused_with_the_path(series: pd.Series, edit: Any,
                                                       match: str) -> None:
    frame = series.to_frame()  # RangeIndex index and columns: the one column state is the first
    blob = tamper(safeart.dumps({"frame": frame}), edit)
    with pytest.raises(FormatError, match=match) as info:
        safeart.loads(blob, policy=POLICY)
    assert info.value.path == "['frame']"


def f64(n: int) -> dict:
    return {"dtype": "float64", "values": np.zeros(n)}


BAD_STATES = {
    "series not a dict": ("pandas.Series", [1], "expected a dict"),
    "series length mismatch": ("pandas.Series", {"data": f64(3), "index": pd.RangeIndex(2),
                                                 "name": None, "attrs": {},
                                                 "allows_duplicate_labels": True}, "length 2"),
    "series index not an Index": ("pandas.Series", {"data": f64(1), "index": [0], "name": None,
                                                    "attrs": {}, "allows_duplicate_labels": True},
                                  "pandas Index"),
    "attrs not a dict": ("pandas.Series", {"data": f64(1), "index": pd.RangeIndex(1), "name": None,
                                           "attrs": [], "allows_duplicate_labels": True}, "attrs"),
    "duplicates with the flag off": ("pandas.Series", {
        "data": f64(2), "index": pd.Index([1, 1]), "name": None, "attrs": {},
        "allows_duplicate_labels": False}, "[Dd]uplicate"),
    "2-D values": ("pandas.Series", {"data": {"dtype": "float64", "values": np.zeros((1, 1))},
                                     "index": pd.RangeIndex(1), "name": None, "attrs": {},
                                     "allows_duplicate_labels": True}, "1-D"),
    "big-endian values": ("pandas.Index", {"data": {"dtype": "float64",
                                                    "values": np.zeros(2, ">f8")}, "name": None},
                          "dtype"),
    "frame labels vs data": ("pandas.DataFrame", {
        "index": pd.RangeIndex(1), "columns": pd.Index(["a", "b"]), "data": [f64(1)],
        "attrs": {}, "allows_duplicate_labels": True}, "1 columns of data for 2"),
    "frame column too long": ("pandas.DataFrame", {
        "index": pd.RangeIndex(1), "columns": pd.Index(["a"]), "data": [f64(5)],
        "attrs": {}, "allows_duplicate_labels": True}, "column 0"),
    "codes beyond the categories": ("pandas.Index", {"data": {
        "dtype": "category", "codes": np.array([0, 2], np.int8), "categories": pd.Index(["a", "b"]),
        "ordered": False}, "name": None}, "codes outside"),
    "codes not integers": ("pandas.Index", {"data": {
        "dtype": "category", "codes": np.array([0.0]), "categories": pd.Index(["a"]),
        "ordered": False}, "name": None}, "codes"),
    "duplicate categories": ("pandas.Index", {"data": {
        "dtype": "category", "codes": np.array([0], np.int8), "categories": pd.Index(["a", "a"]),
        "ordered": False}, "name": None}, "unique"),
    "mask of another length": ("pandas.Index", {"data": {
        "dtype": "Int64", "values": np.zeros(3, np.int64), "mask": np.zeros(2, bool)},
        "name": None}, "mask"),
    "mask not bool": ("pandas.Index", {"data": {
        "dtype": "Int64", "values": np.zeros(3, np.int64), "mask": np.zeros(3, np.uint8)},
        "name": None}, "mask"),
    "offsets decreasing": ("pandas.Index", {"data": {
        "dtype": "str[python]", "text": "abc", "offsets": np.array([0, 2, 1, 3]),
        "mask": np.zeros(3, bool)}, "name": None}, "increasing"),
    "no offsets": ("pandas.Index", {"data": {
        "dtype": "str[python]", "text": "", "offsets": np.zeros(0, np.int64),
        "mask": np.zeros(0, bool)}, "name": None}, "offsets"),
    "interval left > right": ("pandas.IntervalIndex", {"data": {
        "dtype": "interval", "closed": "right", "left": f64(1) | {"values": np.ones(1)},
        "right": f64(1)}, "name": None}, "left side"),
    "datetime data under the Index codec": ("pandas.Index", {"data": {
        "dtype": "datetime64[ns]", "values": np.zeros(1, "M8[ns]")}, "name": None},
        "makes a DatetimeIndex"),
    "freq that does not fit": ("pandas.DatetimeIndex", {"data": {
        "dtype": "datetime64[s]", "values": np.array([0, 5], "M8[s]")}, "name": None,
        "freq": "D"}, "freq|conform"),
    "freq not a frequency": ("pandas.DatetimeIndex", {"data": {
        "dtype": "datetime64[s]", "values": np.array([0], "M8[s]")}, "name": None,
        "freq": "os.system"}, "not a frequency"),
    "range step 0": ("pandas.RangeIndex", {"start": 0, "stop": 3, "step": 0, "name": None}, "step"),
    "range bool bounds": ("pandas.RangeIndex", {"start": True, "stop": 3, "step": 1, "name": None},
                          "start"),
    "multiindex codes out of range": ("pandas.MultiIndex", {
        "levels": [pd.Index(["a"])], "codes": [np.array([0, 1], np.int8)], "names": [None]},
        "[Oo]n level 0|code"),
    "multiindex codes of different lengths": ("pandas.MultiIndex", {
        "levels": [pd.Index(["a"]), pd.Index([1])],
        "codes": [np.array([0, 0], np.int8), np.array([0], np.int8)], "names": [None, None]},
        "length"),
    "multiindex without levels": ("pandas.MultiIndex", {"levels": [], "codes": [], "names": []},
                                  "levels"),
    "timestamp unit": ("pandas.Timestamp", {"value": 0, "unit": "D", "tz": None}, "unit"),
    "timestamp beyond int64": ("pandas.Timestamp", {"value": 2**64, "unit": "s", "tz": None},
                               "int|too large|bounds"),
    "timedelta value not an int": ("pandas.Timedelta", {"value": 1.5, "unit": "s"}, "value"),
    "NaT with state": ("pandas.api.typing.NaTType", {"x": 1}, "None"),
    "version 2": ("pandas.RangeIndex", None, "version"),
}


@pytest.mark.parametrize("name, state, match", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_bad_built_state_is_refused(name: str, state: Any, match: str) -> None:
    codec = codec_named(name)
    with pytest.raises((FormatError, TypeError, ValueError, OverflowError), match=match):
        if state is None:
            codec.decode({"start": 0, "stop": 1, "step": 1, "name": None}, 2)
        else:
            codec.decode(state, 1)
