"""Every Metaflow read path checks what it decodes (issue 15): the client (``task.data.x``)
and downstream steps refuse a blob that does not hash to the content address Metaflow
fetched it by -- safeart-encoded always, pickled under enforcement -- naming the artifact;
with ``$SAFEART_TRUST_KEYS`` a replayed or re-pointed record is refused by its signature.

One module fixture runs the flows (a signed safeart flow twice, a pickled flow once), then
tampers with the local datastore the way someone with write access to it could:

* SignedFlow run 1: the blob file of ``x`` now holds ``y``'s (valid, allowlisted) blob;
* PlainFlow (the same flow, pickled): the blob file of ``x`` now holds ``y``'s (valid,
  scan-clean) pickle;
* SignedFlow run 2, end task record: ``w`` replaced by run 1's record of ``w`` (blob and
  signature intact, from another run), and ``y`` re-pointed at run 2's ``w`` blob.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import safeart
import safeart.metaflow
from safeart.signing import IntegrityError, keygen

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FLOW = """
{opt_in}
from metaflow import FlowSpec, current, step


class {name}(FlowSpec):
    @step
    def start(self):
        self.x = {{"v": 1, "run": current.run_id}}
        self.y = {{"v": 2, "run": current.run_id}}
        self.w = {{"v": 3, "run": current.run_id}}
        self.next(self.a)

    @step
    def a(self):
        self.seen = self.x["v"]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {name}()
"""
SIGNED = FLOW.format(opt_in="import safeart.metaflow", name="SignedFlow")
PLAIN = FLOW.format(opt_in="", name="PlainFlow")  # pickled


@dataclass
class Runs:
    env: Any
    keys: Any
    signed: Any
    signed2: Any
    plain: Any
    resumed_signed: Any = None
    resumed_plain: Any = None

    def end(self, run: Any) -> str:
        with self.env.client() as mf:
            return mf.Step(f"{run.flow}/{run.run_id}/end").task.pathspec


@pytest.fixture(scope="module")
def runs(make_flow_env: Any) -> Runs:
    env = make_flow_env("integrity")
    keys = keygen(env.workdir / "keys" / "flows.pem")
    signing = {"SAFEART_SIGNING_KEY": str(keys.private_path)}
    with ThreadPoolExecutor(2) as pool:
        signed = pool.submit(env.run, SIGNED, name="signed.py", env=signing)
        plain = pool.submit(env.run, PLAIN, name="plain.py")
        signed, plain = signed.result(), plain.result()
    signed2 = env.cli(env.workdir / "signed.py", "run", env=signing)
    assert signed2.ok, signed2.output[-4000:]
    runs = Runs(env, keys, signed, signed2, plain)
    _swap_blob(env, signed, "x", "y")
    _swap_blob(env, plain, "x", "y")
    _edit_end_record(runs)
    runs.resumed_signed = env.cli(env.workdir / "signed.py", "resume", "--origin-run-id",
                                  signed.run_id, "a", env=signing)
    runs.resumed_plain = env.cli(env.workdir / "plain.py", "resume", "--origin-run-id",
                                 plain.run_id, "a", env={"SAFEART_ENFORCE": "1"})
    return runs


def _swap_blob(env: Any, run: Any, victim: str, source: str) -> None:
    """Overwrite ``victim``'s blob file with ``source``'s (same framing, valid content)."""
    with env.client():
        objects = env.task_datastore(run.flow, run.run_id, "start")._objects
    shutil.copyfile(env.local_blob_path(run.flow, objects[source]),
                    env.local_blob_path(run.flow, objects[victim]))


def _task_dir(runs: Runs, run: Any) -> Path:
    task = runs.end(run).split("/")[-1]
    return runs.env.workdir / ".metaflow" / run.flow / run.run_id / "end" / task


def _edit_end_record(runs: Runs) -> None:
    """Rewrite run 2's end-task records, both where tasks read them (``data.json``) and where
    the client does (the local metadata service's ``_meta/0_artifact_<name>.json``)."""
    first = json.loads((_task_dir(runs, runs.signed) / "0.data.json").read_text())
    task = _task_dir(runs, runs.signed2)
    second = json.loads((task / "0.data.json").read_text())
    w_sha = second["objects"]["w"]
    for part in ("objects", "info"):  # replay run 1's w, blob and signature intact
        second[part]["w"] = first[part]["w"]
    second["objects"]["y"] = w_sha  # re-point y at run 2's w blob
    (task / "0.data.json").write_text(json.dumps(second))
    for name, sha in (("w", first["objects"]["w"]), ("y", w_sha)):
        meta = task / "_meta" / f"0_artifact_{name}.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha": sha}))


