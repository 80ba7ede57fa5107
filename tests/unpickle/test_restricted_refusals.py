"""Refusals: dangerous and unlisted globals, traversal, persistent ids. Nothing may run."""

from __future__ import annotations

import os
import pickle
import sys

import pytest

from safeart import FormatError, Policy, PolicyError, Rule
from safeart.unpickle import restricted_loads
from unpickle_payloads import Reduce, call, canary_call, fragment, global_ref, torch_stream


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a refused payload ran"


def test_canary_payload_is_live_under_plain_pickle(tmp_path):
    live = tmp_path / "live"
    pickle.loads(canary_call(live))  # the same bytes the tests below refuse
    assert live.exists()


def _refused(data: bytes, name: str, **kw) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        restricted_loads(data, artifact="Flow/9/train/3:model", **kw)
    err = info.value
    assert err.name.startswith(name)
    assert err.artifact == "Flow/9/train/3:model" and "Flow/9/train/3:model" in str(err)
    assert err.hint
    return err


@pytest.mark.parametrize("protocol", [0, 2, 3, 4])
def test_builtins_open_is_refused(canary, protocol):
    err = _refused(canary_call(canary, protocol), "builtins.open")
    assert "do not allow it" in err.hint


@pytest.mark.parametrize(
    "module, name, full",
    [
        ("os", "system", "os.system"),
        ("posix", "system", "posix.system"),
        ("builtins", "eval", "builtins.eval"),
        ("builtins", "exec", "builtins.exec"),
        ("builtins", "getattr", "builtins.getattr"),
        ("builtins", "__import__", "builtins.__import__"),
        ("pathlib", "os.system", "pathlib.os.system"),
        ("collections", "os.system", "collections.os.system"),
        ("collections", "OrderedDict.__init__.__globals__", "collections.OrderedDict.__init__.__globals__"),
        ("subprocess", "Popen", "subprocess.Popen"),
        ("torch", "load", "torch.load"),
        ("torch.serialization", "load", "torch.serialization.load"),
        ("numpy", "load", "numpy.load"),
        ("pickle", "loads", "pickle.loads"),
        ("safeart.unpickle.restricted", "LoadSession", "safeart.unpickle.restricted.LoadSession"),
    ],
)
def test_dangerous_globals_are_refused(canary, module, name, full):
    err = _refused(call(module, name, f"touch {canary}"), full)
    assert "dangerous" in err.message


def test_protocol_2_names_are_renamed_before_grading(canary):
    # CPython maps __builtin__ to builtins for protocol < 3; grading sees the mapped name.
    _refused(call("__builtin__", "eval", f"open({str(canary)!r}, 'w')", protocol=2), "builtins.eval")
    assert restricted_loads(call("__builtin__", "set", [1], protocol=2)) == {1}
    # ... and, like CPython, not for protocol >= 3, where __builtin__.set is not builtins.set.
    _refused(call("__builtin__", "set", [1], protocol=4), "__builtin__.set")


def test_unlisted_class_is_refused_without_importing_its_module(tmp_path, canary, monkeypatch):
    (tmp_path / "evil_models.py").write_text(
        f"open({str(canary)!r}, 'w').close()\n"
        "class Evil:\n"
        f"    def __reduce__(self):\n        return (open, ({str(canary)!r}, 'w'))\n"
    )
    data = call("evil_models", "Evil")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _refused(data, "evil_models.Evil")
    assert "allow=['evil_models.Evil']" in err.hint
    assert "evil_models" not in sys.modules


def test_persistent_ids_are_refused_at_top_level(canary):
    data = b"\x80\x04" + fragment(("storage", "FloatStorage", "0", "cpu", 1)) + b"Q."
    err = _refused(data, "persistent id ('storage'")
    assert "persistent id" in err.message


def test_refusal_stops_before_anything_later_runs(canary):
    # The refused global comes first; the allowed-but-canary-creating part never runs.
    data = pickle.dumps([Reduce(os.system, f"touch {canary}"), Reduce(open, str(canary), "w")], protocol=4)
    _refused(data, "posix.system")


def test_allowed_name_must_resolve_to_the_object_it_names():
    # json.JSONDecoder is defined in json.decoder: a class rule names the defining module.
    with pytest.raises(PolicyError, match="does not name a class"):
        restricted_loads(call("json", "JSONDecoder"), policy=Policy(allow=["json.JSONDecoder"]))
    # random.random is a bound method that declares no module: never the callable named.
    policy = Policy(allow=[Rule("random.random", "test", "callable")])
    with pytest.raises(PolicyError, match="not to the object the allowlist names"):
        restricted_loads(call("random", "random"), policy=policy)
    # REDUCE calls the class: only a 'callable' entry admits that (a class entry: NEWOBJ only).
    called = Policy(allow=[Rule("json.decoder.JSONDecoder", "test: JSONDecoder()", "callable")])
    assert restricted_loads(call("json.decoder", "JSONDecoder"), policy=called)


def flow_function():
    """Stands for a function defined in a flow file."""


def test_aliases_never_stand_for_callables(monkeypatch):
    monkeypatch.setattr(flow_function, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "flow_function", flow_function, raising=False)
    policy = Policy(aliases={"__main__.flow_function": "torch._utils._rebuild_tensor_v2"})
    with pytest.raises(PolicyError, match="aliases stand for classes only"):
        restricted_loads(global_ref("__main__", "flow_function"), policy=policy)


def test_traversal_is_admitted_only_when_spelled_exactly_and_resolved_exactly():
    from torch.nn import Linear

    # module "torch" + name "nn.modules.linear.Linear" spells the allowed name in full
    assert restricted_loads(global_ref("torch", "nn.modules.linear.Linear")) is Linear
    for module, name in [("torch", "nn.Linear"), ("torch.nn", "Linear"), ("torch.nn.modules.linear", "Linear.__new__")]:
        with pytest.raises(PolicyError):
            restricted_loads(global_ref(module, name))


def swallow_errors(fn, *args):
    """An allowed callable that catches everything: it must not hide a refusal."""
    try:
        return fn(*args)
    except Exception:
        return "swallowed"


def test_a_swallowed_refusal_still_fails_the_load(canary):
    import torch.storage

    hidden = torch_stream(canary_call(canary, 2), [])
    data = pickle.dumps(Reduce(swallow_errors, torch.storage._load_from_bytes, hidden), protocol=4)
    policy = Policy(allow=[Rule(f"{__name__}.swallow_errors", "test", "callable")])
    _refused(data, "builtins.open", policy=policy)


def test_garbage_never_raises_anything_but_safeart_errors():
    for blob in (b"\x80\x04\x93.", b"\x80\x04N\x93.", b"\x80\x04\x8c\x01a\x8c\x01b\x93R."):
        with pytest.raises((FormatError, PolicyError)):
            restricted_loads(blob)


def test_an_overlong_global_name_is_refused_with_a_bounded_message():
    name = "x" * 2_000_000
    blob = b"\x80\x04\x8c\x05mypkg\x8d" + len(name).to_bytes(8, "little") + name.encode() + b"\x93)R."
    with pytest.raises(PolicyError, match="max_name_length") as info:
        restricted_loads(blob)
    assert len(str(info.value)) < 2_000
