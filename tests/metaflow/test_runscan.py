"""``safeart scan Flow/run``: real runs on local and S3 datastores, blobs tampered in the
datastore, safeart-encoded runs, every pathspec form of the CLI. Nothing is deserialized."""

from __future__ import annotations

import _pickle
import gzip
import json
import pickle
import struct
from pathlib import Path
from typing import Any, Iterator

import pytest
from metaflow.datastore.content_addressed_store import ContentAddressedStore

import safeart.metaflow.runscan as runscan
from runscan_support import TINY_FLOW, names, result, scan, scan_cli  # puts tests/ on sys.path
from payloads import canary_reduce_pickle, nested_load_from_bytes_payload

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PICKLE_FLOW = """
from metaflow import FlowSpec, step


class PickleFlow(FlowSpec):
    @step
    def start(self):
        import numpy as np
        import pandas as pd
        import torch

        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        self.weights = np.arange(12, dtype=np.float32).reshape(3, 4)
        self.frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": ["x", "y"]})
        self.config = {"lr": 0.1, "layers": [4, 8], "tags": ("a", "b"), "on": True}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PickleFlow()
"""

FOREACH_FLOW = """
from metaflow import FlowSpec, step


class FanFlow(FlowSpec):
    @step
    def start(self):
        self.table = [[float(i * j) for j in range(50)] for i in range(50)]
        self.shards = list(range(10))
        self.next(self.work, foreach="shards")

    @step
    def work(self):
        self.part = sum(self.table[self.input])
        self.next(self.join)

    @step
    def join(self, inputs):
        self.parts = sorted(i.part for i in inputs)
        self.merge_artifacts(inputs, exclude=["part"])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FanFlow()
"""

