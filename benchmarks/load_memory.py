"""Peak memory and time of loading a ~100 MB model: ``load_file`` (mapped, or read with
``mmap=False``) vs the in-memory paths.

Each measurement runs in a fresh interpreter (Linux: it reads ``/proc/self/status``). After
importing torch and safeart and, for the in-memory paths, reading the input bytes, the peak
RSS is reset to the current RSS; the figures are how far the load raised the peak and how
much anonymous memory it still holds afterwards, next to the size of the weights, then the
same after summing every weight (a mapped file's pages are read, and counted, when used).
For ``loads``/``load_pickle`` the input bytes (one copy) are already held before the baseline.

    python benchmarks/load_memory.py [--mb 100]

Not a test: numbers depend on the machine; figures in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch, safeart
import safeart.format  # the loader's modules, imported before the clock starts
from safeart.guard import load_pickle
from safeart.policy import resolve_policy

resolve_policy()  # the built-in allowlist, built once per process


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


how, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read() if not how.startswith("load_file") else None
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
before, anon = status("VmRSS"), status("RssAnon")
started = time.perf_counter()
if how.startswith("load_file"):
    model = safeart.load_file(path, mmap=how == "load_file")
elif how == "loads":
    model = safeart.loads(data)
else:
    model = load_pickle(data)
seconds = time.perf_counter() - started
peak, anon = status("VmHWM") - before, status("RssAnon") - anon
weights = sum(p.numel() * p.element_size() for p in model.parameters())
sum(float(p.sum()) for p in model.parameters())
print(json.dumps({"how": how, "seconds": seconds, "peak_delta": peak, "anon_delta": anon,
                  "weights": weights, "touched": status("VmHWM") - before}))
"""

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="model size in MB (float32)")
    args = parser.parse_args()

    import pickle

    import torch

    import safeart

    width = 2048
    layers = max(1, round(args.mb * 1e6 / (4 * (width * width + width))))
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    with tempfile.TemporaryDirectory() as tmp:
        safe = Path(tmp) / "model.safetensors"
        pickled = Path(tmp) / "model.pkl"
        safeart.save_file(model, safe)
        pickled.write_bytes(pickle.dumps(model, protocol=4))
        del model
        for how, path in (("load_file", safe), ("load_file(mmap=False)", safe), ("loads", safe),
                          ("load_pickle", pickled)):
            out = subprocess.run([sys.executable, "-c", CHILD, how, str(path)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"{r['how']:<22} weights {r['weights'] / 1e6:6.1f} MB  "
                  f"peak RSS +{r['peak_delta'] / 1e6:6.1f} MB "
                  f"({r['peak_delta'] / r['weights']:.2f}x weights; anonymous "
                  f"+{r['anon_delta'] / 1e6:6.1f} MB; after using every weight "
                  f"+{r['touched'] / 1e6:6.1f} MB)  {r['seconds']:.4f} s")


if __name__ == "__main__":
    main()
