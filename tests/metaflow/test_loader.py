"""Production loading (``safeart.load``), export/convert (signed when a key is set) and
enforcement of Metaflow's own reads, on real runs: the blog flow stored with plain pickle
and with safeart, blobs swapped for canary pickles in the datastore, production and client
scripts in fresh processes.

One module fixture runs both flows (in parallel), tampers with two pickled blobs and resumes
the pickled run under ``SAFEART_ENFORCE=1``; the tests only read what that produced.
"""

from __future__ import annotations

import _pickle
import gzip
import json
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from torch import nn

import safeart
import safeart.metaflow
from safeart.cli import main as cli_main
from safeart.metaflow.loader import locate
from safeart.policy import qualified_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/payloads.py
from flow_sources import NET  # noqa: E402
from payloads import canary_reduce_pickle, nested_load_from_bytes_payload  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


#: The flow file defines the same Net itself, so its runs record it as __main__.Net.
FLOW = """
import os
{imports}
from metaflow import FlowSpec, step
""" + NET + """

class {name}(FlowSpec):
    @step
    def start(self):
        torch.manual_seed(0)
        self.model = Net()
        self.inputs = torch.randn(3, 4)
        {start_extra}
        self.next(self.a)

    @step
    def a(self):
        with torch.no_grad():
            self.outputs = self.model(self.inputs)
        {a_extra}
        self.next(self.end)

    @step
    def end(self):
        print("outputs", self.outputs.tolist())


if __name__ == "__main__":
    {name}()
"""

PICKLE_FLOW = FLOW.format(  # no safeart import: Metaflow pickles everything
    imports="import trapmod",
    name="PickleBlogFlow",
    start_extra='self.trap = trapmod.Trap(os.path.abspath("trap_canary"))\n'
    '        self.victim = {"victim": 1}\n'
    '        self.hidden = {"hidden": 2}',
    a_extra='print("victim", self.victim)',
)
SAFE_FLOW = FLOW.format(
    imports="import safeart.metaflow  # store artifacts with safeart",
    name="SafeBlogFlow",
    start_extra="",
    a_extra="",
)

#: A class outside the allowlist whose unpickling would create a canary file.
TRAPMOD = """
class Trap:
    def __init__(self, path):
        self.path = path

    def __setstate__(self, state):
        open(state["path"], "w").close()
        self.__dict__.update(state)
"""



class Net(nn.Module):
    """Stands for the flow file's ``__main__.Net`` in this process (same name)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@dataclass
class Runs:
    """What the module fixture produced: the two runs and the failed, enforced resume."""

    env: Any
    pickled: Any
    safe: Any
    resumed: Any

    @property
    def victim_canary(self) -> Path:
        return self.env.workdir / "victim_canary"

    @property
    def hidden_canary(self) -> Path:
        return self.env.workdir / "hidden_canary"

    def canaries(self) -> list[Path]:
        """Canary files that exist (any would mean a payload ran)."""
        names = ("victim_canary", "hidden_canary", "trap_canary")
        return [self.env.workdir / n for n in names if (self.env.workdir / n).exists()]


@pytest.fixture(scope="module")
def runs(make_flow_env: Any) -> Runs:
    env = make_flow_env("loader")
    env.write(TRAPMOD, "trapmod.py")
    env.write(NET, "netdef.py")
    with ThreadPoolExecutor(2) as pool:
        pickled = pool.submit(env.run, PICKLE_FLOW, name="pickle_flow.py")
        safe = pool.submit(env.run, SAFE_FLOW, name="safe_flow.py")
        runs = Runs(env, pickled.result(), safe.result(), None)
    assert runs.canaries() == []
    _swap_blob(env, runs.pickled, "victim", canary_reduce_pickle(runs.victim_canary))
    _swap_blob(env, runs.pickled, "hidden", nested_load_from_bytes_payload(runs.hidden_canary))
    # A downstream step reads the tampered `victim` under enforcement (after model, inputs).
    runs.resumed = env.cli(env.workdir / "pickle_flow.py", "resume", "--origin-run-id",
                           runs.pickled.run_id, "a", env={"SAFEART_ENFORCE": "1"})
    return runs


def _swap_blob(env: Any, run: Any, name: str, data: bytes) -> None:
    with env.client():
        sha = env.task_datastore(run.flow, run.run_id, "start")._objects[name]
    env.local_blob_path(run.flow, sha).write_bytes(gzip.compress(data))


def _task(runs: Runs, flow: str, step: str) -> str:
    run = runs.pickled if flow == "PickleBlogFlow" else runs.safe
    with runs.env.client() as mf:
        return mf.Step(f"{flow}/{run.run_id}/{step}").task.pathspec


# -- production script ----------------------------------------------------------------------
PROD = """
import json, sys

