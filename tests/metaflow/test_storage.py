"""Raw (uncompressed) storage of large safeart blobs in Metaflow's content-addressed store:
real flows on the local and the S3 datastore, stock-client reads, the opt-out and the guard."""

from __future__ import annotations

import gzip
import json
import warnings

import pytest
from metaflow.datastore.content_addressed_store import ContentAddressedStore

import safeart
from safeart.errors import ConfigError
from safeart.metaflow import runtime, storage

FLOW = """
import safeart.metaflow
import torch
from metaflow import FlowSpec, step


class RawFlow(FlowSpec):
    @step
    def start(self):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(256, 256)  # 257 KiB of float32 weights: raw
        self.mask = torch.zeros(1 << 18)  # 1 MiB that gzip shrinks ~200x: gzipped
        self.config = {"lr": 0.1}  # a small safeart blob: gzipped
        self.total = float(self.model.weight.detach().sum())
        self.next(self.end)

    @step
    def end(self):
        assert float(self.model.weight.detach().sum()) == self.total  # the next task reads it back
        self.next_total = self.total


if __name__ == "__main__":
    RawFlow()
"""

STOCK_CLIENT = """
import json, sys
from metaflow import Run, namespace
namespace(None)
task = Run("RawFlow/{run_id}")["start"].task
model = task["model"].data
print(json.dumps({{"sum": float(model.weight.detach().sum()), "total": task["total"].data,
                  "mask": float(task["mask"].data.abs().sum()),
                  "opted_in": sys.modules["safeart.metaflow.state"].opted_in()}}))
"""


def _stored(env, run_id: str, name: str) -> tuple[dict, bytes]:
    """Metaflow's per-blob metadata and the stored bytes of artifact ``name`` of start."""
    with env.client():
        ds = env.task_datastore("RawFlow", run_id, "start")
        cas, key = ds._ca_store, ds._objects[name]
        path = cas._storage_impl.path_join(cas._prefix, key[:2], key)
        with cas._storage_impl.load_bytes([path]) as loaded:
            ((_, local_file, meta),) = list(loaded)
            with open(local_file, "rb") as file:
                return meta, file.read()


def _assert_raw(meta: dict, data: bytes) -> None:
    assert meta == {"cas_raw": True, "cas_version": 1}
    assert safeart.is_safeart(data) and not data.startswith(b"\x1f\x8b")


def _assert_gzipped(meta: dict, data: bytes) -> None:
    assert meta == {"cas_raw": False, "cas_version": 1}
    assert safeart.is_safeart(gzip.decompress(data))


