"""Whole-datastore audit on an S3-compatible server: ``safeart scan --all`` cold, re-scanned
with a warm verdict cache, and a fetch with ``--jobs 1`` vs ``--jobs N``.

The datastore: ``--runs`` runs (default 5,000; ``--quick``: 50) of one flow on a moto S3
server on 127.0.0.1 (or, with ``--endpoint URL``, in a new bucket of an S3-compatible
server already running there: SeaweedFS, say), metadata local. Each run has one ``start``
task with a pickled array (16 KiB of float32, distinct per run), a pickled config dict,
every third run a safeart blob, every run the same shared ``_graph_info`` (stored once, as
Metaflow dedupes it); one run in 500 carries a canary payload (``builtins.open`` of a file
in the temp dir) instead of its array. Runs are not executed: each task is written through
Metaflow's own ``TaskDataStore`` (``init_task``/``save_artifacts``/``done``) and metadata
provider into a local staging root, then uploaded to the bucket with the object layout and
metadata Metaflow's S3 datastore uses. Every scan is the ``safeart`` CLI in a fresh
interpreter (wall time includes Python start-up and imports); the table also quotes the
time the scan itself reports. A bare listing of the flow's prefix (what every scan lists to
see objects rewritten in place) is timed too: the server's floor under a re-scan. The jobs
comparison scans the ``--jobs-runs`` newest runs (default 500) without a cache (``safeart
scan AuditBenchFlow --last K --no-cache --jobs J``), so the fetch dominates.

    python benchmarks/bench_audit.py [--runs N] [--jobs N] [--repeat N] [--quick]
                                     [--endpoint URL]
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

sys.path[:0] = [str(Path(__file__).resolve().parent),
                str(Path(__file__).resolve().parents[1] / "examples"),
                str(Path(__file__).resolve().parents[1] / "tests")]

from _common import clock, fmt, header, median, parse_args, ratio, table  # noqa: E402
from _env import Env, example_env, moto_s3, s3_bucket  # noqa: E402

FLOW = "AuditBenchFlow"


def _options(parser: Any) -> None:
    parser.add_argument("--runs", type=int, default=5000, help="runs in the datastore")
    parser.add_argument("--jobs", type=int, default=8, help="N of the --jobs N fetch")
    parser.add_argument("--jobs-runs", type=int, default=500,
                        help="runs fetched by the jobs comparison")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (datastore)")
    parser.add_argument("--endpoint", help="an S3-compatible server to use instead of moto "
                        "(dummy credentials; a new bucket is made in it)")


# -- the datastore -----------------------------------------------------------------------
def populate(stage: Path, runs: int, canary_dir: Path, bucket: str) -> dict[str, int]:
    """Write ``runs`` tasks through Metaflow's datastore and metadata APIs into ``stage``
    (datastore) and the local metadata root; the metadata says the data is in S3."""
    import numpy as np
    from metaflow.metadata_provider import MetaDatum
    from metaflow.datastore import FlowDataStore
    from metaflow.metaflow_environment import MetaflowEnvironment
    from metaflow.plugins.datastores.local_storage import LocalStorage
    from metaflow.plugins.metadata_providers.local import LocalMetadataProvider
    from payloads import canary_reduce_pickle

    import safeart

    class _Flow:
        name = FLOW

    metadata = LocalMetadataProvider(MetaflowEnvironment(_Flow()), _Flow(), None, None)
    store = FlowDataStore(FLOW, storage_impl=LocalStorage, ds_root=str(stage))
    graph = {"start": {"type": "start", "next": []}}
    counts = {"runs": runs, "safeart": 0, "canaries": 0}
    for i in range(runs):
        run_id = metadata.new_run_id()
        task_id = metadata.new_task_id(run_id, "start")
        metadata.register_metadata(run_id, "start", task_id, [
            MetaDatum("ds-type", "s3", "ds-type", []),
            MetaDatum("ds-root", f"s3://{bucket}/metaflow", "ds-root", []),
            MetaDatum("attempt", "0", "attempt", []),
        ])
        task = store.get_task_datastore(run_id, "start", task_id, attempt=0, mode="w")
        task.init_task()
        weights = np.random.default_rng(i).random(4096, dtype=np.float32)
        task.save_artifacts([("weights", weights), ("_graph_info", graph),
                             ("config", {"run": i, "lr": 0.1 * (i % 7), "tag": f"r{i}"})])
        extra: list[tuple[str, bytes, str, str]] = []
        if i % 3 == 0:
            extra.append(("model", safeart.dumps({"w": weights[:256]}), "safeart-v1",
                          "<class 'dict'>"))
            counts["safeart"] += 1
        if i % 500 == min(250, runs // 2):
            extra.append(("weights", canary_reduce_pickle(canary_dir / f"canary{i}"),
                          "pickle-v4", "<class 'numpy.ndarray'>"))
            counts["canaries"] += 1
        if extra:
            results = store.ca_store.save_blobs([blob for _, blob, _, _ in extra])
            for (name, blob, encoding, kind), saved in zip(extra, results):
                task._objects[name] = saved.key
                task._info[name] = {"size": len(blob), "type": kind, "encoding": encoding}
        task.done()
    return counts


def upload(stage: Path, endpoint: str, bucket: str, threads: int = 16) -> int:
    """Copy the staged datastore into the bucket (``_meta`` files become the objects'
    Metaflow user metadata, as Metaflow's S3 storage writes them)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="dummy",
                      aws_secret_access_key="dummy", region_name="us-east-1")
    files = [p for p in stage.rglob("*") if p.is_file() and not p.name.endswith("_meta")]

    def put(path: Path) -> None:
        meta = path.with_name(path.name + "_meta")
        extra = ({"Metadata": {"metaflow-user-attributes": meta.read_text()}}
                 if meta.exists() else {})
        s3.put_object(Bucket=bucket, Key=f"metaflow/{path.relative_to(stage)}",
                      Body=path.read_bytes(), **extra)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))
    return len(files)


