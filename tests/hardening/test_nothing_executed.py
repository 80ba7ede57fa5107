"""Nothing executed, anywhere: every malicious sample the tests know, through every entry point.

Samples: ``tests/payloads.py`` (``SAMPLES``) and the restricted-unpickler payloads of
``tests/unpickle/unpickle_payloads.py``. Each is built with its own canary path, relative to
the working directory every entry point runs in (short enough for the tar name field); if any
of it ever ran, its only effect would be to create that file.

Each entry point runs in its own fresh interpreter over every sample (its working directory is
a temporary folder): ``scan_bytes``, ``scan_path``, the ``safeart scan`` CLI on files,
``safeart.loads``/``load_file`` (a pickle must be a FormatError there), ``restricted_loads``;
and on one real Metaflow run whose artifacts' blobs were swapped for the samples:
``safeart scan Flow/run``, ``safeart.load``, ``safeart.metaflow.enforce()`` + ``.data`` and
plain client code under ``SAFEART_ENFORCE=1`` (only the extension installed). Afterwards no
canary exists. The canaries are live: plain ``pickle.loads`` and the plain Metaflow client,
run the same way, do create them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from isolation import TESTS
from payloads import SAMPLES

sys.path.insert(0, str(TESTS / "unpickle"))
import unpickle_payloads as up  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _unpickle_samples() -> dict[str, Callable[[Path], bytes]]:
    """The hostile payloads the restricted-unpickler tests build."""
    return {
        "unpickle_canary_call_p0": lambda c: up.canary_call(c, 0),
        "unpickle_canary_call_p2": lambda c: up.canary_call(c, 2),
        "unpickle_builtin_eval_p2": lambda c: up.call(
            "__builtin__", "eval", f"open({str(c)!r}, 'w')", protocol=2),
        "unpickle_os_system": lambda c: up.call("os", "system", f"touch {c}"),
        "unpickle_hidden_torch_stream": lambda c: up.call(
            "torch.storage", "_load_from_bytes", up.torch_stream(up.canary_call(c, 2), [])),
    }


BUILDERS: dict[str, Callable[[Path], bytes]] = {
    **{name: sample.build for name, sample in SAMPLES.items()}, **_unpickle_samples()}

_PRELUDE = """
import json, sys
cases = json.load(open(sys.argv[1]))          # [[name, sample file, canary], ...]
out = {}
def attempt(fn):
    # "returned", "safeart:LimitExceeded/FormatError/SafeartError" or "other:<type>"
    try:
        fn()
        return "returned"
    except Exception as exc:
        from safeart import SafeartError
        if not isinstance(exc, SafeartError):
            return "other:" + type(exc).__name__
        return "safeart:" + "/".join(c.__name__ for c in type(exc).__mro__
                                     if issubclass(c, SafeartError))