def test_large_model_raw_small_and_compressible_gzipped_stock_client_reads(flow_env):
    result = flow_env.run(FLOW)
    _assert_raw(*_stored(flow_env, result.run_id, "model"))
    for name in ("mask", "config", "total"):
        _assert_gzipped(*_stored(flow_env, result.run_id, name))
    meta, data = _stored(flow_env, result.run_id, "_graph_info")  # Metaflow's own: pickle
    assert not meta["cas_raw"] and not safeart.is_safeart(gzip.decompress(data))

    got = flow_env.python(STOCK_CLIENT.format(run_id=result.run_id))
    assert got.ok, got.output[-4000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert out == {"sum": out["total"], "total": out["total"], "mask": 0.0, "opted_in": False}
    # The raw model was read from the local datastore file, not copied into the client's
    # blob cache (a second copy on the same disk); gzipped blobs are cached as before.
    cached = {p.stem for p in (flow_env.workdir / ".client_cache").rglob("*.blob")}
    with flow_env.client():
        objects = flow_env.task_datastore("RawFlow", result.run_id, "start")._objects
    assert objects["model"] not in cached and objects["mask"] in cached


def test_opt_out_restores_gzip(flow_env):
    result = flow_env.run(FLOW, env={storage.RAW_STORAGE_ENV: "0"})
    _assert_gzipped(*_stored(flow_env, result.run_id, "model"))


def test_malformed_opt_out_fails_the_save_naming_the_variable(flow_env):
    result = flow_env.run(FLOW, env={storage.RAW_STORAGE_ENV: "maybe"}, check=False)
    assert not result.ok and "SAFEART_RAW_STORAGE='maybe' is not a boolean" in result.output


def test_s3_run_stores_raw_and_reads_back(s3_flow_env):
    result = s3_flow_env.run(FLOW)
    _assert_raw(*_stored(s3_flow_env, result.run_id, "model"))  # metadata on the S3 object
    _assert_gzipped(*_stored(s3_flow_env, result.run_id, "config"))
    with s3_flow_env.client() as mf:
        run = mf.Run(f"RawFlow/{result.run_id}")
        model = run["start"].task["model"].data
        assert float(model.weight.detach().sum()) == run["end"].task["next_total"].data


def test_wants_raw_only_large_incompressible_safeart_blobs():
    torch = pytest.importorskip("torch")
    weights = safeart.dumps(torch.nn.Linear(256, 256))
    assert storage.wants_raw(weights)
    assert not storage.wants_raw(safeart.dumps(torch.nn.Linear(64, 64)))  # < 64 KiB
    assert not storage.wants_raw(safeart.dumps(torch.arange(1 << 16)))  # gzip: < 1/2
    assert not storage.wants_raw(weights[8:] + weights[:8])  # not a safeart blob


def _ignoring_raw(stock):
    def save_blobs(self, blob_iter, raw=False, len_hint=0, is_transfer=False):
        return stock(self, blob_iter, raw=False, len_hint=len_hint, is_transfer=is_transfer)
    return save_blobs


def _renamed(stock):
    def save_blobs(self, blobs, raw=False, len_hint=0, is_transfer=False):
        return stock(self, blobs, raw=raw, len_hint=len_hint, is_transfer=is_transfer)
    return save_blobs


def _other_layout(stock):
    def save_blobs(self, blob_iter, raw=False, len_hint=0, is_transfer=False):
        return stock(self, (b"v2" + blob for blob in blob_iter), raw, len_hint, is_transfer)
    return save_blobs


def _stock():
    stock = ContentAddressedStore.save_blobs
    while getattr(stock, "__wrapped__", None) is not None:  # an earlier install
        stock = stock.__wrapped__
    return stock


@pytest.mark.parametrize("changed", [_ignoring_raw, _other_layout])
def test_self_test_keeps_metaflow_behaviour_when_save_blobs_behaves_otherwise(
    monkeypatch, changed
):
    stock = _stock()
    assert storage.works(ContentAddressedStore, stock, ContentAddressedStore.load_blobs)
    altered = changed(stock)
    monkeypatch.setattr(ContentAddressedStore, "save_blobs", altered)
    monkeypatch.setattr(runtime, "_decided", {"unsupported": None})
    with pytest.warns(RuntimeWarning, match="stored gzip-compressed"):
        assert runtime.install_raw_storage() is False
    assert ContentAddressedStore.save_blobs is altered and not runtime.raw_storage_installed()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.install_raw_storage() is False  # decided once per process, warned once


def test_the_shared_version_check_covers_save_blobs():
    changed = type("Changed", (ContentAddressedStore,), {"save_blobs": _renamed(_stock())})
    problem = runtime._check({**runtime._classes(), "ContentAddressedStore": changed})
    assert problem is not None and problem.startswith("ContentAddressedStore.save_blobs(")


def test_install_is_idempotent_and_validates_the_switch(monkeypatch):
    monkeypatch.setattr(ContentAddressedStore, "save_blobs", ContentAddressedStore.save_blobs)
    assert runtime.install_raw_storage() and runtime.raw_storage_installed()
    installed = ContentAddressedStore.save_blobs
    assert runtime.install_raw_storage() and ContentAddressedStore.save_blobs is installed
    monkeypatch.setenv(storage.RAW_STORAGE_ENV, "perhaps")
    with pytest.raises(ConfigError, match="SAFEART_RAW_STORAGE"):
        runtime.install_raw_storage()
