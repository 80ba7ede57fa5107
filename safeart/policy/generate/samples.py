"""Benign sample values of every family the default allowlist covers, built in code.

The allowlist generator pickles these and collects the globals the pickles import; the benign
corpus (``tests/corpus``) pickles the very same values and checks that each one scans clean
and loads back equal through the guarded loader. Libraries are imported inside the builders:
a family whose library is missing is simply absent.

scikit-learn: every estimator of ``sklearn.utils.all_estimators()``, built with
scikit-learn's own test parameters (``_construct_instances``: meta-estimators get a small inner
estimator, slow ones few iterations) and fit on the first tiny data set it accepts.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import decimal
import fractions
import http
import pathlib
import re
import types
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator


#: Estimators of ``all_estimators()`` that no generic tiny data set can fit, with why.
SKLEARN_UNFITTABLE: dict[str, str] = {}


def stdlib_samples() -> dict[str, Any]:
    """Inert standard-library values real artifacts hold (config, metadata, results)."""
    utc = dt.timezone.utc
    when = dt.datetime(2024, 5, 17, 13, 45, 30, 123456, tzinfo=utc)
    return {
        "date": dt.date(2024, 5, 17),
        "time": dt.time(13, 45, 30, 5),
        "datetime naive": dt.datetime(2024, 5, 17, 13, 45, 30),
        "datetime utc": when,
        "datetime offset": when.astimezone(dt.timezone(dt.timedelta(hours=-5), "EST")),
        "timedelta": dt.timedelta(days=2, seconds=7, microseconds=3),
        "Decimal": decimal.Decimal("1234.5678"),
        "Fraction": fractions.Fraction(22, 7),
        "UUID": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "PurePosixPath": pathlib.PurePosixPath("/data/train.csv"),
        "PureWindowsPath": pathlib.PureWindowsPath("C:/data/train.csv"),
        "PosixPath": pathlib.PosixPath("/data/train.csv"),
        "Counter": collections.Counter("abracadabra"),
        "deque": collections.deque([1, 2, 3], maxlen=5),
        "defaultdict int": collections.defaultdict(int, {"a": 1}),
        "defaultdict list": collections.defaultdict(list, {"a": [1]}),
        "OrderedDict": collections.OrderedDict(b=2, a=1),
        "scalars": [1, -2**70, 2.5, 1 + 2j, True, None, "text", b"bytes", b""],
        "containers": (range(1, 10, 2), slice(1, 8, 3), bytearray(b"buf"),
                       {1, 2}, frozenset({3})),
        "constants": [Ellipsis, NotImplemented],
        "factories": collections.defaultdict(
            dict, {"types": [int, float, str, list, dict, set, tuple, bool, bytes]}),
        "Namespace": argparse.Namespace(lr=0.1, epochs=3, name="run"),
        "SimpleNamespace": types.SimpleNamespace(a=1, b=[2]),
        "HTTPStatus": http.HTTPStatus.NOT_FOUND,
        "RegexFlag": re.IGNORECASE | re.MULTILINE,
        "nested": {"when": [when, {"d": dt.date(2020, 1, 1)}], "cfg": {"dec": decimal.Decimal("1")}},
    }



def numpy_samples() -> dict[str, Any]:
    """Arrays of every dtype kind, masked arrays, random generator state, scalars, dtypes."""
    import numpy as np

    dtypes = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "g",
              "c8", "c16", "M8[ns]", "M8[D]", "m8[s]", "S3", "U3"]
    out: dict[str, Any] = {f"array {d}": np.arange(6).astype(d).reshape(2, 3) for d in dtypes}
    out["array object"] = np.array([1, "a", None, 2.5], dtype=object)
    out["array structured"] = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))])
    out["array fortran"] = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    out["array 0-d"] = np.array(3.5)
    out["array StringDType"] = np.array(["a", "bc"], dtype=np.dtypes.StringDType())
    out["masked array"] = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-1.0)
    out["masked structured"] = np.ma.masked_array(np.zeros(2, dtype=[("a", "<i4")]))
    for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
        out[f"Generator {name}"] = np.random.Generator(getattr(np.random, name)(7))
    out["RandomState"] = np.random.RandomState(7)
    out["SeedSequence"] = np.random.SeedSequence(7)
    out["scalars"] = [np.float64(1.5), np.float32(2.5), np.int64(-3), np.uint8(7), np.bool_(True),
                      np.complex128(1j), np.datetime64("2024-01-01"), np.timedelta64(5, "s"),
                      np.str_("s"), np.bytes_(b"b"), np.longdouble(1.25)]
    out["dtypes"] = [np.dtype("f8"), np.dtype("<U4"), np.dtype([("x", "i2")]), np.dtype("M8[ms]")]
    return out


def pandas_samples() -> dict[str, Any]:
    """Frames and Series of every dtype pandas has, indexes of every kind, scalars."""
    import numpy as np
    import pandas as pd

    n = 3
    frame = pd.DataFrame({
        "int": np.arange(n), "float": np.linspace(0, 1, n), "bool": [True, False, True],
        "object": ["a", 1, None], "Int64": pd.array([1, None, 3], dtype="Int64"),
        "Float64": pd.array([1.5, None, 3.0], dtype="Float64"),
        "boolean": pd.array([True, None, False], dtype="boolean"),
        "string": pd.array(["a", None, "c"], dtype="string"),
        "category": pd.Categorical(["x", "y", "x"], categories=["y", "x"], ordered=True),
        "datetime": pd.date_range("2024-01-01", periods=n, freq="D"),
        "datetime tz": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        "datetime offset": pd.date_range("2024", periods=n, tz=dt.timezone(dt.timedelta(hours=2))),
        "timedelta": pd.to_timedelta([1, 2, 3], unit="s"),
        "period": pd.period_range("2024-01", periods=n, freq="M"),
        "interval": pd.interval_range(0, n),
        "sparse": pd.arrays.SparseArray([0, 0, 1]),
    })
    out: dict[str, Any] = {"DataFrame all dtypes": frame}
    out.update({f"Series {c}": frame[c] for c in frame.columns})
    if _has_pyarrow():
        out["Series string pyarrow"] = pd.Series(["a", None], dtype="string[pyarrow]")
    out["MultiIndex frame"] = pd.DataFrame(
        {"v": [1.0, 2.0, 3.0, 4.0]},
        index=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "n"]))
    out["indexes"] = [pd.RangeIndex(5), pd.Index([1.5, 2.5]), pd.Index(["a", "b"]),
                      pd.DatetimeIndex(["2024-01-01", "2024-02-01"]),
                      pd.TimedeltaIndex(["1D", "2D"]), pd.PeriodIndex(["2024Q1"], freq="Q"),
                      pd.CategoricalIndex(["a", "b", "a"]), pd.IntervalIndex.from_breaks([0, 1, 2])]
    out["scalars"] = [pd.Timestamp("2024-01-01 12:00", tz="UTC"), pd.Timestamp("2024-01-01"),
                      pd.Timedelta("1h"), pd.Period("2024-01", freq="M"), pd.Interval(0, 1),
                      pd.NaT, pd.NA]
    offsets = pd.offsets
    out["offsets"] = [getattr(offsets, name)(2) for name in (
        "Day", "Hour", "Minute", "Second", "Milli", "Micro", "Nano", "BusinessDay", "Week",
        "MonthEnd", "MonthBegin", "BusinessMonthEnd", "BusinessMonthBegin", "QuarterEnd",
        "QuarterBegin", "YearEnd", "YearBegin")]
    out["frequencies"] = [pd.date_range("2024", periods=3, freq=f)
                          for f in ("D", "h", "min", "s", "B", "W", "ME", "QE", "YE")]
    return out


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Fitted:
    """A fitted estimator, the data it was fit on and the method to compare with."""

    estimator: Any
    data: Any  # what predict/transform is called with


def _datasets() -> Iterator[tuple[str, Callable[[Any], Any], Any]]:
    """(label, fit(estimator) -> estimator, data for outputs), in the order tried."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.random((30, 4))
    y3, yb = np.array([0, 1, 2] * 10), np.array([0, 1] * 15)
    Y2 = (X[:, :2] > 0.5).astype(int)
    texts = ["the cat sat", "a dog ran", "the dog sat", "a cat ran"] * 5
    dicts = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "c": 1.0}] * 5
    yield "multiclass", lambda e: e.fit(X, y3), X
    yield "1 feature", lambda e: e.fit(X[:, 0], X[:, 1]), X[:, 0]
    yield "regression", lambda e: e.fit(X, X @ [1.0, 2.0, 3.0, 4.0]), X
    yield "binary", lambda e: e.fit(X, yb), X
    yield "multi-output", lambda e: e.fit(X, Y2), X
    yield "unsupervised", lambda e: e.fit(X), X
    yield "3 features", lambda e: e.fit(X[:, :3]), X[:, :3]
    yield "kernel matrix", lambda e: e.fit(X @ X.T), X @ X.T
    yield "text", lambda e: e.fit(texts), texts
    yield "dicts", lambda e: e.fit(dicts), dicts
    yield "labels", lambda e: e.fit(y3), y3
    yield "label sets", lambda e: e.fit([["a", "b"], ["c"]]), [["a"], ["b", "c"]]
    yield "images", lambda e: e.fit(rng.random((2, 6, 6))), rng.random((2, 6, 6))


