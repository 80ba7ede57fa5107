"""Estimator-level consistency of rebuilt scikit-learn estimators (safeart format).

The codecs check each compiled object on its own (a Tree's splits are below *its*
``n_features``); ``safeart.format.codecs.sklearn_checks`` ties it to the estimator around it,
whose ``n_features_in_`` is all sklearn checks ``X`` against before compiled code indexes it
without bounds checks. Fitted estimators are dumped, their manifest edited so an attribute
disagrees with the tree, and ``loads`` must refuse naming the path, the class and both values.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pytest
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier,
                              GradientBoostingRegressor, HistGradientBoostingClassifier,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier
from sklearn_estimators import codec_states, tamper

import safeart
from safeart.errors import FormatError

RNG = np.random.RandomState(0)
X = RNG.rand(60, 10)
Y = (X[:, 9] > 0.5).astype(int) + (X[:, 0] > 0.5)  # 3 classes; feature 9 is split on
Y2 = np.c_[Y, X[:, 9] > 0.3]


def _fit(make: Callable[[], Any], y: np.ndarray = Y) -> Any:
    return make().fit(X, y)


ESTIMATORS: dict[str, Callable[[], Any]] = {
    "DecisionTreeClassifier": lambda: _fit(lambda: DecisionTreeClassifier(random_state=0)),
    "DecisionTreeClassifier(multi-output)":
        lambda: _fit(lambda: DecisionTreeClassifier(random_state=0), Y2),
    "DecisionTreeRegressor": lambda: _fit(lambda: DecisionTreeRegressor(max_depth=4), X[:, 9]),
    "ExtraTreeClassifier": lambda: _fit(lambda: ExtraTreeClassifier(random_state=0)),
    "RandomForestClassifier": lambda: _fit(lambda: RandomForestClassifier(3, random_state=0)),
    "RandomForestRegressor(multi-output)":
        lambda: _fit(lambda: RandomForestRegressor(3, random_state=0), X[:, :2]),
    "ExtraTreesClassifier": lambda: _fit(lambda: ExtraTreesClassifier(3, random_state=0)),
    "GradientBoostingRegressor":
        lambda: _fit(lambda: GradientBoostingRegressor(n_estimators=3), X[:, 9]),
    "GradientBoostingClassifier(binary)":
        lambda: _fit(lambda: GradientBoostingClassifier(n_estimators=3), Y > 0),
    "GradientBoostingClassifier(multiclass)":
        lambda: _fit(lambda: GradientBoostingClassifier(n_estimators=3)),
    "GradientBoostingClassifier(init=zero)":
        lambda: _fit(lambda: GradientBoostingClassifier(n_estimators=3, init="zero")),
    "HistGradientBoostingClassifier":
        lambda: _fit(lambda: HistGradientBoostingClassifier(max_iter=3, random_state=0)),
}


def obj_states(node: Any, qualname: str) -> Iterator[dict]:
    """The state mappings (``m``) of every ``obj`` node of class ``qualname`` in a manifest."""
    if isinstance(node, dict):
        if node.get("k") == "obj" and node["c"][1] == qualname:
            yield node["state"]["m"]
        for value in node.values():
            yield from obj_states(value, qualname)
    elif isinstance(node, list):
        for value in node:
            yield from obj_states(value, qualname)


def root_state(manifest: dict) -> dict:
    return manifest["root"]["state"]["m"]


def refused(blob: bytes, path: str | None, *texts: str) -> FormatError:
    with pytest.raises(FormatError) as info:
        safeart.loads(blob, name="model")
    error = info.value
    assert path is None or error.path == path, error.path
    for text in texts:
        assert text in error.message, error.message
    assert error.hint and "re-create it from trusted code" in error.hint
    return error


@pytest.mark.parametrize("name", ESTIMATORS)
def test_untampered_estimators_round_trip(name: str) -> None:
    estimator = ESTIMATORS[name]()
    back = safeart.loads(safeart.dumps(estimator, name="model"), name="model")
    np.testing.assert_array_equal(back.predict(X), estimator.predict(X))


def test_the_issue_case_is_refused_before_predict() -> None:
    """n_features_in_ = 2 around a tree splitting on feature 9: predict(X[:, :2]) would
    pass sklearn's check and read X[i, 9] in native code."""
    def edit(manifest: dict, arrays: dict) -> None:
        root_state(manifest)["n_features_in_"] = 2
    blob = tamper(safeart.dumps(ESTIMATORS["DecisionTreeClassifier"]()), edit)
    refused(blob, "model", "sklearn.tree._classes.DecisionTreeClassifier",
            "tree_.n_features is 10 but n_features_in_ is 2")


