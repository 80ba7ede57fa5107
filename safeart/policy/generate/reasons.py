"""The reviewed part of the generated allowlist: why each family of names is safe, and what
is left out.

The generator finds names by pickling benign samples; this module decides whether each one
may be admitted and says why. A name no rule here covers stops the generator
(:class:`Unreviewed`): a new library version that pickles something new needs a person to
read it and write its reason, not a catch-all string.

Rules are matched in order; the first whose pattern covers the name and whose kinds include
the entry's kind gives the reason. Patterns are exact names or ``prefix.*`` families; the
entries they produce are always exact names (the generated lists hold no wildcards).
"""

from __future__ import annotations

import fnmatch
from typing import Any

__all__ = ["Unreviewed", "EXCLUDED", "REQUIRED_STDLIB", "RULES", "reason_for", "excluded"]


class Unreviewed(Exception):
    """A sample pickle imports a name no rule reviews."""


#: Names or families never admitted even if a benign pickle names them, and why.
EXCLUDED: dict[str, str] = {
    "builtins.getattr": "resolves any attribute of any object (ZoneInfo pickles as "
    "getattr(ZoneInfo, '_unpickle')): refused; the format stores ZoneInfo by its key instead",
    "sklearn.utils._testing.*": "test helpers: run subprocesses, write temporary files",
    "sklearn.datasets.*": "dataset fetchers download files and read caches from disk",
    "sklearn.utils._joblib.*": "joblib re-exports: joblib.load unpickles",
    "sklearn.externals.*": "vendored third-party code, not reviewed",
    "sklearn.utils.parallel.*": "runs callables in joblib worker pools",
    "sklearn.utils._show_versions.*": "imports arbitrary installed modules to read versions",
    "pandas.io.*": "readers and writers: files, URLs, read_pickle",
    "pandas.read_*": "readers: files and URLs",
    "pandas.core.computation.*": "eval/query: evaluates expression strings",
    "sklearn.metrics._dist_metrics.PyFuncDistance*": "calls a pickled Python function for "
    "every distance it computes",
    "numpy.load": "numpy.load(allow_pickle=True) unpickles",
    "numpy.lib.*": "npyio loaders, format readers (memmap opens files)",
    "numpy.memmap": "maps a file given by name",
    "numpy.fromfile": "reads a file given by name",
    "numpy.ctypeslib.*": "loads native libraries",
}

#: Standard-library names the format's value codecs and real pickles need, with the kind
#: they get when no sample pickle shows another use (``class``: rebuilt from state).
REQUIRED_STDLIB: dict[str, str] = {
    "zoneinfo.ZoneInfo": "class",
    "pathlib.WindowsPath": "callable",
    "pathlib.PosixPath": "callable",
    "pathlib.PureWindowsPath": "callable",
    **{f"builtins.{n}": "reference" for n in (
        "int", "float", "str", "list", "dict", "set", "tuple", "bool", "bytes",
        "Ellipsis", "NotImplemented")},
}

_STATE = "BaseEstimator.__setstate__ only drops the pickled version tag and updates __dict__"
_SKLEARN_STATE = {
    "calibration": "calibrated sub-estimators (graded) and calibrator parameters",
    "cluster": "cluster centres, labels and hyper-parameters as arrays and numbers",
    "compose": "named transformers (graded) and column selections (names, ints, slices)",
    "covariance": "location and covariance matrices",
    "cross_decomposition": "weight, loading and rotation matrices",
    "decomposition": "component matrices, explained variance and means",
    "discriminant_analysis": "class means, priors and scalings",
    "dummy": "constant predictions and class priors",
    "ensemble": "fitted sub-estimators (each graded) and their weights",
    "feature_extraction": "vocabularies (str -> int dicts), idf arrays, plain options",
    "feature_selection": "support masks and scores; score_func is a separately graded reference",
    "frozen": "the wrapped fitted estimator (graded)",
    "gaussian_process": "training arrays, kernel objects (graded) and a Cholesky factor",
    "impute": "fill statistics and missing-value masks",
    "isotonic": "threshold arrays of the fitted step function",
    "kernel_approximation": "random projection and sample arrays",
    "kernel_ridge": "dual coefficients and the training array",
    "linear_model": "coefficient and intercept arrays, loss objects (graded)",
    "manifold": "embedding arrays and neighbour graphs",
    "mixture": "component weights, means and covariances",
    "model_selection": "the refitted best estimator (graded), cv_results_ arrays, splitters",
    "multiclass": "one sub-estimator per class or pair (graded) and code books",
    "multioutput": "one sub-estimator per output (graded)",
    "naive_bayes": "per-class counts, means and variances",
    "neighbors": "training arrays and a KD/ball tree (graded)",
    "neural_network": "weight and bias matrices, optimizer state (graded)",
    "pipeline": "a list of (name, estimator) steps, each graded",
    "preprocessing": "fitted statistics (means, scales, categories, quantiles) as arrays",
    "random_projection": "a dense or sparse projection matrix",
    "semi_supervised": "label distributions and the base estimator (graded)",
    "svm": "support vectors, dual coefficients and libsvm parameters as arrays",
    "tree": "hyper-parameters plus a Tree (graded separately)",
}

