"""The default allowlist: generated lists are exact, reviewed and current; grading of the
mixed stdlib modules (inert value types vs their dangerous helpers)."""

import importlib
import pickle
import re
from collections import Counter

import pytest

from safeart import Grade, Policy
from safeart.policy import dangerous
from safeart.policy.defaults import DEFAULT_RULES, GENERATED, GENERATED_DIR, read_generated
from safeart.policy.generate import entries_for, reasons, render, samples
from safeart.policy.generate.usage import uses
from safeart.policy.model import KINDS

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@pytest.mark.parametrize("generated", GENERATED, ids=lambda g: g.family)
def test_generated_entries_are_exact_reviewed_and_versioned(generated):
    assert generated.library and re.match(r"^\d+\.\d+", generated.version)
    names = [name for name, _, _ in generated.entries]
    assert len(names) == len(set(names)) and names == sorted(names)
    for name, kind, reason in generated.entries:
        assert _NAME.match(name), name  # no wildcards, no odd characters
        assert kind in KINDS and len(reason) > 15, (name, kind, reason)
        assert reasons.excluded(name) is None or kind == "codec", name
        # a codec entry admits no pickle global, so it may name what the denylist grades
        assert dangerous.reason_for(*name.rsplit(".", 1)) is None or kind == "codec", name