def sklearn_samples() -> dict[str, Fitted]:
    """Every ``all_estimators()`` estimator fitted on tiny data, plus pipelines users build.

    Estimators nothing fits are recorded in :data:`SKLEARN_UNFITTABLE` with the last error.
    """
    from sklearn.utils import all_estimators
    from sklearn.utils._test_common.instance_generator import _construct_instances

    out: dict[str, Fitted] = {}
    datasets = list(_datasets())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in all_estimators():
            if name == "FrozenEstimator":  # wraps a fitted estimator: built below
                continue
            estimator = next(iter(_construct_instances(cls)))
            _seed(estimator)
            error: Exception | None = None
            for _label, fit, data in datasets:
                try:
                    out[name] = Fitted(fit(estimator), data)
                    break
                except Exception as exc:  # the next data set, or recorded as unfittable
                    error = exc
            else:
                SKLEARN_UNFITTABLE[name] = f"{type(error).__name__}: {error}"[:200]
        out.update(_sklearn_compositions())
        out.update(_sklearn_variants(datasets[0][2]))
    return out


def _seed(estimator: Any) -> None:
    """A fixed random_state everywhere, so the generated list does not depend on the draw
    (OutputCodeClassifier's code book decides whether a constant predictor is pickled)."""
    params = estimator.get_params(deep=True)
    estimator.set_params(**{k: 0 for k, v in params.items()
                            if k.endswith("random_state") and v is None})


