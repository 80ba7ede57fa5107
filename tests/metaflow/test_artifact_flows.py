"""safeart's Metaflow serializer in real flows: local and S3 datastores, foreach/join,
retry, resume, parameters, pickle fallback, strict mode, client decoding, bad blobs, dump."""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import re
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

import safeart
import safeart.metaflow
from flow_sources import NET


#: A class of the flow file's own code that safeart refuses (a custom ``__reduce__``).
CELSIUS = """

class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees

    def __reduce__(self):
        return (Celsius, (self.degrees,))

    def __repr__(self):
        return f"Celsius({self.degrees})"
"""

BLOG_FLOW = """
import ipaddress

import safeart.metaflow  # store artifacts with safeart
from metaflow import FlowSpec, Parameter, current, retry, step
""" + NET + CELSIUS + """

class BlogFlow(FlowSpec):
    scale = Parameter("scale", default=2.0)

    @step
    def start(self):
        torch.manual_seed(0)
        self.model = Net()
        self.inputs = torch.randn(3, 4)
        self.address = ipaddress.IPv4Address("10.0.0.1")  # safeart refuses: no codec for it
        self.temp = Celsius(21.5)  # safeart refuses: the flow's class has a custom __reduce__
        self.items = [1, 2, 3]
        self.next(self.a)

    @step
    def a(self):
        with torch.no_grad():
            self.outputs = self.model(self.inputs)
        self.next(self.fan, foreach="items")

    @retry(times=1)
    @step
    def fan(self):
        if self.input == 2 and current.retry_count == 0:
            raise RuntimeError("flaky on purpose")
        self.sq = self.input**2 * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.merge_artifacts(inputs, exclude=["sq"])
        self.next(self.end)

    @step
    def end(self):
        with torch.no_grad():
            self.check = self.model(self.inputs)
        print("outputs", self.outputs.tolist(), self.address, self.temp)


if __name__ == "__main__":
    BlogFlow()
"""


