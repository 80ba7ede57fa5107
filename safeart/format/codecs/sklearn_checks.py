"""Estimator-level consistency checks for the scikit-learn objects safeart rebuilds.

The sklearn codecs (:mod:`safeart.format.codecs.sklearn`) check each compiled object on its
own: a ``Tree``'s split features are below *its own* ``n_features``. What sklearn's
``predict`` checks the input against is the *estimator's* ``n_features_in_``, and the
compiled code then indexes ``X`` by the tree's features without bounds checks. A stored
``DecisionTreeClassifier`` with ``n_features_in_ = 2`` around a tree splitting on feature 9
accepts a two-column ``X`` and reads past it in native code. The checks below tie every
compiled object to the attributes sklearn validates inputs with:

* estimators holding a ``tree_`` (``BaseDecisionTree``: decision trees, extra trees, the
  members of forests and gradient boosting): ``n_features_in_`` is present and equals
  ``tree_.n_features``; ``n_outputs_``, ``n_classes_`` and ``classes_`` (where present)
  agree with the tree's outputs and classes;
* forests and gradient boosting: every member's ``n_features_in_``/``n_outputs_`` equals the
  ensemble's (gradient boosting's compiled ``predict_stages`` never asks its members to
  check ``X``), and gradient boosting's ``estimators_`` has as many columns as its raw
  predictions (``n_trees_per_iteration_``, and the width ``init_`` predicts when it is
  ``"zero"`` or a ``Dummy*`` estimator): ``predict_stages`` writes column ``k`` unchecked;
* ``HistGradientBoosting*``: every split of every ``TreePredictor`` uses a feature below
  ``n_features_in_``, and a categorical split a feature the bin mapper marks categorical
  (its known-categories bitset row is looked up by that feature without bounds checks).

Checks are picked by the names of the classes in ``type(obj).__mro__`` (so subclasses are
checked too), never by importing anything; attributes are read from the instance
``__dict__``. :func:`check_consistency` is called once per rebuilt object, after its state is
set and before anything is handed to the caller, by the manifest builder and by the
restricted unpickler.
"""

from __future__ import annotations

from typing import Any, Callable

from ...errors import FormatError


_HINT = ("the estimator's fitted attributes disagree with the compiled object it holds: the "
         "artifact was edited or crafted (sklearn never writes this); re-create it from "
         "trusted code")
_TREE = "sklearn.tree._tree.Tree"
_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_MISSING = object()


class _Mismatch(Exception):
    """Raised by a check with the text of the disagreement."""


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _state(obj: Any) -> dict:
    state = getattr(obj, "__dict__", None)  # instance attributes only: no class attribute
    return state if type(state) is dict else {}


def _int(value: Any, what: str) -> int:
    """``value`` as an int: a Python or numpy integer (or a 0-d integer array), not a bool."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise _Mismatch(f"{what} is a {type(value).__name__}, not an integer")


def _ints(value: Any, what: str) -> list[int]:
    """An integer or a 1-D sequence of integers as a list of ints."""
    import numpy as np

    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [_int(item, f"{what}[{i}]") for i, item in enumerate(value)]
    return [_int(value, what)]


def _agree(what: str, value: Any, other_what: str, other: Any) -> None:
    if value != other:
        raise _Mismatch(f"{what} is {value!r} but {other_what} is {other!r}")


def _required(state: dict, key: str, why: str) -> Any:
    value = state.get(key, _MISSING)
    if value is _MISSING:
        raise _Mismatch(f"it has no {key} ({why})")
    return value


# -- checks: each takes the instance state and raises _Mismatch --------------------------------
def _tree_matches(state: dict) -> None:
    """A fitted tree estimator against its ``tree_``."""
    tree = state.get("tree_")
    if tree is None:
        return  # not fitted
    if _name(type(tree)) != _TREE:
        raise _Mismatch(f"tree_ is a {_name(type(tree))}, not a {_TREE}")
    n_in = _int(_required(state, "n_features_in_", "sklearn would not check the width of X "
                          "against the tree"), "n_features_in_")
    _agree("tree_.n_features", int(tree.n_features), "n_features_in_", n_in)
    n_outputs = int(tree.n_outputs)
    if "n_outputs_" in state:
        _agree("tree_.n_outputs", n_outputs, "n_outputs_", _int(state["n_outputs_"], "n_outputs_"))
    n_classes = [int(n) for n in tree.n_classes]
    if "n_classes_" in state:
        _agree("tree_.n_classes", n_classes, "n_classes_", _ints(state["n_classes_"], "n_classes_"))
    classes = state.get("classes_")
    if classes is not None:
        groups = list(classes) if n_outputs > 1 and isinstance(classes, list) else [classes]
        try:
            sizes = [len(group) for group in groups]
        except TypeError:
            raise _Mismatch(f"classes_ is a {type(classes).__name__}, not arrays of "
                            "classes") from None
        _agree("tree_.n_classes", n_classes, "the lengths of classes_", sizes)


def _members(state: dict) -> list[tuple[str, Any]]:
    """``estimators_`` as (path, member) pairs: a list, or gradient boosting's 2-D array."""
    import numpy as np

    members = state.get("estimators_")
    if isinstance(members, np.ndarray) and members.dtype == object:
        return [(f"estimators_[{', '.join(map(str, index))}]", member)
                for index, member in np.ndenumerate(members)]
    if isinstance(members, list):
        return [(f"estimators_[{i}]", member) for i, member in enumerate(members)]
    return []


