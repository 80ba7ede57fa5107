"""The pickle scanner: audits pickled bytes without unpickling them.

::

    from safeart.scan import scan_bytes, scan_path
    result = scan_bytes(blob, name="Flow/1/train/2:model")
    result.verdict          # "clean" | "unknown" | "dangerous"
    report = scan_path("checkpoints/")
    print(render(report, "text"))

Module map: ``walker`` (bounded opcode walker), ``stubs`` (CPython's unpickler with inert
stubs), ``pickles`` (one pickle: grading), ``streams`` (stacked pickles, legacy torch
streams), ``containers`` (content sniffing: gzip/bz2/xz/zlib/tar/npy/...), ``zipread``
(PyTorch-style zip reading), ``report`` (data model), ``render`` (text/json/sarif),
``api`` (entry points).
"""

from .api import collect_files, scan_bytes, scan_file, scan_path
from .render import render
from .report import Finding, ScanReport, ScanResult

__all__ = [
    "Finding",
    "ScanReport",
    "ScanResult",
    "collect_files",
    "render",
    "scan_bytes",
    "scan_file",
    "scan_path",
]
