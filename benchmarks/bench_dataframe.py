"""DataFrames: safeart vs pickle, through Metaflow's datastore and through dumps/loads.

A ~100 MB DataFrame of mixed dtypes (6 float64, 3 int64, a categorical, a datetime column with
a time zone, a string column, 2 nullable Int64 columns with missing values).

Part 1, the datastore (as bench_metaflow.py): ``TaskDataStore.save_artifacts`` /
``load_artifacts`` on a local datastore, safeart vs Metaflow's pickle path (which gzips), each
measurement in a fresh interpreter (time, peak RSS, on-disk size).
Part 2, in memory: ``safeart.dumps/loads`` vs ``pickle.dumps/loads`` and, when pyarrow is
installed, Arrow IPC (``pa.Table.from_pandas`` + an IPC stream and back): the encoding the
pandas codec could have used instead of arrays in the safetensors container.

    python benchmarks/bench_dataframe.py              # ~100 MB frame
    python benchmarks/bench_dataframe.py --rows 2000000
    python benchmarks/bench_dataframe.py --quick      # smoke test, seconds
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import _common as c
from bench_metaflow import FLOW, _task_store

HERE = str(Path(__file__).resolve())
VARIANTS = ("pickle", "safeart")
ROWS = 870_000  # about 100 MB of column data


def build_frame(rows: int, seed: int = 0) -> Any:
    """The benchmark frame; the same ``rows`` and ``seed`` give the same frame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {f"f{i}": rng.random(rows) for i in range(6)}
    data.update({f"i{i}": rng.integers(0, 1 << 40, rows) for i in range(3)})
    data["category"] = pd.Categorical.from_codes(rng.integers(0, 50, rows),
                                                 [f"cat-{i}" for i in range(50)])
    data["when"] = pd.date_range("2020-01-01", periods=rows, freq="s", tz="Europe/Paris")
    data["name"] = pd.array([f"user-{i:07d}" for i in rng.integers(0, 10**7, rows)],
                            dtype=pd.StringDtype("python", na_value=np.nan))
    for i in range(2):
        values = rng.integers(-1000, 1000, rows)
        data[f"n{i}"] = pd.arrays.IntegerArray(values, rng.random(rows) < 0.1)
    return pd.DataFrame(data)


def same(frame: Any, expected: Any) -> bool:
    return bool(frame.equals(expected)) and list(frame.dtypes) == list(expected.dtypes)


# -- workers (fresh interpreters) ---------------------------------------------------------
def save_worker(job: dict[str, Any]) -> dict[str, Any]:
    if job["variant"] == "safeart":
        import safeart.metaflow  # noqa: F401 -- opts this process in
    import metaflow  # noqa: F401 -- plugins and serializers load here

    frame = build_frame(job["rows"])
    store = _task_store(job["root"], job["run"], "w")
    store.init_task()
    base = c.rss_mb()
    c.reset_peak()
    started = c.clock()
    store.save_artifacts(iter([("frame", frame)]), len_hint=1)
    seconds = c.clock() - started
    peak = c.peak_rss_mb() - base
    store.done()
    key = store._objects["frame"]
    blob = Path(job["root"], FLOW, "data", key[:2], key)
    meta = json.loads(Path(f"{blob}_meta").read_text())
    return {"seconds": seconds, "peak_mb": peak, "disk": blob.stat().st_size,
            "raw": meta["cas_raw"], "encoding": store._info["frame"]["encoding"],
            "frame_mb": frame.memory_usage(deep=True).sum() / c.MB}


def load_worker(job: dict[str, Any]) -> dict[str, Any]:
    import metaflow  # noqa: F401
    import pandas  # noqa: F401

    store = _task_store(job["root"], job["run"])
    base = c.rss_mb()
    c.reset_peak()
    started = c.clock()
    frame = dict(store.load_artifacts(["frame"]))["frame"]
    seconds = c.clock() - started
    peak = c.peak_rss_mb() - base
    return {"seconds": seconds, "peak_mb": peak, "same": same(frame, build_frame(job["rows"]))}


def _arrow_codec() -> tuple[Any, Any] | None:
    """Arrow IPC stream write and read of a whole frame, if pyarrow is installed."""
    try:
        import pyarrow as pa
    except ImportError:
        return None

    def dumps(frame: Any) -> Any:
        table = pa.Table.from_pandas(frame)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()

    def loads(buf: Any) -> Any:
        return pa.ipc.open_stream(buf).read_all().to_pandas()

    return dumps, loads