def _sklearn_compositions() -> dict[str, Fitted]:
    """What real projects pickle: a column pipeline over a DataFrame, a frozen model."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    frame = pd.DataFrame({"num": np.arange(12.0), "cat": ["a", "b", "c"] * 4,
                          "num2": np.linspace(0, 1, 12)})
    y = np.array([0, 1] * 6)
    columns = ColumnTransformer([("num", StandardScaler(), ["num", "num2"]),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["cat"])])
    pipe = Pipeline([("cols", columns), ("pca", PCA(2)), ("id", FunctionTransformer()),
                     ("clf", LogisticRegression())]).fit(frame, y)
    frozen = FrozenEstimator(LogisticRegression().fit(frame[["num"]], y))
    return {"Pipeline ColumnTransformer OneHotEncoder PCA": Fitted(pipe, frame),
            "FrozenEstimator": Fitted(frozen, frame[["num"]])}


def _sklearn_variants(X: Any) -> dict[str, Fitted]:
    """Parameter choices whose fitted pickles name other helper classes: every SGD and
    gradient-boosting loss, ball trees and distance metrics, kernels, optimizers."""
    import numpy as np
    from sklearn import ensemble, gaussian_process as gp, linear_model, neighbors
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neural_network import MLPClassifier

    y3, yb, yr = np.array([0, 1, 2] * 10), np.array([0, 1] * 15), X @ [1.0, 2.0, 3.0, 4.0]
    k = gp.kernels
    fits: dict[str, Callable[[], Any]] = {
        **{f"SGDClassifier {loss}": (lambda loss=loss: linear_model.SGDClassifier(
            loss=loss, max_iter=5).fit(X, yb))
           for loss in ("log_loss", "modified_huber", "squared_hinge", "perceptron",
                        "squared_error", "huber", "epsilon_insensitive",
                        "squared_epsilon_insensitive")},
        **{f"HistGradientBoostingRegressor {loss}": (
            lambda loss=loss: ensemble.HistGradientBoostingRegressor(
                loss=loss, max_iter=3, quantile=0.5 if loss == "quantile" else None).fit(X, yr))
           for loss in ("absolute_error", "gamma", "poisson", "quantile")},
        "HistGradientBoostingClassifier binary": lambda: ensemble.HistGradientBoostingClassifier(
            max_iter=3).fit(X, yb),
        **{f"GradientBoostingRegressor {loss}": (
            lambda loss=loss: ensemble.GradientBoostingRegressor(
                loss=loss, n_estimators=3).fit(X, yr))
           for loss in ("absolute_error", "huber", "quantile")},
        "GradientBoostingClassifier binary": lambda: ensemble.GradientBoostingClassifier(
            n_estimators=3).fit(X, yb),
        "LogisticRegression binary": lambda: linear_model.LogisticRegression().fit(X, yb),
        **{f"KNeighborsClassifier {algorithm} {metric}": (
            lambda a=algorithm, m=metric: neighbors.KNeighborsClassifier(
                3, algorithm=a, metric=m).fit(X, y3))
           for algorithm in ("ball_tree", "kd_tree")
           for metric in ("euclidean", "manhattan", "chebyshev", "minkowski")},
        "GaussianProcessRegressor kernels": lambda: gp.GaussianProcessRegressor(
            k.Matern() + k.WhiteKernel() + k.DotProduct() * k.RationalQuadratic()
            + k.ExpSineSquared(), optimizer=None).fit(X, yr),
        "MLPClassifier sgd": lambda: MLPClassifier((3,), solver="sgd", max_iter=5).fit(X, y3),
        "OneVsRestClassifier constant label": lambda: OneVsRestClassifier(
            linear_model.LogisticRegression()).fit(X, np.c_[yb, np.zeros_like(yb)]),
    }
    return {name: Fitted(fit(), X) for name, fit in fits.items()}


def sklearn_partial_samples() -> dict[str, Fitted]:
    """Fitted estimators that keep a ``functools.partial``: HistGradientBoosting with
    categorical features (``partial(check_array, dtype=..., ensure_all_finite=False)`` in
    its preprocessor). No pickle of them scans clean (the denylist grades
    ``functools.partial`` dangerous and the reviewed reasons exclude it), so the benign
    corpus leaves them out; the names they hold are admitted for the format, whose codec
    stores the partial's function as a policy-checked reference."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = np.c_[np.arange(30) % 3, np.random.default_rng(0).random((30, 3))]
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0])
    return {"HistGradientBoostingClassifier categorical": Fitted(
        model.fit(X, np.array([0, 1] * 15)), X)}


