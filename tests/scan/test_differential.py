"""The opcode walker agrees with CPython's own unpickler on every import.

The reference is an instrumented ``_pickle.Unpickler`` (the C one) whose ``find_class`` records
the call and returns a permissive stub defined here, independently of safeart's stubs: nothing
real is ever imported or called, even for the malicious samples. The walker must name exactly
the imports CPython performs, in order (a prefix when CPython stops early, since the walker
goes on past a parse error on purpose).
"""

import io
import pickle
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payloads import SAMPLES
from safeart.scan import scan_bytes
from safeart.scan.walker import Walker


class _Permissive(type):
    def __call__(cls, *args, **kwargs):
        return cls

    def __setstate__(cls, state):
        pass

    def __setitem__(cls, key, value):
        pass

    def append(cls, item):
        pass

    def extend(cls, items):
        pass

    def add(cls, item):
        pass


class _Any(metaclass=_Permissive):
    def __new__(cls, *args, **kwargs):
        return cls


def cpython_imports(data: bytes) -> tuple[list[tuple[str, str]], bool]:
    """(module, name) of every find_class call, and whether the load completed."""
    calls = []

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            calls.append((module, name))
            return _Any

        def persistent_load(self, pid):
            return _Any

    assert Recorder.__mro__[1].__module__ == "_pickle"  # the C unpickler
    try:
        Recorder(io.BytesIO(data), encoding="latin1").load()
    except Exception:  # noqa: BLE001 - malformed input is part of the corpus
        return calls, False
    return calls, True


def walker_imports(data: bytes) -> tuple[list[tuple[str, str]], Walker]:
    walker = Walker(data, 0, len(data))
    walker.finish()
    return [(op.module, op.name) for op in walker.imports if op.calls_find_class], walker


def assert_agree(data: bytes) -> None:
    ours, walker = walker_imports(data)
    if walker.limit or walker.straddles:
        return  # a memo bomb is not fed to CPython; straddles are flagged as differentials
    theirs, complete = cpython_imports(data)
    if complete:
        assert ours == theirs
    else:
        # CPython stopped early: the walker saw at least as much, and agrees wherever it
        # could read the names (STACK_GLOBAL operands built by calls are unknown to it).
        assert len(ours) >= len(theirs)
        for theirs_one, ours_one in zip(theirs, ours):
            assert ours_one[0] is None or ours_one == theirs_one


def _pickles_of_corpus(tmp_path):
    for name, sample in SAMPLES.items():
        data = sample.build(tmp_path / "canary")
        if data[:1] == b"\x80" or data[:1] in (b"(", b"c", b"I"):
            yield name, data


def test_walker_agrees_with_cpython_on_the_malicious_corpus(tmp_path):
    checked = 0
    for name, data in _pickles_of_corpus(tmp_path):
        assert_agree(data)
        checked += 1
    assert checked >= 25
    assert not (tmp_path / "canary").exists()


def test_walker_agrees_on_the_benign_corpus():
    from test_benign import CORPUS

    for name, data in CORPUS.items():
        if data[:1] == b"\x80" and not name.startswith("joblib"):  # joblib: inline arrays
            ours, _ = walker_imports(data)
            theirs, complete = cpython_imports(data)
            assert complete and ours == theirs, name


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.binary(max_size=8) | st.complex_numbers(allow_nan=False, max_magnitude=1e6),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    | st.frozensets(st.integers(), max_size=3) | st.sets(st.integers(), max_size=3)
    | st.builds(lambda d: __import__("collections").OrderedDict(d),
                st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12,
)
_FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@_FAST
@given(_values, st.integers(0, 5))
def test_walker_agrees_on_generated_pickles(value, protocol):
    data = pickle.dumps(value, protocol=protocol)
    ours, walker = walker_imports(data)
    theirs, complete = cpython_imports(data)
    assert complete and ours == theirs and walker.stop == len(data) - 1
    assert scan_bytes(data).complete


@_FAST
@given(_values, st.integers(2, 5), st.data())
def test_mutated_pickles_never_crash_and_agree(value, protocol, data):
    raw = bytearray(pickle.dumps(value, protocol=protocol) + pickle.dumps(
        __import__("collections").OrderedDict(a=1), protocol=protocol))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    mutated = bytes(raw)
    assert_agree(mutated)
    result = scan_bytes(mutated)
    assert not any(f.kind == "error" for f in result.findings), result.findings


@pytest.mark.parametrize("frame_len", [3, 4, 5])
def test_frame_boundary_reads_are_flagged(frame_len):
    body = b"\x8c\x08builtins\x8c\x04open\x93)R."
    data = b"\x80\x04\x95" + struct.pack("<Q", frame_len) + body
    _, walker = walker_imports(data)
    assert walker.straddles  # CPython's file and memory unpicklers disagree here
    assert any(f.kind == "differential" for f in scan_bytes(data).findings)
