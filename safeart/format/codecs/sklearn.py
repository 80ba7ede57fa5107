"""Codecs for the scikit-learn objects that pickle rebuilds by calls (Cython types).

Estimators themselves are plain ``__dict__`` state (the ``obj`` kind); what they hold and
pickle cannot rebuild from state alone is here:

* ``sklearn.tree._tree.Tree`` (every decision-tree estimator and forest) and the
  ``TreePredictor`` of ``HistGradientBoosting*``: node arrays whose child and feature
  indices compiled ``predict`` code follows without bounds checks. Stored one plain array
  per node field; decoding checks dtypes, counts, that the nodes form one tree whose
  children come after their parent (so traversal ends), feature and bitset indices, and
  the recorded depth, before sklearn sees them.
* ``KDTree`` / ``BallTree`` (``KNeighbors*``, ``KernelDensity`` ...): stored as the data,
  leaf size, metric and sample weights, and **rebuilt** by their public constructor (the
  build is deterministic), so no stored node index is ever trusted.
* the distance metrics (``sklearn.metrics._dist_metrics.*Distance64/32``): their public
  constructor with the stored ``p``/``w``/``V``/``VI``; the result must match the state.
* ``Bunch`` (``named_estimators_`` of stacking and voting ensembles): a dict subclass.
* the loss objects of ``sklearn._loss`` and of SGD (``Hinge``, ``EpsilonInsensitive``...):
  their constructor with the float parameters they reduce to.

The module imports scikit-learn only inside ``encode``/``decode``; class names come from
the tables below, never from the stored state.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ...errors import EncodeError
from . import Codec
from .numpy_extra import check_array, check_float, check_int, check_keys


_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
_UNDEFINED = -2  # sklearn.tree._tree.TREE_UNDEFINED
_MAX_FEATURES = 1 << 24  # a Tree's n_features sizes feature_importances_; not backed by data


def _class(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)


def _node_fields(state: Any, dtype: np.dtype, what: str) -> tuple[int, dict[str, np.ndarray]]:
    """The per-field node arrays of ``state``: exactly ``dtype``'s fields, 1-D, one length,
    each of its field's dtype (integers of any width and byte order are range-checked)."""
    check_keys(state, frozenset(dtype.names), what)
    fields: dict[str, np.ndarray] = {}
    count = None
    for name in dtype.names:
        want = dtype.fields[name][0]
        array = check_array(state[name], f"{what}[{name!r}]", ndim=1)
        if array.dtype != want:
            if want.kind not in "iu" or array.dtype.kind not in "iu":
                array = check_array(array, f"{what}[{name!r}]", want)
            else:
                info = np.iinfo(want)
                if array.size and (array.min() < info.min or array.max() > info.max):
                    raise ValueError(f"{what}[{name!r}]: values outside {want}")
                array = array.astype(want)
        if count is None:
            count = len(array)
        elif len(array) != count:
            raise ValueError(f"{what}: field {name!r} has {len(array)} nodes, not {count}")
        fields[name] = array
    if not count:
        raise ValueError(f"{what}: a tree needs at least one node")
    return count, fields


def _check_tree_shape(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, what: str) -> int:
    """Children of internal nodes lie after their parent and within the node array, each
    node but the root has exactly one parent; returns the depth of the deepest leaf."""
    count = len(left)
    index = np.arange(count)
    inner = ~leaf
    for side, child in (("left", left), ("right", right)):
        bad = inner & ((child <= index) | (child >= count))
        if bad.any():
            node = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}: node {node} has {side} child {int(child[node])}, not a "
                             f"later node below {count}")
    parents = np.bincount(np.concatenate([left[inner], right[inner]]).astype(np.int64),
                          minlength=count)
    if parents[0] != 0 or (parents[1:] != 1).any():
        raise ValueError(f"{what}: the nodes do not form one tree (a node is reached twice "
                         "or never)")
    depth, frontier = 0, np.array([0])
    while True:  # level by level: at most `count` levels, every node visited once
        frontier = frontier[inner[frontier]]
        if not len(frontier):
            return depth
        frontier = np.concatenate([left[frontier], right[frontier]]).astype(np.int64)
        depth += 1


# -- sklearn.tree._tree.Tree -----------------------------------------------------------------
def _encode_tree(tree: Any) -> dict:
    state = tree.__getstate__()
    nodes = state["nodes"]
    return {"n_features": int(tree.n_features), "n_outputs": int(tree.n_outputs),
            "n_classes": np.asarray(tree.n_classes, dtype=np.int64),
            "max_depth": int(state["max_depth"]), "node_count": int(state["node_count"]),
            "nodes": {name: np.ascontiguousarray(nodes[name]) for name in nodes.dtype.names},
            "values": state["values"]}