"""
_EPILOGUE = "\nprint('@@' + json.dumps(out))\n"

#: entry point -> code filling ``out[name]`` for every case (run after _PRELUDE).
ENTRY_POINTS = {
    "scan_bytes": """
        import safeart
        for name, path, _ in cases:
            out[name] = safeart.scan_bytes(open(path, "rb").read()).verdict
    """,
    "scan_path": """
        import safeart
        for name, path, _ in cases:
            out[name] = safeart.scan_path(path).results[0].verdict
    """,
    "loads": """
        import safeart
        for name, path, _ in cases:
            out[name] = attempt(lambda: safeart.loads(open(path, "rb").read()))
    """,
    "load_file": """
        import safeart
        for name, path, _ in cases:
            out[name] = attempt(lambda: safeart.load_file(path))
    """,
    "restricted_loads": """
        from safeart.unpickle import restricted_loads
        for name, path, _ in cases:
            out[name] = attempt(lambda: restricted_loads(open(path, "rb").read()))
    """,
    "cli_scan_files": """
        import subprocess, os
        folder = os.path.dirname(cases[0][1])
        proc = subprocess.run([sys.executable, "-c", "import sys; from safeart.cli import main; "
                               "sys.exit(main())", "scan", "--format", "json", folder],
                              capture_output=True, text=True)
        report = json.loads(proc.stdout)
        by_file = {os.path.basename(r["target"]): r["verdict"] for r in report["results"]}
        for name, path, _ in cases:
            out[name] = by_file.get(os.path.basename(path), "missing")
        out["<exit>"] = proc.returncode
    """,
}


def _run(code: str, cases: list[list[str]], cwd: Path, env: dict[str, str] | None = None,
         ) -> dict[str, Any]:
    spec = cwd / "cases.json"
    spec.write_text(json.dumps(cases))
    program = _PRELUDE + textwrap.dedent(code) + _EPILOGUE
    proc = subprocess.run([sys.executable, "-c", program, str(spec)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("@@"))
    return json.loads(line[2:])


def _build(cwd: Path) -> list[list[str]]:
    """Write every sample into ``cwd/samples``; canaries are ``c/<name>`` under ``cwd``."""
    (cwd / "samples").mkdir(parents=True)
    (cwd / "c").mkdir()
    cases = []
    for name, build in BUILDERS.items():
        path = cwd / "samples" / f"{name}.bin"
        path.write_bytes(build(Path("c") / name))
        cases.append([name, str(path), f"c/{name}"])
    return cases


def _raised(outcome: str, error: str) -> bool:
    """Did an entry point raise ``error`` (a safeart error class name, or a subclass)?"""
    return outcome.startswith("safeart:") and error in outcome[8:].split("/")


def _fired(cwd: Path) -> list[str]:
    return sorted(p.name for p in (cwd / "c").iterdir())


def test_every_sample_through_every_file_entry_point(tmp_path: Path) -> None:
    cases = _build(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        outcomes = dict(zip(ENTRY_POINTS, pool.map(
            lambda code: _run(code, cases, tmp_path), ENTRY_POINTS.values())))
    assert _fired(tmp_path) == []

    for entry in ("scan_bytes", "scan_path", "cli_scan_files"):
        clean = [n for n, _, _ in cases if outcomes[entry][n] in ("clean", "missing")]
        assert clean == [], (entry, clean)
    assert outcomes["cli_scan_files"]["<exit>"] == 1
    pickles = {n for n, path, _ in cases if Path(path).read_bytes()[:1] in (b"\x80", b"(", b"c")}
    for entry in ("loads", "load_file"):
        assert all(_raised(outcomes[entry][n], "FormatError") for n in pickles), outcomes[entry]
        assert all(_raised(o, "SafeartError") for o in outcomes[entry].values()), outcomes[entry]
    raised = outcomes["restricted_loads"]
    assert all(o == "returned" or _raised(o, "SafeartError") for o in raised.values()), raised


def test_canaries_are_live_under_plain_pickle(tmp_path: Path) -> None:
    live = ["reduce_builtins_open_p2", "os_system_touch", "data_after_stop", "tar_polyglot"]
    cases = [c for c in _build(tmp_path) if c[0] in live]
    _run("""
        import pickle
        for name, path, _ in cases:
            with open(path, "rb") as f:
                out[name] = attempt(lambda: [pickle.load(f) for _ in range(2)])
    """, cases, tmp_path)
    assert _fired(tmp_path) == sorted(live)


# -- a real Metaflow run ---------------------------------------------------------------------
def _flow_env(workdir: Path) -> Any:
    """``FlowEnv`` of tests/metaflow/conftest.py (loaded under its own name)."""
    name = "safeart_metaflow_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "metaflow" / "conftest.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(sys.modules[name])  # type: ignore[union-attr]
    return sys.modules[name].FlowEnv(workdir)


def _flow_source(names: list[str]) -> str:
    body = "\n".join(f"        self.{n} = 'artifact {i}'" for i, n in enumerate(names))
    return (
        "from metaflow import FlowSpec, step\n\n\n"
        "class SwapFlow(FlowSpec):\n    @step\n    def start(self):\n"
        f"{body}\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    SwapFlow()\n"
    )


_RUN_ENTRY_POINTS = {
    "cli_scan_run": """
        import subprocess
        proc = subprocess.run([sys.executable, "-c", "import sys; from safeart.cli import main; "
                               "sys.exit(main())", "scan", "--format", "json", PATHSPEC],
                              capture_output=True, text=True)
        report = json.loads(proc.stdout)
        for r in report["results"]:
            out[r["target"].rsplit(":", 1)[-1] + "@" + r["target"].split("/")[2]] = r["verdict"]
        out["<exit>"] = proc.returncode
    """,
    "safeart_load": """
        import safeart
        for name, _, _ in cases:
            out[name] = attempt(lambda: safeart.load(PATHSPEC + "/start/1", ARTIFACT[name]))
    """,
    "enforce_api": """
        import safeart.metaflow
        from metaflow import Task, namespace
        namespace(None)
        safeart.metaflow.enforce()
        task = Task(PATHSPEC + "/start/1")
        for name, _, _ in cases:
            out[name] = attempt(lambda: task[ARTIFACT[name]].data)
    """,
    "enforce_env_plain_client": """
        from metaflow import Task, namespace  # no safeart import: the extension does it all
        namespace(None)
        task = Task(PATHSPEC + "/start/1")
        for name, _, _ in cases:
            out[name] = attempt(lambda: getattr(task.data, ARTIFACT[name]))
    """,
}


def test_every_sample_through_a_metaflow_run(tmp_path: Path) -> None:
    env = _flow_env(tmp_path)
    cases = _build(tmp_path)
    artifact = {name: f"a{i}" for i, (name, _, _) in enumerate(cases)}
    run = env.run(_flow_source(list(artifact.values())))
    with env.client():
        objects = env.task_datastore(run.flow, run.run_id, "start")._objects
    for name, path, _ in cases:  # the attacker rewrites the stored blobs
        blob = env.local_blob_path(run.flow, objects[artifact[name]])
        blob.write_bytes(gzip.compress(Path(path).read_bytes()))

    header = f"PATHSPEC = {run.pathspec!r}\nARTIFACT = {artifact!r}\n"
    client_env = {**env.env, "METAFLOW_DEFAULT_METADATA": "local"}
    with ThreadPoolExecutor(2) as pool:
        outcomes = dict(zip(_RUN_ENTRY_POINTS, pool.map(
            lambda item: _run(header + textwrap.dedent(item[1]), cases, env.workdir,
                              {**client_env, "SAFEART_ENFORCE": "1"}
                              if item[0] == "enforce_env_plain_client" else client_env),
            _RUN_ENTRY_POINTS.items())))
    assert _fired(tmp_path) == []

    scan = outcomes["cli_scan_run"]
    assert scan.pop("<exit>") == 1
    for step in ("start", "end"):
        verdicts = {name: scan.get(f"{artifact[name]}@{step}") for name, _, _ in cases}
        assert all(v in ("dangerous", "unknown") for v in verdicts.values()), (step, verdicts)
    for entry in ("safeart_load", "enforce_api", "enforce_env_plain_client"):
        refused = outcomes[entry]
        assert all(_raised(o, "SafeartError") for o in refused.values()), (entry, refused)

    # The swap is live: the plain client (no enforcement) runs the payload.
    _run(header + textwrap.dedent("""
        from metaflow import Task, namespace
        namespace(None)
        out["x"] = attempt(lambda: Task(PATHSPEC + "/start/1")[ARTIFACT[cases[0][0]]].data)
    """), cases, env.workdir, client_env)
    assert _fired(tmp_path) == [cases[0][0]]