import safeart

assert "metaflow" not in sys.modules and "torch" not in sys.modules  # nothing eager

import torch
from torch import nn


class Net(nn.Module):  # the production code's own model class
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


out = {}
for flow, start, outdir in json.loads(sys.argv[1]):
    run = start.rsplit("/", 2)[0]
    model = safeart.load(start, "model", allow=[Net], device="cpu")
    inputs = safeart.load(f"{start}:inputs")
    stored = safeart.load(run, "outputs")  # run level: the end task, like run.data
    latest = safeart.load(flow, "model", allow=[Net])  # the latest successful run
    exported = safeart.export(f"{start}:model", outdir, allow=[Net])
    served = safeart.load_file(exported.path, allow=[Net])
    with torch.no_grad():
        out[flow] = {
            "type": f"{type(model).__module__}.{type(model).__qualname__}",
            "stored": stored.tolist(),
            "loaded": model(inputs).tolist(),
            "latest": latest(inputs).tolist(),
            "served": served(inputs).tolist(),
            "exported": [str(exported.path), exported.artifact, exported.encoding],
        }
print(json.dumps(out))
"""


def test_production_script_loads_both_encodings_and_exports_identically(runs: Runs) -> None:
    env = runs.env
    jobs = [
        [flow, _task(runs, flow, "start"), str(env.workdir / f"serve_{flow}")]
        for flow in ("PickleBlogFlow", "SafeBlogFlow")
    ]
    script = env.write(PROD, "prod.py")
    done = env.python(f"import runpy, sys; sys.argv = ['prod.py', {json.dumps(jobs)!r}]; "
                      f"runpy.run_path({str(script)!r}, run_name='__main__')")
    assert done.ok, done.output[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    for flow, start, outdir in jobs:
        got = out[flow]
        assert got["type"] == "__main__.Net"  # the script's own class, via allow=[Net]
        assert got["loaded"] == got["stored"] == got["latest"] == got["served"]
        path, artifact, encoding = got["exported"]
        assert path == f"{outdir}/model.safetensors" and artifact == f"{start}:model"
        assert encoding == ("pickle-v4" if flow == "PickleBlogFlow" else "safeart-v1")
    assert out["PickleBlogFlow"]["stored"] == out["SafeBlogFlow"]["stored"]  # same seed
    assert "outputs" in runs.pickled.output and runs.canaries() == []


# -- refusals ------------------------------------------------------------------------------
@pytest.fixture
def no_unrestricted_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """``pickle.loads``/``torch.load`` and ``DataArtifact.data`` raise if anything calls them."""
    from metaflow.client.core import DataArtifact

    calls: list[str] = []

    def refuse(what: str) -> Any:
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            calls.append(what)
            raise AssertionError(f"{what} called")

        return _refuse

    for mod in (pickle, _pickle):
        monkeypatch.setattr(mod, "loads", refuse("pickle.loads"))
        monkeypatch.setattr(mod, "load", refuse("pickle.load"))
    monkeypatch.setattr(torch, "load", refuse("torch.load"))
    monkeypatch.setattr(DataArtifact, "data", property(refuse("DataArtifact.data")))
    yield calls
    assert calls == []


def test_legacy_artifacts_are_scanned_then_loaded_from_the_same_bytes_fetched_once(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, no_unrestricted_loads: list[str]
) -> None:
    from metaflow.datastore.content_addressed_store import ContentAddressedStore

    import safeart.scan
    import safeart.unpickle

    seen: list[tuple[str, int]] = []
    fetched: list[str] = []
    scan, restricted, load_blobs = (safeart.scan.scan_bytes, safeart.unpickle.restricted_loads,
                                    ContentAddressedStore.load_blobs)

    def spy(what: str, real: Any) -> Any:
        def call(data: bytes, **kw: Any) -> Any:
            seen.append((what, id(data)))
            return real(data, **kw)

        return call

    def counting(self: Any, keys: Any, *args: Any, **kw: Any) -> Any:
        fetched.extend(keys)
        return load_blobs(self, keys, *args, **kw)

    monkeypatch.setattr(safeart.scan, "scan_bytes", spy("scan", scan))
    monkeypatch.setattr(safeart.unpickle, "restricted_loads", spy("load", restricted))
    monkeypatch.setattr(ContentAddressedStore, "load_blobs", counting)
    with runs.env.client():
        model = safeart.load(f"{_task(runs, 'PickleBlogFlow', 'start')}:model", allow=[Net])
    assert isinstance(model, Net)
    assert [w for w, _ in seen] == ["scan", "load"] and seen[0][1] == seen[1][1]
    assert len(fetched) == 1


def test_class_not_on_the_allowlist_is_refused_with_what_to_add(
    runs: Runs, no_unrestricted_loads: list[str]
) -> None:
    start = _task(runs, "PickleBlogFlow", "start")
    safe_start = _task(runs, "SafeBlogFlow", "start")
    with runs.env.client():
        with pytest.raises(safeart.UnsafeArtifactError) as trap:
            safeart.load(start, "trap")
        with pytest.raises(safeart.UnsafeArtifactError) as main_net:
            safeart.load(start, "model")  # pickled __main__.Net, Net not passed
        with pytest.raises(safeart.PolicyError) as safe_net:
            safeart.load(safe_start, "model")  # safeart manifest naming __main__.Net

    assert trap.value.artifact == f"{start}:trap"
    assert trap.value.report.verdict == "unknown"
    assert [f.name for f in trap.value.report.findings] == ["trapmod.Trap"]
    assert "allow=['trapmod.Trap']" in trap.value.hint
    assert str(trap.value).startswith(f"{start}:trap: refused to load")
    for err in (main_net.value, safe_net.value):
        assert "__main__.Net" in str(err) and "allow=[Net]" in str(err)
    assert main_net.value.artifact == f"{start}:model"
    assert safe_net.value.artifact == f"{safe_start}:model"
    assert runs.canaries() == []


def test_blobs_swapped_for_canary_pickles_are_refused_with_the_scan_findings(
    runs: Runs, no_unrestricted_loads: list[str]
) -> None:
    start = _task(runs, "PickleBlogFlow", "start")
    with runs.env.client():
        with pytest.raises(safeart.UnsafeArtifactError) as victim:
            safeart.load(f"{start}:victim")
        with pytest.raises(safeart.UnsafeArtifactError) as hidden:
            safeart.load(f"{start}:hidden", allow=[Net])
        with pytest.raises(safeart.UnsafeArtifactError) as via_run:
            safeart.load(f"PickleBlogFlow/{runs.pickled.run_id}", "victim")

    for err in (victim.value, hidden.value):
        kinds = {(f.grade.value, f.kind, f.name) for f in err.report.findings}
        assert ("dangerous", "integrity", err.report.findings[0].name) in kinds  # not its sha
        assert ("dangerous", "import", "builtins.open") in kinds
        assert err.report.verdict == "dangerous" and "malicious" in err.hint
        assert "changed in the datastore" in err.hint
        assert "builtins.open" in str(err)
    assert victim.value.artifact == f"{start}:victim"
    assert any("_load_from_bytes" in f.location for f in hidden.value.report.findings)
    assert via_run.value.artifact.endswith("/end/3:victim")  # propagated to the end task
    assert runs.canaries() == []


# -- which task ----------------------------------------------------------------------------
def test_run_and_flow_level_pick_the_task_metaflow_would(runs: Runs) -> None:
    origin, resumed = runs.pickled.run_id, runs.resumed.run_id
    assert not runs.resumed.ok and resumed and resumed != origin
    with runs.env.client():
        assert locate(f"PickleBlogFlow/{origin}", "outputs").pathspec == (
            f"PickleBlogFlow/{origin}/end/3:outputs"
        )
        # The resumed run failed in `a`: no end task, so the latest task that stored it.
        assert "/a/" in locate(f"PickleBlogFlow/{resumed}", "outputs").pathspec
        # The latest *successful* run, like Flow(...).latest_successful_run.
        assert locate("PickleBlogFlow", "outputs").pathspec.startswith(
            f"PickleBlogFlow/{origin}/end/"
        )
        assert locate(f"PickleBlogFlow/{origin}/start", "model").pathspec.endswith(
            "/start/1:model"
        )
        for pathspec, name, message in [
            (f"PickleBlogFlow/{origin}", None, "names no artifact"),
            (f"PickleBlogFlow/{origin}/start/1", "nope", "has no artifact named 'nope'"),
            (f"PickleBlogFlow/{origin}/start/1:model", "inputs", "names artifact 'model'"),
            (f"PickleBlogFlow/{origin}/start/99", "model", "Object not found"),
            ("NoSuchFlow", "model", "NoSuchFlow"),
            ("not a pathspec", "model", "neither an existing file nor a Metaflow pathspec"),
        ]:
            with pytest.raises(safeart.ConfigError, match=message):
                locate(pathspec, name)


# -- enforcement -----------------------------------------------------------------------------
CLIENT = """
import json, sys

