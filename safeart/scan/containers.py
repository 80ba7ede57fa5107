"""Decide what a blob is by its content (never its name) and scan it recursively.

Recognised: gzip, bzip2, xz/lzma, zlib (joblib), zip (PyTorch checkpoints, ``.npz``), tar
(legacy PyTorch), ``.npy`` (object arrays hold a pickle after the header), safetensors, and
pickles — with a PROTO header, or headerless protocol 0/1 pickles that import something.
7z, lz4, zstd and rar archives cannot be opened and are reported as such.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from typing import Any, Callable

from numpy.lib import format as npformat

try:  # the very header reader numpy.load uses (a literal parser with a 10 kB cap)
    from numpy.lib._format_impl import _read_array_header  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.lib.format import _read_array_header  # type: ignore[attr-defined,no-redef]

from ..policy import Grade
from .context import ScanContext
from .safetensors import scan_safetensors
from .streams import scan_stream
from .walker import Buffer
from .zipread import Spool, Zlib, appended_zip, scan_zip

__all__ = ["scan_blob"]

_UNSUPPORTED = {
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"\x04\x22\x4d\x18": "lz4",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"Rar!\x1a\x07": "rar",
}


def scan_blob(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str,
              hint: str = "") -> None:
    """Scan ``buf[start:end]`` as whatever its content is.

    ``hint``: ``"pickle"``/``"torch-pickle"`` (a member named ``*.pkl``) must be a pickle;
    ``"member"`` (any other archive member) is a pickle only if it parses or imports
    something; ``"trailing"`` (data after a pickle) is a finding when unrecognised.
    """
    with ctx.nested(loc) as ok:
        if ok:
            _dispatch(ctx, buf, start, end, loc, hint)


def _dispatch(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str,
              hint: str) -> None:
    head = bytes(buf[start:min(end, start + 512)])
    decompressor = _decompressor(head)
    if decompressor is not None:
        name, make = decompressor
        ctx.format(name)
        inner = _decompress(ctx, buf, start, end, loc, name, make)
        if inner is not None:
            scan_blob(ctx, inner, 0, len(inner), f"{loc} > {name}", hint)
        return
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        ctx.format("zip")
        scan_zip(ctx, buf, start, end, loc, scan_blob)
        return
    for magic, name in _UNSUPPORTED.items():
        if head.startswith(magic):
            ctx.add(Grade.UNKNOWN, "unsupported", name,
                    f"{name} archive: its content cannot be scanned (unpack it and scan the "
                    "files; a 7z-wrapped model hid the nullifAI payloads)", location=loc)
            return
    if head.startswith(b"\x93NUMPY"):
        ctx.format("npy")
        _npy(ctx, buf, start, end, loc)
        return
    if len(head) > 262 and head[257:262] == b"ustar":
        ctx.format("tar")
        _tar(ctx, buf, start, end, loc)
        _polyglot_pickle(ctx, buf, start, end, loc)
        return
    if _is_safetensors(head, end - start):
        ctx.format("safetensors")
        scan_safetensors(ctx, buf, start, end, loc)  # what the loader refuses is not clean
        _polyglot_pickle(ctx, buf, start, end, loc)
        return
    # A PROTO header makes top-level content a pickle for sure; inside an archive raw tensor
    # bytes start with 0x80 0x02 often enough that only a *.pkl name does.
    strict = hint in ("pickle", "torch-pickle") or (
        hint != "member" and len(head) >= 2 and head[0] == 0x80 and head[1] <= 5
    )
    if end > start and scan_stream(ctx, buf, start, end, loc, strict=strict, nested=scan_blob,
                                   torch_storages=hint == "torch-pickle"):
        return
    if appended_zip(buf, start, end) is not None:  # unknown bytes, then a zip
        ctx.format("zip")
        scan_zip(ctx, buf, start, end, loc, scan_blob)
        return
    if hint == "trailing":
        ctx.add(Grade.UNKNOWN, "trailing", "data",
                f"{end - start} bytes after the end of the stream are not a known structure",
                location=loc, offset=start)
    else:
        ctx.format("data")


def _polyglot_pickle(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str) -> None:
    """``pickle.loads`` reads any bytes from offset 0, and the first bytes of a tar (a member
    name) or of a safetensors file (its header length) can be chosen to form a pickle. With a
    PROTO header it is a pickle for sure; otherwise kept only if CPython's parser imported a
    real (dotted identifier) name there."""
    if end - start >= 2 and buf[start] == 0x80 and buf[start + 1] <= 5:
        scan_stream(ctx, buf, start, end, f"{loc} > as-pickle", strict=True, nested=scan_blob)
        return
    mark = ctx.mark()
    before = {name: g["count"] for name, g in ctx.result.globals.items()}
    scan_stream(ctx, buf, start, end, f"{loc} > as-pickle", strict=False, nested=scan_blob)
    imported = [name for name, g in ctx.result.globals.items()
                if g["count"] > before.get(name, 0)
                and all(part.isidentifier() for part in name.split("."))]
    if not imported:
        ctx.rollback(mark)


def _decompressor(head: bytes) -> tuple[str, Callable[[], Any]] | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip", lambda: Zlib(31)
    if head.startswith(b"BZh"):
        return "bzip2", bz2.BZ2Decompressor
    if head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"]\x00\x00"):
        return "xz", lambda: lzma.LZMADecompressor(lzma.FORMAT_AUTO)
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib", lambda: Zlib(15)
    return None


def _decompress(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str, name: str,
                make: Callable[[], Any]) -> Buffer | None:
    """Decompress every concatenated member, bounded by size and ratio limits."""
    limits = ctx.limits
    spool = Spool()
    pos, step = start, 1 << 20
    dec = make()
    try:
        while True:
            block = b""
            if dec.needs_input:
                if pos >= end:
                    ctx.add(Grade.UNKNOWN, "malformed", name,
                            "compressed stream is truncated; its tail was not scanned",
                            location=loc)
                    break
                block = buf[pos:min(end, pos + step)]
                pos += len(block)
            spool.write(dec.decompress(block, 4 * step))
            if spool.size > limits.max_scan_bytes or (
                spool.size > (16 << 20)
                and spool.size > limits.max_decompression_ratio * (pos - start)
            ):
                ctx.add(Grade.UNKNOWN, "limit", name,
                        f"decompressed size passed {spool.size} bytes: over max_scan_bytes or "
                        "max_decompression_ratio; not scanned", location=loc)
                return None
            if dec.eof:
                pos -= len(dec.unused_data)
                if pos + 2 <= end and bytes(buf[pos:pos + 2]) == _MEMBER_MAGIC.get(name):
                    dec = make()  # another concatenated member
                    continue
                break
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        ctx.add(Grade.UNKNOWN, "malformed", name, f"cannot decompress: {exc}", location=loc)
    if dec.eof and pos < end:
        scan_blob(ctx, buf, pos, end, f"{loc} > after-{name}@{pos}", "trailing")
    return spool.buffer()


_MEMBER_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZ", "xz": b"\xfd7"}


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


class _View(io.RawIOBase):
    """A read-only file over ``buf[start:end]`` for parsers that want a file object."""

    def __init__(self, buf: Buffer, start: int, end: int) -> None:
        self._buf, self._start, self._end, self._pos = buf, start, end, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self._end - self._pos))
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: self._start, 1: self._pos, 2: self._end}[whence]
        self._pos = min(max(self._start, base + offset), self._end)
        return self._pos - self._start

    def tell(self) -> int:
        return self._pos - self._start


def _npy(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str) -> None:
    """numpy.load reads the header with a literal parser; object dtypes pickle the data."""
    f = _View(buf, start, end)
    try:
        version = npformat.read_magic(f)
        _shape, _fortran, dtype = _read_array_header(f, version)
    except Exception as exc:  # noqa: BLE001 - any header numpy.load rejects runs nothing
        ctx.add(Grade.UNKNOWN, "malformed", "npy", f"bad .npy header: {exc}", location=loc)
        return
    if dtype.hasobject:
        body = start + f.tell()
        scan_stream(ctx, buf, body, end, f"{loc} > npy-objects@{body - start}", strict=True,
                    nested=scan_blob)


def _tar(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str) -> None:
    """Every regular member, sniffed by content (legacy torch: sys_info, pickle, storages)."""
    try:
        with tarfile.open(fileobj=io.BufferedReader(_View(buf, start, end)), mode="r:") as tar:
            for count, member in enumerate(tar):
                if count >= ctx.limits.max_archive_members:
                    ctx.add(Grade.UNKNOWN, "limit", "tar",
                            f"more than {ctx.limits.max_archive_members} members",
                            location=loc)
                    return
                if member.isfile() and not member.issparse():
                    a = start + member.offset_data
                    scan_blob(ctx, buf, a, min(end, a + member.size), f"{loc} > {member.name}",
                              "member")
    except tarfile.TarError as exc:
        ctx.add(Grade.UNKNOWN, "malformed", "tar", f"cannot read tar: {exc}", location=loc)
