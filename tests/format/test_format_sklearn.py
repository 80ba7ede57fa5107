"""scikit-learn estimators through safeart.dumps/loads, without pickle.

Every estimator of ``sklearn.utils.all_estimators()`` is fit on tiny generated data and must
come back with equal ``predict``/``transform``/... outputs and equal ``get_params()``; then
the objects the sklearn codecs rebuild (trees, tree predictors, neighbor trees, metrics,
losses, Bunch) are crafted to be hostile and must be refused with a ``FormatError`` naming
the object path.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn_estimators import (SCENARIOS, Case, assert_same, build_case, codec_states,
                                estimator_names, tamper)

import safeart
from safeart.errors import FormatError
from safeart.format.codecs import sklearn as sklearn_codecs

# deprecated estimators (PassiveAggressive*) warn in __new__, also when safeart rebuilds them
pytestmark = pytest.mark.filterwarnings("ignore:Class .* is deprecated:FutureWarning")

#: What the default policy does not allow and these tests need (each with why).
ALLOW: tuple[safeart.Rule, ...] = (
    safeart.Rule("sklearn.model_selection._split.StratifiedKFold",
                 "a CV splitter search estimators keep (_checked_cv_orig): n_splits, shuffle, "
                 "random_state in __dict__"),
    safeart.Rule("numpy.log1p", "a numpy ufunc (elementwise log(1 + x)), held by reference",
                 kind="reference"),
    safeart.Rule("sklearn.metrics._dist_metrics.KulsinskiDistance64",
                 "codec: KulsinskiDistance64() takes no parameters"),
    safeart.Rule("sklearn.metrics._dist_metrics.KulsinskiDistance32",
                 "codec: KulsinskiDistance32() takes no parameters"),
)


X, Y = make_classification(n_samples=30, n_features=5, n_informative=3, n_redundant=0,
                           n_classes=3, n_clusters_per_class=1, random_state=0)


def round_trip(obj: object, name: str = "est") -> object:
    return safeart.loads(safeart.dumps(obj, name=name), allow=ALLOW, name=name)


def assert_round_trip(case: Case) -> None:
    back = round_trip(case.estimator, case.name)
    assert type(back) is type(case.estimator)
    assert_same(case.outputs(case.estimator), case.outputs(back), case.name)
    assert_same(case.estimator.get_params(), back.get_params(), f"{case.name}.get_params()")


# -- every estimator ------------------------------------------------------------------------
@pytest.mark.parametrize("name", estimator_names())
def test_estimator_round_trip(name: str) -> None:
    case = build_case(name)
    if isinstance(case, str):
        pytest.skip(case)
    assert_round_trip(case)


# -- the combinations the issue names --------------------------------------------------------
def test_random_forest_in_a_pipeline() -> None:
    assert_round_trip(SCENARIOS["Pipeline(StandardScaler, RandomForestClassifier)"]())


def test_column_transformer_with_one_hot_strings() -> None:
    case = SCENARIOS["ColumnTransformer(OneHotEncoder on str, StandardScaler)"]()
    assert case.estimator.named_transformers_["onehot"].categories_[0].dtype == object
    assert_round_trip(case)


def test_grid_search_keeps_cv_results_and_best_estimator() -> None:
    case = SCENARIOS["GridSearchCV(LogisticRegression, C grid)"]()
    search = case.estimator
    back = round_trip(search, "search")
    assert_same(case.outputs(search), case.outputs(back), "search")
    assert_same(search.best_estimator_.coef_, back.best_estimator_.coef_, "best_estimator_")
    for key, column in search.cv_results_.items():
        got = back.cv_results_[key]
        assert type(got) is type(column), key
        if isinstance(column, np.ma.MaskedArray):
            np.testing.assert_array_equal(got.mask, column.mask)
        assert_same(np.asarray(column), np.asarray(got), key)


def test_grid_search_over_estimators_keeps_object_masked_arrays() -> None:
    search = SCENARIOS["GridSearchCV(Pipeline, grid of estimators)"]().estimator
    column = search.cv_results_["param_model"]
    assert isinstance(column, np.ma.MaskedArray) and column.dtype == object
    back = round_trip(search, "search")
    got = back.cv_results_["param_model"]
    assert [type(v) for v in got] == [type(v) for v in column]
    np.testing.assert_array_equal(back.predict(X), search.predict(X))


@pytest.mark.parametrize("categorical", [False, True])
def test_hist_gradient_boosting(categorical: bool) -> None:
    name = "HistGradientBoostingClassifier" + ("(categorical_features)" if categorical else "")
    assert_round_trip(SCENARIOS[name]())


CHECK_ARRAY = "sklearn.utils.validation.check_array"


def _partials(obj: object) -> list[functools.partial]:
    """The functools.partial objects sklearn keeps in a fitted HGB's preprocessor."""
    return [transformer.func for _, transformer, _ in obj._preprocessor.transformers_
            if isinstance(getattr(transformer, "func", None), functools.partial)]