_CY = "Cython extension type"
#: (pattern, kinds, reason). ``{short}`` is replaced by the name's last part.
RULES: list[tuple[str, tuple[str, ...], str]] = [
    # --- stdlib ------------------------------------------------------------------------
    ("datetime.date", ("callable",), "date(b'<4 bytes>'): year/month/day from 4 bytes or ints"),
    ("datetime.time", ("callable",), "time(b'<6 bytes>', tzinfo): a time of day from bytes"),
    ("datetime.datetime", ("callable",), "datetime(b'<10 bytes>', tzinfo): a timestamp from bytes"),
    ("datetime.timedelta", ("callable",), "timedelta(days, seconds, microseconds): three ints"),
    ("datetime.timezone", ("callable",), "timezone(timedelta, name): a fixed UTC offset"),
    ("zoneinfo.ZoneInfo", ("class",), "a tz database zone by key (the format's codec stores "
     "the key; ZoneInfo reads the system tz database for it, nothing else)"),
    ("decimal.Decimal", ("callable",), "Decimal('1.5'): parses a number string"),
    ("fractions.Fraction", ("callable",), "Fraction('22/7'): parses a rational number string"),
    ("uuid.UUID", ("class", "callable"), "__new__ plus {'int': n}: a 128-bit number; the "
     "helper-process functions of uuid (getnode, uuid1) stay denied"),
    ("pathlib.Pure*Path", ("callable",), "PurePath('a/b'): a path string split into parts; "
     "pure paths have no file-system methods"),
    ("pathlib.*Path", ("callable",), "Path('a/b') builds a path value only; its file methods "
     "(open, write_text, unlink) are never reachable from a pickle: attribute traversal "
     "below pathlib is denied"),
    ("collections.OrderedDict", ("callable",), "builds an ordered dict from key/value pairs"),
    ("collections.Counter", ("callable",), "Counter(dict): a dict of counts"),
    ("collections.deque", ("callable",), "deque(items, maxlen): a list-like container"),
    ("collections.defaultdict", ("callable",), "defaultdict(factory): the factory is a "
     "separately graded global, only called on a missing key after the load"),
    ("builtins.complex", ("callable",), "complex(re, im): a number"),
    ("builtins.range", ("callable",), "range(start, stop, step): integers"),
    ("builtins.slice", ("callable",), "slice(start, stop, step): plain values"),
    ("builtins.bytearray", ("callable",), "bytearray(bytes): a mutable copy of bytes"),
    ("builtins.set", ("callable",), "set(items): protocol 0-2 sets"),
    ("builtins.frozenset", ("callable",), "frozenset(items): protocol 0-2 frozensets"),
    ("builtins.bytes", ("callable",), "bytes(): protocol 0-2 empty bytes; converts plain values"),
    ("builtins.Ellipsis", ("reference",), "the ... constant"),
    ("builtins.NotImplemented", ("reference",), "the NotImplemented constant"),
    ("builtins.*", ("reference",), "builtin scalar/container type held as a value (a "
     "defaultdict factory, a dtype parameter); calling it converts plain data"),
    ("_codecs.encode", ("callable",), "protocol 0-2 bytes: encode(text, 'latin1')"),
    ("argparse.Namespace", ("class",), "__new__ plus a __dict__ of the parsed options"),
    ("types.SimpleNamespace", ("callable",), "SimpleNamespace(**attrs): an attribute bag"),
    ("http.HTTPStatus", ("callable",), "enum lookup HTTPStatus(404): returns an existing member"),
    ("re.RegexFlag", ("callable",), "enum lookup RegexFlag(2): returns an existing flag value"),
    # --- numpy ----------------------------------------------------------------------------
    ("numpy._core.multiarray._reconstruct", ("callable",),
     "ndarray.__new__(subtype, shape, dtype) of an empty array; data comes from BUILD"),
    ("numpy._core.multiarray.scalar", ("callable",), "numpy scalar from a dtype and raw bytes"),
    ("numpy._core.numeric._frombuffer", ("callable",),
     "protocol 5 arrays: frombuffer(bytes, dtype, shape, order) over a loaded buffer"),
    ("numpy._core._internal._convert_to_stringdtype_kwargs", ("callable",),
     "StringDType(coerce=bool, na_object=value): the variable-width string dtype"),
    ("numpy.dtype", ("callable",), "dtype('f8', align, copy) plus BUILD state: a descriptor"),
    ("numpy.ndarray", ("class",), "array class handed to _reconstruct/_mareconstruct; state is "
     "shape, dtype and raw bytes"),
    ("numpy.ma.MaskedArray", ("class",), "masked array class handed to _mareconstruct; "
     "__setstate__ takes shape, dtype, data bytes, mask bytes and a fill value"),
    ("numpy.ma.core._mareconstruct", ("callable",), "empty data and mask arrays, then "
     "subtype.__new__(subtype, data, mask=...) of a separately graded array class"),
    ("numpy.random._pickle.__bit_generator_ctor", ("callable",), "instantiates a bit generator "
     "from its name or class with no arguments; its state comes from BUILD"),
    ("numpy.random._pickle.__generator_ctor", ("callable",), "Generator(bit_generator): wraps a "
     "loaded bit generator (a legacy second argument is a separately graded callable)"),
    ("numpy.random._pickle.__randomstate_ctor", ("callable",), "RandomState(bit_generator): "
     "wraps a loaded bit generator (a legacy second argument is separately graded)"),
    ("numpy.random._*.*", ("class",), "bit generator class: __setstate__ takes its state dict "
     "(integers and a counter array), validated by the bit generator"),
    ("numpy.random.bit_generator.SeedSequence", ("class",), "seed entropy and spawn key integers"),
    ("numpy.random.bit_generator.__pyx_unpickle_SeedSequence", ("callable",), "Cython unpickle "
     "helper: checksum check, SeedSequence.__new__, then integer and array fields"),
    ("numpy.float*", ("reference", "class"), "numpy scalar type held as a dtype parameter"),
    ("numpy.int*", ("reference", "class"), "numpy scalar type held as a dtype parameter"),
    ("numpy.mean", ("reference",), "numpy reduction kept as a parameter "
     "(FeatureAgglomeration.pooling_func); calling it averages arrays"),
    # --- pandas ---------------------------------------------------------------------------
    ("pandas._libs.internals._unpickle_block", ("callable",),
     "wraps a loaded array in a Block at given positions"),
    ("pandas.core.indexes.base._new_Index", ("callable",),
     "cls.__new__(cls, **d): cls must be an index class the policy already admitted"),
    ("pandas.core.indexes.*._new_*Index", ("callable",), "rebuilds an index of its own kind "
     "from loaded arrays and plain attributes (freq, tz, closed)"),
    ("pandas._libs.arrays.__pyx_unpickle_NDArrayBacked", ("callable",), "Cython reconstructor: "
     "NDArrayBacked.__new__(cls) (cls must subclass NDArrayBacked) plus its ndarray and dtype"),
    ("pandas._libs.interval.__pyx_unpickle_IntervalMixin", ("callable",), "Cython unpickle "
     "helper of Interval: checksum check, __new__ of the interval type, left/right/closed"),
    ("pandas._libs.tslibs.nattype.*nat_unpickle", ("callable",), "returns the NaT singleton"),
    ("pandas._libs.tslibs.timestamps._unpickle_timestamp", ("callable",),
     "Timestamp from an int64 value, a tzinfo and a resolution"),
    ("pandas._libs.tslibs.timedeltas._timedelta_unpickle", ("callable",),
     "Timedelta from an int64 value and a resolution"),
    ("pandas._libs.tslibs.offsets.*", ("callable",), "date offset (Day(2), MonthEnd()) from "
     "integers and flags; it only does calendar arithmetic"),
    ("pandas._libs.sparse.IntIndex", ("callable",), "IntIndex(length, indices): sparse positions"),
    ("pandas._libs.sparse.BlockIndex", ("callable",), "BlockIndex(length, blocs, blengths)"),
    ("pandas._libs.missing.NA", ("reference",), "the pd.NA singleton"),
    ("pandas.NA", ("reference",), "the pd.NA singleton"),
    ("pandas.core.internals.managers.*BlockManager", ("class", "callable"), "holds axes and "
     "blocks of already-loaded arrays; __setstate__ only re-wraps them"),
    ("pandas*Index", ("class",), "index class handed to _new_Index/_new_*Index, which build "
     "it from loaded arrays and names"),
    ("pandas*Dtype", ("class", "callable"), "extension dtype: plain parameters (unit, tz, "
     "categories, freq, subtype, storage, fill value)"),
    ("pandas*Array", ("class",), "extension array: loaded data/mask arrays plus a dtype, "
     "restored by NDArrayBacked's or its own __setstate__"),
    ("pandas.Categorical", ("class",), "codes array plus a CategoricalDtype"),
    ("pandas.core.arrays.categorical.Categorical", ("class",), "codes array plus a dtype"),
    ("pandas*.Interval", ("callable",), "Interval(left, right, closed): two scalars"),
    ("pandas*.Period", ("callable",), "Period(ordinal, freq): an integer and an offset"),
    ("pandas.DataFrame", ("class",), "__new__ + __setstate__ from its block manager and flags"),
    ("pandas.core.frame.DataFrame", ("class",), "__new__ + __setstate__ from its block manager"),
    ("pandas.Series", ("class",), "__new__ + __setstate__ from its block manager and name"),
    ("pandas.core.series.Series", ("class",), "__new__ + __setstate__ from its manager and name"),
    # --- scikit-learn and the scipy types its pickles name ---------------------------------
    ("sklearn._loss.loss.*", ("class",), "loss object of a GLM/boosting model: a Cython loss "
     "(graded) and an interval link in __dict__"),
    ("sklearn._loss.link.*", ("class",), "link function object: plain attributes, no state hooks"),
    ("sklearn._loss._loss.__pyx_unpickle_*", ("callable",), "Cython unpickle helper: checksum "
     "check, __new__ of the loss type, then float parameters"),
    ("sklearn._loss._loss.Cy*", ("callable", "class"), f"{_CY}: __reduce__ gives "
     "(cls, (power/quantile floats)); __init__ stores the numbers"),
    ("sklearn.linear_model._sgd_fast.*", ("callable",), f"{_CY} SGD loss: __reduce__ gives "
     "(cls, (threshold/epsilon,)); __init__ stores the number"),
    ("sklearn.tree._tree.Tree", ("callable",), "Cython Tree(n_features, n_classes, n_outputs) + "
     "__setstate__ with node and value arrays (dtype and shape validated since sklearn 1.3; "
     "a crafted node array is the most exposed part, see threat-model.md 6)"),
    ("sklearn.neighbors.*.newObj", ("callable",), "Cython helper newObj(cls) = cls.__new__(cls), "
     "what NEWOBJ does; cls is a separately graded global"),
    ("sklearn.metrics._dist_metrics.newObj", ("callable",), "Cython helper newObj(cls) = "
     "cls.__new__(cls); cls is a separately graded global"),
    ("sklearn.neighbors._*_tree.*Tree", ("class",), "KD/ball tree: __setstate__ restores data, "
     "index and node arrays and a distance metric (graded); queries index those arrays"),
    ("sklearn.metrics._dist_metrics.*Distance*", ("class",), "distance metric: __setstate__ "
     "restores p and small parameter arrays"),
    ("sklearn.metrics._scorer.*Scorer", ("class",), "scorer: a metric function reference "
     "(graded separately), a sign and plain kwargs"),
    ("sklearn.metrics._classification.*", ("reference",), "metric function kept by a scorer; "
     "calling it compares label arrays"),
    ("sklearn.metrics._regression.*", ("reference",), "metric function kept by a scorer"),
    ("sklearn.feature_selection._univariate_selection.[fc]*", ("reference",), "statistical "
     "test kept as score_func (f_classif, chi2, ...); calling it computes scores on arrays"),
    ("sklearn.cluster._kmeans._kmeans_single_*", ("reference",), "k-means iteration kernel kept "
     "by BisectingKMeans; calling it runs numeric loops on arrays"),
    ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", ("class",), "nodes "
     "structured array and bitsets; __setstate__ only converts the node dtype"),
    ("sklearn.utils._bunch.Bunch", ("class",), "dict subclass with attribute access"),
    ("sklearn.utils._metadata_requests.*Request", ("class",), "metadata routing request: "
     "dicts of parameter names to bools/strings"),
    ("sklearn.model_selection._split.*", ("class",), "cv splitter: n_splits, shuffle, seed"),
    ("sklearn.gaussian_process.kernels.*", ("class",), "kernel: hyper-parameter floats and "
     "bounds, sub-kernels (graded)"),
    ("sklearn.neural_network._stochastic_optimizers.*", ("class",), "optimizer state: "
     "learning rates and moment arrays"),
    ("sklearn.*._[A-Z]*", ("class",), "private helper object of a fitted estimator: "
     "sub-estimators (graded), arrays and numbers in __dict__, no state hooks"),
    ("scipy.sparse._*.*_matrix", ("class",), "scipy sparse matrix: data/indices/indptr arrays "
     "and a shape in __dict__"),
    ("scipy.sparse._*.*_array", ("class",), "scipy sparse array: index and data arrays in "
     "__dict__"),
    ("sklearn.model_selection._split.*", ("class",), "cross-validation splitter a search "
     "keeps as its cv: n_splits, shuffle, test size and a random_state in __dict__; it only "
     "yields index arrays when a fit calls split()"),
    *((f"numpy.{n}", ("reference",), "numpy ufunc a FunctionTransformer keeps as func or "
       "inverse_func: an element-wise array function, never called on load")
      for n in ("log1p", "expm1", "log", "exp", "sqrt", "square")),
    ("scipy.interpolate._bsplines.BSpline", ("class",), "knots and coefficient arrays, "
     "degree and extrapolate flag in __dict__"),
    ("scipy._lib.array_api_compat.numpy._aliases.asarray", ("reference",), "the array "
     "namespace's asarray a BSpline keeps; calling it converts data to an array"),
]


