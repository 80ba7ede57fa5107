"""Every scikit-learn estimator, fit on tiny generated data, and how to compare two of them.

Shared by ``tests/format/test_format_sklearn.py`` and ``benchmarks/coverage_sklearn.py``
(which puts this directory on ``sys.path``), so both measure the same estimator list.
Instances come from ``sklearn.utils.all_estimators()``, built with scikit-learn's own test
parameters (``_construct_instances``: meta-estimators get a small inner estimator, slow ones
few iterations); the data is shaped by each estimator's tags (text, dicts, categories,
positive values, 1-D or 3-D input, multi-output targets).
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

#: Methods whose outputs must be equal after a round trip (those the estimator has).
OUTPUT_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function",
                  "score_samples", "transform")
#: Parameters replacing scikit-learn's test ones where those do not fit the data here.
PARAMS = {
    "QuadraticDiscriminantAnalysis": {"reg_param": 0.1},  # 10 samples per class, 5 features
    "SparseCoder": {"dictionary": np.random.RandomState(0).rand(3, 5)},  # 5 features
}
#: Estimators that cannot be fit on generic data, with why (reported as skips).
UNFITTABLE = {
    "FrozenEstimator": "wraps an already fitted estimator; covered through its inner one",
}


@dataclass
class Case:
    """One estimator instance and the data it was fit on."""

    name: str
    estimator: Any
    X: Any
    y: Any  # passed to fit (unsupervised ones ignore it); label transformers: fit(y)
    on_target: bool = False  # LabelEncoder & co: fit(y) / transform(y)

    def fit(self) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.on_target:
                return self.estimator.fit(self.y)
            return self.estimator.fit(self.X, self.y)

    def outputs(self, estimator: Any) -> dict[str, Any]:
        """What ``estimator`` computes on the case's data, by method name."""
        data = self.y if self.on_target else self.X
        out: dict[str, Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method in OUTPUT_METHODS:
                if not _has_method(estimator, method):
                    continue
                try:
                    out[method] = _dense(getattr(estimator, method)(data))
                except Exception as exc:  # e.g. transform of a fit-only manifold learner
                    out[method] = f"raises {type(exc).__name__}"
        if not any(not isinstance(v, str) for v in out.values()):
            out.update(_fitted_arrays(estimator))  # clusterers, embeddings: their results
        return out


def _has_method(estimator: Any, method: str) -> bool:
    try:
        return callable(getattr(estimator, method, None))
    except Exception:  # available_if raising AttributeError subclasses, etc.
        return False


def _dense(value: Any) -> Any:
    if hasattr(value, "toarray"):
        return value.toarray()
    if isinstance(value, list):
        return [_dense(v) for v in value]
    return value


def _fitted_arrays(estimator: Any) -> dict[str, Any]:
    return {key: value for key, value in vars(estimator).items()
            if key.endswith("_") and not key.startswith("_") and isinstance(value, np.ndarray)}


# -- data -----------------------------------------------------------------------------------
@functools.cache
def _data() -> dict[str, Any]:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=30, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, random_state=0)
    y_bin = (y > 0).astype(np.int64)
    y_reg = X[:, 0] + 0.5 * X[:, 1]
    words = ["red apple", "green pear", "blue sky", "red sky", "green apple", "blue pear"]
    return {
        "X": X, "y": y, "y_bin": y_bin, "y_reg": y_reg,
        "X_pos": np.abs(X), "X_cat": np.floor(np.abs(X) * 1.5).astype(np.int64),
        "text": [words[i % 6] + " " + words[(i * 7) % 6] for i in range(30)],
        "dicts": [{"a": float(x[0]), "b": float(x[1]), f"c{i % 3}": 1.0} for i, x in enumerate(X)],
        "images": np.random.RandomState(0).rand(3, 8, 8),
        "labels": np.array(["cat", "dog", "emu"])[y],
        "label_sets": [("cat", "dog"), ("emu",), ()] * 10,
    }