import torch
from metaflow import Flow

task = Flow(sys.argv[1]).latest_successful_run["end"].task
out = {}
for name in sys.argv[2:]:
    try:
        value = getattr(task.data, name)
        out[name] = {"ok": True, "type": f"{type(value).__module__}.{type(value).__name__}"}
        if isinstance(value, torch.nn.Module):
            with torch.no_grad():
                value = value(task.data.inputs)
        if isinstance(value, torch.Tensor):
            out[name]["value"] = value.tolist()
    except Exception as exc:
        out[name] = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
print(json.dumps(out))
"""


def _client(runs: Runs, env: dict[str, str], *names: str) -> dict[str, Any]:
    script = runs.env.write(CLIENT, "client.py")
    done = runs.env.python(
        f"import runpy, sys; sys.argv = ['client.py', 'PickleBlogFlow', *{list(names)!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')",
        env=env,
    )
    assert done.ok, done.output[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_enforcement_protects_unchanged_client_code(runs: Runs) -> None:
    on = {"SAFEART_ENFORCE": "1"}
    got = _client(runs, on, "outputs", "model", "victim", "hidden", "trap")
    end = f"PickleBlogFlow/{runs.pickled.run_id}/end/3"
    assert got["outputs"]["ok"] and got["outputs"]["type"] == "torch.Tensor"
    refused = {name: got[name] for name in ("model", "victim", "hidden", "trap")}
    assert all(r["error"] == "UnsafeArtifactError" for r in refused.values()), refused
    for name, r in refused.items():
        assert r["message"].startswith(f"{end}:{name}: refused to load")
    assert "__main__.Net" in refused["model"]["message"]
    assert "allow=[Net]" in refused["model"]["message"]
    assert "dangerous import builtins.open" in refused["victim"]["message"]
    assert "dangerous import builtins.open" in refused["hidden"]["message"]
    assert "trapmod.Trap" in refused["trap"]["message"]

    # The same code, with a policy file mapping the flow file's Net to a real class.
    policy = runs.env.write('[aliases]\n"__main__.Net" = "netdef.Net"\n', "safeart.toml")
    got = _client(runs, {**on, "SAFEART_POLICY": str(policy)}, "model", "outputs")
    assert got["model"]["type"] == "netdef.Net"  # rebuilt by the restricted unpickler
    assert got["model"]["value"] == got["outputs"]["value"]
    assert runs.canaries() == []


def test_downstream_step_reading_a_tampered_artifact_fails_under_enforcement(runs: Runs) -> None:
    resumed = runs.resumed
    assert not resumed.ok
    out = resumed.output
    # `a` loaded model and inputs (Net from the flow file is trusted in-flow), then refused.
    assert f"PickleBlogFlow/{resumed.run_id}/start/1:victim: refused to load" in out
    assert "safeart.errors.UnsafeArtifactError" in out and "builtins.open" in out
    assert ":model" not in out and ":inputs" not in out
    assert runs.canaries() == []


def test_enforce_api_switches_metaflow_reads_and_without_it_the_payload_runs(
    runs: Runs,
) -> None:
    start = _task(runs, "PickleBlogFlow", "start")
    assert not safeart.metaflow.is_enforced()
    try:
        with runs.env.client() as mf:
            safeart.metaflow.enforce()
            assert safeart.metaflow.is_enforced()
            with pytest.raises(safeart.UnsafeArtifactError) as refused:
                mf.Task(start)["victim"].data
            assert refused.value.artifact == f"{start}:victim"
            assert mf.Task(start)["inputs"].data.shape == (3, 4)
            safeart.metaflow.enforce(False)
            assert not safeart.metaflow.is_enforced() and runs.canaries() == []
            mf.Task(start)["victim"].data  # Metaflow's own pickle.loads: the payload runs
            assert runs.victim_canary.exists()
    finally:
        safeart.metaflow.enforce(False)
        runs.victim_canary.unlink(missing_ok=True)


def test_strict_mode_turns_enforcement_on() -> None:
    try:
        safeart.metaflow.strict()
        assert safeart.metaflow.is_enforced()
    finally:
        safeart.metaflow.strict(False)
    assert not safeart.metaflow.is_enforced()


# -- export / convert CLI ------------------------------------------------------------------
def _cli(runs: Runs, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with runs.env.client():
        code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_cli(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = _task(runs, "PickleBlogFlow", "start")
    alias = f"__main__.Net={qualified_name(Net)}"
    out = tmp_path / "serve"

    code, _, err = _cli(runs, capsys, "export", f"{start}:model", str(out))
    assert code == 1 and f"{start}:model: refused to load" in err and "allow=[Net]" in err
    assert not out.exists()

    code, stdout, _ = _cli(runs, capsys, "export", f"{start}:model", str(out), "--alias", alias)
    assert code == 0
    assert stdout == (f"exported {start}:model (pickle-v4: scanned clean, converted from "
                      f"pickle) -> {out}/model.safetensors\n")
    with runs.env.client():
        inputs = safeart.load(start, "inputs")
        stored = safeart.load(f"PickleBlogFlow/{runs.pickled.run_id}", "outputs")
    with torch.no_grad():
        assert torch.equal(safeart.load_file(out / "model.safetensors", allow=[Net])(inputs),
                           stored)

    safe_run = f"SafeBlogFlow/{runs.safe.run_id}"
    code, stdout, _ = _cli(runs, capsys, "export", safe_run, str(tmp_path / "s"), "--name",
                           "model", "--allow", "__main__.Net")
    assert code == 0 and "(safeart-v1: audited, copied)" in stdout
    with runs.env.client():
        ds = runs.env.task_datastore("SafeBlogFlow", runs.safe.run_id, "end")
        ((_, stored_blob),) = ds._ca_store.load_blobs([ds._objects["model"]])
    assert (tmp_path / "s" / "model.safetensors").read_bytes() == stored_blob  # as stored

    code, _, err = _cli(runs, capsys, "export", f"{start}:victim", str(tmp_path / "v"))
    assert code == 1 and "dangerous import builtins.open" in err
    assert not (tmp_path / "v").exists() and runs.canaries() == []

    for argv in (["NoSuchFlow/1/start/1:model"], [start], [f"{start}:model", "--alias", "x"]):
        code, _, err = _cli(runs, capsys, "export", argv[0], str(tmp_path / "u"), *argv[1:])
        assert code == 2 and err.startswith("safeart export: "), err


def test_export_signs_the_file_when_a_signing_key_is_set(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    from safeart.settings import SIGNING_KEY_ENV, TRUST_KEYS_ENV
    from safeart.signing import keygen, verify_file

    start = _task(runs, "PickleBlogFlow", "start")
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    with runs.env.client():
        unsigned = safeart.export(f"{start}:inputs", tmp_path / "plain")
    assert unsigned.signature is None and not Path(f"{unsigned.path}.sig").exists()

    pair = keygen(tmp_path / "key.pem")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(pair.private_path))
    with runs.env.client():  # the run's artifacts are unsigned: no trust keys while reading
        signed = safeart.export(f"{start}:inputs", tmp_path / "signed")
    assert signed.signature == Path(f"{signed.path}.sig")
    monkeypatch.setenv(TRUST_KEYS_ENV, str(pair.public_path))
    assert verify_file(signed.path).key_id == pair.key_id


def test_convert_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(1)
    model = Net()
    good, evil = tmp_path / "model.pkl", tmp_path / "evil.pkl"
    good.write_bytes(pickle.dumps(model, protocol=4))
    canary = tmp_path / "canary"
    evil.write_bytes(canary_reduce_pickle(canary))

    assert cli_main(["convert", str(good), str(tmp_path / "m.safetensors")]) == 1
    assert not (tmp_path / "m.safetensors").exists()
    assert cli_main(["convert", str(good), str(tmp_path / "m.safetensors"),
                     "--allow", qualified_name(Net)]) == 0
    assert capsys.readouterr().out == (
        f"converted {good} (scanned clean) -> {tmp_path / 'm.safetensors'}\n"
    )
    converted = safeart.load_file(tmp_path / "m.safetensors", allow=[Net])
    x = torch.randn(2, 4)
    with torch.no_grad():
        assert torch.equal(converted(x), model(x))

    assert cli_main(["convert", str(evil), str(tmp_path / "e.safetensors")]) == 1
    assert "dangerous import builtins.open" in capsys.readouterr().err
    assert not canary.exists() and not (tmp_path / "e.safetensors").exists()
    assert cli_main(["convert", str(tmp_path / "missing.pkl"), str(tmp_path / "x")]) == 2

