"""``safeart scan --all`` enumerates tasks from the datastore listing (safeart.metaflow.
enumerate): on real runs, an unchanged re-scan reads no task record, no blob and no task
metadata; a blob overwritten in place, a new run and a new attempt are read and scanned;
runs the listing lacks, or whose data the metadata places elsewhere, go through the client."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from runscan_support import TINY_FLOW, scan_cli  # puts tests/ on sys.path
from payloads import canary_reduce_pickle

import safeart.metaflow.enumerate as enumerate_mod

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Reads:
    """Counts task-record reads, blob fetches, per-task metadata reads and client
    enumerations made during a scan."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from metaflow.datastore.content_addressed_store import ContentAddressedStore
        from metaflow.plugins.datastores.local_storage import LocalStorage
        from metaflow.plugins.metadata_providers.local import LocalMetadataProvider

        self.records: list[str] = []
        self.blobs: list[str] = []
        self.task_metadata = 0
        self.client_runs: list[str] = []
        load_bytes, load_blobs = LocalStorage.load_bytes, ContentAddressedStore.load_blobs
        get_object = LocalMetadataProvider.get_object.__func__
        client_tasks = enumerate_mod.client_tasks

        def count_bytes(storage: Any, paths: Any) -> Any:
            self.records += [p for p in paths if p.endswith("data.json")]
            return load_bytes(storage, paths)

        def count_blobs(store: Any, keys: Any, *a: Any, **k: Any) -> Any:
            self.blobs += list(keys)
            return load_blobs(store, keys, *a, **k)

        def count_meta(cls: Any, obj_type: str, sub_type: str, *args: Any) -> Any:
            self.task_metadata += (obj_type, sub_type) == ("task", "metadata")
            return get_object(cls, obj_type, sub_type, *args)

        def count_client(flow: str, runs: list[str]) -> Any:
            self.client_runs += runs
            return client_tasks(flow, runs)

        monkeypatch.setattr(LocalStorage, "load_bytes", count_bytes)
        monkeypatch.setattr(ContentAddressedStore, "load_blobs", count_blobs)
        monkeypatch.setattr(LocalMetadataProvider, "get_object", classmethod(count_meta))
        monkeypatch.setattr(enumerate_mod, "client_tasks", count_client)

    def reset(self) -> None:
        self.records, self.blobs, self.task_metadata, self.client_runs = [], [], 0, []


def _scan(env: Any, capsys: pytest.CaptureFixture[str], cache: Path,
          *argv: str) -> tuple[int, dict]:
    code, out = scan_cli(env, capsys, "--format", "json", "--all", "--cache", str(cache), *argv)
    return code, json.loads(out[out.index("{"):out.rindex("}") + 1])


def _dangerous(doc: dict) -> set[str]:
    return {r["target"] for r in doc["results"] if r["verdict"] == "dangerous"}


def _write_blob(env: Any, flow: str, data: bytes) -> str:
    sha = hashlib.sha1(data).hexdigest()
    path = env.local_blob_path(flow, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data))
    return sha


def _task_dir(env: Any, run: Any, step: str, task: str) -> Path:
    return env.workdir / ".metaflow" / run.flow / run.run_id / step / task


