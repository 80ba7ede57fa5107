"""Generate the library part of the default allowlist from the libraries themselves.

::

    python -m safeart.policy.generate                 # every family installed
    python -m safeart.policy.generate pandas          # one family
    PYTHONPATH=/tmp/pd2 python -m safeart.policy.generate pandas   # pandas 2.x paths

For each family it builds benign samples (:mod:`.samples`: every scikit-learn estimator
fitted on tiny data, frames of every pandas dtype, arrays of every numpy dtype, inert stdlib
values), pickles them with protocols 2, 4 and 5, and reads which globals the pickles import
and how (:mod:`.usage`; nothing is ever unpickled). Each name gets the kind its use needs
and the reviewed reason of its family (:mod:`.reasons`); a name with no reviewed reason stops
the run. torch.nn layers come from the library's module tree instead (a layer is pickled as
its class name), and the activation functions layers keep from a fixed list.

The ``codecs`` family lists the names safeart's own value codecs record
(:mod:`safeart.format.codecs`) that no library list holds, each with its codec's reason.

Output: ``safeart/policy/generated/<family>.json``, data read by
:mod:`safeart.policy.defaults` (not modules): ``library`` and ``version`` (what the entries
were generated from), ``entries`` (``name``, ``kind``, ``reason``; exact names, sorted) and
``excluded`` (``name``, ``reason``). pandas files are per major version (``pandas_2.json``,
``pandas_3.json``) so both sets of class paths ship.
"""

from __future__ import annotations

import importlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from . import reasons, samples
from .usage import ARGUMENT, CALLED, NEW, uses

__all__ = ["FAMILIES", "collect", "entries_for", "render", "main"]

OUT_DIR = Path(__file__).resolve().parent.parent / "generated"
_GENERATED_NOTE = ("written by python -m safeart.policy.generate from benign sample pickles; "
                   "do not edit: reasons come from safeart/policy/generate/reasons.toml")
_PROTOCOLS = (2, 4, 5)


def _sklearn_objects() -> list[Any]:
    fitted = [fitted.estimator for fitted in (*samples.sklearn_samples().values(),
                                              *samples.sklearn_partial_samples().values())]
    return fitted + list(samples.sklearn_helpers().values())


#: family -> (distribution whose version is recorded, sample builder, top-level packages).
FAMILIES: dict[str, tuple[str, Callable[[], list[Any]], tuple[str, ...]]] = {
    "stdlib": ("python", lambda: list(samples.stdlib_samples().values()), ()),
    "numpy": ("numpy", lambda: list(samples.numpy_samples().values()), ("numpy",)),
    "pandas": ("pandas", lambda: list(samples.pandas_samples().values()), ("pandas",)),
    "sklearn": ("scikit-learn", _sklearn_objects, ("sklearn", "scipy")),
}


def collect(family: str) -> dict[str, set[str]]:
    """Every global the family's sample pickles import -> the union of its uses."""
    found: dict[str, set[str]] = {}
    for obj in FAMILIES[family][1]():
        for protocol in _PROTOCOLS:
            for name, use in uses(pickle.dumps(obj, protocol=protocol)).items():
                found.setdefault(name, set()).update(use)
    return found


def _lookup(name: str) -> Any:
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(name)


def kind_of(name: str, use: set[str], obj: Any) -> str:
    """``callable`` if a pickle calls it; ``class`` if one instantiates it (NEWOBJ, or a
    reconstructor argument that is a non-builtin class); otherwise ``reference``."""
    if CALLED in use:
        return "callable"
    if NEW in use or (ARGUMENT in use and isinstance(obj, type)
                      and not name.startswith("builtins.")):
        return "class"
    return "reference"


def _owner(name: str, family: str) -> bool:
    """Whether ``name`` belongs in ``family``'s file (stdlib owns every non-library name)."""
    top = name.split(".", 1)[0]
    owned = {t: f for f, (_, _, tops) in FAMILIES.items() for t in tops}
    return owned.get(top, "stdlib") == family or (
        family == "sklearn" and top not in owned)


