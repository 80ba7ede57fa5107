"""The benign corpus: everyday artifacts as files, and what "loaded back equal" means for each.

Values come from :mod:`safeart.policy.generate.samples` (the same samples the default
allowlist is generated from) plus torch checkpoints and a Metaflow blob built here. Each
:class:`Item` knows how to write its file (``pickle.dumps``, ``torch.save``, gzip; writing
only) and how to compare what the guarded loader returns with the original. Nothing here
ever loads a corpus file with pickle, torch or joblib.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import functools
import gzip
import io
import math
import pickle
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from safeart.policy.generate import samples

__all__ = ["Item", "items", "Envelope"]


@dataclass
class Item:
    """One corpus file: how to build the value, write it, open it for the loader, compare."""

    name: str
    make: Callable[[], Any]
    write: Callable[[Any], bytes]
    equal: Callable[[Any, Any], None]
    #: bytes -> the one pickle the guarded loader reads (gzip undone, like Metaflow does);
    #: None: no guarded loader reads this container (see ``unloadable``).
    to_pickle: Callable[[bytes], bytes] | None = lambda data: data
    unloadable: str = ""


def _dumps(protocol: int) -> Callable[[Any], bytes]:
    return lambda obj: pickle.dumps(obj, protocol=protocol)


# -- equality per family -------------------------------------------------------------------
def assert_same(a: Any, b: Any, path: str = "value", seen: set | None = None) -> None:
    """Deep equality that knows arrays, frames, tensors, random state and NaN; objects
    without an ``__eq__`` of their own are compared by the state they pickle (cycles, such
    as Birch's linked leaves, are compared once)."""
    assert type(a) is type(b), (path, type(a), type(b))
    seen = set() if seen is None else seen
    if (id(a), id(b)) in seen:
        return
    seen.add((id(a), id(b)))
    same = lambda x, y, where: assert_same(x, y, where, seen)  # noqa: E731
    if _module(a).startswith("pandas"):
        return _same_pandas(a, b, path)
    if isinstance(a, np.ma.MaskedArray):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
        assert a.dtype == b.dtype and a.fill_value == b.fill_value, path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        if a.flags.f_contiguous and not a.flags.c_contiguous:  # pickle keeps Fortran order
            assert b.flags.f_contiguous, path
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                same(x, y, f"{path}.flat[{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
    elif hasattr(a, "toarray") and hasattr(a, "nnz"):  # scipy sparse matrices and arrays
        assert a.format == b.format and a.dtype == b.dtype, path
        np.testing.assert_array_equal(a.toarray(), b.toarray(), err_msg=path)
    elif isinstance(a, np.random.Generator):
        same(a.bit_generator.state, b.bit_generator.state, f"{path}.state")
    elif isinstance(a, np.random.RandomState):
        if a is np.random.mtrand._rand:  # random_state=None: numpy's global generator, which
            return  # every later draw in this process advances; the file holds a snapshot
        same(a.get_state(legacy=False), b.get_state(legacy=False), f"{path}.state")
    elif isinstance(a, np.random.SeedSequence):
        assert (a.entropy, a.spawn_key, a.pool_size) == (b.entropy, b.spawn_key, b.pool_size)
    elif _module(a).startswith("torch"):
        _same_torch(a, b, path)
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            same(a[key], b[key], f"{path}[{key!r}]")
        if isinstance(a, collections.defaultdict):
            assert a.default_factory is b.default_factory, path
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    elif a is b or _equal(a, b):
        if isinstance(a, collections.deque):
            assert a.maxlen == b.maxlen, path
    else:  # no equality of its own: what it pickles (class, arguments, state) must match
        assert type(a).__eq__ is object.__eq__, (path, a, b)
        reduced_a, reduced_b = a.__reduce_ex__(4), b.__reduce_ex__(4)
        assert not isinstance(reduced_a, str), (path, a, b)
        same(reduced_a[1:3], reduced_b[1:3], f"{path}<state>")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays inside, ambiguous truth values
        return False


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def _same_pandas(a: Any, b: Any, path: str) -> None:
    import pandas as pd

    if isinstance(a, pd.DataFrame):
        assert a.equals(b) and a.dtypes.equals(b.dtypes), path
        assert a.index.equals(b.index) and a.columns.equals(b.columns), path
    elif isinstance(a, pd.Series):
        assert a.equals(b) and a.dtype == b.dtype and a.name == b.name, path
    elif isinstance(a, pd.Index):
        assert a.equals(b) and a.dtype == b.dtype and a.names == b.names, path
        assert getattr(a, "freq", None) == getattr(b, "freq", None), path
    else:  # scalars and offsets; NaT and NA are singletons
        assert a is b or a == b, (path, a, b)


def _same_torch(a: Any, b: Any, path: str) -> None:
    import torch

    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
        assert isinstance(a, torch.nn.Parameter) == isinstance(b, torch.nn.Parameter), path
    elif isinstance(a, torch.nn.Module):
        assert_same(dict(a.state_dict()), dict(b.state_dict()), f"{path}.state_dict()")
        assert a.training == b.training, path
    else:
        assert a == b, (path, a, b)


def same_estimator(a: Any, b: Any, data: Any) -> None:
    """Same class, same parameters, same outputs on the tiny data, same fitted state."""
    assert type(a) is type(b)
    _same_params(a.get_params(deep=False), b.get_params(deep=False))
    assert_same(vars(a), vars(b), type(a).__name__)  # every fitted attribute, before any
    # call below advances a random state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("predict", "predict_proba", "decision_function", "score_samples",
                       "transform"):
            if not hasattr(a, method) or data is None:
                continue
            try:
                expected = getattr(a, method)(data)
            except Exception as exc:  # e.g. transform of a fit-only manifold learner
                expected = type(exc)
            if not isinstance(expected, type) and not _deterministic(a, method, data, expected):
                continue  # DummyClassifier(strategy="stratified") & co draw fresh randomness
            got = _output(b, method, data, expected)
            if isinstance(expected, type):
                assert got is expected, method
            else:
                _same_output(expected, got, method)


def _deterministic(estimator: Any, method: str, data: Any, expected: Any) -> bool:
    try:
        _same_output(expected, getattr(estimator, method)(data), method)
    except AssertionError:
        return False
    return True


def _output(estimator: Any, method: str, data: Any, expected: Any) -> Any:
    try:
        return getattr(estimator, method)(data)
    except Exception as exc:
        if isinstance(expected, type):
            return type(exc)
        raise


def _same_output(a: Any, b: Any, what: str) -> None:
    if hasattr(a, "toarray"):
        a, b = a.toarray(), b.toarray()
    if isinstance(a, (list, tuple)):
        for x, y in zip(a, b, strict=True):
            _same_output(x, y, what)
        return
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc":  # the same arithmetic on differently aligned copies: ulps
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)
    else:
        np.testing.assert_array_equal(a, b, err_msg=what)


