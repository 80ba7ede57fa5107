"""``safeart scan`` with Metaflow pathspecs: every target form, run selection, namespaces,
output formats and usage errors, against two real runs of one flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runscan_support import TINY_FLOW, scan_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _targets(out: str) -> list[str]:
    """``run/step/task:name`` of every result line of a text report (flow dropped)."""
    return [line.split()[1].split("/", 1)[1] for line in out.splitlines()
            if line.startswith("CLEAN")]


def test_pathspec_forms_select_runs_steps_tasks_and_artifacts(
    flow_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = flow_env.run(TINY_FLOW), flow_env.run(TINY_FLOW)
    r1, r2 = first.run_id, second.run_id

    def scanned(*argv: str) -> list[str]:
        code, out = scan_cli(flow_env, capsys, *argv)
        assert code == 0, out
        return _targets(out)

    run = scanned(first.pathspec)
    assert {t.split(":")[0] for t in run} == {f"{r1}/start/1", f"{r1}/end/2"}
    assert {f"{r1}/start/1:payload", f"{r1}/start/1:count", f"{r1}/start/1:_graph_info"} <= set(run)
    assert set(scanned(f"{first.pathspec}/end")) == {t for t in run if "/end/" in t}
    assert set(scanned(f"{first.pathspec}/start/1")) == {t for t in run if "/start/" in t}
    assert scanned(f"{first.pathspec}/start/1:payload") == [f"{r1}/start/1:payload"]
    assert scanned(first.pathspec, "--artifact", "payload", "--artifact", "count") == [
        f"{r1}/start/1:count", f"{r1}/start/1:payload", f"{r1}/end/2:count", f"{r1}/end/2:payload"
    ]
    assert scanned("TinyFlow", "--latest", "--artifact", "count") == [
        f"{r2}/start/1:count", f"{r2}/end/2:count"
    ]
    both = [f"{r}/{t}:count" for r in (r1, r2) for t in ("start/1", "end/2")]
    assert scanned("TinyFlow", "--last", "2", "--artifact", "count") == both
    assert scanned("TinyFlow", "--artifact", "count") == both


def test_namespaces_filter_flow_listings_not_named_runs(
    flow_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = flow_env.run(TINY_FLOW)  # tagged user:tester
    ns = "user:someone-else"

    code, out = scan_cli(flow_env, capsys, "TinyFlow", "--latest", namespace=ns)
    assert code == 2 and "no runs in this namespace" in out and "--all-namespaces" in out
    code, out = scan_cli(flow_env, capsys, "TinyFlow", "--latest", "--all-namespaces", namespace=ns)
    assert code == 0 and run.run_id in out
    code, out = scan_cli(flow_env, capsys, run.pathspec, "--artifact", "count", namespace=ns)
    assert code == 0 and run.run_id in out
    assert scan_cli(flow_env, capsys, "TinyFlow", "--latest", namespace="user:tester")[0] == 0


def test_json_and_sarif_carry_pathspec_type_encoding_and_run_totals(
    flow_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = flow_env.run(TINY_FLOW)
    target = f"{run.pathspec}/start/1:payload"

    code, out = scan_cli(flow_env, capsys, target, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    (res,) = doc["results"]
    assert res["target"] == target and res["verdict"] == "clean"
    assert res["extra"]["type"] == "<class 'dict'>" and res["extra"]["encoding"] == "pickle-v4"
    assert len(res["extra"]["sha"]) == 40
    assert doc["summary"]["tasks"] == 1 and doc["summary"]["blobs_fetched"] == 1

    code, out = scan_cli(flow_env, capsys, run.pathspec, "--format", "sarif")
    assert code == 0
    artifacts = json.loads(out)["runs"][0]["artifacts"]
    payload = next(a for a in artifacts if a["location"]["uri"] == target)
    assert payload["properties"]["type"] == "<class 'dict'>"
    assert payload["properties"]["encoding"] == "pickle-v4"

    code, out = scan_cli(flow_env, capsys, run.pathspec)
    assert code == 0 and f"{target}  [" in out and "encoding pickle-v4" in out
    assert "tasks: 2, artifacts:" in out


def test_bad_targets_are_usage_errors(flow_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run = flow_env.run(TINY_FLOW).pathspec
    cases = [
        (["TinyFlow/1/start:count"], "needs a task pathspec"),
        ([run, "--latest"], "already names a run"),
        (["TinyFlow", "--last", "0"], "positive number"),
        ([f"{run}/start/1:nope"], "no artifact named nope"),
        ([run, "--artifact", "not-a-name"], "not an artifact name"),
        (["TinyFlow/999999"], "does not exist"),
        (["NoSuchFlow"], "does not exist"),
        (["no/such/file.pkl"], "no such file"),
    ]
    for argv, message in cases:
        code, out = scan_cli(flow_env, capsys, *argv)
        assert code == 2 and message in out, (argv, out)


@pytest.mark.parametrize("user", ["someone", None])
def test_a_flow_scan_without_a_datastore_or_user_is_a_usage_error(
    tmp_path: Path, user: str | None
) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("USERNAME", "USER", "LOGNAME", "METAFLOW_USER")}
    env.update(METAFLOW_DEFAULT_DATASTORE="local", METAFLOW_DEFAULT_METADATA="local",
               **({"USERNAME": user} if user else {}))
    out = subprocess.run([sys.executable, "-m", "safeart.cli", "scan", "NoSuchFlow"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    message = "does not exist" if user else "could not determine your user name"
    assert "safeart scan: NoSuchFlow: " in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr


GATE_FLOW = """
from metaflow import FlowSpec, Parameter, step


class GateFlow(FlowSpec):
    fail = Parameter("fail", type=bool, default=False)

    @step
    def start(self):
        self.payload = {"failing_run": self.fail}
        self.next(self.end)

    @step
    def end(self):
        if self.fail:
            raise RuntimeError("this run fails on purpose")


if __name__ == "__main__":
    GateFlow()
"""


def test_latest_scans_the_run_the_loader_loads_even_when_the_newest_failed(
    flow_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import safeart
    from safeart.metaflow.loader import locate

    good = flow_env.run(GATE_FLOW)
    failed = flow_env.run(GATE_FLOW, "--fail", "True", check=False)
    assert not failed.ok and failed.run_id
    code, out = scan_cli(flow_env, capsys, "GateFlow", "--latest", "--artifact", "payload")
    assert code == 0, out
    assert _targets(out) == [f"{good.run_id}/start/1:payload", f"{good.run_id}/end/2:payload"]
    with flow_env.client():
        assert safeart.load("GateFlow", "payload") == {"failing_run": False}
        assert locate("GateFlow", "payload").pathspec.startswith(f"GateFlow/{good.run_id}/")
    # --last N is history, failed runs included.
    code, out = scan_cli(flow_env, capsys, "GateFlow", "--last", "1", "--artifact", "payload")
    assert code == 0 and {t.split("/")[0] for t in _targets(out)} == {failed.run_id}


def test_latest_without_a_successful_run_is_a_usage_error(
    flow_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    flow_env.run(GATE_FLOW, "--fail", "True", check=False)
    code, out = scan_cli(flow_env, capsys, "GateFlow", "--latest")
    assert code == 2 and "has no successful run" in out and "--last N" in out