def test_hist_gradient_boosting_categorical_keeps_its_partial() -> None:
    """sklearn's own partial(check_array, dtype=[float64], ensure_all_finite=False) comes
    back as a partial of the same function with equal arguments, under the default policy."""
    case = SCENARIOS["HistGradientBoostingClassifier(categorical_features)"]()
    blob = safeart.dumps(case.estimator, name="hgb")
    (want,) = _partials(case.estimator)
    (got,) = _partials(safeart.loads(blob, name="hgb"))
    assert type(got) is functools.partial and got.func is want.func
    assert (got.args, got.keywords) == (want.args, want.keywords)
    names = {(ref.name, ref.kind) for ref in safeart.audit(blob).classes}
    assert {(CHECK_ARRAY, "reference"), ("functools.partial", "codec")} <= names


def test_hist_gradient_boosting_partial_needs_its_function_allowed() -> None:
    """A policy that does not allow the partial's function refuses the load (artifact,
    object path, hint); a policy without the partial codec entry refuses it too."""
    from safeart.policy.defaults import DEFAULT_RULES

    blob = safeart.dumps(SCENARIOS["HistGradientBoostingClassifier(categorical_features)"]()
                         .estimator, name="hgb")
    for missing, message, kind in ((CHECK_ARRAY, f"reference {CHECK_ARRAY} is not", "reference"),
                                   ("functools.partial", "values of functools.partial", "codec")):
        policy = safeart.Policy(include_defaults=False,
                                allow=[r for r in DEFAULT_RULES if r.name != missing])
        with pytest.raises(safeart.PolicyError, match=message) as info:
            safeart.loads(blob, policy=policy, name="hgb")
        assert info.value.path.startswith("hgb._preprocessor.transformers")
        assert f"kind='{kind}'" in info.value.hint


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
def test_kneighbors(algorithm: str) -> None:
    case = SCENARIOS[f"KNeighborsClassifier({algorithm})"]()
    back = round_trip(case.estimator, "knn")
    assert_round_trip(case)
    for got, want in zip(back._tree.get_arrays(), case.estimator._tree.get_arrays()):
        np.testing.assert_array_equal(got, want)  # the rebuilt tree is the fitted one


def test_pca() -> None:
    assert_round_trip(SCENARIOS["PCA(n_components=2)"]())


def test_function_transformer_with_a_numpy_ufunc() -> None:
    case = SCENARIOS["FunctionTransformer(np.log1p)"]()
    assert round_trip(case.estimator, "log").func is np.log1p
    assert_round_trip(case)


def test_stacking_keeps_its_bunch() -> None:
    case = SCENARIOS["StackingClassifier(LogisticRegression, DecisionTree)"]()
    back = round_trip(case.estimator, "stack")
    assert type(back.named_estimators_) is type(case.estimator.named_estimators_)
    assert list(back.named_estimators_) == ["lr", "tree"]
    assert_round_trip(case)


def test_shared_random_state_keeps_its_identity() -> None:
    rng = np.random.RandomState(0)
    pair = [RandomForestClassifier(n_estimators=2, random_state=rng),
            RandomForestClassifier(n_estimators=2, random_state=rng)]
    back = round_trip(pair, "pair")
    assert back[0].random_state is back[1].random_state
    assert back[0].random_state.rand() == np.random.RandomState(0).rand()


# -- hostile states --------------------------------------------------------------------------
TREE = "sklearn.tree._tree.Tree"
PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def _refused(blob: bytes, path: str, message: str) -> FormatError:
    with pytest.raises(FormatError, match=message) as info:
        safeart.loads(blob, allow=ALLOW, name="model")
    assert info.value.path is not None and path in info.value.path, info.value.path
    return info.value


def _tree_blob() -> bytes:
    return safeart.dumps(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y))


def _edit_tree_field(field: str, change) -> bytes:
    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = codec_states(manifest, TREE)
        change(arrays[state["m"]["nodes"]["m"][field]["t"]])
    return tamper(_tree_blob(), edit)


def _set_first_inner(field: str, value: int):
    def change(array: np.ndarray) -> None:
        array[0] = value  # node 0 is the root, an inner node
    return change