@pytest.fixture
def client(runs: Runs) -> Iterator[Any]:
    with runs.env.client() as mf:
        yield mf
    safeart.metaflow.enforce(False)


@pytest.fixture
def trusting(runs: Runs, client: Any) -> Iterator[Any]:
    os.environ["SAFEART_TRUST_KEYS"] = str(runs.keys.public_path)  # the client restores env
    yield client


def test_client_refuses_a_swapped_safeart_blob_naming_the_artifact(runs: Runs, client: Any):
    task = client.Task(runs.end(runs.signed))
    with pytest.raises(safeart.UnsafeArtifactError) as refused:
        task.data.x
    assert refused.value.artifact == f"{task.pathspec}:x"
    message = str(refused.value)
    assert message.startswith(f"{task.pathspec}:x: refused to load")
    assert "does not hash to its content address" in message and "hint:" in message
    assert task.data.y == {"v": 2, "run": runs.signed.run_id}  # the source blob is intact


def test_client_refuses_a_swapped_pickle_blob_under_enforcement_only(runs: Runs, client: Any):
    task = client.Task(runs.end(runs.plain))
    run = runs.plain.run_id
    assert task.data.x == {"v": 2, "run": run}  # Metaflow's own pickle reads y's bytes as x
    safeart.metaflow.enforce()
    with pytest.raises(safeart.UnsafeArtifactError, match="content address") as refused:
        task.data.x
    assert refused.value.artifact == f"{task.pathspec}:x"
    assert task.data.y == {"v": 2, "run": run}


def test_downstream_steps_refuse_tampered_artifacts(runs: Runs):
    for resumed, flow in ((runs.resumed_signed, "SignedFlow"), (runs.resumed_plain, "PlainFlow")):
        assert not resumed.ok, resumed.output[-3000:]
        assert re.search(rf"{flow}/{resumed.run_id}/start/\d+:x: refused to load",
                         resumed.output), resumed.output[-3000:]
        assert "does not hash to its content address" in resumed.output


def test_signed_artifacts_verify_and_replayed_or_repointed_records_are_refused(
    runs: Runs, client: Any
):
    task = client.Task(runs.end(runs.signed2))
    run2 = runs.signed2.run_id
    # Without trust keys the edited record silently loads another run's value.
    assert task.data.w == {"v": 3, "run": runs.signed.run_id}
    os.environ["SAFEART_TRUST_KEYS"] = str(runs.keys.public_path)  # the client restores env
    assert task.data.x == {"v": 1, "run": run2}  # signed in start, inherited by end
    with pytest.raises(IntegrityError) as replayed:
        task.data.w
    assert replayed.value.reason == "pathspec-mismatch"
    assert str(replayed.value).startswith(f"{task.pathspec}:w: ")
    with pytest.raises(IntegrityError) as repointed:
        task.data.y
    assert repointed.value.reason == "bad-signature"
    assert repointed.value.artifact == f"{task.pathspec}:y"


def test_trust_keys_refuse_unsigned_pickles_but_not_metaflows_own(runs: Runs, trusting: Any):
    safeart.metaflow.enforce()
    run = trusting.Run(f"PlainFlow/{runs.plain.run_id}")
    assert run.successful  # _success: Metaflow's own artifact, scanned, never signed
    with pytest.raises(IntegrityError) as unsigned:
        run["end"].task.data.y
    assert unsigned.value.reason == "unsigned"
