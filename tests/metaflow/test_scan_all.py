"""``safeart scan --all`` and the verdict cache, on real runs of two flows: a re-scan of an
unchanged datastore fetches nothing, a changed policy or record re-scans, a blob
overwritten in place is caught with ``--rehash``, a corrupt or edited cache is never
trusted."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runscan_support import TINY_FLOW, scan_cli  # puts tests/ on sys.path
from payloads import canary_reduce_pickle

from safeart.metaflow.verdicts import VerdictCache, policy_fingerprint, scanner_fingerprint
from safeart.policy import Policy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OTHER_FLOW = TINY_FLOW.replace("TinyFlow", "OtherFlow").replace("[1.0, 2.0, 3.0]", "[4.0]")


@pytest.fixture
def two_flows(flow_env: Any) -> Any:
    flow_env.runs = [flow_env.run(TINY_FLOW), flow_env.run(OTHER_FLOW, name="other.py")]
    return flow_env


def _scan_json(env: Any, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code, out = scan_cli(env, capsys, "--format", "json", *argv)
    start = out.index("{")
    return code, json.loads(out[start:out.rindex("}") + 1])


def _verdicts(doc: dict) -> dict[str, str]:
    return {r["target"]: r["verdict"] for r in doc["results"]}


def test_all_scans_every_flow_and_a_rescan_fetches_nothing(
    two_flows: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(tmp_path / "cache.sqlite")
    code, first = _scan_json(two_flows, capsys, "--all", "--cache", cache, "--jobs", "2")
    assert code == 0
    targets = set(_verdicts(first))
    assert {t.split("/")[0] for t in targets} == {"TinyFlow", "OtherFlow"}
    s = first["summary"]
    # 2 flows x (start, end and the _parameters task the client hides but start loads)
    assert s["flows"] == 2 and s["tasks"] == 6 and s["blobs_cached"] == 0
    assert s["blobs_fetched"] == s["blobs"] > 0

    code, again = _scan_json(two_flows, capsys, "--all", "--cache", cache)
    assert code == 0 and _verdicts(again) == _verdicts(first)
    s = again["summary"]
    assert s["blobs_fetched"] == 0 and s["bytes_fetched"] == 0 and s["blobs_cached"] == s["blobs"]

    # Another policy is another fingerprint: nothing cached applies to it.
    code, other = _scan_json(two_flows, capsys, "--all", "--cache", cache,
                             "--allow", "mypkg.models.Net")
    assert code == 0 and other["summary"]["blobs_cached"] == 0
    # Without a cache (and with --no-cache) everything is fetched again.
    code, plain = _scan_json(two_flows, capsys, "--all", "--no-cache")
    assert "blobs_cached" not in plain["summary"] and plain["summary"]["blobs_fetched"] > 0


def test_blob_overwritten_in_place_is_refetched_by_all_and_caught_by_rehash_on_a_run(
    two_flows: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = two_flows.runs[0]
    cache = str(tmp_path / "cache.sqlite")
    assert _scan_json(two_flows, capsys, "--all", "--cache", cache)[0] == 0
    assert _scan_json(two_flows, capsys, run.pathspec, "--cache", cache)[0] == 0
    with two_flows.client():
        sha = two_flows.task_datastore(run.flow, run.run_id, "start")._objects["payload"]
    canary = tmp_path / "canary"
    two_flows.local_blob_path(run.flow, sha).write_bytes(
        gzip.compress(canary_reduce_pickle(canary)))
    payloads = {f"{run.pathspec}/start/1:payload", f"{run.pathspec}/end/2:payload"}

    # --all lists the datastore: the rewritten blob has a new identity, so it is fetched.
    code, doc = _scan_json(two_flows, capsys, "--all", "--cache", cache)
    assert code == 1 and doc["summary"]["blobs_fetched"] == 1
    assert {t for t, v in _verdicts(doc).items() if v == "dangerous"} == payloads
    # A run scan has no listing: its cached verdict stands for the content address (the
    # documented limit), and --rehash fetches and checks every blob.
    assert _scan_json(two_flows, capsys, run.pathspec, "--cache", cache)[0] == 0
    code, doc = _scan_json(two_flows, capsys, run.pathspec, "--cache", cache, "--rehash")
    assert code == 1 and {t for t, v in _verdicts(doc).items() if v == "dangerous"} == payloads
    assert doc["summary"]["blobs_fetched"] == doc["summary"]["blobs"]
    # The tampered bytes were not cached as the blob's verdict.
    assert _scan_json(two_flows, capsys, "--all", "--cache", cache)[0] == 1
    assert not canary.exists()

    # A record pointed at another blob names another sha: fetched and scanned.
    evil = canary_reduce_pickle(canary) + b"."
    new_sha = hashlib.sha1(evil).hexdigest()
    path = two_flows.local_blob_path(run.flow, new_sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(evil))
    data_json = two_flows.workdir / ".metaflow" / run.flow / run.run_id / "start/1/0.data.json"
    record = json.loads(data_json.read_text())
    record["objects"]["count"] = new_sha
    data_json.write_text(json.dumps(record))
    code, doc = _scan_json(two_flows, capsys, "--all", "--cache", cache, "--artifact", "count")
    assert code == 1 and _verdicts(doc)[f"{run.pathspec}/start/1:count"] == "dangerous"


def test_corrupt_or_edited_cache_is_never_trusted(
    two_flows: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"not a database" * 100)
    with pytest.warns(RuntimeWarning, match="verdict cache .* is unusable"):
        code, doc = _scan_json(two_flows, capsys, "--all", "--cache", str(cache))
    assert code == 0 and doc["summary"]["blobs_fetched"] == doc["summary"]["blobs"]

    cache.unlink()
    assert _scan_json(two_flows, capsys, "--all", "--cache", str(cache))[0] == 0
    with sqlite3.connect(cache) as db:  # rewrite every cached outcome without its checksum
        db.execute("UPDATE verdicts SET value = replace(value, '\"complete\":true', "
                   "'\"complete\":true ')")
        db.execute("UPDATE records SET value = replace(value, '\"objects\"', '\"objects\" ')")
    code, doc = _scan_json(two_flows, capsys, "--all", "--cache", str(cache))
    assert code == 0 and doc["summary"]["blobs_cached"] == 0
    assert doc["summary"]["tasks"] == 6 and len(doc["results"]) > 4


def test_fingerprints_follow_policy_and_scanner() -> None:
    base = Policy()
    assert policy_fingerprint(base) == policy_fingerprint(Policy())
    assert policy_fingerprint(base) != policy_fingerprint(base.extend(["mypkg.Net"]))
    assert policy_fingerprint(base) != policy_fingerprint(
        base.extend(aliases={"__main__.Net": "mypkg.Net"}))
    lower = base.extend(limits=base.limits.updated({"max_opcodes": 10}))
    assert policy_fingerprint(base) != policy_fingerprint(lower)
    assert scanner_fingerprint().startswith(__import__("safeart").__version__ + "+")


def test_unwritable_cache_location_warns_and_scans(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning):
        assert VerdictCache.open(blocker / "sub" / "cache.sqlite", Policy()) is None