@pytest.mark.parametrize("field, value, message", [
    ("left_child", 10_000, "left child 10000"),
    ("right_child", 0, "right child 0"),  # a cycle back to the root
    ("left_child", -5, "left child -5"),
    ("feature", 5, "feature outside"),
    ("feature", -1, "feature outside"),
    ("missing_go_to_left", 7, "missing_go_to_left"),
])
def test_crafted_tree_nodes_are_refused(field: str, value: int, message: str) -> None:
    _refused(_edit_tree_field(field, _set_first_inner(field, value)), "tree_", message)


def test_crafted_tree_shared_child_is_refused() -> None:
    def change(array: np.ndarray) -> None:
        inner = np.flatnonzero(array != -1)
        array[inner[1]] = array[inner[0]]  # two parents for one node: a DAG, not a tree
    _refused(_edit_tree_field("left_child", change), "tree_", "one tree|later node")


@pytest.mark.parametrize("key, value, message", [
    ("node_count", 1000, "node_count"),
    ("max_depth", 1, "max_depth"),  # decision_path() would write past its buffer
    ("n_features", 3, "feature outside"),
    ("n_outputs", 2, "n_classes"),
])
def test_crafted_tree_counts_are_refused(key: str, value: int, message: str) -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = codec_states(manifest, TREE)
        state["m"][key] = value
    _refused(tamper(_tree_blob(), edit), "tree_", message)


def test_crafted_tree_values_shape_is_refused() -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = codec_states(manifest, TREE)
        name = state["m"]["values"]["t"]
        arrays[name] = arrays[name][:-1]
    _refused(tamper(_tree_blob(), edit), "tree_", "values")


def test_crafted_tree_predictor_is_refused() -> None:
    model = HistGradientBoostingClassifier(max_iter=2, min_samples_leaf=3, random_state=0)
    blob = safeart.dumps(model.fit(X, Y))

    def edit(manifest: dict, arrays: dict) -> None:
        state = next(codec_states(manifest, PREDICTOR))
        arrays[state["m"]["nodes"]["m"]["left"]["t"]][0] = 4_000_000
    _refused(tamper(blob, edit), "_predictors[0][0]", "left child")


def test_crafted_neighbors_tree_is_refused() -> None:
    blob = safeart.dumps(KNeighborsClassifier(algorithm="kd_tree").fit(X, Y))

    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = codec_states(manifest, "sklearn.neighbors._kd_tree.KDTree")
        state["m"]["leaf_size"] = 0
    _refused(tamper(blob, edit), "_tree", "leaf_size")


def test_crafted_metric_is_refused() -> None:
    blob = safeart.dumps(KNeighborsClassifier(algorithm="ball_tree", metric="mahalanobis",
                                              metric_params={"VI": np.eye(5)}).fit(X, Y))

    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = codec_states(manifest,
                                "sklearn.metrics._dist_metrics.MahalanobisDistance64")
        name = state["m"]["mat"]["t"]
        arrays[name] = arrays[name][:3]  # not square: rdist would read past it
    _refused(tamper(blob, edit), "_tree", "square")


def test_crafted_loss_is_refused() -> None:
    from sklearn.linear_model import SGDClassifier

    blob = safeart.dumps(SGDClassifier(max_iter=5, tol=None).fit(X, Y))

    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = codec_states(manifest, "sklearn.linear_model._sgd_fast.Hinge")
        state["m"]["threshold"] = "os.system"
    _refused(tamper(blob, edit), "_loss_function_", "threshold")


def test_codec_types_are_the_real_types() -> None:
    """Each codec's ``types`` (written as strings, so the module imports without sklearn)
    names a class that exists under that name."""
    from sklearn.metrics import _dist_metrics

    for codec in sklearn_codecs.CODECS:
        for name in codec.types:
            module, _, qualname = name.rpartition(".")
            cls = sklearn_codecs._class(module, qualname)
            assert f"{cls.__module__}.{cls.__qualname__}" == name
    stems = {name[:-len("Distance64")] for name in dir(_dist_metrics)
             if name.endswith("Distance64") and name != "PyFuncDistance64"}
    assert stems == set(sklearn_codecs._METRIC_ARGS)


def test_codec_names_are_on_the_default_policy() -> None:
    """Every codec name is allowed by default, but those ALLOW still has to add."""
    policy = safeart.Policy()
    missing = {c.name for c in sklearn_codecs.CODECS if policy.rule_for(c.name) is None}
    assert missing == {rule.name for rule in ALLOW} & missing