def sklearn_helpers() -> dict[str, Any]:
    """Helper objects fitted estimators hold, in every variant a parameter can select: each
    loss of ``sklearn._loss.loss``, each distance metric (float64 and float32), each
    cross-validation splitter (``GridSearchCV(cv=StratifiedKFold(5))`` keeps it) and the
    numpy functions a ``FunctionTransformer`` is most often given."""
    import numpy as np
    from sklearn import model_selection
    from sklearn._loss import loss
    from sklearn.metrics import DistanceMetric
    from sklearn.preprocessing import FunctionTransformer

    out: dict[str, Any] = {}
    splitter_args = {"LeavePOut": (2,), "LeavePGroupsOut": (2,), "PredefinedSplit": ([0, 1],)}
    for name in ("KFold", "StratifiedKFold", "GroupKFold", "StratifiedGroupKFold",
                 "RepeatedKFold", "RepeatedStratifiedKFold", "ShuffleSplit",
                 "StratifiedShuffleSplit", "GroupShuffleSplit", "TimeSeriesSplit", "LeaveOneOut",
                 "LeavePOut", "LeaveOneGroupOut", "LeavePGroupsOut", "PredefinedSplit"):
        out[f"splitter {name}"] = getattr(model_selection, name)(*splitter_args.get(name, ()))
    for func, inverse in ((np.log1p, np.expm1), (np.log, np.exp), (np.sqrt, np.square)):
        out[f"function transformer {func.__name__}"] = FunctionTransformer(func, inverse)
    for name in ("HalfSquaredError", "AbsoluteError", "PinballLoss", "HuberLoss",
                 "HalfPoissonLoss", "HalfGammaLoss", "HalfTweedieLoss", "HalfTweedieLossIdentity",
                 "HalfBinomialLoss", "HalfMultinomialLoss", "ExponentialLoss"):
        out[f"loss {name}"] = getattr(loss, name)()
    params = {"minkowski": {"p": 3}, "seuclidean": {"V": np.ones(2)},
              "mahalanobis": {"VI": np.eye(2)}}
    for metric in ("euclidean", "manhattan", "chebyshev", "minkowski", "seuclidean",
                   "mahalanobis", "hamming", "canberra", "braycurtis", "jaccard", "matching",
                   "dice", "rogerstanimoto", "russellrao", "sokalmichener", "sokalsneath",
                   "haversine"):
        for dtype in (np.float64, np.float32):
            out[f"metric {metric} {dtype.__name__}"] = DistanceMetric.get_metric(
                metric, dtype, **params.get(metric, {}))
    return out
