"""Resource exhaustion through allowlisted callables (issue 12).

A pickle may call an allowed global with arguments of its choosing: ``bytes(2**36)``,
``frozenset(range(2**31))``, numpy's ``_reconstruct`` with a 1 TiB shape, or the allowed
*class* ``nn.Linear(2**17, 2**17)`` (its ``__init__`` allocates 64 GiB). The scan grades each
(kind ``resource``, ``unknown``); every restricted load refuses each before allocating, and
the restricted unpickler bounds allowed callables even when handed no scan. Bombs are loaded
only in a fresh interpreter whose address space is capped (:data:`_CAPPED`): a missing bound
shows up as ``MemoryError``, never as an exhausted machine.
"""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import pytest
import torch

from isolation import BOMB_BOUND_MB, isolated
from payloads import SAMPLES, fragment, stack_global
from safeart import Limits, LimitExceeded, Policy, Rule, UnsafeArtifactError, load_policy
from safeart.guard import load_pickle
from safeart.scan import ScanResult, scan_bytes
from safeart.scan import stubs
from safeart.unpickle import restricted_loads

#: sample -> the allowed global its finding names
BOMBS = {
    "bytes_huge_count_p2": "builtins.bytes",
    "bytearray_huge_count": "builtins.bytearray",
    "frozenset_of_huge_range": "builtins.frozenset",
    "set_of_huge_range_p2": "builtins.set",
    "torch_size_of_huge_range": "torch.Size",
    "numpy_reconstruct_huge_shape": "numpy._core.multiarray._reconstruct",
    "torch_nn_linear_called": "torch.nn.modules.linear.Linear",
}
#: Bombs that call ``callable`` entries: bounded by the unpickler itself, scan or not.
CALLABLE_BOMBS = sorted(set(BOMBS) - {"torch_nn_linear_called"})

# The child process imports what the loads use, then may map at most 1 GiB more.
_CAPPED = """
import resource, numpy, torch, torch.nn
from safeart.scan import ScanResult
from safeart.guard import load_pickle
def _vm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (_vm() + (1 << 30), resource.RLIM_INFINITY))
def outcome(load):
    try:
        load()
        return "returned"
    except Exception as exc:
        return type(exc).__name__
"""


def _bomb(name: str) -> bytes:
    return SAMPLES[name].build(None)  # type: ignore[arg-type] - the bombs run no canary


def _resource_findings(data: bytes, policy: Policy | None = None) -> dict[str, str]:
    return {f.name: f.reason for f in scan_bytes(data, policy=policy).findings
            if f.kind == "resource"}


# -- the scan ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_scan_grades_each_allocating_call(name: str) -> None:
    result = scan_bytes(_bomb(name))
    assert result.verdict == "unknown" and result.complete
    reason = _resource_findings(_bomb(name))[BOMBS[name]]
    if name == "torch_nn_linear_called":  # the entry kind that would admit the call
        assert "'class' entry is called" in reason and "kind='callable'" in reason
        assert "(131072, 131072)" in reason
    else:
        assert "max_alloc_bytes is 4.0 GiB" in reason and "raise Limits.max_alloc_bytes" in reason


def test_a_huge_range_is_graded_whatever_consumes_it() -> None:
    reason = _resource_findings(_bomb("frozenset_of_huge_range"))["builtins.range"]
    assert "range(0, 2147483648)" in reason and "128.0 GiB" in reason


def test_calls_are_still_named_when_the_stub_cache_is_full(monkeypatch) -> None:
    # A long-running scanner fills the process-wide stub cache; calls stay graded.
    monkeypatch.setattr(stubs, "_STUBS", {f"x.n{i}": stubs.Opaque for i in range(10)})
    monkeypatch.setattr(stubs, "_MAX_NAMED_STUBS", 10)
    assert "builtins.bytes" in _resource_findings(_bomb("bytes_huge_count_p2"))
    monkeypatch.setattr(stubs, "_MAX_NAMED_STUBS", 0)  # nothing can be named any more
    assert "<unnamed import>" in _resource_findings(_bomb("bytes_huge_count_p2"))


