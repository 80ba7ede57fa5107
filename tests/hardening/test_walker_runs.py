"""The walker's bulk path changes nothing it reports.

Plain opcodes are validated a run at a time by one regular expression match, counted only
when a limit may be near, and the stack model replays the walk only when names or the first
inconsistency are asked for (``safeart/scan/walker.py``). Every observable of a walk must be
what walking each opcode on its own gives: the same imports (names included), literals, holes,
straddles, errors, limits and their offsets, the same frontier handed to CPython at every step
of an incremental walk.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grammar import opcode, pickles
from payloads import SAMPLES
from safeart.limits import Limits
from safeart.scan import walker as walker_module
from safeart.scan.walker import Walker

_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
_CANARY = Path("/nonexistent/safeart-walker-runs-canary")


def _state(w: Walker) -> tuple:
    imports = [(o.offset, o.opcode, o.module, o.name, o.proto, o.ext_code, o.calls_find_class)
               for o in w.imports]
    return (w.pos, w.frontier, w.proto, w.opcodes, imports, w.persids, w.byte_literals,
            w.holes, w.straddles, w.stop, w.next_start, w.error, w.error_offset, w.limit,
            w.fatal, w.frozen_at, w.semantic_error)


def _walk(data: bytes, limits: Limits, steps: list[int] | None, runs: bool) -> list[tuple]:
    """States after each incremental ``advance`` target, then after ``finish``."""
    saved = walker_module.PLAIN_CODES
    if not runs:
        walker_module.PLAIN_CODES = frozenset()  # every opcode walked on its own
    try:
        w = Walker(data, 0, len(data), limits)
        seen = []
        for target in steps or ():
            w.advance(target)
            seen.append((w.pos, w.frontier, len(w.imports), len(w.straddles), w.error))
        w.finish()
        return seen + [_state(w)]
    finally:
        walker_module.PLAIN_CODES = saved


def assert_same_walk(data: bytes, limits: Limits = Limits(), steps: list[int] | None = None):
    assert _walk(data, limits, steps, True) == _walk(data, limits, steps, False)


def _corpus() -> list[bytes]:
    from test_benign import CORPUS

    data = [sample.build(_CANARY) for sample in SAMPLES.values()]
    data += list(CORPUS.values())
    rows = [{"id": i, "name": f"row{i}", "score": i / 7, "raw": b"x" * (i % 5),
             "more": (i, None, True, "é" * (i % 300))} for i in range(400)]
    data += [pickle.dumps(rows, protocol=p) for p in range(6)]
    return data


_CORPUS = _corpus()


def test_the_corpus_walks_the_same():
    for data in _CORPUS:
        assert_same_walk(data)
    assert not _CANARY.exists()


@_SETTINGS
@given(pickles, st.integers(1, 40), st.lists(st.integers(0, 400), max_size=6))
def test_grammar_pickles_walk_the_same(data: bytes, max_opcodes: int, steps: list[int]):
    assert_same_walk(data)
    assert_same_walk(data, Limits(max_opcodes=max_opcodes), sorted(steps))


@_SETTINGS
@given(st.sampled_from(_CORPUS), st.lists(st.tuples(st.integers(0, 10**6), opcode),
                                          min_size=1, max_size=3))
def test_real_pickles_with_inserted_opcodes_walk_the_same(data: bytes, inserts) -> None:
    for at, snippet in inserts:
        at %= len(data) + 1
        data = data[:at] + snippet + data[at:]
    assert_same_walk(data, steps=[len(data) // 3, len(data) // 2])


@pytest.mark.parametrize("max_opcodes", [1, 2, 7, 1000, 1001, 1002, 50_000])
def test_the_opcode_limit_stops_at_the_same_opcode(max_opcodes):
    data = pickle.dumps([[i, "x", (1.5, None)] for i in range(3000)], protocol=4)
    assert_same_walk(data, Limits(max_opcodes=max_opcodes))


@pytest.mark.parametrize("index", [1023, 1024, 1065, 1066, 2000, 2**31])
def test_a_memo_index_is_bounded_by_the_exact_opcode_count(index):
    # 40 plain opcodes (uncounted run), then an index just below/at/above the bound.
    body = b"\x80\x04(" + b"K\x01" * 39 + b"r" + struct.pack("<I", index) + b"0."
    assert_same_walk(body)
    w = Walker(body, 0, len(body))
    w.finish()
    assert (w.limit is not None) == (index > 40 + 1 + 1024)


def test_stack_global_operands_are_named_through_runs_and_the_memo():
    # operands memoized, buried under a MARKed run of plain opcodes, fetched back by BINGET
    data = (b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94(" + b"K\x01]\x94" * 50 + b"1"
            + b"h\x00h\x01\x93)R.")
    w = Walker(data, 0, len(data))
    w.finish()
    assert [(o.module, o.name) for o in w.imports] == [("builtins", "eval")]
    assert w.semantic_error is None
    assert_same_walk(data)


def test_a_run_never_crosses_a_frame_end():
    # a frame whose last opcode (BININT) runs 2 bytes past it: a straddle, as walked one by one
    inner = b"K\x01" * 10 + b"J\x01\x00"
    data = b"\x80\x04\x95" + struct.pack("<Q", len(inner)) + inner + b"\x00\x00."
    w = Walker(data, 0, len(data))
    w.finish()
    assert w.straddles == [11 + 20 + 1]  # where the argument read starts
    assert_same_walk(data)