class Net(nn.Module):
    """Stands for the flow file's ``__main__.Net`` on the client side (same name)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def blog(make_flow_env):
    """One run of the blog flow, shared by the tests that only read it."""
    env = make_flow_env("blog")
    result = env.run(BLOG_FLOW, "--max-workers", "2")
    return env, result


def _records(env, run_id: str, step: str, flow: str = "BlogFlow") -> dict:
    with env.client():
        return env.task_datastore(flow, run_id, step)._info


def _raw_blob(env, flow: str, run_id: str, step: str, name: str) -> tuple[str, bytes]:
    """The content address and the gunzipped bytes of an artifact in the local store."""
    with env.client():
        sha = env.task_datastore(flow, run_id, step)._objects[name]
    return sha, gzip.decompress(env.local_blob_path(flow, sha).read_bytes())


def test_blog_model_is_stored_as_safeart_not_pickle(blog):
    env, result = blog
    info = _records(env, result.run_id, "start")
    assert info["model"]["encoding"] == "safeart-v1"
    assert info["model"]["type"] == "<class '__main__.Net'>"
    assert info["model"]["serializer_info"]["format_version"] == safeart.format.FORMAT_VERSION
    sha, raw = _raw_blob(env, "BlogFlow", result.run_id, "start", "model")
    assert hashlib.sha1(raw).hexdigest() == sha
    assert info["model"]["size"] == len(raw)
    # A safetensors file: 8-byte header length, JSON header, the four weight tensors.
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert "safeart" in header["__metadata__"]
    tensors = [v for k, v in header.items() if k != "__metadata__"]
    assert sorted(tuple(t["shape"]) for t in tensors) == [(2,), (2, 8), (8,), (8, 4)]
    assert safeart.format.is_safeart(raw)
    # ... and no pickle stream anywhere: no PROTO opcode start, no pickled module names.
    assert not raw.startswith(b"\x80")
    assert b"\x8c\x08__main__" not in raw and b"torch._utils" not in raw


def test_blog_outputs_reload_identically_on_the_client(blog):
    env, result = blog
    with env.client() as mf, safeart.metaflow.allowing(Net):
        run = mf.Run(f"BlogFlow/{result.run_id}")
        model = run["start"].task["model"].data
        inputs = run["start"].task.data.inputs
        stored = run["a"].task.data.outputs
        assert isinstance(model, Net)
        with torch.no_grad():
            assert torch.equal(model(inputs), stored)
        assert torch.equal(run.data.check, stored)  # `end` rebuilt __main__.Net in-flow


def test_foreach_join_retry_parameters_and_max_workers(blog):
    env, result = blog
    assert result.ok
    with env.client() as mf:
        run = mf.Run(f"BlogFlow/{result.run_id}")
        fan = {t["sq"].data for t in run["fan"]}
        assert fan == {2.0, 8.0, 18.0}
        assert run["join"].task.data.total == 28.0
        assert run.data.items == [1, 2, 3]  # merged through the join
        retried = [t for t in run["fan"] if t.current_attempt == 1]
        assert len(retried) == 1 and retried[0]["sq"].data == 8.0
        params = run["_parameters"].task
        assert params["scale"].data == 2.0
    info = _records(env, result.run_id, "_parameters")
    assert info["scale"]["encoding"] == "safeart-v1"
    join_info = _records(env, result.run_id, "join")
    assert join_info["total"]["encoding"] == "safeart-v1"
    assert join_info["model"]["encoding"] == "safeart-v1"  # merge_artifacts keeps the record


def test_unsupported_artifacts_fall_back_to_pickle_with_one_warning_each(blog):
    env, result = blog
    for step in ("start", "end"):  # `end` re-saves what it read: still pickle
        info = _records(env, result.run_id, step)
        assert info["address"]["encoding"] == info["temp"]["encoding"] == "pickle-v4", step
    for internal in ("_foreach_stack", "_graph_info", "_transition", "name"):
        assert info[internal]["encoding"] == "pickle-v4", internal
    out = result.output
    # One warning per artifact, in the task that stores it: `end` only reads them (Metaflow
    # re-saves what a step read, but those are the inherited artifacts, not new ones).
    warned = re.findall(r"PickleFallbackWarning: BlogFlow/\d+/(\w+)/\d+:(\w+) \(([\w.]+)\)", out)
    assert sorted(warned) == [
        ("start", "address", "ipaddress.IPv4Address"),
        ("start", "temp", "__main__.Celsius"),
    ]
    assert "IPv4Address is rebuilt by calling IPv4Address(...)" in out
    # The hint fits: a library class has no __reduce__ to drop, the flow's own class has.
    address = out.split(":address (ipaddress.IPv4Address)", 1)[1].split("PickleFallback")[0]
    assert "hint: safeart has no codec for ipaddress.IPv4Address" in address
    assert "__reduce__" not in address
    temp = out.split(":temp (__main__.Celsius)", 1)[1].split("PickleFallback")[0]
    assert "hint: drop the custom __reduce__" in temp
    assert "outputs [[" in out and "10.0.0.1 Celsius(21.5)" in out  # `end` read both kinds


def test_resume_reads_the_origin_runs_safeart_artifacts(blog):
    env, result = blog
    resumed = env.cli(env.workdir / "flow.py", "resume", "--origin-run-id", result.run_id, "join")
    assert resumed.ok, resumed.output[-4000:]
    with env.client() as mf:
        run = mf.Run(f"BlogFlow/{resumed.run_id}")
        assert run["join"].task.data.total == 28.0
        with safeart.metaflow.allowing(Net):
            assert isinstance(run["end"].task["model"].data, Net)


def test_dump_prints_safeart_artifacts(blog):
    env, result = blog
    flow = env.workdir / "flow.py"
    dumped = env.cli(flow, "dump", f"{result.run_id}/join")
    assert dumped.ok, dumped.output[-4000:]
    assert "total [size:" in dumped.stdout and "= 28.0" in dumped.stdout
    # Loading the model in `dump` rebuilds __main__.Net: the flow file is __main__ there.
    full = env.cli(
        flow, "dump", f"{result.run_id}/start", "--include", "model", "--max-value-size", "100000"
    )
    assert full.ok, full.output[-4000:]
    assert "model [size:" in full.stdout and "Net(" in full.stdout


CLIENT_WITHOUT_IMPORT = """
import json, sys
from metaflow import Run, namespace
import safeart
namespace(None)
run = Run("BlogFlow/{run_id}")
out = {{"total": run["join"].task.data.total, "items": run.data.items}}
try:
    run["start"].task["model"].data