def _same_params(a: dict, b: dict) -> None:
    """``get_params(deep=False)``: nested estimators by their own parameters."""
    assert list(a) == list(b)
    for key, value in a.items():
        other = b[key]
        if hasattr(value, "get_params") and not isinstance(value, type):
            assert type(value) is type(other), key
            _same_params(value.get_params(deep=False), other.get_params(deep=False))
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            assert [v[0] for v in value] == [v[0] for v in other], key  # (name, est, ...)
            for x, y in ((v[1], w[1]) for v, w in zip(value, other)):
                if hasattr(x, "get_params"):
                    _same_params(x.get_params(deep=False), y.get_params(deep=False))
        else:
            assert_same(value, other, key)


def same_pickled(a: Any, b: Any) -> None:
    """For helper objects without equality (losses, distance metrics): the same state."""
    assert_same(a, b, type(a).__name__)


# -- torch ------------------------------------------------------------------------------------
class Envelope:
    """What plain pickle writes for a legacy ``torch.save`` stream inside an artifact:
    ``torch.storage._load_from_bytes(<stream>)``; lets the guarded loader read the file."""

    def __init__(self, stream: bytes) -> None:
        self.stream = stream

    def __reduce__(self) -> tuple:
        import torch.storage

        return torch.storage._load_from_bytes, (self.stream,)