def _case(name: str, estimator: Any, d: dict[str, Any]) -> Case:
    tags = estimator.__sklearn_tags__()
    inp, target = tags.input_tags, tags.target_tags
    kind = tags.estimator_type
    if name == "MultiLabelBinarizer":
        return Case(name, estimator, None, d["label_sets"], on_target=True)
    if target.one_d_labels:  # LabelEncoder, LabelBinarizer
        return Case(name, estimator, None, d["labels"], on_target=True)
    if inp.string:
        X: Any = d["text"] if not inp.two_d_array else d["X"]
    elif inp.dict:
        X = d["dicts"]
    elif inp.three_d_array:
        X = d["images"]
    elif inp.one_d_array:
        X = d["X"][:, 0]
    elif inp.pairwise:
        X = d["X"] @ d["X"].T
    elif inp.categorical:
        X = d["X_cat"]
    elif inp.positive_only:
        X = d["X_pos"]
    else:
        X = d["X"]
    if kind == "regressor":
        y = np.abs(d["y_reg"]) + 1 if target.positive_only else d["y_reg"]
        if not target.single_output:
            y = np.c_[y, -y]
    else:
        multi = tags.classifier_tags is None or tags.classifier_tags.multi_class
        y = d["y"] if multi else d["y_bin"]
        if not target.single_output:
            y = np.c_[d["y_bin"], 1 - d["y_bin"]]
    return Case(name, estimator, X, y)


def _with_seed(estimator: Any) -> Any:
    if "random_state" in estimator.get_params(deep=False):
        estimator.set_params(random_state=0)
    return estimator


def _instances(estimator_class: type) -> Iterator[Any]:
    from sklearn.utils._test_common.instance_generator import _construct_instances

    yield from _construct_instances(estimator_class)


def estimator_names() -> list[str]:
    """The names of ``sklearn.utils.all_estimators()``."""
    from sklearn.utils import all_estimators

    return [name for name, _ in all_estimators()]


def build_case(name: str) -> Case | str:
    """Estimator ``name`` fit on tiny data (the first parameter set scikit-learn tests it
    with), or why it cannot be fit generically."""
    from sklearn.utils import all_estimators

    if name in UNFITTABLE:
        return UNFITTABLE[name]
    cls = dict(all_estimators())[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated estimators warn when built
        estimator = _with_seed(next(_instances(cls))).set_params(**PARAMS.get(name, {}))
    case = _case(name, estimator, _data())
    try:
        case.fit()
    except Exception as exc:
        return f"fit on generic data fails: {type(exc).__name__}: {exc}"
    return case


# -- the combinations the issue names -------------------------------------------------------
def _fitted(name: str, estimator: Any, X: Any = None, y: Any = None) -> Case:
    d = _data()
    case = Case(name, estimator, d["X"] if X is None else X, d["y"] if y is None else y)
    case.fit()
    return case


def _pipeline_forest() -> Case:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return _fitted("pipe", Pipeline([
        ("scale", StandardScaler()),
        ("forest", RandomForestClassifier(n_estimators=3, random_state=0))]))


def _column_transformer() -> Case:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    d = _data()
    mixed = np.empty((30, 3), dtype=object)
    mixed[:, 0] = np.array(["red", "green", "blue"], dtype=object)[d["y"]]
    mixed[:, 1:] = d["X"][:, :2]
    return _fitted("ct", ColumnTransformer([
        ("onehot", OneHotEncoder(dtype=np.float64), [0]),
        ("scale", StandardScaler(), [1, 2])]), mixed)


def _grid_search() -> Case:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    return _fitted("search", GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]},
                                          cv=2))


def _grid_search_over_estimators() -> Case:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    grid = {"model": [LogisticRegression(max_iter=200), DecisionTreeClassifier(max_depth=2)]}
    return _fitted("search", GridSearchCV(Pipeline([("model", LogisticRegression())]), grid,
                                          cv=2))


def _hist_gradient_boosting(categorical: bool) -> Case:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = _data()["X"].copy()
    X[:, 0] = np.floor(np.abs(X[:, 0]) * 2)
    return _fitted("hgb", HistGradientBoostingClassifier(
        max_iter=5, min_samples_leaf=3, categorical_features=[0] if categorical else None,
        random_state=0), X)


def _kneighbors(algorithm: str) -> Case:
    from sklearn.neighbors import KNeighborsClassifier

    return _fitted("knn", KNeighborsClassifier(n_neighbors=3, algorithm=algorithm))


def _pca() -> Case:
    from sklearn.decomposition import PCA

    return _fitted("pca", PCA(n_components=2))


def _function_transformer() -> Case:
    from sklearn.preprocessing import FunctionTransformer

    return _fitted("log", FunctionTransformer(np.log1p), _data()["X_pos"])