except safeart.PolicyError as err:
    out["error"] = [type(err).__name__, err.artifact, err.name, str(err)]
out["opted_in"] = sys.modules["safeart.metaflow.state"].opted_in()  # set up by Metaflow only
print(json.dumps(out))
"""


def test_client_decodes_without_opting_in(blog):
    env, result = blog
    got = env.python(CLIENT_WITHOUT_IMPORT.format(run_id=result.run_id))
    assert got.ok, got.output[-4000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert out["total"] == 28.0 and out["items"] == [1, 2, 3]
    assert out["opted_in"] is False
    kind, artifact, name, message = out["error"]
    assert kind == "PolicyError" and name == "__main__.Net"
    assert artifact == f"BlogFlow/{result.run_id}/start/1:model"
    assert "allow=[Net]" in message


PLAIN_FLOW = """
from metaflow import FlowSpec, step


class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.x = {"a": [1, 2]}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PlainFlow()
"""


def test_flows_without_the_import_are_stock_pickle(flow_env):
    result = flow_env.run(PLAIN_FLOW)
    assert _records(flow_env, result.run_id, "start", "PlainFlow")["x"]["encoding"] == "pickle-v4"


STRICT_FLOW = """
import ipaddress

import safeart.metaflow
from metaflow import FlowSpec, step