@pytest.mark.parametrize("name, key, value, texts", [
    ("DecisionTreeClassifier", "n_outputs_", 2, ("tree_.n_outputs is 1 but n_outputs_ is 2",)),
    ("DecisionTreeRegressor", "n_features_in_", 11,
     ("DecisionTreeRegressor", "tree_.n_features is 10 but n_features_in_ is 11")),
    ("ExtraTreeClassifier", "n_features_in_", 1, ("tree_.n_features is 10",)),
    ("DecisionTreeClassifier", "n_classes_", 5, ("tree_.n_classes is [3] but n_classes_ is [5]",)),
    ("DecisionTreeClassifier(multi-output)", "n_classes_", {"k": "list", "v": [3, 5]},
     ("tree_.n_classes is [3, 2] but n_classes_ is [3, 5]",)),
    ("DecisionTreeClassifier", "n_features_in_", "10", ("n_features_in_ is a str",)),
])
def test_tree_attributes_disagreeing_with_the_tree_are_refused(
        name: str, key: str, value: Any, texts: tuple[str, ...]) -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        old = root_state(manifest)[key]
        if isinstance(old, dict) and "t" in old:  # an array: its tensor goes too
            del arrays[old["t"]]
        root_state(manifest)[key] = value
    refused(tamper(safeart.dumps(ESTIMATORS[name]()), edit), "model", *texts)


def test_classes_of_another_length_are_refused() -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        name = root_state(manifest)["classes_"]["t"]
        arrays[name] = arrays[name][:2]
    refused(tamper(safeart.dumps(ESTIMATORS["DecisionTreeClassifier"]()), edit), "model",
            "tree_.n_classes is [3] but the lengths of classes_ is [2]")


def test_a_tree_without_n_features_in_is_refused() -> None:
    """sklearn skips its input-width check when n_features_in_ is absent."""
    def edit(manifest: dict, arrays: dict) -> None:
        del root_state(manifest)["n_features_in_"]
    refused(tamper(safeart.dumps(ESTIMATORS["DecisionTreeClassifier"]()), edit), "model",
            "no n_features_in_")


@pytest.mark.parametrize("name, member", [
    ("RandomForestClassifier", "DecisionTreeClassifier"),
    ("ExtraTreesClassifier", "ExtraTreeClassifier"),
    ("GradientBoostingRegressor", "DecisionTreeRegressor"),
])
def test_a_member_disagreeing_with_its_tree_is_refused(name: str, member: str) -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        list(obj_states(manifest, member))[1]["n_features_in_"] = 2
    error = refused(tamper(safeart.dumps(ESTIMATORS[name]()), edit), None, member,
                    "tree_.n_features is 10 but n_features_in_ is 2")
    assert error.path.startswith("model.estimators_"), error.path


