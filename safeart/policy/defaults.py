"""The built-in allowlist: hand-written entries plus the generated library lists.

This module is the one place that assembles :data:`DEFAULT_RULES`:

* :data:`_CLASSES` / :data:`_CALLABLES` below: entries no sample pickle of the generator
  covers (torch's tensor reconstructors, numpy 1.x reconstructor paths, Metaflow and joblib
  types), each with its reason;
* ``safeart/policy/generated/*.json`` (:data:`GENERATED`): the standard library's inert value
  types, numpy, pandas (2.x and 3.x class paths), scikit-learn, torch.nn, and the names
  safeart's own value codecs record (``codecs.json``), written by
  ``python -m safeart.policy.generate`` with a reason per entry and the library version
  they were generated from (see :mod:`safeart.policy.generate`). They are data, read once
  on first use of the defaults.

Every name is exact (no wildcards: a wildcard on a module tree would also admit its
functions). A name listed more than once (pandas 2 and 3 share their Cython paths) keeps the
broadest kind its pickles need: ``callable`` over ``class`` over ``reference``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .model import KIND_BREADTH, Rule


#: Where the generated lists live (shipped as package data).
GENERATED_DIR = Path(__file__).resolve().parent / "generated"
#: The generated lists (file stems), in the order their entries are added.
GENERATED_FAMILIES = ("stdlib", "numpy", "pandas_2", "pandas_3", "sklearn", "torch", "codecs")


@dataclass(frozen=True)
class GeneratedList:
    """One generated list: a library's entries as generated from one version of it."""

    #: The file's stem (``pandas_2``).
    family: str
    #: The distribution the entries come from (``scikit-learn``), and its version.
    library: str
    version: str
    #: ``(exact name, kind, why admitting it is safe)``, sorted by name.
    entries: tuple[tuple[str, str, str], ...]
    #: Names the library's benign samples import that are never admitted, and why.
    excluded: tuple[tuple[str, str], ...]


def read_generated(family: str, directory: Path = GENERATED_DIR) -> GeneratedList:
    """Read ``<directory>/<family>.json`` (as :func:`safeart.policy.generate.render` writes)."""
    data = json.loads((directory / f"{family}.json").read_text(encoding="utf-8"))
    return GeneratedList(
        family, data["library"], data["version"],
        tuple((e["name"], e["kind"], e["reason"]) for e in data["entries"]),
        tuple((e["name"], e["reason"]) for e in data["excluded"]),
    )


GENERATED: tuple[GeneratedList, ...] = tuple(read_generated(f) for f in GENERATED_FAMILIES)

#: Classes no generator sample covers (Metaflow's own types, joblib's array placeholder).
_CLASSES: dict[str, str] = {
    "joblib.numpy_pickle.NumpyArrayWrapper": (
        "joblib's placeholder for an array stored inline after it (shape, dtype, order); "
        "safeart's scanner skips or scans that inline data, never joblib.load"
    ),
    "__main__.ForeachFrame": (
        "Metaflow's _foreach_stack entries: a NamedTuple (step, var, num_splits, index, value) "
        "that metaflow.tuple_util installs in __main__ of every Metaflow process"
    ),
    "metaflow.exception.MetaflowExceptionWrapper": (
        "what @catch stores: MetaflowExceptionWrapper(None) (its __init__ does nothing for "
        "None) plus a __dict__ of exception text, type name and stack trace strings"
    ),
}

#: Reconstructors no generator sample covers: torch's tensor rebuilders (torch pickles are
#: built by tests/corpus) and the numpy 1.x paths of numpy's reconstructors.
_CALLABLES: dict[str, str] = {
    "torch._utils._rebuild_tensor_v2": "views a loaded storage as a tensor (shape, stride, offset)",
    "torch._utils._rebuild_tensor_v3": "views a loaded storage as a tensor, with dtype",
    "torch._utils._rebuild_parameter": "wraps a loaded tensor in nn.Parameter",
    "torch._utils._rebuild_parameter_with_state": "wraps a loaded tensor in nn.Parameter, sets plain state",
    "torch.storage._load_from_bytes": (
        "torch storage bytes: safeart scans the inner legacy stream and the restricted "
        "unpickler routes it to a restricted inner load, never torch.load"
    ),
    "torch.Size": "a tuple of ints",
    "torch.device": "a device name",
    "numpy.core.multiarray._reconstruct": "empty ndarray of a given class and dtype",
    "numpy.core.multiarray.scalar": "numpy scalar from dtype and raw bytes",
    "numpy.core.numeric._frombuffer": "numpy 1.x name of numpy._core.numeric._frombuffer",
}


def _assemble() -> tuple[Rule, ...]:
    rules: dict[str, Rule] = {}
    listed = [(n, "class", r) for n, r in _CLASSES.items()]
    listed += [(n, "callable", r) for n, r in _CALLABLES.items()]
    for generated in GENERATED:
        listed += [(n, k, f"{r} [{generated.library} {generated.version}]")
                   for n, k, r in generated.entries]
    for name, kind, reason in listed:
        known = rules.get(name)
        if known is None or KIND_BREADTH[kind] > KIND_BREADTH[known.kind]:
            rules[name] = Rule(name, reason, kind)  # type: ignore[arg-type]
    return tuple(rules.values())


DEFAULT_RULES: tuple[Rule, ...] = _assemble()
