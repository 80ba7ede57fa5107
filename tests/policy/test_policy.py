"""The shared policy model: exact allowlist matching, grading, aliasing, TOML files."""

import textwrap

import pytest

import safeart
from safeart import ConfigError, Grade, Policy, PolicyError, Rule, load_policy


class Local:
    pass


def test_default_grades_pickle_globals():
    p = Policy()
    assert p.grade("torch._utils", "_rebuild_tensor_v2").grade is Grade.ALLOWED
    assert p.grade("os", "system").grade is Grade.DANGEROUS
    assert p.grade("posix", "system").grade is Grade.DANGEROUS
    assert p.grade("builtins", "eval").grade is Grade.DANGEROUS
    assert p.grade("mypkg.models", "Net").grade is Grade.UNKNOWN


def test_attribute_traversal_is_dangerous_even_from_a_harmless_module():
    p = Policy()
    assert p.grade("pathlib", "os.system").grade is Grade.DANGEROUS
    assert p.grade("collections", "OrderedDict.__init__.__globals__").grade is Grade.DANGEROUS
    # An allowed entry never admits a dotted traversal below it.
    assert p.grade("collections", "OrderedDict.fromkeys").grade is not Grade.ALLOWED


def test_scanner_deactivation_targets_are_dangerous():
    for module in ("safeart.policy.model", "fickling.analysis", "picklescan.scanner", "modelscan"):
        assert Policy().grade(module, "x").grade is Grade.DANGEROUS


def test_check_class_hint_names_the_fix():
    with pytest.raises(PolicyError) as info:
        Policy().check_class("mypkg.models", "Net", path="model.head")
    err = info.value
    assert err.name == "mypkg.models.Net" and err.path == "model.head"
    assert "allow=['mypkg.models.Net']" in str(err)


def test_codec_entries_admit_codec_values_only():
    """functools.partial is a default ``codec`` entry: safeart's codec may rebuild partials
    from a manifest, a pickle importing it stays dangerous, and no reference may name it."""
    import functools
    import pickle

    from safeart.unpickle import restricted_loads

    p = Policy()
    assert p.rule_for("functools.partial").kind == "codec"
    p.check_codec("functools", "partial")
    assert p.grade("functools", "partial").grade is Grade.DANGEROUS
    with pytest.raises(PolicyError, match="reference functools.partial"):
        p.check_reference("functools", "partial")
    with pytest.raises(PolicyError, match="class functools.partial"):
        p.check_class("functools", "partial")
    with pytest.raises(PolicyError, match="functools.partial is not allowed"):
        restricted_loads(pickle.dumps(functools.partial(int, "5")))
    bare = Policy(include_defaults=False)
    with pytest.raises(PolicyError) as info:
        bare.check_codec("functools", "partial", path="cfg")
    assert "kind='codec'" in info.value.hint  # a class entry would admit its pickles too
    with pytest.raises(PolicyError) as info:
        bare.check_codec("datetime", "date")
    assert "allow=['datetime.date']" in info.value.hint
    toml = safeart.policy.policy_from_mapping(
        {"allow": [{"name": "functools.partial", "kind": "codec"}], "include_defaults": False})
    toml.check_codec("functools", "partial")


def test_callable_entries_never_allow_manifest_classes():
    with pytest.raises(PolicyError):
        Policy().check_class("torch._utils", "_rebuild_tensor_v2")


def test_class_object_stands_for_main_alias():
    p = Policy(allow=[Local])
    assert p.resolve_class("__main__", "Local") is Local
    assert p.resolve_class(Local.__module__, "Local") is Local


def test_main_without_alias_explains_how():
    with pytest.raises(PolicyError, match=r"allow=\[Net\]"):
        Policy().resolve_class("__main__", "Net")


def test_resolve_requires_exact_defining_name():
    # torch.nn.Linear is re-exported; only its defining name is on the list.
    torch = pytest.importorskip("torch")
    p = Policy()
    assert p.resolve_class("torch.nn.modules.linear", "Linear") is torch.nn.Linear
    with pytest.raises(PolicyError):
        p.resolve_class("torch.nn", "Linear")


def test_allowed_name_must_be_a_class_defined_there():
    p = Policy(allow=["os.path.join"])
    with pytest.raises(PolicyError, match="does not name a class"):
        p.resolve_class("os.path", "join")


def test_unimportable_allowed_class():
    p = Policy(allow=["nosuchpkg_xyz.Model"])
    with pytest.raises(PolicyError, match="cannot be imported"):
        p.resolve_class("nosuchpkg_xyz", "Model")


def test_trust_main_only_for_classes_defined_in_main():
    p = Policy(trust_main=True)
    assert p.grade("__main__", "Net").grade is Grade.ALLOWED
    assert p.grade("__main__", "os.system").grade is Grade.DANGEROUS


def test_rules_carry_reasons():
    assert all(rule.reason for rule in Policy().rules.values())
    assert Policy(allow=[("a.B", "reviewed")]).rule_for("a.B") == Rule("a.B", "reviewed")


def test_toml_policy(tmp_path):
    f = tmp_path / "safeart.toml"
    f.write_text(
        textwrap.dedent(
            """
            allow = ["mypkg.models.Net", { name = "mypkg.models.Head", reason = "reviewed" }]
            [aliases]
            "__main__.Net" = "mypkg.models.Net"
            [limits]
            max_depth = 7
            """
        )
    )
    p = load_policy(f)
    assert p.rule_for("mypkg.models.Head").reason == "reviewed"
    assert p.aliases_target("__main__.Net") == "mypkg.models.Net"
    assert p.limits.max_depth == 7


def test_pyproject_policy(tmp_path):
    f = tmp_path / "pyproject.toml"
    f.write_text('[tool.safeart]\nallow = ["a.B"]\ninclude_defaults = false\n')
    p = load_policy(f)
    assert p.rule_for("a.B") and not p.rule_for("torch.nn.modules.linear.Linear")


@pytest.mark.parametrize(
    "text, message",
    [
        ("allw = []", "unknown key"),
        ("allow = 3", "must be a list"),
        ("allow = [1]", "invalid allow entry"),
        ("[limits]\nmax_depth = -1", "positive integer"),
        ("[limits]\nmax_dept = 1", "unknown limit"),
        ("trust_main = 'yes'", "true or false"),
        ("allow = [", "not valid TOML"),
    ],
)
def test_bad_policy_files_are_config_errors(tmp_path, text, message):
    f = tmp_path / "safeart.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_policy(f)


def test_missing_policy_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_public_api_exports():
    assert issubclass(safeart.PolicyError, safeart.SafeartError)
    assert issubclass(safeart.LimitExceeded, safeart.FormatError)