def test_unchanged_rescan_reads_nothing_and_changes_are_read(
    flow_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_run = flow_env.run(TINY_FLOW)
    cache = tmp_path / "cache.sqlite"
    reads = Reads(monkeypatch)
    code, first = _scan(flow_env, capsys, cache)
    s = first["summary"]
    assert code == 0 and s["tasks"] == 3 and s["blobs_fetched"] == s["blobs"] > 0
    assert len(reads.records) == 3 and reads.task_metadata == 1 and reads.client_runs == []

    # Unchanged: every record and verdict (and the run's datastore) comes from the cache.
    reads.reset()
    code, again = _scan(flow_env, capsys, cache)
    assert code == 0 and again["results"] == [
        {**r, "seconds": 0.0} if r["seconds"] else r for r in first["results"]]
    assert again["summary"]["blobs_fetched"] == 0
    assert reads.records == [] and reads.blobs == [] and reads.task_metadata == 0
    assert reads.client_runs == []

    # A blob overwritten in place under its sha: a new listed identity, fetched, caught.
    canary = tmp_path / "canary"
    with flow_env.client():
        sha = flow_env.task_datastore(first_run.flow, first_run.run_id,
                                      "start")._objects["payload"]
    flow_env.local_blob_path(first_run.flow, sha).write_bytes(
        gzip.compress(canary_reduce_pickle(canary)))
    reads.reset()
    code, doc = _scan(flow_env, capsys, cache)
    assert code == 1 and reads.blobs == [sha] and reads.records == []
    assert _dangerous(doc) == {f"{first_run.pathspec}/start/1:payload",
                               f"{first_run.pathspec}/end/2:payload"}

    # A new run: its records, metadata and new blobs are read; the rest is cached.
    second_run = flow_env.run(TINY_FLOW.replace("3.0]", "4.0]"))
    reads.reset()
    code, doc = _scan(flow_env, capsys, cache)
    assert doc["summary"]["tasks"] == 6 and reads.task_metadata == 1
    assert sorted(reads.records) == sorted(
        f"TinyFlow/{second_run.run_id}/{t}/0.data.json" for t in ("_parameters/0", "start/1",
                                                                   "end/2"))
    assert {r["target"].split("/")[1] for r in doc["results"]} == {first_run.run_id,
                                                                  second_run.run_id}

    # A new attempt of a task (attempt 1 done, its record naming a canary blob): read.
    task = _task_dir(flow_env, second_run, "end", "2")
    record = json.loads((task / "0.data.json").read_text())
    record["objects"]["count"] = _write_blob(flow_env, "TinyFlow", canary_reduce_pickle(canary))
    (task / "1.data.json").write_text(json.dumps(record))
    (task / "1.attempt.json").write_text((task / "0.attempt.json").read_text())
    (task / "1.DONE.lock").write_text("")
    reads.reset()
    code, doc = _scan(flow_env, capsys, cache)
    assert reads.records == [f"TinyFlow/{second_run.run_id}/end/2/1.data.json"]
    assert f"{second_run.pathspec}/end/2:count" in _dangerous(doc)
    assert not canary.exists()


def test_runs_the_listing_lacks_or_places_elsewhere_go_through_the_client(
    flow_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone, moved, kept = (flow_env.run(TINY_FLOW) for _ in range(3))
    # "gone": the metadata lists it, its records were removed from the datastore.
    for attempt_file in (flow_env.workdir / ".metaflow" / "TinyFlow" / gone.run_id).glob(
            "*/*/0.*"):
        attempt_file.unlink()
    # "moved": its tasks record another datastore root, holding a canary in its payload.
    other = tmp_path / "other" / ".metaflow"
    shutil.copytree(flow_env.workdir / ".metaflow" / "TinyFlow", other / "TinyFlow",
                    ignore=lambda folder, names: [n for n in names if n == "_meta"])
    canary = tmp_path / "canary"
    sha = _write_blob(flow_env, "TinyFlow", canary_reduce_pickle(canary))
    shutil.copytree(flow_env.local_blob_path("TinyFlow", sha).parent,
                    other / "TinyFlow" / "data" / sha[:2], dirs_exist_ok=True)
    for task in ("start/1", "end/2"):
        data_json = other / "TinyFlow" / moved.run_id / task / "0.data.json"
        record = json.loads(data_json.read_text())
        record["objects"]["payload"] = sha
        data_json.write_text(json.dumps(record))
    meta = flow_env.workdir / ".metaflow" / "TinyFlow" / moved.run_id
    for ds_root in meta.glob("*/*/_meta/sysmeta_ds-root_*.json"):
        entry = json.loads(ds_root.read_text())
        ds_root.write_text(json.dumps({**entry, "value": str(other)}))
    # A run only the datastore has (no metadata): still audited, and counted.
    orphan = flow_env.workdir / ".metaflow" / "TinyFlow" / "999"
    shutil.copytree(flow_env.workdir / ".metaflow" / "TinyFlow" / kept.run_id, orphan,
                    ignore=lambda folder, names: [n for n in names if n == "_meta"])

    reads = Reads(monkeypatch)
    code, doc = _scan(flow_env, capsys, tmp_path / "cache.sqlite")
    assert code == 1 and sorted(reads.client_runs) == sorted([gone.run_id, moved.run_id])
    assert _dangerous(doc) == {f"{moved.pathspec}/start/1:payload",
                               f"{moved.pathspec}/end/2:payload"}
    incomplete = {r["target"] for r in doc["results"] if not r["complete"]}
    assert incomplete == {f"{gone.pathspec}/start/1", f"{gone.pathspec}/end/2"}
    assert doc["summary"]["datastore_only_runs"] == 1
    assert {r["target"].split("/")[1] for r in doc["results"]} == {
        gone.run_id, moved.run_id, kept.run_id, "999"}
    assert not canary.exists()