def _decode_tree(state: Any, version: int) -> Any:
    from sklearn.tree._tree import NODE_DTYPE, Tree

    check_keys(state, ("n_features", "n_outputs", "n_classes", "max_depth", "node_count",
                       "nodes", "values"), "Tree")
    count, fields = _node_fields(state["nodes"], NODE_DTYPE, "Tree nodes")
    node_count = check_int(state["node_count"], "Tree node_count", count, count)
    n_features = check_int(state["n_features"], "Tree n_features", 1, _MAX_FEATURES)
    n_outputs = check_int(state["n_outputs"], "Tree n_outputs", 1)
    n_classes = check_array(state["n_classes"], "Tree n_classes", np.int64, (n_outputs,))
    if (n_classes < 1).any():
        raise ValueError("Tree n_classes: every output needs at least one class")
    values = check_array(state["values"], "Tree values", np.float64,
                         (count, n_outputs, int(n_classes.max())))
    left, right, feature = fields["left_child"], fields["right_child"], fields["feature"]
    leaf = left == _LEAF
    if ((right == _LEAF) != leaf).any():
        raise ValueError("Tree nodes: a node has exactly one child")
    if ((feature < 0) | (feature >= n_features))[~leaf].any():
        raise ValueError(f"Tree nodes: a split uses a feature outside [0, {n_features})")
    if (feature[leaf] != _UNDEFINED).any():
        raise ValueError("Tree nodes: a leaf names a feature")
    if (fields["missing_go_to_left"] > 1).any():
        raise ValueError("Tree nodes: missing_go_to_left must be 0 or 1")
    depth = _check_tree_shape(left, right, leaf, "Tree nodes")
    # decision_path() sizes its output by max_depth: it must cover the real depth
    max_depth = check_int(state["max_depth"], "Tree max_depth", depth, count)
    nodes = np.zeros(count, dtype=NODE_DTYPE)
    for name, array in fields.items():
        nodes[name] = array
    tree = Tree(n_features, n_classes.astype(np.intp), n_outputs)
    tree.__setstate__({"max_depth": max_depth, "node_count": node_count, "nodes": nodes,
                       "values": values})
    return tree


# -- HistGradientBoosting TreePredictor ------------------------------------------------------
_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor"


def _encode_predictor(predictor: Any) -> dict:
    nodes = predictor.nodes
    return {"nodes": {name: np.ascontiguousarray(nodes[name]) for name in nodes.dtype.names},
            "binned_left_cat_bitsets": predictor.binned_left_cat_bitsets,
            "raw_left_cat_bitsets": predictor.raw_left_cat_bitsets}


def _decode_predictor(state: Any, version: int) -> Any:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    check_keys(state, ("nodes", "binned_left_cat_bitsets", "raw_left_cat_bitsets"),
               "TreePredictor")
    count, fields = _node_fields(state["nodes"], PREDICTOR_RECORD_DTYPE, "TreePredictor nodes")
    binned = check_array(state["binned_left_cat_bitsets"], "TreePredictor binned bitsets",
                         np.uint32, (None, 8))
    raw = check_array(state["raw_left_cat_bitsets"], "TreePredictor raw bitsets", np.uint32,
                      binned.shape)
    for flag in ("is_leaf", "is_categorical", "missing_go_to_left"):
        if (fields[flag] > 1).any():
            raise ValueError(f"TreePredictor nodes: {flag} must be 0 or 1")
    leaf = fields["is_leaf"] == 1
    if (fields["feature_idx"][~leaf] < 0).any():
        raise ValueError("TreePredictor nodes: a split uses a negative feature index")
    categorical = ~leaf & (fields["is_categorical"] == 1)
    if (fields["bitset_idx"][categorical] >= len(binned)).any():
        raise ValueError(f"TreePredictor nodes: a categorical split names a bitset beyond "
                         f"the {len(binned)} stored")
    _check_tree_shape(fields["left"].astype(np.int64), fields["right"].astype(np.int64), leaf,
                      "TreePredictor nodes")
    nodes = np.zeros(count, dtype=PREDICTOR_RECORD_DTYPE)
    for name, array in fields.items():
        nodes[name] = array
    return _class(_PREDICTOR, "TreePredictor")(nodes, binned, raw)


