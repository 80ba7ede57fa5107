"""Signed artifacts end to end, with real Metaflow runs on a local datastore.

A strict-mode flow runs with ``$SAFEART_SIGNING_KEY``; then the datastore is tampered with
the way a datastore writer (threat-model.md, actor A1) can, and every read with
``$SAFEART_TRUST_KEYS`` set must refuse the artifact, naming it:

1. a swapped blob: another valid, allowlisted safeart blob written over the artifact's blob;
2. a replay: another run's blob *and* its signature put into this run's record;
3. altered metadata: the record's object key pointed at another artifact's (valid) blob, or
   its ``serializer_info`` signature removed or replaced.

Readers checked: ``safeart verify`` (exit 1 and a table) and ``safeart.load``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from safeart.cli import main as safeart_main
from safeart.errors import UnsafeArtifactError
from safeart.settings import SIGNING_KEY_ENV, TRUST_KEYS_ENV
from safeart.signing import SIG_FIELD, IntegrityError, digest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FLOW = """
import numpy as np
import safeart.metaflow
from metaflow import FlowSpec, Parameter, step

safeart.metaflow.strict()


class SignedFlow(FlowSpec):
    seed = Parameter("seed", default=1)

    @step
    def start(self):
        self.weights = np.arange(8, dtype="float32") * self.seed
        self.old_weights = np.full(8, -1.0, dtype="float32")
        self.next(self.end)

    @step
    def end(self):  # inherits weights and old_weights from start
        self.total = float(self.weights.sum())


if __name__ == "__main__":
    SignedFlow()
"""


def _run(flow_env: Any, keys: Any, seed: int = 1) -> str:
    result = flow_env.run(FLOW, "--seed", str(seed), env={SIGNING_KEY_ENV: str(keys.private_path)})
    return result.run_id


def _data_json(flow_env: Any, run_id: str, step: str) -> Path:
    (path,) = (flow_env.workdir / ".metaflow" / "SignedFlow" / run_id / step).glob("*/0.data.json")
    return path


def _edit_record(flow_env: Any, run_id: str, step: str, edit: Callable[[dict], None]) -> None:
    path = _data_json(flow_env, run_id, step)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _repoint_metadata(flow_env: Any, run_id: str, step: str, name: str, sha: str) -> None:
    """Where the client looks the blob key up: the local metadata's artifact record."""
    meta = _data_json(flow_env, run_id, step).parent / "_meta" / f"0_artifact_{name}.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha": sha}))


def _record(flow_env: Any, run_id: str, step: str) -> dict:
    return json.loads(_data_json(flow_env, run_id, step).read_text())