def test_reasons_are_specific_per_family():
    """No single string hides most of a list: the most common reason covers one family."""
    for generated in GENERATED:
        if generated.library == "torch":
            continue  # two reasons: layers and activation functions
        top = Counter(reason for _, _, reason in generated.entries).most_common(1)[0][1]
        assert top <= max(40, len(generated.entries) // 3), generated.family


def test_one_rule_per_name_with_the_broadest_kind():
    names = [rule.name for rule in DEFAULT_RULES]
    assert len(names) == len(set(names))
    rules = {rule.name: rule for rule in DEFAULT_RULES}
    # pickles call these, so a class entry would not do
    for name in ("datetime.datetime", "decimal.Decimal", "collections.OrderedDict", "numpy.dtype",
                 "builtins.set", "http.HTTPStatus"):
        assert rules[name].kind == "callable", name
    for name in ("builtins.Ellipsis", "builtins.int", "torch.nn.functional.relu",
                 "torch._C._nn.gelu"):
        assert rules[name].kind == "reference", name
    for name in ("torch.nn.modules.linear.Linear", "uuid.UUID", "argparse.Namespace"):
        assert rules[name].kind == "class", name  # NEWOBJ + state


def test_a_user_entry_never_narrows_a_default_kind():
    assert Policy(allow=["datetime.date"]).rule_for("datetime.date").kind == "callable"


def test_codec_and_stdlib_names_are_on_the_default_policy():
    rules = Policy().rules
    wanted = [*reasons.REQUIRED_STDLIB, "datetime.date", "datetime.time", "datetime.datetime",
              "datetime.timedelta", "datetime.timezone", "decimal.Decimal", "fractions.Fraction",
              "uuid.UUID", "pathlib.PurePosixPath", "collections.Counter", "collections.deque",
              "collections.defaultdict", "collections.OrderedDict", "builtins.complex",
              "builtins.range", "builtins.slice", "builtins.bytearray", "argparse.Namespace",
              "types.SimpleNamespace", "http.HTTPStatus", "re.RegexFlag"]
    assert [name for name in wanted if name not in rules] == []
    codecs = pytest.importorskip("safeart.format.codecs")
    for codec in getattr(codecs, "CODECS", ()):
        assert codec.name in rules and rules[codec.name].kind in ("class", "callable", "codec"), \
            codec.name


@pytest.mark.parametrize("family", ["stdlib", "numpy", "pandas"])
def test_generated_list_matches_the_installed_library(family):
    """Regenerating gives the committed list (for the library version installed here)."""
    stem = {"pandas": f"pandas_{importlib.import_module('pandas').__version__[0]}"}.get(
        family, family)
    generated = read_generated(stem)
    version = importlib.import_module(family).__version__ if family != "stdlib" else None
    if version is not None and version != generated.version:
        pytest.skip(f"{family} {version} installed, list generated from {generated.version}")
    entries, excluded = entries_for(family)
    assert tuple(entries) == generated.entries and tuple(excluded) == generated.excluded


def test_generated_lists_are_data_files_as_the_generator_renders_them():
    """The lists are JSON data (no modules), each exactly the text render() writes for it."""
    assert sorted(p.name for p in GENERATED_DIR.iterdir() if p.name != "__pycache__") == \
        sorted(f"{g.family}.json" for g in GENERATED)
    for generated in GENERATED:
        text = (GENERATED_DIR / f"{generated.family}.json").read_text(encoding="utf-8")
        assert text == render(generated.library, generated.version, list(generated.entries),
                              list(generated.excluded))


def test_usage_reader_classifies_calls_instantiations_and_references():
    import collections
    import uuid

    assert uses(pickle.dumps(collections.defaultdict(int), protocol=2)) == {
        "collections.defaultdict": {"called"}, "builtins.int": {"argument"}}
    assert uses(pickle.dumps(uuid.UUID(int=5), protocol=4)) == {"uuid.UUID": {"new"}}
    assert uses(pickle.dumps([Ellipsis], protocol=4)) == {"builtins.Ellipsis": {"held"}}


def test_unreviewed_names_stop_the_generator():
    with pytest.raises(reasons.Unreviewed):
        reasons.reason_for("mypkg.Thing", "class", object)
    assert reasons.excluded("sklearn.utils._testing.assert_run_python_script")


def test_sklearn_samples_cover_every_estimator():
    from sklearn.utils import all_estimators

    fitted = samples.sklearn_samples()
    missing = {name for name, _ in all_estimators()} - set(fitted) - set(samples.SKLEARN_UNFITTABLE)
    assert missing == set() and samples.SKLEARN_UNFITTABLE == {}


@pytest.mark.parametrize("module, name", [
    ("builtins", "int"), ("builtins", "Ellipsis"), ("builtins", "memoryview"),
    ("uuid", "UUID"), ("uuid", "SafeUUID"), ("pathlib", "PurePosixPath"), ("pathlib", "Path"),
    ("http", "HTTPStatus"), ("types", "SimpleNamespace"), ("io", "BytesIO"),
])
def test_inert_value_types_of_mixed_modules_are_not_dangerous(module, name):
    assert dangerous.reason_for(module, name) is None


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("builtins", "getattr"), ("builtins", "__import__"),
    ("builtins", "__loader__"), ("builtins", "__spec__"), ("builtins", "__build_class__"),
    ("builtins", "help"), ("builtins", "exit"), ("builtins", "map"), ("builtins", "open"),
    ("builtins", "getattr.__call__"), ("builtins", "int.__subclasses__"),
    ("uuid", "getnode"), ("uuid", "_get_command_stdout"), ("uuid", "os"), ("uuid", "UUID.__init__"),
    ("pathlib", "os"), ("pathlib", "os.system"), ("pathlib", "Path.write_text"),
    ("pathlib", "PosixPath.open"), ("http.client", "HTTPConnection"), ("http.server", "test"),
    ("http", "client.HTTPConnection"), ("io", "open"), ("_io", "FileIO"), ("io", "BytesIO.write"),
    ("types", "FunctionType"), ("types", "CodeType"), ("types", "SimpleNamespace.__init__"),
])
def test_dangerous_members_of_mixed_modules_stay_dangerous(module, name):
    assert dangerous.reason_for(module, name) is not None
    assert Policy().grade(module, name).grade is Grade.DANGEROUS


def test_unknown_builtins_are_refused_but_not_called_dangerous():
    verdict = Policy().grade("builtins", "memoryview")
    assert verdict.grade is Grade.UNKNOWN
    assert Policy().grade("builtins", "int").grade is Grade.ALLOWED
    assert Policy().grade("uuid", "UUID").grade is Grade.ALLOWED


def test_no_reviewed_rule_is_shadowed_by_an_earlier_one():
    """A rule after one with the same pattern and a shared kind would never give its reason."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    for pattern, kinds, _ in reasons.RULES:
        assert not [p for p, k in seen if p == pattern and set(k) & set(kinds)], pattern
        seen.append((pattern, kinds))


def test_the_data_files_ship_as_package_data():
    """Wheels carry only what pyproject's package-data names: every data file the defaults and
    the generator read must match one of its globs (else Policy() fails once installed)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]
    wanted = [*GENERATED_DIR.glob("*.json"), reasons.REASONS_FILE]
    for path in wanted:
        assert any(fnmatch.fnmatch(str(path.relative_to(root / package.replace(".", "/"))), glob)
                   for package, globs in declared.items() for glob in globs
                   if path.is_relative_to(root / package.replace(".", "/"))), path
