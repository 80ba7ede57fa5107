"""Metaflow artifacts: safeart vs Metaflow's default pickle path, saving and loading a model.

Part 1, the datastore: ``TaskDataStore.save_artifacts`` / ``load_artifacts`` on a local
``FlowDataStore``, each measurement in a fresh interpreter (time, peak RSS, on-disk size).
Part 2, real flows: ``python flow.py run`` with and without the artifact (the difference is
what persisting it costs the flow), then a fresh client process reading
``task["model"].data`` (cold client cache), with peak RSS of the step and of the client.

    python benchmarks/bench_metaflow.py            # 10 MB, 100 MB, 2,000 small tensors
    python benchmarks/bench_metaflow.py --big      # adds the 1 GB model (minutes)
    python benchmarks/bench_metaflow.py --quick    # smoke test, seconds
    python benchmarks/bench_metaflow.py --big --only "1 GB" --skip-datastore --breakdown
                                                   # 1 GB flows, and where a client read's time goes
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import _common as c

HERE = str(Path(__file__).resolve())
VARIANTS = ("pickle", "safeart")
FLOW = "BenchFlow"
FLOW_SOURCE = """
{opt_in}
import os

from metaflow import FlowSpec, step

from _common import build_model


class BenchFlow(FlowSpec):
    @step
    def start(self):
        model = build_model(int(os.environ["BENCH_BYTES"]), int(os.environ["BENCH_TENSORS"]))
        if os.environ["BENCH_KEEP"] == "1":
            self.model = model
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BenchFlow()
"""


def cases(args: Any) -> list[tuple[str, int, int]]:
    """(label, bytes, tensors) of the models to measure."""
    if args.quick:
        return [("200 tensors / 1 MB", c.MB, 200)]
    out = [("10 MB", 10 * c.MB, 0), ("100 MB", 100 * c.MB, 0),
           ("2,000 tensors / 8 MB", 8 * c.MB, 2000)]
    out += [("1 GB", 1 << 30, 0)] if args.big else []
    return [case for case in out if args.only in (None, case[0])]


# -- workers (fresh interpreters) ---------------------------------------------------------
def _task_store(root: str, run_id: str, mode: str = "r") -> Any:
    from metaflow.datastore import FlowDataStore
    from metaflow.plugins.datastores.local_storage import LocalStorage

    flow_store = FlowDataStore(FLOW, storage_impl=LocalStorage, ds_root=root)
    if mode == "w":
        return flow_store.get_task_datastore(run_id, "start", "1", attempt=0, mode="w")
    return flow_store.get_task_datastore(run_id, "start", "1")


def save_worker(job: dict[str, Any]) -> dict[str, Any]:
    if job["variant"] == "safeart":
        import safeart.metaflow  # noqa: F401 -- opts this process in
    import metaflow  # noqa: F401 -- plugins and serializers load here
    import torch  # noqa: F401

    base = c.rss_mb()
    c.reset_peak()
    model = c.build_model(job["nbytes"], job["tensors"])
    store = _task_store(job["root"], job["run"], "w")
    store.init_task()
    started = c.clock()
    store.save_artifacts(iter([("model", model)]), len_hint=1)
    seconds = c.clock() - started
    store.done()
    key = store._objects["model"]
    blob = Path(job["root"], FLOW, "data", key[:2], key)
    meta = json.loads(Path(f"{blob}_meta").read_text())
    return {"seconds": seconds, "peak_mb": c.peak_rss_mb() - base, "disk": blob.stat().st_size,
            "raw": meta["cas_raw"], "encoding": store._info["model"]["encoding"],
            "model_mb": c.model_bytes(model) / c.MB, "checksum": c.checksum(model)}


def load_worker(job: dict[str, Any]) -> dict[str, Any]:
    import metaflow  # noqa: F401
    import torch  # noqa: F401

    store = _task_store(job["root"], job["run"])
    base = c.rss_mb()
    c.reset_peak()
    started = c.clock()
    model = dict(store.load_artifacts(["model"]))["model"]
    seconds = c.clock() - started
    return {"seconds": seconds, "peak_mb": c.peak_rss_mb() - base, "checksum": c.checksum(model)}


#: Where a client read spends its time: the C calls (cProfile's own time) of each step.
BUCKETS = {
    "client-cache write": ("'write' of '_io.BufferedRandom'",),
    "reading the blob": ("'read' of '_io.BufferedReader'", "'readinto' of '_io.FileIO'"),
    "gunzip": ("zlib.Decompress",),
    "content address / digest": ("openssl_sha1", "openssl_sha256"),
    "tensor copies": ("'copy' of 'numpy.ndarray'",),
}


def _breakdown(profile: Any) -> dict[str, float]:
    import pstats

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    out = dict.fromkeys(BUCKETS, 0.0)
    for (_, _, function), (_, _, own, _, _) in stats.items():
        for bucket, needles in BUCKETS.items():
            if any(needle in function for needle in needles):
                out[bucket] += own
    return out


def client_worker(job: dict[str, Any]) -> dict[str, Any]:
    import cProfile

    import torch  # noqa: F401
    from metaflow import Task, namespace

    namespace(None)
    profile = cProfile.Profile() if job.get("breakdown") else None
    base = c.rss_mb()
    c.reset_peak()
    started = c.clock()
    if profile:
        profile.enable()
    model = Task(f"{FLOW}/{job['run']}/start/{job['task']}")["model"].data
    seconds = c.clock() - started
    result = {"seconds": seconds, "peak_mb": c.peak_rss_mb() - base, "checksum": c.checksum(model)}
    if profile:
        profile.disable()
        result["breakdown"] = _breakdown(profile)
    return result


WORKERS = {"save": save_worker, "load": load_worker, "client": client_worker}


# -- part 1: the task datastore -------------------------------------------------------------
def datastore(args: Any, work: Path) -> None:
    rows, memory = [], []
    for label, nbytes, tensors in cases(args):
        got: dict[str, dict[str, list]] = {v: {} for v in VARIANTS}
        for i in range(args.repeat):
            jobs = {v: {"variant": v, "nbytes": nbytes, "tensors": tensors,
                        "root": str(work / "ds"), "run": f"{v}-{i}"} for v in VARIANTS}
            saved = {v: c.worker(HERE, {"part": "save", **jobs[v]}) for v in VARIANTS}
            loads = [(v, part) for part in ("load", "reload") for v in VARIANTS]
            for variant, part in loads:
                loaded = c.worker(HERE, {"part": "load", **jobs[variant]})
                assert loaded["checksum"] == saved[variant]["checksum"], (label, variant)
                for stage, res in (("save", saved[variant]), (part, loaded)):
                    for key, value in res.items():
                        got[variant].setdefault(f"{stage}.{key}", []).append(value)
            shutil.rmtree(work / "ds")  # no dedup between repeats
        p, s = ({k: v[0] if type(v[0]) in (str, bool) else c.median(v)
                 for k, v in got[x].items()} for x in VARIANTS)
        rows.append([label, p["save.seconds"], s["save.seconds"],
                     c.ratio(p["save.seconds"], s["save.seconds"]), p["load.seconds"],
                     s["load.seconds"], c.ratio(p["load.seconds"], s["load.seconds"]),
                     c.ratio(p["reload.seconds"], s["reload.seconds"]),
                     p["save.disk"] / c.MB, s["save.disk"] / c.MB,
                     c.ratio(s["save.disk"], p["save.disk"]),
                     "raw" if s["save.raw"] else "gzip"])
        memory.append([label, s["save.model_mb"], p["save.peak_mb"], s["save.peak_mb"],
                       p["load.peak_mb"], s["load.peak_mb"]])
    c.table(f"TaskDataStore save_artifacts / load_artifacts, local datastore "
            f"(seconds, median of {args.repeat})",
            ["model", "save pickle", "save safeart", "save speed-up", "load pickle",
             "load safeart", "load speed-up", "reload speed-up", "disk pickle MB",
             "disk safeart MB", "size safeart/pickle", "safeart blob"], rows, args.out,
            ["load: the first read of the blob after it was written (as the next step of a "
             "flow does); reload: a second fresh process reading it again."])
    c.table("Peak RSS of those workers, MB above the interpreter after imports",
            ["model", "model MB", "save pickle", "save safeart", "load pickle",
             "load safeart"], memory, args.out,
            ["save: includes building the model (1× model size)."])


# -- part 2: real flows and a fresh client ------------------------------------------------
def _flow_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "SAFEART_"))}
    env.update(
        USERNAME="bench", PYTHONPATH=os.pathsep.join([str(Path(HERE).parent), str(c.ROOT)]),
        METAFLOW_HOME=str(work / ".mfhome"), METAFLOW_DEFAULT_METADATA="local",
        METAFLOW_DEFAULT_DATASTORE="local", METAFLOW_DATASTORE_SYSROOT_LOCAL=str(work),
    )
    return env


def _run_flow(work: Path, variant: str, nbytes: int, tensors: int, keep: bool) -> dict:
    flow = work / f"flow_{variant}.py"
    if not flow.exists():
        opt_in = "import safeart.metaflow" if variant == "safeart" else ""
        flow.write_text(textwrap.dedent(FLOW_SOURCE.format(opt_in=opt_in)))
    env = {**_flow_env(work), "BENCH_BYTES": str(nbytes), "BENCH_TENSORS": str(tensors),
           "BENCH_KEEP": "1" if keep else "0"}
    run_id_file = work / "run_id"
    res = c.measured_run([sys.executable, str(flow), "--no-pylint", "run", "--run-id-file",
                          str(run_id_file)], env, work)
    res["run"] = run_id_file.read_text().strip()
    return res


def _client(work: Path, variant: str, run: str, tag: str, breakdown: bool = False) -> dict:
    """A fresh client process reading the model, with a cold client cache of its own."""
    cache = work / f".client_cache_{variant}_{tag}"
    env = {**_flow_env(work), "METAFLOW_CLIENT_CACHE_PATH": str(cache)}
    try:
        return c.worker(HERE, {"part": "client", "run": run, "task": 1, "breakdown": breakdown},
                        env=env, cwd=work)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def flows(args: Any, work: Path) -> None:
    rows, memory, breakdown = [], [], []
    for label, nbytes, tensors in cases(args):
        got: dict[str, dict[str, list]] = {v: {} for v in VARIANTS}
        repeat = 1 if nbytes >= 1 << 30 else args.repeat
        for i in range(repeat):
            for variant in VARIANTS:
                record = got[variant]
                for keep in (False, True):
                    run = _run_flow(work, variant, nbytes, tensors, keep)
                    record.setdefault(f"run{int(keep)}", []).append(run["seconds"])
                    record.setdefault(f"peak{int(keep)}", []).append(run["peak_mb"])
                client = _client(work, variant, run["run"], f"{i}_{nbytes}")
                record.setdefault("client", []).append(client["seconds"])
                record.setdefault("client_peak", []).append(client["peak_mb"])
            if args.breakdown and i == 0:
                for variant in VARIANTS:  # profiled: slower, so not in the figures above
                    parts = _client(work, variant, run["run"], f"profile_{nbytes}", True)
                    split = parts["breakdown"]
                    rest = parts["seconds"] - sum(split.values())
                    breakdown.append([label, variant, parts["seconds"], *split.values(), rest])
        p, s = ({k: c.median(v) for k, v in got[x].items()} for x in VARIANTS)
        extra_p, extra_s = p["run1"] - p["run0"], s["run1"] - s["run0"]
        rows.append([label, p["run0"], extra_p, s["run0"], extra_s, c.ratio(extra_p, extra_s),
                     p["client"], s["client"], c.ratio(p["client"], s["client"])])
        memory.append([label, nbytes / c.MB, p["peak0"], p["peak1"], s["peak0"], s["peak1"],
                       p["client_peak"], s["client_peak"]])
        shutil.rmtree(work / ".metaflow", ignore_errors=True)
    c.table(f"Real flow (seconds, median of {args.repeat}; one run for 1 GB): the run without "
            "the artifact, how much longer it takes when the step keeps the model, and a "
            "fresh client's task['model'].data",
            ["model", "run pickle flow", "extra pickle", "run safeart flow", "extra safeart",
             "extra speed-up", "client pickle", "client safeart", "client speed-up"],
            rows, args.out,
            ["Runs of a few seconds vary by ±0.5 s on a shared machine: extra times below "
             "~0.5 s are within noise."])
    c.table("Peak RSS (MB) of the flow run's largest process (the start task: interpreter, "
            "torch, Metaflow and the model it builds) without / with the artifact, and of "
            "the client above its interpreter after imports",
            ["model", "model MB", "step pickle w/o", "step pickle", "step safeart w/o",
             "step safeart", "client pickle", "client safeart"], memory, args.out)
    if breakdown:
        c.table("Where a fresh client's task['model'].data spends its time (one profiled run "
                "each, seconds; the C calls of each step)",
                ["model", "variant", "total", *BUCKETS, "rest (Metaflow, decode, profiling)"],
                breakdown, args.out)


def main() -> None:
    args = c.parse_args(__doc__, lambda p: (
        p.add_argument("--big", action="store_true", help="also the 1 GB model"),
        p.add_argument("--skip-flow", action="store_true", help="datastore part only"),
        p.add_argument("--skip-datastore", action="store_true", help="real flows part only"),
        p.add_argument("--only", help="only the models whose label is this (e.g. '1 GB')"),
        p.add_argument("--breakdown", action="store_true",
                       help="also profile one client read per model: where its time goes")))
    if args.worker:
        job = json.loads(args.worker)
        c.emit(WORKERS[job.pop("part")](job))
        return
    c.header("Metaflow artifacts: safeart vs pickle", args)
    with tempfile.TemporaryDirectory(prefix="safeart-bench-") as tmp:
        if not args.skip_datastore:
            datastore(args, Path(tmp))
        if not args.skip_flow:
            flows(args, Path(tmp))


if __name__ == "__main__":
    main()
