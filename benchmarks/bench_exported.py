"""Loading an exported model file: ``safeart.load_file`` vs ``torch.load(weights_only=True)``
and ``safetensors.torch.load_file``, time and peak RSS.

The same weights are written as a safeart file (the whole ``nn.Module``, and its
``state_dict``), a ``torch.save`` zip of the ``state_dict`` and a safetensors file. Each load
runs in a fresh interpreter: after importing torch, safeart and safetensors the peak RSS is
reset (``/proc/self/clear_refs``), so "peak" is how far the load raised it above that
baseline -- file pages a loader maps count too, as they do in the kernel's RSS.

    python benchmarks/bench_exported.py [--quick] [--mb 100] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import _common as c

HERE = str(Path(__file__).resolve())


def _safeart(path: str, mmap: bool = True) -> Any:
    import safeart

    return safeart.load_file(path, mmap=mmap)


def _torch(path: str, mmap: bool = False) -> Any:
    import torch

    return torch.load(path, weights_only=True, mmap=mmap)


def _safetensors(path: str) -> Any:
    from safetensors.torch import load_file

    return load_file(path)


#: label -> (file written by main(), loader)
LOADS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "safeart.load_file (nn.Module)": ("model.safeart", _safeart),
    "safeart.load_file (state_dict)": ("state.safeart", _safeart),
    "safeart.load_file(mmap=False) (nn.Module)": ("model.safeart", lambda p: _safeart(p, False)),
    "safeart.load_file, signed, trust keys set (nn.Module)": ("signed.safeart", _safeart),
    "torch.load(weights_only=True)": ("state.pt", _torch),
    "torch.load(weights_only=True, mmap=True)": ("state.pt", lambda p: _torch(p, mmap=True)),
    "safetensors.torch.load_file": ("state.safetensors", _safetensors),
}


def load_worker(job: dict[str, Any]) -> dict[str, Any]:
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401

    started = c.clock()
    import safeart.format  # noqa: F401 -- the loader's modules, as safetensors.torch above
    from safeart.policy import resolve_policy

    resolve_policy()  # the built-in allowlist, built once per process
    setup = c.clock() - started
    if job.get("trust"):  # the signed file: load_file verifies it (read once, sha256, check)
        os.environ["SAFEART_TRUST_KEYS"] = job["trust"]
        from safeart.signing import verifier_from_settings

        verifier_from_settings()  # cryptography imported and the key parsed, once per process
    base = c.rss_mb()
    c.reset_peak()
    started = c.clock()
    loaded = LOADS[job["how"]][1](job["path"])
    seconds = c.clock() - started
    peak = c.peak_rss_mb() - base
    return {"seconds": seconds, "setup": setup, "peak_mb": peak, "checksum": c.checksum(loaded),
            "after_touch_mb": c.peak_rss_mb() - base}


def _signed_copy(source: Path, target: Path) -> str | None:
    """``target``: a copy of ``source`` with a ``<file>.sig`` by a fresh key; returns the
    public key file to trust (None without ``cryptography``)."""
    try:
        import cryptography  # noqa: F401

        from safeart.signing import keygen, sign_file
    except ImportError:
        return None
    pair = keygen(target.with_name("key.pem"))
    shutil.copyfile(source, target)
    os.environ["SAFEART_SIGNING_KEY"] = str(pair.private_path)
    try:
        sign_file(target)
    finally:
        del os.environ["SAFEART_SIGNING_KEY"]
    return str(pair.public_path)


def main() -> None:
    args = c.parse_args(__doc__, lambda p: p.add_argument(
        "--mb", type=float, default=100, help="model size (MB of float32 weights)"))
    if args.worker:
        c.emit(load_worker(json.loads(args.worker)))
        return
    import safetensors.torch
    import torch

    import safeart

    mb = 4 if args.quick else args.mb
    c.header("Exported model file load", args)
    with tempfile.TemporaryDirectory(prefix="safeart-bench-export-") as tmp:
        folder = Path(tmp)
        model = c.build_model(int(mb * c.MB))
        size = c.model_bytes(model) / c.MB
        safeart.save_file(model, folder / "model.safeart")
        safeart.save_file(model.state_dict(), folder / "state.safeart")
        torch.save(model.state_dict(), folder / "state.pt")
        safetensors.torch.save_file(model.state_dict(), folder / "state.safetensors")
        del model
        trust = _signed_copy(folder / "model.safeart", folder / "signed.safeart")
        got: dict[str, list[dict]] = {}
        for _ in range(args.repeat):
            for how, (name, _) in LOADS.items():
                signed = name == "signed.safeart"
                if signed and trust is None:
                    continue
                got.setdefault(how, []).append(c.worker(HERE, {
                    "how": how, "path": str(folder / name), "trust": trust if signed else None}))
        checksums = {r["checksum"] for runs in got.values() for r in runs}
        assert len(checksums) == 1, checksums
        reference = c.median(r["seconds"] for r in got["torch.load(weights_only=True)"])
        fastest = c.median(r["seconds"] for r in got["safetensors.torch.load_file"])
        rows = []
        for how, runs in got.items():
            secs = c.median(r["seconds"] for r in runs)
            peak = c.median(r["peak_mb"] for r in runs)
            rows.append([how, secs, c.ratio(secs, reference), c.ratio(secs, fastest), peak,
                         c.ratio(peak, size), c.median(r["after_touch_mb"] for r in runs)])
        setup = c.median(r["setup"] for runs in got.values() for r in runs)
        c.table(f"Loading a {size:.0f} MB model file (median of {args.repeat})",
                ["loader", "seconds", "vs torch.load", "vs safetensors", "peak RSS MB",
                 "peak / model size", "peak after reading every weight"], rows, args.out,
                ["peak: above the interpreter after imports. safeart.load_file (mmap=True, the "
                 "default), safetensors.torch.load_file and torch.load(mmap=True) map the file "
                 "and read it only when a weight is used: the last column (after summing every "
                 "weight) is the comparable figure.",
                 f"Not timed, before every load: importing safeart.format and building the "
                 f"built-in policy once per process ({setup * 1e3:.0f} ms here; Python compiles "
                 f"the sources when bytecode caching is off), as importing safetensors.torch. "
                 f"For the signed file, importing cryptography and reading the trust key also "
                 f"happen before the clock.",
                 "signed, trust keys set: load_file verifies <file>.sig by itself (the default "
                 "when $SAFEART_TRUST_KEYS is set): the file is read once, its sha256 checked, "
                 "and the objects built from that copy (never mapped)."])


if __name__ == "__main__":
    main()