def excluded(name: str) -> str | None:
    """Why ``name`` is never admitted, or None."""
    for pattern, why in EXCLUDED.items():
        if fnmatch.fnmatchcase(name, pattern):
            return why
    return None


def reason_for(name: str, kind: str, obj: Any) -> str:
    """The reviewed reason for admitting ``name`` as a ``kind`` entry.

    scikit-learn estimators (``BaseEstimator`` subclasses) get their subpackage's state
    description; everything else needs a rule above.

    Raises:
        Unreviewed: no rule covers the name with this kind.
    """
    if kind == "class" and name.startswith("sklearn.") and _is_estimator(obj):
        package = name.split(".")[1].lstrip("_")
        state = _SKLEARN_STATE.get(package)
        if state:
            return f"scikit-learn estimator ({package}): {state}; {_STATE}"
    for pattern, kinds, reason in RULES:
        if kind in kinds and fnmatch.fnmatchcase(name, pattern):
            return reason.replace("{short}", name.rsplit(".", 1)[-1])
    raise Unreviewed(f"{name} ({kind}) is imported by a benign sample pickle but no rule in "
                     "safeart/policy/generate/reasons.py reviews it")


def _is_estimator(obj: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return False
    return isinstance(obj, type) and issubclass(obj, BaseEstimator)
