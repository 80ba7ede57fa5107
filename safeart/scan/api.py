"""Public entry points: :func:`scan_bytes` and :func:`scan_path`."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Union

from ..policy import Grade, Policy, resolve_policy
from .archives import scan_blob
from .context import ScanContext
from .report import ScanReport, ScanResult
from .safetensors import SUFFIX, scan_safetensors
from .walker import Buffer


PathArg = Union[str, "os.PathLike[str]"]
#: ``progress(done, total, current_target)`` is called before each file.
Progress = Callable[[int, int, str], None]


def _scan(buf: Buffer, size: int, target: str, policy: Policy) -> ScanResult:
    result = ScanResult(target=target, size=size)
    ctx = ScanContext(policy, result)
    started = time.perf_counter()
    if size > policy.limits.max_scan_bytes:
        ctx.add(Grade.UNKNOWN, "limit", "max_scan_bytes",
                f"{size} bytes is more than max_scan_bytes; not scanned", location=target)
    else:
        try:
            scan_blob(ctx, buf, 0, size, target)
            if target.endswith(SUFFIX) and "safetensors" not in result.formats:
                # Named safetensors, yet not even its header parses: the loader refuses it.
                scan_safetensors(ctx, buf, 0, size, target)
        except Exception as exc:  # noqa: BLE001 - a scanner crash is a finding, never a pass
            ctx.add(Grade.UNKNOWN, "error", type(exc).__name__,
                    f"the scanner failed ({exc}); the object was not fully analysed",
                    location=target)
    result.seconds = time.perf_counter() - started
    return result


def scan_bytes(data: bytes, *, policy: Policy | None = None, name: str = "<bytes>") -> ScanResult:
    """Scan one in-memory object (a pickle, a gzip blob, a checkpoint ...) by content.

    Args:
        data: The bytes, exactly as stored.
        policy: Grades imports and sets limits; default: ``$SAFEART_POLICY`` or built-in
            (:func:`safeart.policy.resolve_policy`).
        name: What to call the object in findings and reports.
    """
    policy = resolve_policy(policy)
    data = bytes(data) if not isinstance(data, bytes) else data
    return _scan(data, len(data), name, policy)


def scan_file(path: PathArg, *, policy: Policy | None = None) -> ScanResult:
    """Scan one file, memory-mapped so large files are not read into memory at once.

    Content decides what is scanned, whatever the name, except that a file named
    ``*.safetensors`` whose content the loader cannot read as safetensors is never clean.
    """
    policy = resolve_policy(policy)
    target = os.fspath(path)
    try:
        with open(target, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return _scan(b"", 0, target, policy)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _scan(buf, size, target, policy)
    except OSError as exc:
        return ScanResult(target=target, error=f"cannot read: {exc.strerror or exc}")


def collect_files(paths: Iterable[PathArg]) -> list[Path]:
    """Files named by ``paths``: files as given, folders recursively (sorted, no symlinked
    folders). A missing path raises :class:`FileNotFoundError`."""
    files: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files.extend(Path(root) / n for n in sorted(names))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or directory: {arg}")
    return files


def scan_path(
    path_or_paths: PathArg | Iterable[PathArg],
    *,
    policy: Policy | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan files and folders (recursively), each by content whatever its extension.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    policy = resolve_policy(policy)
    if isinstance(path_or_paths, (str, os.PathLike)):
        path_or_paths = [path_or_paths]
    files = collect_files(path_or_paths)
    report = ScanReport()
    started = time.perf_counter()
    for i, file in enumerate(files):
        if progress:
            progress(i, len(files), str(file))
        report.results.append(scan_file(file, policy=policy))
    if progress:
        progress(len(files), len(files), "")
    report.seconds = time.perf_counter() - started
    return report
