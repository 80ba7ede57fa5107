"""The runnable examples (examples/*), each run as a subprocess exactly as documented.

Every example must exit 0, print its key lines, remove its temporary directory and write
nothing under examples/ (its flows run from there; checked once all have finished). The attack example's payload builder is
also proven live here: unpickled in a separate interpreter, it creates its canary.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TIMEOUT = 300

#: script -> lines its output must contain
CASES = {
    "run_demo.py": [
        "outputs in the DAG: [",
        "loaded: flow.Net (recorded as __main__.Net)",
        "exactly the same as in the DAG",
        "clean, 0 unknown, 0 dangerous, 0 unreadable, 0 incomplete",
        "DEMO OK: BlogFlow/",
    ],
    "audit_legacy/run.py": [
        "unknown import: model.Net",
        "clean, 0 unknown, 0 dangerous, 0 unreadable, 0 incomplete",
        "(pickle-v4: scanned clean, converted from pickle) -> serving/model.safetensors",
        "outputs equal to the run's: True",
        "OK: LegacyFlow/",
    ],
    "attack_caught/run.py": [
        "dangerous import: builtins.open",
        "the blob does not hash to its content address",
        "refused: UnsafeArtifactError:",
        "safeart.errors.UnsafeArtifactError:",
        "does not exist: the payload never ran",
        "OK: the swapped model",
    ],
    "self_hosted_s3/run.py": [
        "METAFLOW_DEFAULT_DATASTORE=s3",
        "exactly the same as in the DAG",
        "clean, 0 unknown, 0 dangerous, 0 unreadable, 0 incomplete",
        "stopped moto_server",
        "OK: BlogFlow/",
    ],
    "ci_gate/run.py": [
        "gate: PASS BlogFlow/",
        "exit code 0; clean.sarif: 0 SARIF result(s)",
        "gate: FAIL BlogFlow/",
        "exit code 1; tampered.sarif: 3 SARIF result(s)",
        "OK: gate exit codes: clean run 0 (pass), tampered run 1 (fail)",
    ],
}


#: Examples run two at a time: their flows spend much of their time waiting on subprocesses.
WORKERS = 2


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run(script: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "SAFEART_"))}
    return subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Future]]:
    """Every example started once (WORKERS at a time); examples/ must be unchanged after."""
    scripts = [s for s in CASES if not s.startswith("self_hosted_s3") or _has_moto()]
    before = _tree(EXAMPLES)
    with ThreadPoolExecutor(WORKERS) as pool:
        yield {script: pool.submit(_run, script) for script in scripts}
    assert _tree(EXAMPLES) == before, "an example wrote files under examples/"


def _has_moto() -> bool:
    return importlib.util.find_spec("moto") is not None


@pytest.mark.parametrize("script", list(CASES))
def test_example_runs_as_documented(script: str, runs: dict[str, Future]) -> None:
    if script not in runs:
        pytest.skip("moto[server] is not installed")
    proc = runs[script].result()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    missing = [line for line in CASES[script] if line not in out]
    assert not missing, f"missing {missing} in:\n{out[-6000:]}"
    root = re.search(r"working directory and Metaflow root: (\S+)", out)
    assert root and not Path(root.group(1)).exists(), "the temporary directory was left behind"


def test_attack_payload_is_live(tmp_path: Path) -> None:
    """The example's refusals mean something: the payload runs when plainly unpickled."""
    canary = tmp_path / "canary"
    proof = textwrap.dedent(f"""
        import pickle, sys
        sys.path.insert(0, {str(EXAMPLES / "attack_caught")!r})
        from payload import malicious_pickle
        from pathlib import Path
        pickle.loads(malicious_pickle(Path({str(canary)!r})))  # the canary proof
    """)
    subprocess.run([sys.executable, "-c", proof], check=True, timeout=60,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert canary.exists()
