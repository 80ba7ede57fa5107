"""What Metaflow's gzip (level 3) costs and saves on tensor data: the measurements behind
``safeart.metaflow.storage`` (which safeart blobs are stored raw).

Table 1: gzip throughput and ratio on kinds of tensor data, next to the estimate
``storage.wants_raw`` makes from its 32 KiB sample. Table 2: what gzip costs per blob size
(float32 weights), the basis of ``MIN_RAW_BYTES``.

    python benchmarks/bench_gzip.py [--quick] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import Any

import _common as c


def _gzip(data: bytes) -> bytes:
    """Exactly what Metaflow's content-addressed store does (``_pack_v1``)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=3) as f:
        f.write(data)
    return buf.getvalue()


def _sample_ratio(blob: bytes) -> float:
    from safeart.metaflow import storage

    step = len(blob) // storage._SAMPLES
    sample = b"".join(blob[i * step:i * step + storage._WINDOW] for i in range(storage._SAMPLES))
    return len(zlib.compress(sample, 1)) / len(sample)


def _timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = c.clock()
        fn()
        times.append(c.clock() - started)
    return c.median(times)


def main() -> None:
    args = c.parse_args(__doc__)
    import numpy as np
    import torch

    import safeart
    from safeart.metaflow import storage

    c.header("gzip on tensor data (Metaflow's level 3)", args)
    n = 1 << (18 if args.quick else 22)  # elements
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    kinds = {
        "float32, nn.Linear init": torch.nn.Linear(n // 1024, 1024).weight.detach(),
        "float32, normal": torch.randn(n),
        "bfloat16, normal": torch.randn(n).bfloat16(),
        "float16, normal": torch.randn(n).half(),
        "int32, 0..65535": torch.from_numpy(rng.integers(0, 65536, n).astype(np.int32)),
        "float32, 4096 levels": torch.from_numpy(rng.integers(0, 4096, n).astype(np.float32)),
        "int32, 0..255": torch.from_numpy(rng.integers(0, 256, n).astype(np.int32)),
        "int64, arange": torch.arange(n),
        "float32, zeros": torch.zeros(n),
    }
    rows = []
    for label, tensor in kinds.items():
        blob = safeart.dumps(tensor)
        packed = _gzip(blob)
        seconds = _timed(lambda: _gzip(blob), args.repeat)
        rows.append([label, len(blob) / c.MB, f"{len(blob) / seconds / c.MB:,.0f}",
                     len(packed) / len(blob), _sample_ratio(blob),
                     "raw" if storage.wants_raw(blob) else "gzip"])
    c.table("gzip -3 per kind of tensor (one safeart blob each)",
            ["data", "MB", "gzip MB/s", "gzip size / raw", "sample estimate", "stored"],
            rows, args.out,
            [f"stored: raw when the sample says gzip would keep more than "
             f"{storage.MAX_GZIP_GAIN:.0%} of the bytes."])
    rows = []
    for kib in (16, 64, 256, 1024, 4096):
        blob = safeart.dumps(torch.randn(kib * 256))
        seconds = _timed(lambda: _gzip(blob), max(args.repeat, 5))
        sha = _timed(lambda: __import__("hashlib").sha1(blob).digest(), max(args.repeat, 5))
        rows.append([f"{kib} KiB", seconds * 1e3, sha * 1e3, len(_gzip(blob)) / len(blob),
                     "raw" if storage.wants_raw(blob) else "gzip"])
    c.table("gzip -3 cost by blob size (float32 weights), next to Metaflow's sha1 of the blob",
            ["blob", "gzip ms", "sha1 ms", "gzip size / raw", "stored"], rows, args.out,
            [f"MIN_RAW_BYTES = {storage.MIN_RAW_BYTES // 1024} KiB: below it gzip costs "
             "about a millisecond or less per blob."])


if __name__ == "__main__":
    main()