# -- distance metrics ------------------------------------------------------------------------
_METRICS = "sklearn.metrics._dist_metrics"
#: class name stem -> how its stored (p, vec, mat) map to constructor arguments.
_METRIC_ARGS = {
    "Euclidean": None, "Manhattan": None, "Chebyshev": None, "Hamming": None,
    "Canberra": None, "BrayCurtis": None, "Jaccard": None, "Matching": None, "Dice": None,
    "RogersTanimoto": None, "RussellRao": None, "SokalMichener": None, "SokalSneath": None,
    "Haversine": None, "Kulsinski": None,
    "Minkowski": lambda p, vec, mat: {"p": p, "w": vec if vec.size else None},
    "SEuclidean": lambda p, vec, mat: {"V": vec},
    "Mahalanobis": lambda p, vec, mat: {"VI": mat},
}


def _metric_codec(stem: str, bits: int) -> Codec:
    name = f"{stem}Distance{bits}"

    def encode(metric: Any) -> dict:
        p, vec, mat = metric.__getstate__()
        return {"p": float(p), "vec": np.asarray(vec), "mat": np.asarray(mat)}

    def decode(state: Any, version: int) -> Any:
        check_keys(state, ("p", "vec", "mat"), name)
        p = check_float(state["p"], f"{name} p")
        vec = check_array(state["vec"], f"{name} vec", np.float64, ndim=1)
        mat = check_array(state["mat"], f"{name} mat", np.float64, ndim=2)
        args = _METRIC_ARGS[stem]
        metric = _class(_METRICS, name)(**(args(p, vec, mat) if args else {}))
        got_p, got_vec, got_mat = metric.__getstate__()
        if not (got_p == p or (np.isnan(got_p) and np.isnan(p))) or not (
                np.array_equal(got_vec, vec) and np.array_equal(got_mat, mat)):
            raise ValueError(f"{name}: the stored parameters are not those its constructor makes")
        return metric

    return Codec(name=f"{_METRICS}.{name}", types=(f"{_METRICS}.{name}",), version=1,
                 encode=encode, decode=decode,
                 reason=f"{name}(...) from its float parameters; its constructor validates "
                        "them and the result must reproduce the stored state")


# -- KDTree / BallTree -----------------------------------------------------------------------
def _binary_tree_codec(module: str, name: str) -> Codec:
    def encode(tree: Any) -> dict:
        (data, _idx, _nodes, _bounds, leaf_size, _levels, _n_nodes, trims, leaves, splits,
         calls, metric, sample_weight) = tree.__getstate__()
        if type(metric).__name__.startswith("PyFuncDistance"):
            raise EncodeError(f"a {name} with a Python function as metric cannot be stored",
                              hint="use one of the named metrics")
        return {"data": data, "leaf_size": int(leaf_size), "metric": metric,
                "sample_weight": sample_weight,
                "stats": [int(trims), int(leaves), int(splits), int(calls)]}

    def decode(state: Any, version: int) -> Any:
        check_keys(state, ("data", "leaf_size", "metric", "sample_weight", "stats"), name)
        data = check_array(state["data"], f"{name} data", np.float64, ndim=2)
        leaf_size = check_int(state["leaf_size"], f"{name} leaf_size", 1)
        metric = state["metric"]
        if f"{type(metric).__module__}.{type(metric).__qualname__}" not in _METRIC_TYPES_64:
            raise TypeError(f"{name} metric: a {type(metric).__name__} is not a distance metric")
        weight = state["sample_weight"]
        if weight is not None:
            weight = check_array(weight, f"{name} sample_weight", np.float64, (len(data),))
        stats = state["stats"]
        if type(stats) is not list or len(stats) != 4:
            raise TypeError(f"{name} stats: expected 4 counters")
        counters = [check_int(v, f"{name} stats[{i}]", 0, (1 << 31) - 1)
                    for i, v in enumerate(stats)]
        # rebuilt from the data (deterministic): no stored index is ever used
        tree = _class(module, name)(data, leaf_size=leaf_size, metric=metric,
                                    sample_weight=weight)
        rebuilt = list(tree.__getstate__())
        rebuilt[7:11] = counters  # n_trims, n_leaves, n_splits, n_calls: statistics only
        tree.__setstate__(tuple(rebuilt))
        return tree

    return Codec(name=f"{module}.{name}", types=(f"{module}.{name}",), version=1,
                 encode=encode, decode=decode,
                 reason=f"{name}(data, leaf_size, metric, sample_weight): the tree is rebuilt "
                        "by its public constructor, stored nodes are never trusted")