def _checkpoint() -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8),
                                torch.nn.Dropout(0.1), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step_lr = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=10)
    for _ in range(2):
        for opt in (optimizer, sgd):
            opt.zero_grad()
            model(torch.randn(5, 4)).sum().backward()
            opt.step()
        step_lr.step()
        cosine.step()
    return {
        "epoch": 2, "best_loss": 0.25, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "sgd": sgd.state_dict(),
        "scheduler": step_lr.state_dict(), "cosine": cosine.state_dict(),
        "args": argparse.Namespace(lr=1e-3, epochs=2, arch="mlp", seed=0),
        "saved_at": dt.datetime(2024, 5, 17, 12, 0, tzinfo=dt.timezone.utc),
    }


def _modules() -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    return {
        "transformer layer gelu": torch.nn.TransformerEncoderLayer(8, 2, 16, activation="gelu"),
        "transformer layer silu": torch.nn.TransformerDecoderLayer(
            8, 2, 16, activation=torch.nn.functional.silu),
        "lstm": torch.nn.LSTM(4, 4, num_layers=2),
        "cnn": torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(2),
                                   torch.nn.Flatten(), torch.nn.Linear(18, 3)),
    }


def _torch_save(legacy: bool) -> Callable[[Any], bytes]:
    def write(obj: Any) -> bytes:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
        return buf.getvalue()

    return write


def _torch_items() -> list[Item]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return []
    out = [
        Item("torch checkpoint pickle p4 (Metaflow)", _checkpoint, _dumps(4), assert_same),
        Item("torch checkpoint torch.save legacy", _checkpoint, _torch_save(legacy=True),
             assert_same, lambda data: pickle.dumps(Envelope(data), protocol=4)),
        Item("torch checkpoint torch.save zip", _checkpoint, _torch_save(legacy=False),
             assert_same, None, "no guarded loader reads torch.save zip archives: "
             "safeart.guard.load_pickle takes one pickle, and the archive's data.pkl names "
             "its storages by persistent id, which restricted_loads refuses"),
    ]
    for name in _modules():
        out.append(Item(f"torch module {name} p4", lambda name=name: _modules()[name],
                        _dumps(4), assert_same))
    return out


# -- the corpus -----------------------------------------------------------------------------
def _family(prefix: str, build: Callable[[], dict[str, Any]], protocols: tuple[int, ...],
            equal: Callable[[Any, Any], None] = assert_same) -> list[Item]:
    cache: dict[str, Any] = {}

    def value(key: str) -> Any:
        if not cache:
            cache.update(build())
        return cache[key]

    return [Item(f"{prefix} {key} p{p}", lambda key=key: value(key), _dumps(p), equal)
            for key in build() for p in protocols]


@functools.lru_cache(maxsize=None)
def _fitted() -> dict[str, samples.Fitted]:
    return samples.sklearn_samples()


def _sklearn_items() -> list[Item]:
    """Every ``all_estimators()`` estimator, the compositions and the parameter variants."""
    return [Item(f"sklearn {name} p4", lambda name=name: _fitted()[name],
                 lambda f: pickle.dumps(f.estimator, protocol=4),
                 lambda f, loaded: same_estimator(f.estimator, loaded, f.data))
            for name in _fitted()] + _family("sklearn helper", samples.sklearn_helpers, (4,),
                                             same_pickled)


def _metaflow_blob() -> Item:
    def make() -> dict[str, Any]:
        return {"created": dt.datetime(2024, 5, 17, 9, 30, tzinfo=dt.timezone.utc),
                "rows": 1200, "tags": ["daily", "v2"], "duration": dt.timedelta(minutes=3)}

    return Item("metaflow blob gzip pickle-v4 datetime", make,
                lambda obj: gzip.compress(pickle.dumps(obj, protocol=4)), assert_same,
                gzip.decompress)


def items() -> list[Item]:
    """Every corpus item (values are built lazily, once, by whoever writes the files)."""
    out = _family("stdlib", samples.stdlib_samples, (2, 4, 5))
    out += _family("numpy", samples.numpy_samples, (2, 4, 5))
    out += _family("pandas", samples.pandas_samples, (4, 5))
    out += _sklearn_items()
    out += _torch_items()
    out.append(_metaflow_blob())
    return out