def _verify(flow_env: Any, keys: Any, target: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with flow_env.client():
        code = safeart_main(["verify", target, "--trust-key", str(keys.public_path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _load(flow_env: Any, keys: Any, target: str, name: str) -> Any:
    import safeart

    with flow_env.client():
        os.environ[TRUST_KEYS_ENV] = str(keys.public_path)  # restored by client()
        return safeart.load(target, name)


def _refused_by_load(flow_env: Any, keys: Any, target: str, name: str, reason: str) -> IntegrityError:
    with pytest.raises(IntegrityError) as info:
        _load(flow_env, keys, target, name)
    assert info.value.reason == reason
    assert f":{name}" in str(info.value) and info.value.artifact.endswith(f":{name}")
    return info.value


def _refused_by_metaflow(flow_env: Any, keys: Any, task: str, name: str, reason: str) -> None:
    """Metaflow's own read (``task[name].data``) refuses it too, through safeart's serializer
    hooks. The client takes the blob's key from the *metadata* record (the local metadata's
    ``_meta/0_artifact_<name>.json``), the signature from ``data.json``: a writer rewrites
    both."""
    with flow_env.client() as mf:
        os.environ[TRUST_KEYS_ENV] = str(keys.public_path)  # restored by client()
        with pytest.raises(IntegrityError) as info:
            mf.Task(task)[name].data
    assert info.value.reason == reason and info.value.artifact == f"{task}:{name}"


def _task(flow_env: Any, run_id: str, step: str) -> str:
    return f"SignedFlow/{run_id}/{step}/{_data_json(flow_env, run_id, step).parent.name}"


# -- the signed run ------------------------------------------------------------------------
def test_signed_run_records_signatures_and_verifies_clean(flow_env, keys, capsys) -> None:
    run_id = _run(flow_env, keys)
    info = _record(flow_env, run_id, "start")["info"]["weights"]
    sig = info["serializer_info"][SIG_FIELD]
    assert sig["key"] == keys.key_id and sig["ps"].startswith(f"SignedFlow/{run_id}/start/")
    assert sig["ps"].endswith(":weights")
    end = _record(flow_env, run_id, "end")["info"]
    # end never touches old_weights: it inherits start's record, signed where it was produced
    start_old = _record(flow_env, run_id, "start")["info"]["old_weights"]["serializer_info"]
    assert end["old_weights"]["serializer_info"][SIG_FIELD] == start_old[SIG_FIELD]
    # end read weights, so Metaflow re-saved it there: signed under end's own pathspec
    assert end["weights"]["serializer_info"][SIG_FIELD]["ps"].startswith(f"SignedFlow/{run_id}/end/")

    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}", capsys)
    assert code == 0, out
    assert f"SignedFlow/{run_id}: verified" in out and " 0 failed" in out
    assert "weights" in out and f"ok ({keys.key_id})" in out
    assert float(_load(flow_env, keys, f"SignedFlow/{run_id}", "weights").sum()) == 28.0
    with flow_env.client() as mf:  # Metaflow's own read verifies (and passes) too
        os.environ[TRUST_KEYS_ENV] = str(keys.public_path)
        assert float(mf.Run(f"SignedFlow/{run_id}").data.total) == 28.0


def test_unsigned_run_fails_verification(flow_env, keys, capsys) -> None:
    run_id = flow_env.run(FLOW).run_id  # no signing key
    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}", capsys)
    assert code == 1 and "unsigned" in out and f"FAILED SignedFlow/{run_id}/start/" in out
    _refused_by_metaflow(flow_env, keys, _task(flow_env, run_id, "end"), "weights", "unsigned")
    _refused_by_load(flow_env, keys, f"SignedFlow/{run_id}", "weights", "unsigned")


# -- 1. swapped blob -----------------------------------------------------------------------
def test_swapped_blob_is_refused(flow_env, keys, capsys) -> None:
    run_id = _run(flow_env, keys)
    objects = _record(flow_env, run_id, "start")["objects"]
    victim = flow_env.local_blob_path("SignedFlow", objects["weights"])
    other = flow_env.local_blob_path("SignedFlow", objects["old_weights"])
    victim.write_bytes(other.read_bytes())  # a valid, allowlisted safeart blob (and its framing)
    meta = other.with_name(other.name + "_meta")
    if meta.exists():
        victim.with_name(victim.name + "_meta").write_bytes(meta.read_bytes())

    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}", capsys)
    assert code == 1, out
    assert f"FAILED SignedFlow/{run_id}/start/" in out and ":weights:" in out
    assert "bad-signature" in out and "changed" in out
    with pytest.raises(UnsafeArtifactError, match=":weights"):  # content address, then signature
        _load(flow_env, keys, f"SignedFlow/{run_id}", "weights")


# -- 2. replay from another run ------------------------------------------------------------
def test_blob_and_signature_replayed_from_another_run_are_refused(flow_env, keys, capsys) -> None:
    old_run = _run(flow_env, keys, seed=1)
    new_run = _run(flow_env, keys, seed=2)
    old = _record(flow_env, old_run, "start")

    def replay(record: dict) -> None:  # a consistent record: content address and signature valid
        record["objects"]["weights"] = old["objects"]["weights"]
        record["info"]["weights"] = old["info"]["weights"]

    _edit_record(flow_env, new_run, "start", replay)
    _repoint_metadata(flow_env, new_run, "start", "weights", old["objects"]["weights"])
    code, out = _verify(flow_env, keys, f"SignedFlow/{new_run}/start", capsys)
    assert code == 1, out
    assert "pathspec-mismatch" in out and f"run '{old_run}', not '{new_run}'" in out
    _refused_by_metaflow(flow_env, keys, _task(flow_env, new_run, "start"), "weights",
                         "pathspec-mismatch")
    err = _refused_by_load(flow_env, keys, _task(flow_env, new_run, "start"), "weights",
                           "pathspec-mismatch")
    assert f"SignedFlow/{old_run}/start/" in err.message


# -- 3. altered metadata -------------------------------------------------------------------
def test_record_pointing_at_another_artifacts_blob_is_refused(flow_env, keys, capsys) -> None:
    run_id = _run(flow_env, keys)

    def repoint(record: dict) -> None:  # the blob is valid and matches its content address
        record["objects"]["weights"] = record["objects"]["old_weights"]

    _edit_record(flow_env, run_id, "end", repoint)
    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}/end", capsys)
    assert code == 1, out
    assert ":weights" in out and "bad-signature" in out
    with flow_env.client() as mf:  # data.json alone does not redirect the client (metadata)
        os.environ[TRUST_KEYS_ENV] = str(keys.public_path)
        assert float(mf.Task(_task(flow_env, run_id, "end"))["weights"].data.sum()) == 28.0
    _refused_by_load(flow_env, keys, f"SignedFlow/{run_id}", "weights", "bad-signature")
    old_sha = _record(flow_env, run_id, "end")["objects"]["old_weights"]
    _repoint_metadata(flow_env, run_id, "end", "weights", old_sha)
    _refused_by_metaflow(flow_env, keys, _task(flow_env, run_id, "end"), "weights", "bad-signature")


