"""threat-model.md stays true: every test, canary sample and path it names exists; and the
claims it makes that no other test covered are tested here."""

from __future__ import annotations

import ast
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import safeart
from safeart import guard
from safeart.errors import ConfigError, PolicyError, UnsafeArtifactError
from safeart.policy import Policy, Rule, qualified_name
from safeart.unpickle import restricted_loads

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "threat-model.md").read_text(encoding="utf-8")
TEST_REF = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")
SAMPLE_REF = re.compile(r"\bsample:(\w+)")
PATH_REF = re.compile(r"`((?:safeart|examples|metaflow_extensions|tests|docs)/[\w./-]*)`")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_named_test_exists() -> None:
    refs = TEST_REF.findall(DOC)
    assert len(refs) >= 40, "the threat model names a test for every attack"
    missing = [f"{f}::{name}" for f, name in refs
               if not (REPO / f).is_file() or name not in _functions(REPO / f)]
    assert not missing, f"threat-model.md names tests that do not exist: {missing}"


def test_every_named_canary_sample_exists() -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from payloads import SAMPLES

    refs = SAMPLE_REF.findall(DOC)
    assert refs and not [r for r in refs if r not in SAMPLES]


def test_every_named_path_exists() -> None:
    refs = PATH_REF.findall(DOC)
    assert refs and not [r for r in refs if not (REPO / r).exists()]


# -- claims no other test covered -----------------------------------------------------------
class Recorder:
    """An allowed class whose ``__init__`` leaves a trace."""

    calls: list[tuple[int, ...]] = []

    def __init__(self, *args: int) -> None:
        Recorder.calls.append(args)
        self.args = args


class _CallRecorder:
    def __reduce__(self):  # a pickle that *calls* the allowed class with chosen arguments
        return (Recorder, (10**6, 10**6))


def test_manifest_never_calls_init_and_a_pickle_calls_only_callable_entries() -> None:
    blob = safeart.dumps(Recorder(1))
    Recorder.calls.clear()
    rebuilt = safeart.loads(blob, allow=[Recorder])
    assert rebuilt.args == (1,) and Recorder.calls == []  # __new__ + state only

    data = pickle.dumps(_CallRecorder(), protocol=4)  # built, never loaded with pickle
    with pytest.raises(UnsafeArtifactError, match="'class' entry is called"):
        guard.load_pickle(data, policy=Policy(allow=[Recorder]))  # the scan grades the call
    assert Recorder.calls == []
    entry = Rule(qualified_name(Recorder), "test: records its arguments", "callable")
    loaded = guard.load_pickle(data, policy=Policy(allow=[entry]))  # scan clean, then load
    assert type(loaded) is Recorder and Recorder.calls == [(10**6, 10**6)]


def test_trust_main_refuses_a_class_imported_into_main(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules["__main__"], "Popen", subprocess.Popen, raising=False)
    policy = Policy(trust_main=True)
    with pytest.raises(PolicyError):
        policy.resolve_class("__main__", "Popen")
    with pytest.raises(PolicyError):  # PROTO 4, STACK_GLOBAL __main__.Popen, STOP
        restricted_loads(b"\x80\x04\x8c\x08__main__\x8c\x05Popen\x93.", policy=policy)


def test_a_malformed_enforce_switch_counts_as_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from safeart.metaflow.state import check_enforce_env, enforced  # does not opt in
    from safeart.settings import ENFORCE_ENV

    monkeypatch.setenv(ENFORCE_ENV, "0")
    assert not enforced()
    monkeypatch.setenv(ENFORCE_ENV, "ture")
    assert enforced()
    with pytest.raises(ConfigError):
        check_enforce_env()
    pytest.importorskip("metaflow")
    from metaflow.datastore.artifacts.serializer import SerializationMetadata

    from metaflow_extensions.safeart.plugins.safeart_enforce import EnforcingPickleSerializer

    meta = SerializationMetadata("<class 'int'>", 4, "pickle-v4", {})
    assert EnforcingPickleSerializer.can_deserialize(meta)
    with pytest.raises(ConfigError, match="SAFEART_ENFORCE"):  # refused, never plain pickle
        EnforcingPickleSerializer.deserialize([pickle.dumps(1)], meta)