# -- measurements --------------------------------------------------------------------------
def list_prefix(endpoint: str, bucket: str) -> tuple[float, int]:
    """A bare ``ListObjectsV2`` of the flow's prefix (boto3, one thread, the largest pages
    the server gives): seconds and keys. Every scan lists it (how in-place overwrites are
    seen), so this is the server's floor under any re-scan."""
    import boto3

    from safeart.metaflow.listing import PAGE_KEYS, Pages

    pages = Pages(boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="dummy",
                               aws_secret_access_key="dummy", region_name="us-east-1"))
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": f"metaflow/{FLOW}/",
                               "MaxKeys": PAGE_KEYS}
    started, keys = clock(), 0
    while True:
        page = pages.get(request)
        keys += len(page.get("Contents", ()))
        if not page.get("IsTruncated"):
            return clock() - started, keys
        request["ContinuationToken"] = page["NextContinuationToken"]


def scan(env: dict[str, str], cwd: Path, *argv: str) -> dict[str, Any]:
    """``safeart scan --format json ARGV`` in a fresh interpreter: wall seconds, the
    scan's own seconds and its summary."""
    out = cwd / "report.json"
    started = clock()
    proc = subprocess.run(
        [sys.executable, "-m", "safeart.cli", "scan", "--format", "json",
         "--output", str(out), *argv], env=env, cwd=cwd, capture_output=True, text=True)
    wall = clock() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"scan {argv} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(out.read_text())["summary"]
    return {"wall": wall, "seconds": summary["seconds"], "summary": summary}


@contextlib.contextmanager
def server(env: Env, endpoint: str | None) -> Iterator[tuple[dict[str, str], str]]:
    """moto on a free port, or the server at ``endpoint``, with a new bucket: the
    variables that point Metaflow at it, and the bucket's name."""
    bucket = env.root.name.lower().replace("_", "-")  # new per run, a valid bucket name
    if endpoint is None:
        with moto_s3(env, bucket) as s3:
            yield s3, bucket
    else:
        yield s3_bucket(endpoint, bucket), bucket