def _members_match(state: dict) -> None:
    """Every fitted member of a forest or gradient boosting has the ensemble's input width
    and outputs (forests and boosting feed each member the X validated for the ensemble)."""
    for path, member in _members(state):
        inner = _state(member)
        for key in ("n_features_in_", "n_outputs_"):
            if key in state and key in inner:
                _agree(f"{path}.{key}", _int(inner[key], f"{path}.{key}"), key,
                       _int(state[key], key))
        if "tree_" in inner and "n_features_in_" not in state:
            raise _Mismatch(f"it has no n_features_in_ but {path} is fitted")


def _init_width(state: dict) -> int | None:
    """The columns of gradient boosting's initial raw predictions, the buffer
    ``predict_stages`` writes into (None: an init estimator of another kind)."""
    init = state.get("init_")
    if type(init) is str and init == "zero":
        return _int(state["n_trees_per_iteration_"], "n_trees_per_iteration_")
    inner, kind = _state(init), _name(type(init))
    if kind == "sklearn.dummy.DummyRegressor" and "n_outputs_" in inner:
        return _int(inner["n_outputs_"], "init_.n_outputs_")
    if kind == "sklearn.dummy.DummyClassifier" and inner.get("n_outputs_") == 1:
        multiclass = getattr(type(state.get("_loss")), "is_multiclass", None)
        if multiclass is False:
            return 1  # the positive class's probability
        if multiclass is True and "n_classes_" in inner:
            return _int(inner["n_classes_"], "init_.n_classes_")
    return None


def _boosting_stages(state: dict) -> None:
    """Gradient boosting's ``predict_stages`` adds member (i, k) into column k of the raw
    predictions (``n_trees_per_iteration_`` wide, as wide as ``init_`` predicts) without
    bounds checks."""
    import numpy as np

    stages = state.get("estimators_")
    if stages is None or "n_trees_per_iteration_" not in state:
        return
    if not isinstance(stages, np.ndarray) or stages.ndim != 2:
        raise _Mismatch(f"estimators_ is a {type(stages).__name__}, not a 2-D array")
    _agree("the columns of estimators_", stages.shape[1], "n_trees_per_iteration_",
           _int(state["n_trees_per_iteration_"], "n_trees_per_iteration_"))
    width = _init_width(state)
    if width is not None:
        _agree("the columns of estimators_", stages.shape[1],
               "the width of init_'s predictions", width)


def _predictors_match(state: dict) -> None:
    """HistGradientBoosting's tree predictors split on features the estimator takes."""
    import numpy as np

    predictors = state.get("_predictors")
    if not predictors:
        return
    n_in = _int(_required(state, "n_features_in_", "sklearn would not check the width of X "
                          "against the predictors"), "n_features_in_")
    categorical = _state(state.get("_bin_mapper")).get("is_categorical_")
    if categorical is not None:
        categorical = np.asarray(categorical)
        _agree("_bin_mapper.is_categorical_ size", categorical.size, "n_features_in_", n_in)
    for i, iteration in enumerate(predictors):
        for k, predictor in enumerate(iteration):
            if _name(type(predictor)) != _PREDICTOR:
                raise _Mismatch(f"_predictors[{i}][{k}] is a {_name(type(predictor))}")
            nodes = predictor.nodes
            split = nodes["is_leaf"] == 0
            features = nodes["feature_idx"][split]
            if features.size and int(features.max()) >= n_in:
                raise _Mismatch(f"_predictors[{i}][{k}] splits on feature "
                                f"{int(features.max())} but n_features_in_ is {n_in}")
            on_category = nodes["feature_idx"][split & (nodes["is_categorical"] == 1)]
            if on_category.size and (categorical is None or not categorical[on_category].all()):
                raise _Mismatch(f"_predictors[{i}][{k}] has a categorical split on a feature "
                                "_bin_mapper.is_categorical_ does not mark categorical")


#: ``module.qualname`` of a class in the MRO -> the checks its instances get.
_CHECKS: dict[str, tuple[Callable[[dict], None], ...]] = {
    "sklearn.tree._classes.BaseDecisionTree": (_tree_matches,),
    "sklearn.ensemble._forest.BaseForest": (_members_match,),
    "sklearn.ensemble._gb.BaseGradientBoosting": (_members_match, _boosting_stages),
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.BaseHistGradientBoosting":
        (_predictors_match,),
}
_BY_TYPE: dict[type, tuple[Callable[[dict], None], ...]] = {}


def checks_for(cls: type) -> tuple[Callable[[dict], None], ...]:
    """The consistency checks of instances of ``cls`` (empty for most classes; cached)."""
    checks = _BY_TYPE.get(cls)
    if checks is None:
        checks = tuple(check for base in cls.__mro__ for check in _CHECKS.get(_name(base), ()))
        _BY_TYPE[cls] = checks
    return checks


def check_consistency(obj: Any) -> None:
    """Refuse a rebuilt estimator whose fitted attributes disagree with the compiled objects
    it holds: a :class:`~safeart.errors.FormatError` naming the class, the two values and a
    hint (the caller sets ``path``). Objects of other classes pass at once."""
    checks = checks_for(type(obj))
    if not checks:
        return
    state = _state(obj)
    try:
        for check in checks:
            check(state)
    except _Mismatch as exc:
        raise FormatError(f"inconsistent {_name(type(obj))}: {exc}", hint=_HINT) from None
    except (LookupError, TypeError, ValueError, AttributeError) as exc:  # e.g. a node dtype
        raise FormatError(f"inconsistent {_name(type(obj))}: its compiled objects cannot be "
                          f"checked ({type(exc).__name__}: {exc})", hint=_HINT) from None