# -- loads, under a memory cap ------------------------------------------------------------------
def test_guarded_and_restricted_loads_refuse_each_without_allocating() -> None:
    bombs = {name: _bomb(name) for name in BOMBS}
    result = isolated(f"""
        for name, data in {bombs!r}.items():
            report(**{{name: [
                outcome(lambda: load_pickle(data)),
                outcome(lambda: safeart.unpickle.restricted_loads(data)),
            ]}})
    """, setup=_CAPPED)
    assert result.values == {name: ["UnsafeArtifactError", "LimitExceeded"] for name in BOMBS}
    assert result.grew_mb < BOMB_BOUND_MB


def test_the_unpickler_bounds_allowed_callables_without_a_scan() -> None:
    # Handed a (false) clean scan, the restricted unpickler alone still refuses each call.
    bombs = {name: _bomb(name) for name in CALLABLE_BOMBS}
    result = isolated(f"""
        for name, data in {bombs!r}.items():
            report(**{{name: outcome(lambda: safeart.unpickle.restricted_loads(
                data, scanned=ScanResult(target=name)))}})
    """, setup=_CAPPED)
    assert result.values == {name: "LimitExceeded" for name in CALLABLE_BOMBS}
    assert result.grew_mb < BOMB_BOUND_MB


def test_the_unpickle_fuzz_target_reports_a_call_past_its_limit() -> None:
    # Take the bytes() charge away: the fuzz target reports the bomb instead of passing it.
    result = isolated(f"""
        from fuzz import oracle, targets
        from safeart.scan import calls
        data = {_bomb("bytes_huge_count_p2")!r}
        targets.fuzz_unpickle(data)  # bounded: refused, nothing to report
        del calls.CHARGED["builtins.bytes"]
        try:
            targets.fuzz_unpickle(data)
            report(reported=None)
        except oracle.Exhausted as exc:
            report(reported=str(exc))
    """, setup=_CAPPED)
    assert "MemoryError" in result.values["reported"]
    assert result.grew_mb < BOMB_BOUND_MB


def test_refusals_name_the_call_the_limit_and_the_fix() -> None:
    with pytest.raises(UnsafeArtifactError) as refused:
        load_pickle(_bomb("bytes_huge_count_p2"), artifact="Flow/1/start/2:blob")
    error = refused.value
    assert error.artifact == "Flow/1/start/2:blob" and "builtins.bytes" in str(error)
    assert "raise Limits.max_alloc_bytes" in error.hint
    with pytest.raises(UnsafeArtifactError) as refused:
        load_pickle(_bomb("torch_nn_linear_called"))
    assert "kind='callable'" in refused.value.hint
    with pytest.raises(LimitExceeded) as limited:
        restricted_loads(_bomb("bytearray_huge_count"), artifact="a.pkl",
                         scanned=ScanResult(target="a.pkl"))
    assert limited.value.artifact == "a.pkl" and "builtins.bytearray" in limited.value.message
    assert "64.0 GiB" in limited.value.message and "max_alloc_bytes" in limited.value.hint


# -- benign uses of the same callables --------------------------------------------------------
def _linear() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


BENIGN = {
    **{f"bytearray_p{p}": (bytearray(b"x"), p) for p in range(6)},
    **{f"frozenset_p{p}": (frozenset({1, 2}), p) for p in range(6)},
    **{f"set_p{p}": ({1, 2}, p) for p in (0, 2)},
    **{f"range_p{p}": (range(10), p) for p in (0, 2, 4)},
    "empty_bytes_p2": (b"", 2),
    "torch_size": (torch.Size([2, 3]), 4),
    "ordered_dict_p2": (collections.OrderedDict(a=1), 2),
    "ndarray": (np.arange(6.0).reshape(2, 3), 4),
}


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_pickles_of_the_same_callables_scan_clean_and_load(name: str) -> None:
    value, protocol = BENIGN[name]
    data = pickle.dumps(value, protocol=protocol)
    assert scan_bytes(data).verdict == "clean", scan_bytes(data).findings
    loaded = load_pickle(data)
    assert type(loaded) is type(value)
    assert (loaded == value).all() if isinstance(value, np.ndarray) else loaded == value