def memory_worker(job: dict[str, Any]) -> dict[str, Any]:
    import pickle

    import safeart

    frame = build_frame(job["rows"])
    codecs = {"pickle": (lambda f: pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL),
                         pickle.loads),
              "safeart": (safeart.dumps, safeart.loads)}
    arrow = _arrow_codec()
    if arrow is not None:
        codecs["arrow IPC"] = arrow
    times: dict[str, dict[str, list[float]]] = {v: {"dumps": [], "loads": []} for v in codecs}
    result: dict[str, Any] = {}
    for _ in range(job["repeat"]):
        for variant, (dumps, loads) in codecs.items():  # alternating: load hits them all
            started = c.clock()
            blob = dumps(frame)
            times[variant]["dumps"].append(c.clock() - started)
            started = c.clock()
            back = loads(blob)
            times[variant]["loads"].append(c.clock() - started)
            result[variant] = {"size": len(memoryview(blob).cast("B")), "same": same(back, frame)}
            del blob, back
    for variant, got in times.items():
        result[variant].update({k: c.median(v) for k, v in got.items()})
    return result


WORKERS = {"save": save_worker, "load": load_worker, "memory": memory_worker}


# -- parts ----------------------------------------------------------------------------------
def datastore(args: Any, work: Path) -> None:
    got: dict[str, dict[str, list]] = {v: {} for v in VARIANTS}
    for i in range(args.repeat):
        jobs = {v: {"variant": v, "rows": args.rows, "root": str(work / "ds"), "run": f"{v}-{i}"}
                for v in VARIANTS}
        saved = {v: c.worker(HERE, {"part": "save", **jobs[v]}) for v in VARIANTS}
        for variant, part in [(v, part) for part in ("load", "reload") for v in VARIANTS]:
            loaded = c.worker(HERE, {"part": "load", **jobs[variant]})
            assert loaded["same"], (variant, part)
            for stage, res in (("save", saved[variant]), (part, loaded)):
                for key, value in res.items():
                    got[variant].setdefault(f"{stage}.{key}", []).append(value)
        shutil.rmtree(work / "ds")  # no dedup between repeats
    p, s = ({k: v[0] if type(v[0]) in (str, bool) else c.median(v) for k, v in got[x].items()}
            for x in VARIANTS)
    assert s["save.encoding"].startswith("safeart"), s["save.encoding"]
    c.table(f"DataFrame ({args.rows:,} rows, {p['save.frame_mb']:.0f} MB in memory): "
            f"TaskDataStore save_artifacts / load_artifacts, local datastore (seconds, median "
            f"of {args.repeat})",
            ["save pickle", "save safeart", "save speed-up", "load pickle", "load safeart",
             "load speed-up", "reload speed-up", "disk pickle MB", "disk safeart MB",
             "safeart blob", "peak save pickle / safeart MB", "peak load pickle / safeart MB"],
            [[p["save.seconds"], s["save.seconds"], c.ratio(p["save.seconds"], s["save.seconds"]),
              p["load.seconds"], s["load.seconds"], c.ratio(p["load.seconds"], s["load.seconds"]),
              c.ratio(p["reload.seconds"], s["reload.seconds"]), p["save.disk"] / c.MB,
              s["save.disk"] / c.MB, f"{s['save.encoding']}, {'raw' if s['save.raw'] else 'gzip'}",
              f"{p['save.peak_mb']:.0f} / {s['save.peak_mb']:.0f}",
              f"{p['load.peak_mb']:.0f} / {s['load.peak_mb']:.0f}"]], args.out,
            ["load: the first read of the blob after it was written; reload: a second fresh "
             "process. Peak RSS above the interpreter after imports (save: the frame exists "
             "before the measurement starts)."])


def in_memory(args: Any) -> None:
    res = c.worker(HERE, {"part": "memory", "rows": args.rows, "repeat": args.repeat})
    base = res["pickle"]
    rows = [[variant, r["dumps"], r["loads"], c.ratio(base["dumps"], r["dumps"]),
             c.ratio(base["loads"], r["loads"]), r["size"] / c.MB,
             "yes" if r["same"] else "no"] for variant, r in res.items()]
    notes = [] if "arrow IPC" in res else ["arrow IPC: not measured (pip install pyarrow)."]
    c.table(f"DataFrame ({args.rows:,} rows) in memory: dumps / loads (seconds, median of "
            f"{args.repeat}, one process, variants alternating)",
            ["variant", "dumps", "loads", "dumps speed-up vs pickle", "loads speed-up vs pickle",
             "size MB", "equals + same dtypes"], rows, args.out,
            notes + ["pickle: protocol 5, no compression (Metaflow's path adds gzip). arrow IPC: "
                     "pa.Table.from_pandas + an IPC stream, read_all().to_pandas()."])


def main() -> None:
    args = c.parse_args(__doc__, lambda p: (
        p.add_argument("--rows", type=int, default=ROWS, help="rows of the frame"),
        p.add_argument("--skip-datastore", action="store_true", help="in-memory part only")))
    if args.worker:
        job = json.loads(args.worker)
        c.emit(WORKERS[job.pop("part")](job))
        return
    if args.quick:
        args.rows = 20_000
    c.header("DataFrames: safeart vs pickle", args)
    if not args.skip_datastore:
        with tempfile.TemporaryDirectory(prefix="safeart-bench-") as tmp:
            datastore(args, Path(tmp))
    in_memory(args)


if __name__ == "__main__":
    main()