def test_signature_moved_from_another_artifact_is_refused(flow_env, keys, capsys) -> None:
    run_id = _run(flow_env, keys)

    def move(record: dict) -> None:  # old_weights' blob AND signature, under the name weights
        record["objects"]["weights"] = record["objects"]["old_weights"]
        record["info"]["weights"] = record["info"]["old_weights"]

    _edit_record(flow_env, run_id, "end", move)
    _repoint_metadata(flow_env, run_id, "end", "weights",
                      _record(flow_env, run_id, "end")["objects"]["old_weights"])
    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}/end", capsys)
    assert code == 1 and "artifact name 'old_weights', not 'weights'" in out, out
    _refused_by_metaflow(flow_env, keys, _task(flow_env, run_id, "end"), "weights",
                         "pathspec-mismatch")
    _refused_by_load(flow_env, keys, f"SignedFlow/{run_id}", "weights", "pathspec-mismatch")


def test_stripped_signature_is_refused(flow_env, keys, capsys) -> None:
    run_id = _run(flow_env, keys)

    def strip(record: dict) -> None:
        del record["info"]["weights"]["serializer_info"][SIG_FIELD]

    _edit_record(flow_env, run_id, "end", strip)
    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}", capsys)
    assert code == 1 and "unsigned" in out, out
    _refused_by_metaflow(flow_env, keys, _task(flow_env, run_id, "end"), "weights", "unsigned")
    _refused_by_load(flow_env, keys, f"SignedFlow/{run_id}", "weights", "unsigned")


def test_signature_by_an_untrusted_key_is_refused(flow_env, keys, tmp_path, capsys) -> None:
    from safeart.signing import keygen

    stranger = keygen(tmp_path / "stranger.pem")
    run_id = _run(flow_env, stranger)
    code, out = _verify(flow_env, keys, f"SignedFlow/{run_id}", capsys)
    assert code == 1 and "unknown-key" in out, out
    _refused_by_metaflow(flow_env, keys, _task(flow_env, run_id, "end"), "weights", "unknown-key")
    _refused_by_load(flow_env, keys, f"SignedFlow/{run_id}", "weights", "unknown-key")


def test_signature_covers_the_stored_bytes(flow_env, keys) -> None:
    """The digest signed is the sha256 of the exact blob Metaflow stores (the bytes whose
    sha1 is the content address), not of a re-encoding."""
    run_id = _run(flow_env, keys)
    record = _record(flow_env, run_id, "start")
    from safeart.metaflow.stored import RunDatastore
    from safeart.signing import Verifier

    with flow_env.client() as mf:
        store = RunDatastore()
        (art,), _ = store.artifacts([mf.Step(f"SignedFlow/{run_id}/start").task], ["weights"])
        (blob,) = store.fetch([art])
    assert blob.intact and art.sha == record["objects"]["weights"]
    Verifier.from_files([str(keys.public_path)]).verify(
        art.pathspec, digest(blob.data), art.serializer_info[SIG_FIELD]
    )


def test_resumed_run_carries_the_origin_runs_signatures(flow_env, keys, capsys) -> None:
    """threat-model.md 5.10, resumed runs: ``resume`` clones the origin run's records, whose
    signatures name the origin run id, so the clone's artifacts fail the run check."""
    source = FLOW.replace("        self.total = float(self.weights.sum())",
                          "        import os\n        assert not os.environ.get('FAIL_END')\n"
                          "        self.total = float(self.weights.sum())")
    signing = {SIGNING_KEY_ENV: str(keys.private_path)}
    origin = flow_env.run(source, env={**signing, "FAIL_END": "1"}, check=False)
    assert not origin.ok
    resumed = flow_env.cli(flow_env.workdir / "flow.py", "resume", env=signing)
    assert resumed.ok, resumed.output[-3000:]
    code, out = _verify(flow_env, keys, f"SignedFlow/{resumed.run_id}/start", capsys)
    assert code == 1 and "pathspec-mismatch" in out, out
    assert f"run '{origin.run_id}', not '{resumed.run_id}'" in out
    # the re-executed end re-saved what it read: signed for the resumed run
    code, out = _verify(flow_env, keys, _task(flow_env, resumed.run_id, "end") + ":total", capsys)
    assert code == 0, out
