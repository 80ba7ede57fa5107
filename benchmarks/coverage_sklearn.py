"""Which scikit-learn estimators safeart stores without pickle, compared with skops.io.

Every estimator of ``sklearn.utils.all_estimators()`` (fit on tiny generated data, as in
``tests/format/test_format_sklearn.py``), plus the combinations the issue names, goes
through both formats:

* safeart: ``dumps``; ``audit`` with the default policy says which names it would refuse;
  ``loads`` with exactly those allowed.
* skops: ``skops.io.dumps``; ``get_untrusted_types`` says which types the user must trust;
  ``loads(trusted=...)`` with exactly those.

A round trip counts when ``predict``/``transform``/... and ``get_params()`` are equal
to the original's. The table says what each one needs trusted beyond its defaults.
skops is a measurement dependency only: ``pip install skops``.

    python benchmarks/coverage_sklearn.py [--quick] [--write]   # --write: docs/coverage-sklearn.md
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

import _common as c

sys.path.insert(0, str(c.ROOT / "tests" / "format"))
import sklearn_estimators as se  # noqa: E402  (the estimator list the tests use)

DOC = c.ROOT / "docs" / "coverage-sklearn.md"


def _check(case: se.Case, back: Any) -> None:
    se.assert_same(case.outputs(case.estimator), case.outputs(back), case.name)
    se.assert_same(case.estimator.get_params(), back.get_params(), case.name)


def _failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"fails: {type(exc).__name__}: {text}"[:110].replace("|", "/")


def safeart_result(case: se.Case) -> tuple[str, list[str]]:
    """("ok" or why not, the names the default policy refuses)."""
    import safeart

    try:
        blob = safeart.dumps(case.estimator, name=case.name)
    except Exception as exc:  # noqa: BLE001 -- reported in the table
        return _failure(exc), []
    report = safeart.audit(blob)
    kinds = {ref.name: ref.kind for ref in report.classes}
    refused = sorted({p.name for p in report.problems if hasattr(p, "name")})
    rules = [safeart.Rule(n, "trusted for the coverage run",
                          "reference" if kinds.get(n) == "reference" else "class")
             for n in refused]
    try:
        _check(case, safeart.loads(blob, allow=rules, name=case.name))
    except Exception as exc:  # noqa: BLE001
        return _failure(exc), refused
    return "ok", refused


def skops_result(case: se.Case) -> tuple[str, list[str]]:
    """("ok" or why not, the types skops needs trusted)."""
    import skops.io as sio

    try:
        blob = sio.dumps(case.estimator)
        untrusted = sorted(sio.get_untrusted_types(data=blob))
        _check(case, sio.loads(blob, trusted=untrusted))
    except Exception as exc:  # noqa: BLE001
        return _failure(exc), []
    return "ok", untrusted


def _cell(result: tuple[str, list[str]]) -> str:
    status, names = result
    if status != "ok":
        return status
    return "✓" if not names else "✓ trust: " + ", ".join(f"`{n}`" for n in names)


def rows(quick: bool) -> tuple[list[list[str]], dict[str, int]]:
    builders: dict[str, Callable[[], Any]] = {
        name: (lambda n=name: se.build_case(n)) for name in se.estimator_names()}
    builders.update(se.SCENARIOS)
    if quick:
        builders = dict(list(builders.items())[:12])
    table, counts = [], dict.fromkeys(
        ["cases", "safeart default", "safeart trust", "skops default", "skops trust"], 0)
    for name, build in builders.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case = build()
            if isinstance(case, str):
                table.append([name, f"skipped: {case}", ""])
                continue
            ours, theirs = safeart_result(case), skops_result(case)
        counts["cases"] += 1
        for tool, (status, names) in (("safeart", ours), ("skops", theirs)):
            if status == "ok":
                counts[f"{tool} {'default' if not names else 'trust'}"] += 1
        table.append([name, _cell(ours), _cell(theirs)])
    return table, counts


def main() -> None:
    args = c.parse_args(__doc__, lambda p: p.add_argument(
        "--write", action="store_true", help=f"(re)write {DOC.relative_to(c.ROOT)}"))
    import safeart  # noqa: F401
    import sklearn
    import skops

    table, n = rows(args.quick)
    summary = [
        f"{n['cases']} fitted cases (scikit-learn {sklearn.__version__}, skops "
        f"{skops.__version__}).",
        f"safeart: {n['safeart default'] + n['safeart trust']} stored, "
        f"{n['safeart default']} of them with the default policy alone.",
        f"skops: {n['skops default'] + n['skops trust']} stored, "
        f"{n['skops default']} of them without trusting any type.",
    ]
    text = c.table("scikit-learn estimators: safeart vs skops.io", ["estimator", "safeart",
                   "skops.io"], table, notes=summary)
    if args.write and not args.quick:
        DOC.write_text(
            "# scikit-learn coverage: safeart vs skops.io\n\n"
            "Generated by `python benchmarks/coverage_sklearn.py --write`: every estimator of "
            "`sklearn.utils.all_estimators()` fit on tiny data, plus the combinations of issue "
            "13, stored and loaded by each format. A case counts when `predict`/`transform`/"
            "... and `get_params()` equal the original's. ✓ alone: loads with the defaults "
            "(safeart's default policy; skops' default trusted types). \"trust\": the names "
            "the user must allow first (safeart `allow=`, skops `trusted=`).\n\n" + text + "\n",
            encoding="utf-8")


if __name__ == "__main__":
    main()