def test_a_real_linear_layer_and_checkpoint_scan_clean_and_load() -> None:
    model = _linear()
    loaded = load_pickle(pickle.dumps(model, protocol=4))
    assert type(loaded) is torch.nn.Linear
    assert torch.equal(loaded.weight, model.weight) and torch.equal(loaded.bias, model.bias)
    state = load_pickle(pickle.dumps(model.state_dict(), protocol=2))
    assert torch.equal(state["weight"], model.weight)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert scan_bytes(buf.getvalue()).verdict == "clean"


def test_calls_up_to_the_limit_load_and_one_byte_more_is_refused() -> None:
    policy = Policy(limits=Limits(max_alloc_bytes=100))
    at_limit = b"\x80\x04" + stack_global("builtins", "bytearray") + fragment((100,)) + b"R."
    assert load_pickle(at_limit, policy=policy) == bytearray(100)
    over = at_limit.replace(fragment((100,)), fragment((101,)))
    assert "builtins.bytearray" in _resource_findings(over, policy)
    with pytest.raises(LimitExceeded):
        restricted_loads(over, policy=policy, scanned=ScanResult(target="over"))


def test_a_class_is_called_only_under_a_callable_entry() -> None:
    data = b"\x80\x04" + stack_global("torch.nn.modules.linear", "Linear") + fragment((3, 2)) + b"R."
    assert "torch.nn.modules.linear.Linear" in _resource_findings(data)
    with pytest.raises(LimitExceeded, match="kind='callable'"):
        restricted_loads(data)
    policy = Policy(allow=[Rule("torch.nn.modules.linear.Linear", "reviewed: a small layer",
                                "callable")])
    assert scan_bytes(data, policy=policy).verdict == "clean"
    assert load_pickle(data, policy=policy).weight.shape == (2, 3)


def test_max_alloc_bytes_is_read_from_toml(tmp_path) -> None:
    path = tmp_path / "safeart.toml"
    path.write_text("[limits]\nmax_alloc_bytes = 1024\n")
    assert load_policy(path).limits.max_alloc_bytes == 1024
    assert Limits().max_alloc_bytes == 4 << 30


# -- numbers: CPU, not memory (fractions.Fraction and decimal.Decimal are callable entries) ----
#: sample -> the allowed number type its finding names
NUMBER_BOMBS = {
    "fraction_huge_exponent": "fractions.Fraction",
    "fraction_unicode_exponent": "fractions.Fraction",
    "fraction_of_huge_decimal": "fractions.Fraction",
    "fraction_of_huge_ints": "fractions.Fraction",
    "decimal_of_huge_int": "decimal.Decimal",
}
#: The memory cap, plus a CPU cap: an unbounded bomb kills the child (SIGXCPU), and the
#: test fails on its exit status instead of burning the machine.
_CPU_CAPPED = _CAPPED + """
resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
import time
def timed(load):
    start = time.process_time()
    return [outcome(load), round(time.process_time() - start, 2)]
"""


@pytest.mark.parametrize("name", sorted(NUMBER_BOMBS))
def test_scan_grades_numbers_past_the_digit_limit(name: str) -> None:
    result = scan_bytes(_bomb(name))
    assert result.verdict == "unknown" and result.complete
    reason = _resource_findings(_bomb(name))[NUMBER_BOMBS[name]]
    assert "4300 digits (sys.get_int_max_str_digits()" in reason
    assert "sys.set_int_max_str_digits()" in reason  # the hint: CPython's own knob


