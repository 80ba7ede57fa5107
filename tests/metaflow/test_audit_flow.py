"""The audit flow end to end: a real ``SafeartAuditFlow`` run fans out over the runs of
two flows (one with a blob swapped for a canary pickle) and joins one JSON/SARIF/text
report and a card; ``--fail-on dangerous`` fails the run."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from runscan_support import TINY_FLOW  # puts tests/ on sys.path
from payloads import canary_reduce_pickle

import safeart.metaflow.audit_flow as audit_flow

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OTHER_FLOW = TINY_FLOW.replace("TinyFlow", "OtherFlow")
FLOW_FILE = Path(audit_flow.__file__)


def test_audit_flow_fans_out_and_joins_one_report(flow_env: Any, tmp_path: Path) -> None:
    runs = [flow_env.run(TINY_FLOW), flow_env.run(TINY_FLOW),
            flow_env.run(OTHER_FLOW, name="other.py")]
    bad = runs[1]
    with flow_env.client():
        sha = flow_env.task_datastore(bad.flow, bad.run_id, "start")._objects["payload"]
    canary = tmp_path / "canary"
    flow_env.local_blob_path(bad.flow, sha).write_bytes(
        gzip.compress(canary_reduce_pickle(canary)))

    result = flow_env.cli(FLOW_FILE, "run", "--runs-per-task", "2", "--jobs", "2")
    assert result.ok, result.output[-4000:]
    assert "auditing 3 runs of 2 flows in 2 tasks" in result.output
    with flow_env.client() as mf:
        run = mf.Flow("SafeartAuditFlow")[result.run_id]
        assert len(list(run["audit"])) == 2  # the foreach fan-out
        join = run["join"].task
        doc = json.loads(join["report_json"].data)
        sarif = json.loads(join["report_sarif"].data)
        summary = join["summary"].data
        cards = mf.cards.get_cards(join, id="audit")
        html = cards[0].get()
    targets = {r["target"].rsplit("/", 2)[0] for r in doc["results"]}
    assert targets == {r.pathspec for r in runs}
    dangerous = {r["target"] for r in doc["results"] if r["verdict"] == "dangerous"}
    # Both TinyFlow runs stored the same payload: one blob, swapped for both.
    assert dangerous == {f"{r.pathspec}/{t}:payload" for r in runs[:2] for t in ("start/1", "end/2")}
    assert summary["dangerous"] == 4 and summary["tasks"] == 6
    assert any(res["properties"]["name"] == "builtins.open" for res in sarif["runs"][0]["results"])
    card_data = _card_text(html)
    assert "safeart audit" in card_data and f"{bad.pathspec}/start/1:payload" in card_data
    assert "SafeartAuditFlow" not in targets
    assert not canary.exists()

    failing = flow_env.cli(FLOW_FILE, "run", "--flows", "TinyFlow", "--fail-on", "dangerous")
    assert not failing.ok and "the audit found artifacts at or above dangerous" in failing.output
    clean = flow_env.cli(FLOW_FILE, "run", "--flows", "OtherFlow", "--fail-on", "dangerous")
    assert clean.ok, clean.output[-3000:]


def _card_text(html: str) -> str:
    """The card's data (Metaflow embeds it base64-encoded in the HTML)."""
    texts = []
    for blob in re.findall(r"[A-Za-z0-9+/]{400,}={0,2}", html):
        try:
            texts.append(base64.b64decode(blob).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
    return "\n".join(texts)


def test_shards_and_run_listing_helpers() -> None:
    assert audit_flow.shards(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert audit_flow.shards([], 3) == []