def _stacking() -> Case:
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    return _fitted("stack", StackingClassifier([
        ("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=2))], cv=2))


#: Fitted combinations beyond single default estimators, by a readable name.
SCENARIOS: dict[str, Callable[[], Case]] = {
    "Pipeline(StandardScaler, RandomForestClassifier)": _pipeline_forest,
    "ColumnTransformer(OneHotEncoder on str, StandardScaler)": _column_transformer,
    "GridSearchCV(LogisticRegression, C grid)": _grid_search,
    "GridSearchCV(Pipeline, grid of estimators)": _grid_search_over_estimators,
    "HistGradientBoostingClassifier": functools.partial(_hist_gradient_boosting, False),
    "HistGradientBoostingClassifier(categorical_features)":
        functools.partial(_hist_gradient_boosting, True),
    "KNeighborsClassifier(kd_tree)": functools.partial(_kneighbors, "kd_tree"),
    "KNeighborsClassifier(ball_tree)": functools.partial(_kneighbors, "ball_tree"),
    "PCA(n_components=2)": _pca,
    "FunctionTransformer(np.log1p)": _function_transformer,
    "StackingClassifier(LogisticRegression, DecisionTree)": _stacking,
}


# -- comparison -----------------------------------------------------------------------------
def assert_same(left: Any, right: Any, where: str = "") -> None:
    """Deep equality for estimator outputs and parameters: arrays exactly (NaN == NaN;
    floats to 1e-10 relative, as BLAS results depend on memory alignment),
    estimators by class and parameters, functions by identity, the rest with ``==``."""
    from sklearn.base import BaseEstimator

    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        assert type(left) is type(right), f"{where}: {type(left)} != {type(right)}"
        if left.dtype.kind in "fc" and right.dtype == left.dtype:
            # BLAS kernels differ in the last bit with memory alignment (pickle too)
            np.testing.assert_allclose(left, right, rtol=1e-10, atol=0, err_msg=where)
        else:
            np.testing.assert_array_equal(left, right, err_msg=where, strict=True)
    elif isinstance(left, BaseEstimator):
        assert type(left) is type(right), f"{where}: {type(left)} != {type(right)}"
        assert_same(left.get_params(deep=False), right.get_params(deep=False), f"{where}.params")
    elif isinstance(left, dict):
        assert type(left) is type(right) and list(left) == list(right), f"{where}: keys differ"
        for key in left:
            assert_same(left[key], right[key], f"{where}[{key!r}]")
    elif isinstance(left, (list, tuple)):
        assert type(left) is type(right) and len(left) == len(right), f"{where}: {left!r} != {right!r}"
        for i, (a, b) in enumerate(zip(left, right)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(left, float) and math.isnan(left):
        assert isinstance(right, float) and math.isnan(right), f"{where}: {right!r} is not NaN"
    elif callable(left) and not isinstance(left, type):
        assert left is right or left == right, f"{where}: {left!r} != {right!r}"
    else:
        assert type(left) is type(right) and left == right, f"{where}: {left!r} != {right!r}"


# -- tampering ------------------------------------------------------------------------------
def tamper(blob: bytes, edit: Callable[[dict, dict[str, np.ndarray]], None]) -> bytes:
    """``blob`` rewritten after ``edit(manifest, arrays)`` changed its manifest and/or its
    tensors (name -> numpy array of the tensor's dtype; replace or modify them)."""
    from safeart.format.layout import ST_BY_NUMPY, Piece, pack, read_header
    from safeart.limits import Limits

    view = memoryview(blob)
    header = read_header(view, Limits())
    numpy_of = {st: np.dtype(code) for code, st in ST_BY_NUMPY.items()}
    arrays = {name: np.frombuffer(view[e.begin:e.end], numpy_of[e.dtype]).reshape(e.shape).copy()
              for name, e in header.tensors.items()}
    manifest = json.loads(header.metadata["safeart"])
    edit(manifest, arrays)
    pieces = [Piece(name, ST_BY_NUMPY[a.dtype.str], a.shape,
                    memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8)))
              for name, a in arrays.items()]
    return b"".join(pack(json.dumps(manifest), pieces, Limits()))


def codec_states(node: Any, codec: str) -> Iterator[dict]:
    """The state nodes of every ``val`` node of ``codec`` (``module.qualname``) in a manifest."""
    if isinstance(node, dict):
        if node.get("k") == "val" and ".".join(node["c"]) == codec:
            yield node["v"]
        for value in node.values():
            yield from codec_states(value, codec)
    elif isinstance(node, list):
        for value in node:
            yield from codec_states(value, codec)