# -- Bunch -----------------------------------------------------------------------------------
def _encode_bunch(bunch: Any) -> dict:
    extra = set(vars(bunch)) - {"_deprecated_key_to_warnings"}
    if extra:
        raise EncodeError(f"a Bunch with instance attributes {sorted(extra)} cannot be stored")
    return {"items": dict(bunch),
            "deprecated": dict(vars(bunch).get("_deprecated_key_to_warnings", {}))}


def _decode_bunch(state: Any, version: int) -> Any:
    from sklearn.utils import Bunch

    check_keys(state, ("items", "deprecated"), "Bunch")
    items, deprecated = state["items"], state["deprecated"]
    if type(items) is not dict or type(deprecated) is not dict or not all(
            type(k) is str and type(v) is str for k, v in deprecated.items()):
        raise TypeError("Bunch: expected an item dict and a dict of str warning messages")
    bunch = Bunch()
    dict.update(bunch, items)
    vars(bunch)["_deprecated_key_to_warnings"].update(deprecated)
    return bunch


# -- loss objects ----------------------------------------------------------------------------
#: module -> {class name: its float constructor parameters}
_LOSSES = {
    "sklearn._loss._loss": {
        "CyHalfSquaredError": (), "CyAbsoluteError": (), "CyPinballLoss": ("quantile",),
        "CyHuberLoss": ("delta",), "CyHalfPoissonLoss": (), "CyHalfGammaLoss": (),
        "CyHalfTweedieLoss": ("power",), "CyHalfTweedieLossIdentity": ("power",),
        "CyHalfBinomialLoss": (), "CyExponentialLoss": (), "CyHalfMultinomialLoss": (),
    },
    "sklearn.linear_model._sgd_fast": {
        "Hinge": ("threshold",), "SquaredHinge": ("threshold",), "ModifiedHuber": (),
        "EpsilonInsensitive": ("epsilon",), "SquaredEpsilonInsensitive": ("epsilon",),
    },
}


def _loss_codec(module: str, name: str, params: tuple[str, ...]) -> Codec:
    def encode(loss: Any) -> dict:
        args = loss.__reduce__()[1] if params else ()
        if len(args) != len(params):
            raise EncodeError(f"{name} reduces to {len(args)} arguments, not {len(params)}")
        return {param: float(arg) for param, arg in zip(params, args)}

    def decode(state: Any, version: int) -> Any:
        check_keys(state, params, name)
        return _class(module, name)(*(check_float(state[p], f"{name} {p}") for p in params))

    return Codec(name=f"{module}.{name}", types=(f"{module}.{name}",), version=1,
                 encode=encode, decode=decode,
                 reason=f"{name}({', '.join(params)}): a loss function object built from "
                        f"{len(params)} float parameter(s)")


_METRIC_TYPES_64 = frozenset(f"{_METRICS}.{stem}Distance64" for stem in _METRIC_ARGS)

CODECS: tuple[Codec, ...] = (
    Codec(name="sklearn.tree._tree.Tree", types=("sklearn.tree._tree.Tree",), version=1,
          encode=_encode_tree, decode=_decode_tree,
          reason="Tree(n_features, n_classes, n_outputs) plus __setstate__ of node arrays "
                 "checked to form one tree with in-range child and feature indices"),
    Codec(name=f"{_PREDICTOR}.TreePredictor", types=(f"{_PREDICTOR}.TreePredictor",),
          version=1, encode=_encode_predictor, decode=_decode_predictor,
          reason="TreePredictor(nodes, bitsets) over node arrays checked to form one tree "
                 "with in-range child and bitset indices"),
    Codec(name="sklearn.utils._bunch.Bunch", types=("sklearn.utils._bunch.Bunch",), version=1,
          encode=_encode_bunch, decode=_decode_bunch,
          reason="a dict subclass: Bunch() updated with already-built items and the str "
                 "messages of its deprecated keys"),
    _binary_tree_codec("sklearn.neighbors._kd_tree", "KDTree"),
    _binary_tree_codec("sklearn.neighbors._ball_tree", "BallTree"),
    *(_metric_codec(stem, bits) for stem in _METRIC_ARGS for bits in (64, 32)),
    *(_loss_codec(module, name, params)
      for module, losses in _LOSSES.items() for name, params in losses.items()),
)
