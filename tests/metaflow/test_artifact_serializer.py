"""safeart's Metaflow serializer without running flows: registration, what it claims,
strict mode, fallback warnings, load policy, layout versions, naming of failed loads."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import string
import subprocess
import sys
from types import SimpleNamespace

import pytest
from metaflow.datastore.artifacts import list_serializer_status
from metaflow.datastore.artifacts.serializer import SerializationMetadata
from metaflow_extensions.safeart.plugins.safeart_serializer import SafeartSerializer

import safeart
import safeart.format
import safeart.metaflow
import safeart.metaflow.encodings
from safeart.metaflow import runtime, serializer, state

REF = state.ArtifactRef("SomeFlow/1/start/2", "thing")


@dataclasses.dataclass
class Point:
    """A class outside the default allowlist."""

    x: int
    y: int


class Celsius:
    """A class of the user's own code with a custom ``__reduce__`` (safeart refuses it)."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __reduce__(self):
        return (Celsius, (self.degrees,))


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SAFEART_STRICT", raising=False)
    monkeypatch.delenv("SAFEART_POLICY", raising=False)
    serializer._warned.clear()
    yield
    safeart.metaflow.strict(False)
    safeart.metaflow.set_policy(None)
    serializer._local.pending = None


def test_metaflow_registers_the_serializer_and_its_hooks():
    (record,) = [r for r in list_serializer_status() if r["name"] == "safeart"]
    assert record["state"] == "active" and record["source"] == "safeart"
    pickle = next(r for r in list_serializer_status() if r["name"] == "pickle")
    assert record["priority"] < pickle["priority"]
    assert runtime.hooks_installed() and runtime.unsupported() is None


