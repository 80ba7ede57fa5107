"""The fuzz targets of tests/fuzz, driven by hypothesis grammars instead of atheris.

Each target raises on a bug (a non-safeart exception, a scanner crash or bypass, anything
executed: see tests/fuzz/targets.py), so these tests are the fuzzers' properties, run on
every ``make test``:

* the policy-file parser on generated TOML (right and wrong keys, types, limits, aliases,
  ``[tool.safeart]``, damaged text), each accepted policy then used by scan and both loaders;
* the restricted unpickler on grammar pickles and on the canary corpus;
* the scanner on the canary corpus (victim oracle and execution watch included).

The blob decoder's hypothesis fuzzing lives in tests/format/test_format_fuzz.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz import targets
from fuzz.seeds import seeds
from grammar import pickles, policy_files
from payloads import SAMPLES

_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
_CANARY = Path("/nonexistent/safeart-properties-canary")


@pytest.fixture(scope="module", autouse=True)
def warmed_up() -> None:
    """The targets' own lazy imports happen before any input is watched."""
    corpus = seeds()
    for name in ("policy", "unpickle", "scan"):
        targets.warm_up(name, [data for _, data in corpus[name]])


@_SETTINGS
@given(policy_files)
def test_policy_files_load_or_refuse_and_loaded_policies_work(data: bytes) -> None:
    targets.fuzz_policy(data)


@_SETTINGS
@given(pickles)
def test_restricted_unpickler_on_grammar_pickles(data: bytes) -> None:
    targets.fuzz_unpickle(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_canary_corpus_through_the_unpickle_and_scan_targets(name: str) -> None:
    data = SAMPLES[name].build(_CANARY)
    targets.fuzz_unpickle(data)
    targets.fuzz_scan(data)
    assert not _CANARY.exists()
