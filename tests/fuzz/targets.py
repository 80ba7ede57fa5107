"""One fuzz target per safeart entry point that parses untrusted bytes.

Each target takes the fuzzer's bytes and raises (a crash for atheris) on a bug:

* any exception other than safeart's own :class:`~safeart.errors.SafeartError` types;
* a scanner crash (``scan_bytes`` turns it into a finding of kind ``error``);
* an import a victim unpickler performs that a scan not graded dangerous did not report
  (a bypass);
* anything executed (:class:`~tests.fuzz.oracle.Watch`): a process, an exec, a write, or an
  import of a module the entry point has no business importing;
* a restricted load that allocates more than its limits allow
  (:class:`~tests.fuzz.oracle.MemoryWatch`: an allowlisted call such as ``bytes(n)`` or
  ``frozenset(range(n))`` past ``Limits.max_alloc_bytes``, which the unpickle target sets low;
  the atheris entry caps the address space so that such a call fails instead of eating RAM).

Hangs and other memory blow-ups are caught by the fuzzer itself (``-timeout``,
``-rss_limit_mb``).
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import tempfile
from typing import Callable, Iterable

import safeart
from safeart import Limits, Policy, SafeartError
from safeart.policy import load_policy
from safeart.scan import scan_bytes
from safeart.unpickle import restricted_loads

from .oracle import MemoryWatch, Watch, unreported

__all__ = ["TARGETS", "Bug", "warm_up"]

POLICY = Policy()
#: The unpickle target's policy: the defaults, with a low allocation limit so that a call
#: allocating past it stands out from a load's ordinary memory use.
UNPICKLE_POLICY = Policy(limits=Limits(max_alloc_bytes=16 << 20))
#: Peak RSS growth (bytes) one restricted load may cause: several bounded calls plus slack.
MEMORY_BOUND = 4 * UNPICKLE_POLICY.limits.max_alloc_bytes + (64 << 20)
#: Modules whose lazy import by safeart itself is expected (a load may build numpy or torch
#: objects).
_SAFEART_LAZY = ("safeart", "numpy", "torch")


class Bug(AssertionError):
    """A fuzz input made safeart misbehave (the message says how)."""


def _allowed_modules(policy: Policy) -> set[str]:
    """Every module prefix of an allowlisted name (what a restricted load may import)."""
    modules = set()
    for name in policy.rules:
        parts = name.split(".")
        modules.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return modules


_UNPICKLE_MODULES = tuple(sorted(_allowed_modules(POLICY))) + _SAFEART_LAZY


def fuzz_format(data: bytes) -> None:
    """``safeart.audit`` never raises; ``safeart.loads`` raises only SafeartError."""
    with Watch(_SAFEART_LAZY) as watch:
        report = safeart.audit(data, policy=POLICY)
        for problem in report.problems:
            if not isinstance(problem, SafeartError):
                raise Bug(f"audit reported a non-safeart problem: {problem!r}")
        try:
            safeart.loads(data, policy=POLICY)
        except SafeartError:
            pass
    watch.check()


def fuzz_scan(data: bytes) -> None:
    """``scan_bytes`` never crashes, executes nothing, and names every import a victim makes."""
    with Watch(_SAFEART_LAZY) as watch:
        result = scan_bytes(data, policy=POLICY, name="fuzz")
    watch.check()
    crashes = [f for f in result.findings if f.kind == "error"]
    if crashes:
        raise Bug(f"the scanner crashed: {crashes[0].reason}")
    # A dangerous verdict refuses the bytes at every threshold: a victim's import it does not
    # name is a reporting gap, not a bypass (the hypothesis differential tests are stricter).
    missing = unreported(data, result) if result.verdict != "dangerous" else []
    if missing:
        raise Bug(f"bypass: a victim imports {missing[:5]}, the scan reports "
                  f"{sorted(result.globals)[:10]} ({result.verdict})")


def fuzz_unpickle(data: bytes) -> None:
    """``restricted_loads`` (scan, then the restricted unpickler) returns or raises
    SafeartError, importing only allowlisted modules and allocating within its limits."""
    with Watch(_UNPICKLE_MODULES) as watch, MemoryWatch(MEMORY_BOUND) as memory:
        try:
            restricted_loads(data, policy=UNPICKLE_POLICY, artifact="fuzz")
        except SafeartError as error:
            memory.saw(error)
    watch.check()
    memory.check()


_PROBE_PICKLE = pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=4)
_PROBE_BLOB = safeart.dumps({"a": [1, 2.5, "x"], "b": (None, True)})


@functools.lru_cache(maxsize=None)
def _policy_dir() -> str:
    return tempfile.mkdtemp(prefix="safeart-fuzz-policy-")


def fuzz_policy(data: bytes) -> None:
    """A policy file either loads or is a ConfigError; a loaded policy works everywhere.

    The first byte picks the file name (``safeart.toml`` or ``pyproject.toml``); the rest is
    the file's bytes.
    """
    if not data:
        return
    name = "pyproject.toml" if data[0] & 1 else "safeart.toml"
    path = os.path.join(_policy_dir(), name)
    with open(path, "wb") as file:
        file.write(data[1:])
    with Watch(_SAFEART_LAZY) as watch:
        try:
            policy = load_policy(path)
        except SafeartError:
            policy = None
        if policy is not None:
            policy.grade("os", "system")
            policy.how_to_allow("__main__.Net")
            scan_bytes(_PROBE_PICKLE, policy=policy)
            for load in (restricted_loads, safeart.loads):
                try:
                    load(_PROBE_PICKLE if load is restricted_loads else _PROBE_BLOB,
                         policy=policy)
                except SafeartError:  # a tiny limit or a bad alias may refuse the probe
                    pass
    watch.check()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "format": fuzz_format,
    "scan": fuzz_scan,
    "unpickle": fuzz_unpickle,
    "policy": fuzz_policy,
}

def warm_up(name: str, inputs: Iterable[bytes]) -> None:
    """Run target ``name`` once over ``inputs`` (its seeds) and import every allowlisted
    module, so that the Watch afterwards sees only what the fuzzed bytes cause."""
    for module in sorted(_allowed_modules(POLICY)):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    for data in inputs:
        try:
            TARGETS[name](data)
        except Exception:  # noqa: BLE001 - reported again when the fuzzer runs this input
            pass
