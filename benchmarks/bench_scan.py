"""Scanner throughput: safeart vs picklescan, fickling and modelscan on the same files.

Files: a Metaflow-style plain-pickled torch model (``pickle.dumps(model)``: every tensor's
storage is a nested ``torch.storage._load_from_bytes`` stream), the same model as a
``torch.save`` zip, a pickle of ~1M small objects, and a pickled numpy array. Each scan
runs in a fresh interpreter (imports and a warm-up scan excluded) so its peak RSS is its
own; tools and files alternate in every repeat. "read" is the time to read the file
(warm page cache): the bound no scanner can beat. A peer that is not installed is
reported in the table (``pip install picklescan fickling modelscan``). A second table gives
the same scans by the CPU time of the scanning process: on a shared machine the wall time
swings with the load of others, the CPU time far less.

    python benchmarks/bench_scan.py [--quick] [--repeat N] [--mb 100] [--out FILE]
"""

from __future__ import annotations

import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import _common as c

HERE = str(Path(__file__).resolve())
TOOLS = ("safeart", "picklescan", "fickling", "modelscan")


# -- the files (created here; the baseline tools below only ever read them) ---------------
def make_files(folder: Path, mb: float) -> list[tuple[str, Path]]:
    import numpy as np
    import torch

    model = c.build_model(int(mb * c.MB))
    files = []
    for label, name, write in [
        ("plain-pickled torch model (Metaflow)", "model.pkl",
         lambda p: p.write_bytes(pickle.dumps(model, protocol=4))),
        ("torch.save zip", "model.pt", lambda p: torch.save(model.state_dict(), p)),
        ("~1M small objects", "objects.pkl", lambda p: p.write_bytes(pickle.dumps(
            [{"id": i, "name": f"row{i}", "score": i / 7} for i in range(int(mb * 2500))],
            protocol=4))),
        ("numpy array", "array.pkl", lambda p: p.write_bytes(pickle.dumps(
            np.random.default_rng(0).standard_normal(int(mb * c.MB / 8)), protocol=4))),
    ]:
        path = folder / name
        write(path)
        files.append((label, path))
    return files


# -- one scan per tool (worker side) ----------------------------------------------------
def _safeart(path: str) -> str:
    import safeart

    result = safeart.scan_path(path).results[0]
    return f"{result.verdict}, {len(result.findings)} findings"


def _picklescan(path: str) -> str:
    from picklescan.scanner import scan_file_path

    result = scan_file_path(path)
    return f"{result.issues_count} issues, {len(result.globals)} globals" + (
        ", scan failed" if result.scan_err else "")


def _fickling(path: str) -> str:
    import fickling

    result = fickling.scan_file(path, graceful=True)
    return f"{result.severity.name}" + (f", {len(result.errors)} errors" if result.errors else "")


def _modelscan(path: str) -> str:
    from modelscan.modelscan import ModelScan

    summary = ModelScan().scan(path)["summary"]
    issues = summary["total_issues"]
    skipped = summary.get("skipped", {}).get("total_skipped", 0)
    return f"{issues} issues" + (f", {skipped} skipped" if skipped else "")


SCANS: dict[str, Callable[[str], str]] = {
    "safeart": _safeart, "picklescan": _picklescan, "fickling": _fickling,
    "modelscan": _modelscan,
}


def scan_worker(job: dict[str, Any]) -> dict[str, Any]:
    scan = SCANS[job["tool"]]
    try:
        scan(job["warmup"])  # imports, lazy tables
    except ImportError as exc:
        return {"missing": str(exc)}
    base = c.rss_mb()
    c.reset_peak()
    started, cpu = c.clock(), time.process_time()
    try:
        verdict = scan(job["path"])
    except Exception as exc:  # noqa: BLE001 -- a peer failing on a file is a result
        verdict = f"error: {type(exc).__name__}: {str(exc)[:80]}"
    return {"seconds": c.clock() - started, "cpu_seconds": time.process_time() - cpu,
            "peak_mb": c.peak_rss_mb() - base, "verdict": verdict}


def read_seconds(path: Path) -> float:
    started = c.clock()
    with open(path, "rb") as f:
        while f.read(16 * c.MB):
            pass
    return c.clock() - started


def main() -> None:
    args = c.parse_args(__doc__, lambda p: p.add_argument(
        "--mb", type=float, default=100, help="size of the model and array files (MB)"))
    if args.worker:
        c.emit(scan_worker(json.loads(args.worker)))
        return
    mb = 2 if args.quick else args.mb
    c.header("Scanner throughput", args)
    with tempfile.TemporaryDirectory(prefix="safeart-bench-scan-") as tmp:
        folder = Path(tmp)
        warmup = folder / "warmup.pkl"
        warmup.write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}))
        files = make_files(folder, mb)
        got: dict[tuple[str, str], list[dict]] = {}
        reads: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for label, path in files:
                reads.setdefault(label, []).append(read_seconds(path))
                for tool in TOOLS:
                    res = c.worker(HERE, {"tool": tool, "path": str(path),
                                          "warmup": str(warmup)})
                    got.setdefault((label, tool), []).append(res)
        rows, cpu_rows = [], []
        for label, path in files:
            size = path.stat().st_size / c.MB
            read = c.median(reads[label])
            row: list[Any] = [label, size, f"{size / read:,.0f}"]
            cpu_row: list[Any] = [label, size]
            safeart = c.median(r["seconds"] for r in got[(label, "safeart")])
            safeart_cpu = c.median(r["cpu_seconds"] for r in got[(label, "safeart")])
            for tool in TOOLS:
                results = got[(label, tool)]
                if "missing" in results[0]:
                    row.append("not installed")
                    cpu_row.append("not installed")
                    continue
                secs = c.median(r["seconds"] for r in results)
                cpu = c.median(r["cpu_seconds"] for r in results)
                peak = c.median(r["peak_mb"] for r in results)
                peer = tool != "safeart"
                row.append(f"{size / secs:,.0f} MB/s, {peak:,.0f} MB"
                           + (f" ({c.ratio(secs, safeart)})" if peer else "")
                           + f" — {results[0]['verdict']}")
                cpu_row.append(f"{size / cpu:,.0f} MB/s"
                               + (f" ({c.ratio(cpu, safeart_cpu)})" if peer else ""))
            row.append(c.ratio(safeart, read))
            rows.append(row)
            cpu_rows.append(cpu_row)
        c.table(f"Scan throughput (MB/s of file), peak RSS above the warmed-up interpreter, "
                f"median of {args.repeat}; (n×) = that tool's time / safeart's",
                ["file", "MB", "read MB/s", *TOOLS, "safeart / read time"], rows, args.out,
                ["safeart walks every pickle including each tensor's nested "
                 "_load_from_bytes stream; picklescan, fickling and modelscan list the "
                 "imports of the outer pickle (modelscan picks scanners by extension)."])
        c.table(f"The same scans by CPU time (MB/s of file per CPU second of the scanning "
                f"process), median of {args.repeat}; (n×) = that tool's CPU time / "
                "safeart's", ["file", "MB", *TOOLS], cpu_rows, args.out)


if __name__ == "__main__":
    main()
