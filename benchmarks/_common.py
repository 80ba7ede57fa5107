"""What every benchmark shares: options, timing, peak RSS, subprocess workers, models, tables.

Measurements that need a clean peak RSS run in a fresh interpreter (a "worker": the same
script with ``--worker <json>``), which prints one JSON line as its last output. Variants
are measured side by side (A B A B ...) in the same run so that machine load hits both, and
tables quote medians and ratios of medians.

Kept light (no torch or Metaflow import at module level): flow tasks import it too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20


# -- options ----------------------------------------------------------------------------
def parse_args(doc: str, extra: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--quick`` (smoke: tiny sizes, one repeat), ``--repeat N``, ``--out FILE`` (append
    the tables as markdown), ``--worker JSON`` (internal: run one measurement and exit)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, 1 repeat")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement")
    parser.add_argument("--out", type=Path, help="append the result tables to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    return args


# -- timing and memory ------------------------------------------------------------------
def clock() -> float:
    return time.perf_counter()


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024  # kB


def rss_mb() -> float:
    """This process's resident set size now."""
    return _status_mb("VmRSS")


def reset_peak() -> None:
    """Restart peak-RSS accounting here (Linux >= 4.0: ``5 > /proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    """Peak RSS of this process since start or :func:`reset_peak` (``VmHWM``; unlike
    ``getrusage``, not inherited from the parent across fork and exec)."""
    return _status_mb("VmHWM")


def emit(result: dict[str, Any]) -> None:
    """Worker side: report the measurement (the last stdout line)."""
    print(json.dumps(result), flush=True)


def worker(script: str, job: dict[str, Any], env: dict[str, str] | None = None,
           cwd: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``python <script> --worker <job>`` in a fresh interpreter; its JSON result."""
    proc = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(job)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {job} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measured_run(argv: list[str], env: dict[str, str], cwd: Path,
                 timeout: float = 3600) -> dict[str, float]:
    """Wall time of a command, and the peak RSS of its largest process (a flow's tasks are
    children of the runtime: their getrusage rolls up), measured from a fresh launcher."""
    launcher = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode\n"
        "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t, 'peak_mb': "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    proc = subprocess.run([sys.executable, "-c", launcher, *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{argv} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return result


# -- models -----------------------------------------------------------------------------
def build_model(nbytes: int, tensors: int = 0, seed: int = 0) -> Any:
    """A ``torch.nn.Sequential`` of ``Linear`` layers holding about ``nbytes`` of float32
    weights, in about ``tensors`` tensors (weight + bias per layer; default: 4 MiB layers).
    Default initialisation, so the weights compress like trained ones (gzip: ~8 %)."""
    import torch

    torch.manual_seed(seed)
    layers = max(1, tensors // 2) if tensors else max(1, round(nbytes / (4 * MB)))
    width = max(1, int((nbytes / layers / 4) ** 0.5))
    return torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))


def model_bytes(model: Any) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def checksum(state: Any) -> float:
    """Sum of every weight of a module or a dict of tensors (reads each weight once)."""
    import torch

    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    return sum(float(t.sum(dtype=torch.float64)) for t in state.values())


# -- reporting ----------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def ratio(numerator: float, denominator: float) -> str:
    if not denominator or numerator != numerator or denominator != denominator:
        return "–"
    return f"{numerator / denominator:.2f}×"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
          out: Path | None = None, notes: Sequence[str] = ()) -> str:
    """A markdown table, printed (and appended to ``out``)."""
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    lines += [""] + [f"{n}  " for n in notes] + ([""] if notes else [])
    text = "\n".join(lines)
    print(text, flush=True)
    if out is not None:
        with open(out, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    return text


def machine() -> str:
    """One line describing the machine and the versions measured."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    versions = []
    for name in ("torch", "numpy", "safetensors", "metaflow"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except Exception:  # noqa: BLE001 -- a missing package is just not listed
            pass
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:  # no git
        rev = ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({cpu}), {ram:.0f} GiB RAM, Python "
            f"{platform.python_version()}, {', '.join(versions)}, safeart {rev or '?'}; "
            f"load average at start {load}")


def header(title: str, args: argparse.Namespace) -> None:
    text = f"## {title}\n\n{machine()}\n"
    print(text, flush=True)
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")
