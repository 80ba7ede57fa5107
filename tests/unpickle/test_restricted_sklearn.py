"""Estimator-level consistency of scikit-learn estimators the restricted unpickler builds.

The same checks as the safeart format (``safeart.format.codecs.sklearn_checks``), applied
after the load (``safeart.unpickle.estimators``) to every estimator reachable from the
result or memoized by the pickle. Estimators are fitted, edited in Python so an attribute
disagrees with the compiled object, pickled, and ``restricted_loads`` must refuse.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np
import pytest
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingRegressor, RandomForestClassifier)
from sklearn.tree import DecisionTreeClassifier

from safeart.errors import FormatError
from safeart.unpickle import estimators, restricted_loads

RNG = np.random.RandomState(0)
X = RNG.rand(60, 10)
Y = (X[:, 9] > 0.5).astype(int) + (X[:, 0] > 0.5)

FITTED: dict[str, Callable[[], Any]] = {
    "tree": lambda: DecisionTreeClassifier(random_state=0).fit(X, Y),
    "forest": lambda: RandomForestClassifier(3, random_state=0).fit(X, Y),
    "boosting": lambda: GradientBoostingRegressor(n_estimators=3).fit(X, X[:, 9]),
    "boosting(multiclass)": lambda: GradientBoostingClassifier(n_estimators=3).fit(X, Y),
    "hist": lambda: HistGradientBoostingRegressor(max_iter=3).fit(X, X[:, 9]),
}


def refused(obj: Any, path: str, text: str) -> FormatError:
    with pytest.raises(FormatError) as info:
        restricted_loads(pickle.dumps(obj, protocol=4), artifact="Flow/1/train/2:model")
    error = info.value
    assert error.path == path and text in error.message, str(error)
    assert error.artifact == "Flow/1/train/2:model"
    assert error.hint and "re-create it from trusted code" in error.hint
    return error


@pytest.mark.parametrize("name", FITTED)
def test_untampered_estimators_load(name: str) -> None:
    estimator = FITTED[name]()
    back = restricted_loads(pickle.dumps({"model": [estimator]}, protocol=4))
    np.testing.assert_array_equal(back["model"][0].predict(X), estimator.predict(X))


def test_the_issue_case_is_refused() -> None:
    tree = FITTED["tree"]()
    tree.n_features_in_ = 2
    error = refused({"model": [tree]}, "['model'][0]",
                    "tree_.n_features is 10 but n_features_in_ is 2")
    assert "sklearn.tree._classes.DecisionTreeClassifier" in error.message


def test_a_boosting_member_of_another_width_is_refused() -> None:
    boosting = FITTED["boosting"]()
    boosting.estimators_[1, 0].n_features_in_ = 2
    refused(boosting, "<root>", "estimators_[1, 0].n_features_in_ is 2 but n_features_in_ is 10")


def test_a_forest_member_in_a_cycle_is_checked_with_its_final_state() -> None:
    forest = FITTED["forest"]()
    forest.estimators_[2].owner = forest  # member -> ensemble -> member
    forest.n_features_in_ = 3
    refused(forest, "<root>", "estimators_[0].n_features_in_ is 10 but n_features_in_ is 3")


def test_boosting_init_narrower_than_the_stages_is_refused() -> None:
    boosting = FITTED["boosting(multiclass)"]()
    boosting.init_.n_classes_ = 2
    refused(boosting, "<root>", "the columns of estimators_ is 3 but the width of init_'s "
                                "predictions is 2")


def test_a_predictor_feature_beyond_the_inputs_is_refused() -> None:
    hist = FITTED["hist"]()
    nodes = hist._predictors[1][0].nodes
    nodes["feature_idx"][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = 40
    refused(hist, "<root>", "_predictors[1][0] splits on feature 40 but n_features_in_ is 10")


def test_a_categorical_split_on_a_numeric_feature_is_refused() -> None:
    """Its known-categories bitset row would be looked up past the (empty) table."""
    hist = FITTED["hist"]()
    nodes = hist._predictors[0][0].nodes
    nodes["is_categorical"][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = 1
    refused(hist, "<root>", "categorical split on a feature _bin_mapper.is_categorical_ "
                            "does not mark categorical")


def test_loads_without_sklearn_classes_walk_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(*args: Any) -> None:
        raise AssertionError("walked a pickle that resolved no sklearn class")

    monkeypatch.setattr("safeart.unpickle.restricted.check_loaded", walk)
    assert restricted_loads(pickle.dumps({"a": [1, 2.5, np.arange(3)]}))["a"][0] == 1
    assert estimators.from_sklearn(DecisionTreeClassifier)
    assert not estimators.from_sklearn(dict) and not estimators.from_sklearn(len)


def test_a_predictor_whose_nodes_cannot_be_checked_is_refused() -> None:
    """(TreePredictor.__setstate__ casts its nodes today; the check does not rely on it.)"""
    from safeart.format.codecs.sklearn_checks import check_consistency

    hist = FITTED["hist"]()
    predictor = hist._predictors[0][0]
    predictor.nodes = predictor.nodes[["value", "count"]].copy()  # no split fields
    with pytest.raises(FormatError, match=r"cannot be checked \(ValueError: no field"):
        check_consistency(hist)