class StrictFlow(FlowSpec):
    @step
    def start(self):
        self.letters = ["a", "b"]
        self.next(self.fan, foreach="letters")

    @step
    def fan(self):
        self.upper = self.input.upper()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.uppers = sorted(i.upper for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.report = {"ok": self.uppers, "when": [ipaddress.IPv4Address("10.0.0.1")]}


if __name__ == "__main__":
    StrictFlow()
"""


def test_strict_mode_env_knob_fails_the_step_naming_artifact_type_and_reason(flow_env):
    result = flow_env.run(STRICT_FLOW, env={"SAFEART_STRICT": "1"}, check=False)
    assert not result.ok
    out = result.output
    assert f"StrictFlow/{result.run_id}/end/" in out and ":report: strict mode" in out
    assert "artifact 'report' of type builtins.dict cannot be stored without pickle" in out
    assert "report['when'][0]" in out and "IPv4Address is rebuilt by calling" in out
    assert "Step end (task-id" in out and "failed" in out
    # Everything before `end` saved fine: user artifacts safeart, Metaflow's own pickle.
    info = _records(flow_env, result.run_id, "join", "StrictFlow")
    assert info["uppers"]["encoding"] == "safeart-v1"
    assert info["_foreach_stack"]["encoding"] == "pickle-v4"
    fan = _records(flow_env, result.run_id, "fan", "StrictFlow")
    assert fan["_foreach_stack"]["encoding"] == "pickle-v4"
    assert fan["upper"]["encoding"] == "safeart-v1"


TAMPER_FLOW = """
import numpy as np

import safeart.metaflow
from metaflow import FlowSpec, step

safeart.metaflow.strict()


class TamperFlow(FlowSpec):
    @step
    def start(self):
        self.weights = np.arange(6, dtype=np.float32)
        self.config = {"lr": 0.1}
        self.next(self.end)

    @step
    def end(self):
        print("sum", float(self.weights.sum()), self.config)


if __name__ == "__main__":
    TamperFlow()
"""


class _Canary:
    """A pickle that would create a file if anything unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _overwrite_blob(env, run_id: str, name: str, data: bytes) -> str:
    with env.client():
        sha = env.task_datastore("TamperFlow", run_id, "start")._objects[name]
    env.local_blob_path("TamperFlow", sha).write_bytes(gzip.compress(data))
    return sha


def test_bad_blobs_fail_with_safeart_errors_never_pickle(flow_env):
    result = flow_env.run(TAMPER_FLOW)  # strict() in the flow file: Metaflow's own
    assert "sum 15.0" in result.output  # artifacts still work
    canary = flow_env.workdir / "canary"
    _overwrite_blob(flow_env, result.run_id, "weights", pickle.dumps(_Canary(canary), protocol=4))
    _, config = _raw_blob(flow_env, "TamperFlow", result.run_id, "start", "config")
    current = f'\\"version\\":{safeart.format.FORMAT_VERSION}'.encode()
    assert current in config
    newer = config.replace(current, b'\\"version\\":9')
    _overwrite_blob(flow_env, result.run_id, "config", newer)

    # Neither blob hashes to its content address any more: refused before any decoding.
    with flow_env.client() as mf:
        task = mf.Task(f"TamperFlow/{result.run_id}/start/1")
        for name in ("weights", "config"):
            with pytest.raises(safeart.UnsafeArtifactError, match="content address") as bad:
                task[name].data
            assert bad.value.artifact == f"TamperFlow/{result.run_id}/start/1:{name}"

    # In a step: `resume end` reloads the tampered blobs through the task datastore.
    flow = flow_env.workdir / "flow.py"
    resumed = flow_env.cli(flow, "resume", "--origin-run-id", result.run_id, "end")
    assert not resumed.ok
    assert f"TamperFlow/{resumed.run_id}/start/1:weights: refused to load" in resumed.output
    assert "safeart.errors.UnsafeArtifactError" in resumed.output
    assert "pickle" not in resumed.output.lower()
    assert not canary.exists()


def test_newer_metaflow_encoding_is_refused_by_name(flow_env):
    result = flow_env.run(TAMPER_FLOW)
    task_dir = flow_env.workdir / ".metaflow" / "TamperFlow" / result.run_id / "start" / "1"
    meta = next((task_dir / "_meta").glob("*_artifact_config.json"))  # local metadata record
    record = json.loads(meta.read_text())
    record["content_type"] = "safeart-v2"
    meta.write_text(json.dumps(record))
    with flow_env.client() as mf:
        with pytest.raises(safeart.UnsupportedVersion) as newer:
            mf.Task(f"TamperFlow/{result.run_id}/start/1")["config"].data
    assert newer.value.artifact == f"TamperFlow/{result.run_id}/start/1:config"
    assert "'safeart-v2'" in str(newer.value)


S3_FLOW = """
import safeart.metaflow
from metaflow import FlowSpec, step
""" + NET + """

class S3BlogFlow(FlowSpec):
    @step
    def start(self):
        torch.manual_seed(0)
        self.model = Net()
        self.inputs = torch.randn(3, 4)
        self.next(self.a)

    @step
    def a(self):
        with torch.no_grad():
            self.outputs = self.model(self.inputs)
        self.next(self.end)

    @step
    def end(self):
        print("outputs", self.outputs.tolist())


if __name__ == "__main__":
    S3BlogFlow()
"""


def test_blog_flow_on_s3(s3_flow_env):
    result = s3_flow_env.run(S3_FLOW)
    with s3_flow_env.client() as mf:
        ds = s3_flow_env.task_datastore("S3BlogFlow", result.run_id, "start")
        assert ds._info["model"]["encoding"] == "safeart-v1"
        run = mf.Run(f"S3BlogFlow/{result.run_id}")
        assert run["start"].task.metadata_dict["ds-type"] == "s3"
        with safeart.metaflow.allowing(Net):
            model = run["start"].task["model"].data
        with torch.no_grad():
            assert torch.equal(model(run["start"].task.data.inputs), run["a"].task.data.outputs)