def test_opting_in_stays_cheap_and_metaflow_start_up_does_not_opt_in():
    check = "import sys; import safeart.metaflow; print('metaflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    # Metaflow's start-up sets the extension up (it imports the runtime), nothing more.
    check = (
        "import sys, metaflow\n"
        "from safeart.metaflow import runtime, state\n"
        "print(state.opted_in(), runtime.hooks_installed(),\n"
        "      'safeart.metaflow.serializer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "False"]


def test_one_check_guards_every_patch(monkeypatch: pytest.MonkeyPatch):
    classes = runtime._classes()
    assert runtime._check(classes) is None

    class Changed(classes["ContentAddressedStore"]):
        def load_blobs(self, keys, force_raw=False, is_transfer=False, extra=None):
            raise AssertionError

    problem = runtime._check({**classes, "ContentAddressedStore": Changed})
    assert problem is not None and "ContentAddressedStore.load_blobs" in problem
    monkeypatch.setattr("metaflow.version.metaflow_version", "2.20.1")
    assert "Metaflow 2.20.1 is not >=2.19.26,<2.20" == runtime._check(classes)


def test_claims_plain_values_and_encodes_once(monkeypatch: pytest.MonkeyPatch):
    calls = []
    real = safeart.format.dumps
    monkeypatch.setattr(
        safeart.format, "dumps", lambda obj, **kw: calls.append(obj) or real(obj, **kw)
    )
    value = {"lr": 0.1, "layers": [4, 8]}
    assert serializer.claims(value, REF)
    blob, info = serializer.serialize(value, REF)
    assert len(calls) == 1
    assert info == {"format_version": safeart.format.FORMAT_VERSION}
    assert safeart.format.loads(blob) == value


def test_pending_encoding_is_only_reused_for_the_same_object():
    assert serializer.claims([1], REF)
    blob, _ = serializer.serialize([2], REF)
    assert safeart.format.loads(blob) == [2]


@pytest.mark.parametrize("name", ["_foreach_stack", "_graph_info", "_transition", "name"])
def test_metaflow_internal_artifacts_are_left_to_metaflow(name: str):
    safeart.metaflow.strict()
    assert not serializer.claims([1, 2], state.ArtifactRef("F/1/s/2", name))


def test_metaflow_wrapper_types_are_left_to_metaflow():
    from metaflow.includefile import IncludedFile

    safeart.metaflow.strict()
    assert not serializer.claims(IncludedFile.__new__(IncludedFile), REF)


def test_fallback_warns_once_per_artifact_name():
    with pytest.warns(serializer.PickleFallbackWarning) as record:
        assert not serializer.claims(Celsius(20.0), REF)
        assert not serializer.claims(Celsius(21.0), REF)
        assert not serializer.claims(lambda x: x, state.ArtifactRef("SomeFlow/1/start/2", "fn"))
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert messages[0].startswith(
        f"SomeFlow/1/start/2:thing ({__name__}.Celsius) is stored with pickle"
    )
    assert "rebuilt by calling Celsius" in messages[0] and "strict()" in messages[0]
    assert "hint: drop the custom __reduce__" in messages[0]  # the user's own class
    assert messages[1].startswith("SomeFlow/1/start/2:fn (builtins.function)")


def _fallback_hint(value: object, name: str) -> str:
    with pytest.warns(serializer.PickleFallbackWarning) as record:
        assert not serializer.claims(value, state.ArtifactRef("SomeFlow/1/start/2", name))
    (warning,) = record
    return str(warning.message).split("\n  hint: ", 1)[1]


def test_fallback_hint_for_a_library_class_says_what_safeart_stores_or_which_rule_to_add():
    # A library class rebuilt by a call: its __reduce__ is not the user's to drop.
    hint = _fallback_hint(ipaddress.IPv4Address("10.0.0.1"), "address")
    assert "__reduce__" not in hint
    assert hint.startswith("safeart has no codec for ipaddress.IPv4Address")
    # A library class rebuilt from state but not on the allowlist: the rule to add, in-flow.
    hint = _fallback_hint(string.Template("$x"), "template")
    assert "safeart.metaflow.set_policy(safeart.Policy(allow=['string.Template']))" in hint
    assert "[tool.safeart]" in hint


@pytest.mark.parametrize("switch", ["api", "env"])
def test_strict_mode_claims_then_refuses_naming_artifact_type_path_and_reason(
    switch: str, monkeypatch: pytest.MonkeyPatch
):
    if switch == "api":
        safeart.metaflow.strict()
    else:
        monkeypatch.setenv("SAFEART_STRICT", "yes")
    assert safeart.metaflow.is_strict()
    value = {"ok": 1, "when": [Celsius(20.0)]}
    assert serializer.claims(value, REF)
    with pytest.raises(safeart.EncodeError) as refused:
        serializer.serialize(value, REF)
    err = refused.value
    assert err.artifact == "SomeFlow/1/start/2:thing"
    assert err.message.startswith(
        "strict mode: artifact 'thing' of type builtins.dict cannot be stored without pickle"
    )
    assert "at thing['when'][0]" in err.message and "rebuilt by calling Celsius" in err.message
    assert err.hint.endswith("or leave strict mode so that Metaflow pickles it")
    assert isinstance(err.__cause__, safeart.EncodeError)


def test_invalid_strict_environment_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SAFEART_STRICT", "please")
    with pytest.raises(safeart.ConfigError, match="SAFEART_STRICT"):
        state.is_strict()


def test_classes_that_would_not_load_back_are_not_claimed():
    with pytest.warns(serializer.PickleFallbackWarning, match="would not load back in this flow"):
        assert not serializer.claims(Point(1, 2), REF)
    safeart.metaflow.strict()
    assert serializer.claims(Point(1, 2), REF)
    with pytest.raises(safeart.EncodeError, match="class .*Point is not on the allowlist") as no:
        serializer.serialize(Point(1, 2), REF)
    assert "allow=" in no.value.hint


def test_set_policy_makes_a_class_storable_and_loadable():
    safeart.metaflow.set_policy(safeart.Policy(allow=[Point]))
    assert serializer.claims(Point(1, 2), REF)
    blob, _ = serializer.serialize(Point(1, 2), REF)
    assert safeart.format.loads(blob, policy=state.policy_for("SomeFlow")) == Point(1, 2)


def test_unnamed_saves_are_refused_in_strict_mode_and_left_alone_otherwise(recwarn):
    unnamed = state.ArtifactRef(None, None)
    assert not serializer.claims({"a": 1}, unnamed)
    assert not recwarn.list
    safeart.metaflow.strict()
    assert serializer.claims({"a": 1}, unnamed)
    with pytest.raises(safeart.EncodeError, match="cannot tell which artifact"):
        serializer.serialize({"a": 1}, unnamed)


def test_load_policy_precedence(tmp_path, monkeypatch: pytest.MonkeyPatch):
    name = f"{Point.__module__}.{Point.__qualname__}"
    assert name not in state.base_policy().rules
    policy_file = tmp_path / "safeart.toml"
    policy_file.write_text(f'allow = ["{name}"]\n')
    monkeypatch.setenv("SAFEART_POLICY", str(policy_file))
    assert name in state.base_policy().rules
    safeart.metaflow.set_policy(safeart.Policy())
    assert name not in state.base_policy().rules
    with safeart.metaflow.allowing(Point) as scoped:
        assert state.base_policy() is scoped and name in scoped.rules
    assert name not in state.base_policy().rules


def test_main_is_trusted_only_in_the_flow_files_own_process():
    # No Metaflow CLI runs this process (current.flow_name is None): nothing trusts __main__.
    assert not state.policy_for("SomeFlow").trust_main
    assert not state.policy_for(None).trust_main


def _meta(encoding: str) -> SerializationMetadata:
    return SerializationMetadata("<class 'dict'>", 0, encoding, {})


def test_every_safeart_encoding_is_claimed_and_unknown_layouts_refused():
    assert SafeartSerializer.can_deserialize(_meta("safeart-v1"))
    assert SafeartSerializer.can_deserialize(_meta("safeart-v7"))
    assert not SafeartSerializer.can_deserialize(_meta("pickle-v4"))
    blob = safeart.format.dumps({"a": 1})
    assert SafeartSerializer.deserialize([blob], _meta("safeart-v1")) == {"a": 1}
    with pytest.raises(safeart.UnsupportedVersion, match="'safeart-v7'"):
        SafeartSerializer.deserialize([blob], _meta("safeart-v7"))


def test_failed_loads_name_the_artifact_the_blob_belongs_to():
    blob_a, blob_b = safeart.format.dumps([1]), safeart.format.dumps([2])
    info_a, info_c = {"format_version": 2}, {"format_version": 2}
    sha_a, sha_b = hashlib.sha1(blob_a).hexdigest(), hashlib.sha1(blob_b).hexdigest()
    ds = SimpleNamespace(
        _info={"a": {"encoding": "safeart-v1", "serializer_info": info_a},
               "b": {"encoding": "safeart-v1"}, "p": {"encoding": "pickle-v4"},
               "c": {"encoding": "safeart-v1", "serializer_info": info_c}},
        _objects={"a": sha_a, "b": sha_b, "p": "x", "c": sha_a},  # c shares a's blob
    )
    load = state.Loading("F/1/s/2", ["a", "b", "p", "c"], ds)
    assert str(load.current()) == "F/1/s/2:{a,b,c}"  # no blob fetched yet
    load.key = sha_b  # the key Metaflow fetched the blob by, whatever its bytes are
    assert str(load.current()) == "F/1/s/2:b"
    load.key = sha_a
    assert str(load.current()) == "F/1/s/2:{a,c}"
    assert str(load.current(serializer_info=info_c)) == "F/1/s/2:c"
    load.key = "x"
    assert str(load.current(safeart.metaflow.encodings.is_pickle)) == "F/1/s/2:p"
    assert load.shared(sha_a) and not load.shared(sha_b)
    assert load.safeart_keys() == {sha_a, sha_b}


def test_signing_key_signs_what_is_stored_for_the_artifact(tmp_path, monkeypatch):
    from safeart.signing import SIG_FIELD, Verifier, digest, keygen

    pair = keygen(tmp_path / "k.pem")
    monkeypatch.setenv("SAFEART_SIGNING_KEY", str(pair.private_path))
    blob, info = serializer.serialize({"a": 1}, REF)
    assert info[SIG_FIELD]["ps"] == str(REF)
    verifier = Verifier.from_files([str(pair.public_path)])
    verifier.verify(str(REF), digest(blob), info[SIG_FIELD])
    monkeypatch.delenv("SAFEART_SIGNING_KEY")
    assert SIG_FIELD not in serializer.serialize({"a": 1}, REF)[1]


def test_unexpected_encoder_failures_never_become_silent_pickle(monkeypatch: pytest.MonkeyPatch):
    def broken(obj, **kw):
        raise TypeError("boom")

    monkeypatch.setattr(safeart.format, "dumps", broken)
    with pytest.warns(serializer.PickleFallbackWarning, match="TypeError: boom"):
        assert not serializer.claims({"a": 1}, REF)
    safeart.metaflow.strict()
    assert serializer.claims({"a": 1}, REF)
    with pytest.raises(safeart.EncodeError, match="safeart failed on this object: TypeError: boom"):
        serializer.serialize({"a": 1}, REF)