SAFE_FLOW = """
import safeart.metaflow  # store artifacts with safeart
import numpy as np
import torch
from metaflow import FlowSpec, step


class SafeFlow(FlowSpec):
    @step
    def start(self):
        torch.manual_seed(0)
        # 128 kB of random weights: safeart stores this blob uncompressed (cas_raw).
        self.model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU())
        self.weights = np.ones((2, 3), dtype=np.float32)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SafeFlow()
"""


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture
def no_deserialization(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make every real deserializer raise and record the attempt.

    ``pickle.loads``/``load``, ``torch.load`` and ``numpy.load`` raise; ``Unpickler`` is
    replaced by one whose ``find_class`` raises, so only an unpickler that overrides it
    with inert stubs (the scanner's) can run at all.
    """
    import numpy
    import torch

    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"{what} called during a run scan")

        return _refuse

    class GuardUnpickler(_pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            attempts.append(f"find_class {module}.{name}")
            raise AssertionError("a real find_class ran during a run scan")

    for mod in (pickle, _pickle):
        monkeypatch.setattr(mod, "loads", refuse("pickle.loads"))
        monkeypatch.setattr(mod, "load", refuse("pickle.load"))
        monkeypatch.setattr(mod, "Unpickler", GuardUnpickler)
    monkeypatch.setattr(pickle, "_Unpickler", GuardUnpickler)
    monkeypatch.setattr(pickle, "_loads", refuse("pickle._loads"))
    monkeypatch.setattr(torch, "load", refuse("torch.load"))
    monkeypatch.setattr(numpy, "load", refuse("numpy.load"))
    yield attempts
    assert attempts == []


def _sha(env: Any, run: Any, step: str, name: str) -> str:
    with env.client():
        return env.task_datastore(run.flow, run.run_id, step)._objects[name]


def _overwrite_blob(env: Any, flow: str, sha: str, stored: bytes) -> None:
    """Replace the gzip file of blob ``sha`` in the local content-addressed store."""
    path = env.local_blob_path(flow, sha)
    assert path.exists()
    path.write_bytes(stored)


# -- pickled runs ----------------------------------------------------------------------------
def test_pickled_run_is_clean_under_the_default_policy_and_nothing_is_deserialized(
    flow_env: Any, no_deserialization: list[str]
) -> None:
    run = flow_env.run(PICKLE_FLOW)
    report = scan(flow_env, run.pathspec)

    assert not report.fails(), [(r.target, r.findings) for r in report.results if r.fails()]
    model = result(report, "start/1:model")
    assert model.extra == {
        "type": "<class 'torch.nn.modules.container.Sequential'>",
        "encoding": "pickle-v4",
        "sha": _sha(flow_env, run, "start", "model"),
    }
    assert "pickle" in model.formats and model.size > 1000
    assert result(report, "start/1:frame").extra["type"] == "<class 'pandas.DataFrame'>"
    assert result(report, "end/2:weights").extra["type"] == "<class 'numpy.ndarray'>"
    # Metaflow's private artifacts are pickles the runtime loads too: scanned as well.
    assert "start/1:_foreach_stack" in names(report)
    assert report.summary["tasks"] == 2
    assert report.summary["artifacts"] == len(report.results)


def test_foreach_run_fetches_and_scans_each_distinct_blob_once(
    flow_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = flow_env.run(FOREACH_FLOW, "--max-workers", "2")
    fetched: list[str] = []
    scanned: list[bytes] = []
    load_blobs, scan_bytes = ContentAddressedStore.load_blobs, runscan.scan_bytes

    def counting_load(self: Any, keys: Any, *args: Any, **kwargs: Any) -> Any:
        keys = list(keys)
        fetched.extend(keys)
        return load_blobs(self, keys, *args, **kwargs)

    def counting_scan(data: bytes, **kwargs: Any) -> Any:
        scanned.append(data)
        return scan_bytes(data, **kwargs)

    monkeypatch.setattr(ContentAddressedStore, "load_blobs", counting_load)
    monkeypatch.setattr(runscan, "scan_bytes", counting_scan)
    report = scan(flow_env, run.pathspec)

    assert not report.fails()
    shas = {r.extra["sha"] for r in report.results}
    assert report.summary["tasks"] == 13
    assert len(report.results) > 5 * len(shas)  # the table is shared by 13 tasks
    assert sorted(fetched) == sorted(shas)  # each blob fetched exactly once
    assert len(scanned) == len(shas)  # and scanned exactly once
    assert report.summary["blobs_fetched"] == len(shas)
    table = [r for r in report.results if r.target.endswith(":table")]
    assert len(table) == 13 and len({r.extra["sha"] for r in table}) == 1


# -- tampered blobs -------------------------------------------------------------------------
TAMPERINGS = {
    "malicious-pickle": lambda canary, blob: gzip.compress(canary_reduce_pickle(canary)),
    "nested-torch-payload": lambda canary, blob: gzip.compress(
        nested_load_from_bytes_payload(canary)
    ),
    "truncated-gzip": lambda canary, blob: blob[: len(blob) // 2],
    "truncated-pickle": lambda canary, blob: gzip.compress(gzip.decompress(blob)[:-3]),
    "missing": None,
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_blob_replaced_in_the_datastore_is_reported_and_never_runs(
    flow_env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_deserialization: list[str],
    tampering: str,
) -> None:
    run = flow_env.run(TINY_FLOW)
    sha = _sha(flow_env, run, "start", "payload")
    canary = tmp_path / "canary"
    path = flow_env.local_blob_path(run.flow, sha)
    make = TAMPERINGS[tampering]
    if make is None:
        path.unlink()
    else:
        _overwrite_blob(flow_env, run.flow, sha, make(canary, path.read_bytes()))

    report = scan(flow_env, run.pathspec)
    code, out = scan_cli(flow_env, capsys, run.pathspec)

    hit = [r for r in report.results if r.fails()]
    assert [r.target for r in hit] == [f"{run.pathspec}/start/1:payload",
                                       f"{run.pathspec}/end/2:payload"]
    assert code == 1 and f"{run.pathspec}/start/1:payload" in out
    kinds = {f.kind for f in hit[0].findings}
    if tampering in ("malicious-pickle", "nested-torch-payload"):
        assert {r.verdict for r in hit} == {"dangerous"}
        assert "integrity" in kinds  # no longer hashes to its content address
        dangerous = [f for f in hit[0].findings if f.grade.value == "dangerous"]
        assert any(f.name == "builtins.open" for f in dangerous)
        assert all(f.location.startswith(hit[0].target) for f in hit[0].findings)
        if tampering == "nested-torch-payload":
            assert any("_load_from_bytes" in f.location for f in dangerous)
    elif tampering == "truncated-pickle":  # still gunzips, so the content address is checked
        assert {r.verdict for r in hit} == {"dangerous"} and "integrity" in kinds
    else:
        assert {r.verdict for r in hit} == {"unknown"}
        assert not hit[0].complete or "integrity" in kinds
    assert not canary.exists()


def test_unknown_encoding_is_not_analysed_and_fails(
    flow_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = flow_env.run(TINY_FLOW)
    data_json = flow_env.workdir / ".metaflow" / run.flow / run.run_id / "start/1/0.data.json"
    record = json.loads(data_json.read_text())
    record["info"]["count"]["encoding"] = "cloudpickle-v1"
    data_json.write_text(json.dumps(record))

    report = scan(flow_env, run.pathspec, artifacts=["count"])

    start, end = report.results
    assert start.verdict == "unknown" and start.findings[0].kind == "unsupported"
    assert "cloudpickle-v1" in start.findings[0].reason
    assert end.verdict == "clean"  # the end task's record still says pickle-v4
    assert scan_cli(flow_env, capsys, run.pathspec, "--artifact", "count")[0] == 1


# -- safeart-encoded runs -----------------------------------------------------------------
def _tamper_manifest(blob: bytes, old: list[str], new: list[str]) -> bytes:
    """Rewrite a class reference inside a safeart blob's manifest (header re-framed)."""
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    manifest = header["__metadata__"]["safeart"]
    assert json.dumps(old, separators=(",", ":")) in manifest
    header["__metadata__"]["safeart"] = manifest.replace(
        json.dumps(old, separators=(",", ":")), json.dumps(new, separators=(",", ":"))
    )
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + blob[8 + size :]


def test_safeart_run_is_validated_and_a_tampered_manifest_class_is_reported(
    flow_env: Any, capsys: pytest.CaptureFixture[str], no_deserialization: list[str]
) -> None:
    run = flow_env.run(SAFE_FLOW)
    report = scan(flow_env, run.pathspec)
    assert not report.fails(), [(r.target, r.findings) for r in report.results if r.fails()]
    model = result(report, "start/1:model")
    assert model.extra["encoding"] == "safeart-v1"
    assert "safetensors" in model.formats

    assert result(report, "start/1:weights").extra["encoding"] == "safeart-v1"
    path = flow_env.local_blob_path(run.flow, model.extra["sha"])
    assert json.loads(Path(f"{path}_meta").read_text())["cas_raw"] is True
    tampered = _tamper_manifest(
        path.read_bytes(), ["torch.nn.modules.activation", "ReLU"], ["subprocess", "Popen"]
    )
    path.write_bytes(tampered)

    report = scan(flow_env, run.pathspec, artifacts=["model"])
    code, out = scan_cli(flow_env, capsys, f"{run.pathspec}/start/1:model")

    start = result(report, "start/1:model")
    assert start.verdict == "dangerous"
    (cls,) = [f for f in start.findings if f.kind == "class"]
    assert cls.name == "subprocess.Popen" and cls.location.startswith(start.target)
    assert "integrity" in {f.kind for f in start.findings}
    assert code == 1 and "subprocess.Popen" in out


# -- S3 -------------------------------------------------------------------------------------
def test_s3_run_is_scanned_through_metaflow_s3_datastore(
    s3_flow_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = s3_flow_env.run(TINY_FLOW)
    assert not (s3_flow_env.workdir / ".metaflow" / run.flow / "data").exists()
    # Metaflow's parallel S3 loads run in s3op worker processes configured by the
    # environment only; its temporary download folders go to the working directory.
    monkeypatch.setenv("METAFLOW_S3_ENDPOINT_URL", s3_flow_env.env["METAFLOW_S3_ENDPOINT_URL"])
    monkeypatch.chdir(s3_flow_env.workdir)

    report = scan(s3_flow_env, run.pathspec)

    assert not report.fails() and report.summary["tasks"] == 2
    assert result(report, "start/1:payload").extra["type"] == "<class 'dict'>"
    # The CLI in a fresh process, configured only by the environment (datastore, endpoint).
    proc = s3_flow_env.python(
        f"import sys; from safeart.cli import main; sys.exit(main(['scan', '{run.pathspec}', "
        "'--artifact', 'payload', '--format', 'json']))"
    )
    assert proc.returncode == 0, proc.output
    doc = json.loads(proc.stdout)
    assert [r["target"] for r in doc["results"]] == [
        f"{run.pathspec}/start/1:payload", f"{run.pathspec}/end/2:payload"
    ]