@pytest.mark.parametrize("name, path", [
    ("RandomForestClassifier", "estimators_[0]"),
    ("ExtraTreesClassifier", "estimators_[0]"),
    ("GradientBoostingRegressor", "estimators_[0, 0]"),
    ("GradientBoostingClassifier(multiclass)", "estimators_[0, 0]"),
])
def test_an_ensemble_disagreeing_with_its_members_is_refused(name: str, path: str) -> None:
    """Consistent members, but the ensemble validates X with another width (gradient
    boosting's predict_stages walks the members' trees without asking them)."""
    def edit(manifest: dict, arrays: dict) -> None:
        root_state(manifest)["n_features_in_"] = 2
    refused(tamper(safeart.dumps(ESTIMATORS[name]()), edit), "model",
            f"{path}.n_features_in_ is 10 but n_features_in_ is 2")


def test_forest_outputs_must_match_its_members() -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        root_state(manifest)["n_outputs_"] = 1
    refused(tamper(safeart.dumps(ESTIMATORS["RandomForestRegressor(multi-output)"]()), edit),
            "model", "estimators_[0].n_outputs_ is 2 but n_outputs_ is 1")


@pytest.mark.parametrize("name, width, text", [
    ("GradientBoostingRegressor", 3, "the columns of estimators_ is 1 but "
                                     "n_trees_per_iteration_ is 3"),
    ("GradientBoostingClassifier(init=zero)", 1, "the columns of estimators_ is 3"),
])
def test_boosting_stage_columns_must_match_the_raw_predictions(name: str, width: int,
                                                                text: str) -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        root_state(manifest)["n_trees_per_iteration_"] = width
    refused(tamper(safeart.dumps(ESTIMATORS[name]()), edit), "model", text)


def test_boosting_init_narrower_than_the_stages_is_refused() -> None:
    """predict_stages writes column k of init_'s predictions for every k < the stage
    columns: a 2-class DummyClassifier init_ under 3 columns is a write past the buffer."""
    def edit(manifest: dict, arrays: dict) -> None:
        (init,) = obj_states(manifest, "DummyClassifier")
        init["n_classes_"] = 2
    blob = tamper(safeart.dumps(ESTIMATORS["GradientBoostingClassifier(multiclass)"]()), edit)
    refused(blob, "model", "the columns of estimators_ is 3 but the width of init_'s "
                           "predictions is 2")


def test_hist_gradient_boosting_predictor_features_must_be_inputs() -> None:
    predictor = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"

    def edit(manifest: dict, arrays: dict) -> None:
        assert next(codec_states(manifest, predictor))  # each predictor is a codec value
        root_state(manifest)["n_features_in_"] = 9  # the bin mapper kept consistent:
        (mapper,) = obj_states(manifest, "_BinMapper")
        name = mapper["is_categorical_"]["t"]
        arrays[name] = arrays[name][:9]
    refused(tamper(safeart.dumps(ESTIMATORS["HistGradientBoostingClassifier"]()), edit),
            "model", "splits on feature 9 but n_features_in_ is 9")


def test_hist_gradient_boosting_bin_mapper_width_must_match() -> None:
    def edit(manifest: dict, arrays: dict) -> None:
        (mapper,) = obj_states(manifest, "_BinMapper")
        name = mapper["is_categorical_"]["t"]
        arrays[name] = arrays[name][:4]
    refused(tamper(safeart.dumps(ESTIMATORS["HistGradientBoostingClassifier"]()), edit),
            "model", "_bin_mapper.is_categorical_ size is 4 but n_features_in_ is 10")


def test_an_ensemble_is_checked_once_its_members_states_are_final() -> None:
    """Root = the only member, which holds its ensemble: the ensemble is built while the
    member's state is still empty, so checks run only once the whole graph is built."""
    boosting = GradientBoostingRegressor(n_estimators=1).fit(X, X[:, 9])
    member = boosting.estimators_[0, 0]
    member.owner = boosting

    def edit(manifest: dict, arrays: dict) -> None:
        (state,) = obj_states(manifest, "GradientBoostingRegressor")
        state["n_features_in_"] = 2
    refused(tamper(safeart.dumps(member), edit), "model.owner",
            "estimators_[0, 0].n_features_in_ is 10 but n_features_in_ is 2")