def main() -> None:
    args = parse_args(__doc__, _options)
    runs = 50 if args.quick else args.runs
    name = "moto S3" if args.endpoint is None else f"the S3 server at {args.endpoint}"
    header(f"Whole-datastore audit, {runs:,} runs on {name} (`bench_audit.py`)", args)
    with example_env("bench_audit") as env, server(env, args.endpoint) as (s3, bucket):
        endpoint = s3["METAFLOW_S3_ENDPOINT_URL"]
        stage = env.root / "stage"
        started = clock()
        counts = populate(stage, runs, env.root, bucket)
        written = clock() - started
        started = clock()
        objects = upload(stage, endpoint, bucket)
        print(f"datastore: {counts} written in {written:.1f} s; {objects:,} objects "
              f"uploaded in {clock() - started:.1f} s", flush=True)
        # Every scan runs the same snapshot of the code: the scanner fingerprint (part of
        # the cache key) hashes safeart's sources, which may change under a working tree.
        code = env.root / "code"
        shutil.copytree(Path(__file__).resolve().parents[1] / "safeart", code / "safeart",
                        ignore=shutil.ignore_patterns("__pycache__"))
        scan_env = {**os.environ, **s3, "PYTHONPATH": str(code)}
        first: list[dict[str, Any]] = []
        again: list[dict[str, Any]] = []
        serial: list[dict[str, Any]] = []
        parallel: list[dict[str, Any]] = []
        listed: list[tuple[float, int]] = []
        jobs = str(args.jobs)
        subset = [FLOW, "--last", str(min(runs, args.jobs_runs)), "--no-cache"]
        for i in range(args.repeat):  # A B A B: machine load hits every variant
            cache = str(env.root / f"cache{i}.sqlite")
            first.append(scan(scan_env, env.root, "--all", "--cache", cache, "--jobs", jobs))
            again.append(scan(scan_env, env.root, "--all", "--cache", cache, "--jobs", jobs))
            serial.append(scan(scan_env, env.root, *subset, "--jobs", "1"))
            parallel.append(scan(scan_env, env.root, *subset, "--jobs", jobs))
            listed.append(list_prefix(endpoint, bucket))
        s, r = first[-1]["summary"], again[-1]["summary"]
        if s["dangerous"] < counts["canaries"] or r["dangerous"] != s["dangerous"]:
            raise SystemExit(f"not all {counts['canaries']} canaries reported: first {s}, "
                             f"re-scan {r}")
        if r["blobs_fetched"] or r["tasks"] != s["tasks"] or s["tasks"] < runs:
            raise SystemExit(f"the warm re-scan is not incremental or lost tasks: {r}")
        if any((env.root / f"canary{i}").exists() for i in range(runs)):
            raise SystemExit("a canary payload ran")
        med = {name: (median(x["wall"] for x in rows), median(x["seconds"] for x in rows))
               for name, rows in [("first", first), ("again", again), ("serial", serial),
                                  ("parallel", parallel)]}
        rows = [
            ["first `scan --all` (cold cache)", *med["first"], s["blobs_fetched"], "1.00×"],
            ["re-scan, warm cache", *med["again"], r["blobs_fetched"],
             ratio(med["again"][0], med["first"][0])],
            [f"bare listing of the flow prefix ({listed[-1][1]:,} keys, boto3)",
             median(t for t, _ in listed), "–", 0, ratio(median(t for t, _ in listed),
                                                         med["first"][0])],
            [f"{subset[2]} runs, `--no-cache --jobs 1`", *med["serial"],
             serial[-1]["summary"]["blobs_fetched"], "–"],
            [f"{subset[2]} runs, `--no-cache --jobs {jobs}`", *med["parallel"],
             parallel[-1]["summary"]["blobs_fetched"], "–"],
        ]
        table(f"scan --all of {runs:,} runs ({s['tasks']:,} tasks, {s['artifacts']:,} "
              f"artifacts, {s['blobs']:,} distinct blobs), medians of {args.repeat}",
              ["", "wall s", "scan s", "blobs fetched", "wall vs first"], rows, args.out,
              notes=[
                  f"re-scan / first: {ratio(med['again'][0], med['first'][0])} wall, "
                  f"{ratio(med['again'][1], med['first'][1])} scan time (target ≤ 0.05×)",
                  "re-scan without the server's listing floor / first: "
                  f"{ratio(med['again'][0] - median(t for t, _ in listed), med['first'][0])} "
                  "wall",
                  f"jobs 1 / jobs {args.jobs}: {ratio(med['serial'][0], med['parallel'][0])} "
                  "wall",
                  f"findings: {s['dangerous']} dangerous artifacts (the {counts['canaries']} "
                  f"canaries), {s['unknown']} unknown; no canary ran",
              ])
        if not args.quick and med["again"][0] > 0.05 * med["first"][0]:
            print(f"NOTE: re-scan is {fmt(med['again'][0] / med['first'][0])}× of the first "
                  "(target ≤ 0.05×)")


if __name__ == "__main__":
    main()