def entries_for(family: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The reviewed ``(name, kind, reason)`` entries of ``family`` and the excluded names.

    Names of another family's packages seen here (numpy arrays inside an estimator) belong
    to that family's file; what only scikit-learn's pickles name from numpy (``numpy.mean``
    as a parameter) is kept in the scikit-learn file.
    """
    found = collect(family)
    if family == "stdlib":
        for name, kind in reasons.REQUIRED_STDLIB.items():
            found.setdefault(name, {CALLED} if kind == "callable" else
                             {NEW} if kind == "class" else set())
    others: dict[str, set[str]] = {}
    if family == "sklearn":
        for earlier in ("stdlib", "numpy", "pandas"):
            for name, use in collect(earlier).items():
                others.setdefault(name, set()).update(use)
    entries, excluded = [], []
    for name in sorted(found):
        if family != "sklearn" and not _owner(name, family):
            continue
        if name in others:  # listed by an earlier family, unless used here in a stronger way
            obj = _lookup(name)
            if kind_of(name, others[name] | found[name], obj) == kind_of(name, others[name], obj):
                continue
        why = reasons.excluded(name)
        if why is not None:
            excluded.append((name, why))
            continue
        obj = _lookup(name)
        kind = kind_of(name, found[name], obj)
        entries.append((name, kind, reasons.reason_for(name, kind, obj)))
    return entries, excluded


def _version(distribution: str) -> str:
    if distribution == "python":
        return ".".join(map(str, sys.version_info[:3]))
    from importlib.metadata import version

    return version(distribution)


def render(distribution: str, version: str, entries: list[tuple[str, str, str]],
           excluded: list[tuple[str, str]]) -> str:
    """The text of one generated data file: JSON with one entry a line (reviewable diffs),
    as :func:`safeart.policy.defaults.read_generated` reads it."""
    def array(items: Iterable[dict[str, str]]) -> str:
        return "[" + ",".join(f"\n    {json.dumps(item, ensure_ascii=False)}"
                              for item in items) + "\n  ]"

    return (
        "{\n"
        f'  "library": {json.dumps(distribution)},\n'
        f'  "version": {json.dumps(version)},\n'
        f'  "generated": {json.dumps(_GENERATED_NOTE)},\n'
        f'  "entries": {array({"name": n, "kind": k, "reason": r} for n, k, r in entries)},\n'
        f'  "excluded": {array({"name": n, "reason": why} for n, why in excluded)}\n'
        "}\n"
    )


def _file_stem(family: str, version: str) -> str:
    return f"pandas_{version.split('.')[0]}" if family == "pandas" else family


def write(family: str, out_dir: Path = OUT_DIR) -> Path:
    """Generate and write one family's data file; returns its path."""
    if family == "torch":
        from .torch_nn import entries as torch_entries

        distribution, entries, excluded = "torch", *torch_entries()
    elif family == "codecs":
        distribution, entries, excluded = "safeart", codec_entries(), []
    else:
        distribution = FAMILIES[family][0]
        entries, excluded = entries_for(family)
    version = _version(distribution)
    path = out_dir / f"{_file_stem(family, version)}.json"
    path.write_text(render(distribution, version, entries, excluded), encoding="utf-8")
    return path


def codec_entries() -> list[tuple[str, str, str]]:
    """The names safeart's value codecs record that no library list holds (the format
    records ``numpy.random.PCG64``, a pickle ``numpy.random._pcg64.PCG64``), whose reason
    is the codec's own (the codec, not the class, rebuilds the value): ``class`` entries,
    or ``codec`` entries for names the denylist grades dangerous (``functools.partial``),
    which admit the codec's values and no pickle global."""
    from safeart.format.codecs import CODECS

    from .. import dangerous
    from ..defaults import GENERATED_FAMILIES, read_generated

    listed = {name for family in GENERATED_FAMILIES if family != "codecs"
              for name, kind, _ in read_generated(family).entries if kind != "reference"}
    return sorted(
        (codec.name, "codec" if dangerous.reason_for(*codec.name.rsplit(".", 1)) else "class",
         f"rebuilt only by safeart's codec: {codec.reason}")
        for codec in CODECS if codec.name not in listed)


def main(argv: list[str] | None = None) -> int:
    """Write the requested families' data files (default: every family installed)."""
    wanted = (argv if argv is not None else sys.argv[1:]) or [*FAMILIES, "torch", "codecs"]
    for family in wanted:
        print(f"wrote {write(family)}")
    return 0