def _written(tmp_path, blobs: dict[str, bytes]) -> dict[str, str]:
    """Each blob in a file (too large for the child's command line), by name -> path."""
    paths = {}
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
        paths[name] = str(tmp_path / name)
    return paths


def test_loads_refuse_numbers_past_the_digit_limit_without_computing_them(tmp_path) -> None:
    bombs = _written(tmp_path, {name: _bomb(name) for name in NUMBER_BOMBS})
    result = isolated(f"""
        for name, path in {bombs!r}.items():
            data = open(path, "rb").read()
            report(**{{name: [
                timed(lambda: load_pickle(data)),
                timed(lambda: safeart.unpickle.restricted_loads(data)),
                timed(lambda: safeart.unpickle.restricted_loads(
                    data, scanned=ScanResult(target=name))),  # the unpickler alone
            ]}})
    """, setup=_CPU_CAPPED, timeout=300)
    for name in NUMBER_BOMBS:
        outcomes = [outcome for outcome, _ in result.values[name]]
        assert outcomes == ["UnsafeArtifactError", "LimitExceeded", "LimitExceeded"], name
        assert max(seconds for _, seconds in result.values[name]) < 5, result.values[name]


def test_int_literals_past_the_digit_limit_are_refused_by_cpython_itself(tmp_path) -> None:
    # int('9' * 10**7) in a pickle is a LONG (or INT) opcode: CPython's parser refuses more
    # than sys.get_int_max_str_digits() digits before converting any, in the scanner's run
    # and in the unpickler alike.
    longs = {"long": b"\x80\x02L" + b"9" * 10**7 + b"L\n.",
             "int": b"\x80\x02I" + b"9" * 10**7 + b"\n."}
    for data in longs.values():
        assert scan_bytes(data).verdict != "clean"
    paths = _written(tmp_path, longs)
    result = isolated(f"""
        for name, path in {paths!r}.items():
            data = open(path, "rb").read()
            report(**{{name: [timed(lambda: load_pickle(data)),
                              timed(lambda: safeart.unpickle.restricted_loads(
                                  data, scanned=ScanResult(target=name)))]}})
    """, setup=_CPU_CAPPED, timeout=300)
    for name in longs:
        assert [outcome for outcome, _ in result.values[name]] == ["UnsafeArtifactError",
                                                                   "FormatError"], name


def test_benign_numbers_scan_clean_and_load() -> None:
    import decimal
    import fractions

    for value in (fractions.Fraction(22, 7), fractions.Fraction(10**4000 + 1, 3),
                  decimal.Decimal("1e10000000"), decimal.Decimal("-1.50"),
                  decimal.Decimal(10**4000)):
        data = pickle.dumps(value, protocol=4)
        assert scan_bytes(data).verdict == "clean", (value, scan_bytes(data).findings)
        assert load_pickle(data) == value
        assert restricted_loads(data, scanned=ScanResult(target="n")) == value


def test_a_partial_cannot_launder_a_call_past_the_grader() -> None:
    # safeart's format stores functools.partial with its codec (a 'codec' entry); pickles
    # importing it stay dangerous: NEWOBJ of a partial over nn.Linear, then REDUCE of it,
    # would run Linear(2**17, 2**17) where no call grader sees it.
    data = _bomb("functools_partial_newobj_launder")
    assert scan_bytes(data).verdict == "dangerous"
    result = isolated(f"""
        data = {data!r}
        report(loads=[outcome(lambda: load_pickle(data)),
                      outcome(lambda: safeart.unpickle.restricted_loads(data)),
                      outcome(lambda: safeart.unpickle.restricted_loads(
                          data, scanned=ScanResult(target="p")))])
    """, setup=_CAPPED)
    assert result.values["loads"] == ["UnsafeArtifactError", "PolicyError", "PolicyError"]
    assert result.grew_mb < BOMB_BOUND_MB
