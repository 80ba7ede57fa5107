"""Compressed streams, recognised and read the way the victims' own readers read them.

Recognised (:func:`compressed_format`), by what the readers accept rather than by the common
case:

* ``zfile``: joblib's legacy format (``joblib.numpy_pickle_compat.read_zfile``, still loaded
  by ``joblib.load``): ``ZF``, a 19-byte length that Python's ``int(..., 16)`` parses
  (spaces, a sign, ``0x``, underscores), an optional space, then one zlib stream;
* ``gzip``: Python's ``gzip`` module (Metaflow blobs, pandas, ``joblib``'s gzip): the header
  parsed as ``gzip._read_gzip_header`` parses it (reserved flag bits and the header CRC are
  ignored, unlike zlib's own gzip mode), every member, NUL padding between members skipped,
  a bad CRC reported but the data scanned (streaming readers hand it out before checking);
* ``bzip2`` (``BZh``), and ``xz``: what liblzma's ``FORMAT_AUTO`` (``lzma.open``, joblib's
  ``xz`` and ``lzma`` compressors) accepts after joblib's prefixes: xz, lzma-alone starting
  ``]\\x00`` with any dictionary size liblzma takes, and lzip;
* ``zlib``: joblib's zlib compressor (a ``0x78`` byte, then what zlib accepts).

Every stream is decompressed block by block into a :class:`Spool` within the size and ratio
limits (:func:`drain`, also used for zip members); bytes after the last stream are scanned as
trailing data.
"""

from __future__ import annotations

import bz2
import io
import lzma
import mmap
import struct
import tempfile
import zlib
from typing import Any, Callable

from ..policy import Grade
from .context import ScanContext
from .walker import Buffer


SPOOL_IN_MEMORY = 256 << 20  # decompressed output kept in memory up to this size
_STEP = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2
#: joblib's ``_ZFILE_PREFIX`` and the width of its hex length field (``len(hex(2**64))``).
_ZF, _ZF_LEN = b"ZF", 19

#: (scan_blob signature) how trailing bytes are scanned.
BlobScanner = Callable[..., None]


def compressed_format(head: bytes) -> str | None:
    """The compression a victim's reader recognises at the start of ``head``, or None."""
    if head.startswith(_ZF) and zfile_start(head) is not None:
        return "zfile"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if _lzma_header(head):
        return "xz"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


def zfile_start(head: bytes) -> int | None:
    """Where the zlib stream of a joblib ``ZF`` file starts; None if ``read_zfile`` refuses
    the length field (it reads it with ``int(field, 16)``, and a negative length makes
    ``zlib.decompress`` raise)."""
    try:
        length = int(head[len(_ZF):len(_ZF) + _ZF_LEN], 16)
    except ValueError:
        return None
    if length < 0:
        return None
    at = len(_ZF) + _ZF_LEN
    return at + 1 if head[at:at + 1] == b" " else at  # joblib <= 0.8.4 wrote one more space


def _lzma_header(head: bytes) -> bool:
    """xz, lzip, or lzma-alone with joblib's prefix (``]\\x00``: properties byte 0x5d, what
    ``xz --format=lzma`` writes), whose dictionary size passes liblzma's "picky" rule (2^n or
    2^n + 2^(n-1)); then liblzma's ``FORMAT_AUTO`` itself decides on the first bytes. (Other
    property bytes are valid lzma too, but only a reader that picks the codec by file name
    reads them, and tensor bytes match them all the time.)"""
    if head.startswith(b"]\x00") and len(head) >= 13:
        size = int.from_bytes(head[1:5], "little")
        rounded = (size - 1) & 0xFFFFFFFF
        for shift in (2, 3, 4, 8, 16):
            rounded |= rounded >> shift
        if size != 0xFFFFFFFF and (rounded + 1) & 0xFFFFFFFF != size:
            return False
    elif not head.startswith((b"\xfd7zXZ", b"LZIP")):
        return False
    try:
        lzma.LZMADecompressor(lzma.FORMAT_AUTO).decompress(head[:64], 1)
    except (lzma.LZMAError, MemoryError):
        return False
    return True


class Zlib:
    """zlib.decompressobj with the ``needs_input`` protocol of the bz2/lzma decompressors."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits=wbits)
        self.needs_input = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(self._d.unconsumed_tail + data, max_length)
        self.needs_input = not self._d.unconsumed_tail and len(out) < max_length
        return out

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


class Spool:
    """Decompressed output: in memory while small, then a temporary file mapped read-only."""

    def __init__(self) -> None:
        self._mem: io.BytesIO | None = io.BytesIO()
        self._file: Any = None
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._mem is not None and self.size > SPOOL_IN_MEMORY:
            self._file = tempfile.TemporaryFile()
            self._file.write(self._mem.getbuffer())
            self._mem = None
        (self._mem or self._file).write(data)

    def buffer(self) -> Buffer:
        if self._mem is not None:
            return self._mem.getvalue()
        self._file.flush()
        mapped = mmap.mmap(self._file.fileno(), self.size, access=mmap.ACCESS_READ)
        self._file.close()
        return mapped


class _Crc:
    """A sink that forwards to a spool and keeps the CRC-32 and size of what it got."""

    def __init__(self, spool: Spool) -> None:
        self.spool, self.crc, self.count = spool, 0, 0

    def write(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.count += len(data)
        self.spool.write(data)

    @property
    def size(self) -> int:
        return self.spool.size


def drain(ctx: ScanContext, dec: Any, buf: Buffer, pos: int, end: int, sink: Any, *,
          origin: int, name: str, where: str) -> tuple[int, str]:
    """Feed ``buf[pos:end]`` to ``dec`` up to its end of stream, output into ``sink``.

    Returns where the input it used ends and how it ended: ``"eof"``, ``"truncated"`` (the
    input ran out first), ``"error"`` (reported as malformed; what came out is kept) or
    ``"limit"`` (output passed ``max_scan_bytes`` or ``max_decompression_ratio`` measured
    from ``origin``; reported, the output must not be scanned).
    """
    limits = ctx.limits
    try:
        while not dec.eof:
            block = b""
            if dec.needs_input:
                if pos >= end:
                    return pos, "truncated"
                block = buf[pos:min(end, pos + _STEP)]
                pos += len(block)
            sink.write(dec.decompress(block, 4 * _STEP))
            if sink.size > limits.max_scan_bytes or (
                sink.size > (16 << 20)
                and sink.size > limits.max_decompression_ratio * (pos - origin)
            ):
                ctx.add(Grade.UNKNOWN, "limit", name,
                        f"decompressed size passed {sink.size} bytes: over max_scan_bytes or "
                        "max_decompression_ratio; not scanned", location=where)
                return pos, "limit"
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        ctx.add(Grade.UNKNOWN, "malformed", name, f"cannot decompress: {exc}", location=where)
        return pos, "error"
    return pos - len(dec.unused_data), "eof"


def decompress(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str, name: str,
               scan_blob: BlobScanner) -> Buffer | None:
    """The content of the ``name`` stream at ``buf[start:end]`` (every member), as its
    victim reads it; bytes after the last member go to ``scan_blob`` as trailing data.
    None when a limit was hit (nothing to scan)."""
    spool = Spool()
    if name == "gzip":
        pos, outcome = _gzip(ctx, buf, start, end, loc, spool)
    else:
        pos = start
        if name == "zfile":
            pos += zfile_start(bytes(buf[start:start + len(_ZF) + _ZF_LEN + 1])) or 0
        while True:
            pos, outcome = drain(ctx, _DECODERS[name](), buf, pos, end, spool, origin=start,
                                 name=name, where=loc)
            if outcome != "eof" or name in ("zfile", "zlib") or pos >= end \
                    or compressed_format(bytes(buf[pos:pos + 512])) != name:
                break  # bz2/lzma readers try the bytes after a stream as another stream
    if outcome == "limit":
        return None
    if outcome == "truncated":
        ctx.add(Grade.UNKNOWN, "malformed", name,
                "compressed stream is truncated; its tail was not scanned", location=loc)
    if outcome == "eof" and pos < end:
        scan_blob(ctx, buf, pos, end, f"{loc} > after-{name}@{pos}", "trailing")
    return spool.buffer()


_DECODERS: dict[str, Callable[[], Any]] = {
    "zfile": lambda: Zlib(15),
    "zlib": lambda: Zlib(15),
    "bzip2": bz2.BZ2Decompressor,
    "xz": lambda: lzma.LZMADecompressor(lzma.FORMAT_AUTO),
}


def _gzip(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str,
          spool: Spool) -> tuple[int, str]:
    """Every member, as ``gzip.GzipFile`` reads them: header, raw deflate, CRC and size,
    then NUL padding up to the next member."""
    pos = start
    while True:
        data = _gzip_header(buf, pos, end)
        if data is None:
            if pos == start:
                ctx.add(Grade.UNKNOWN, "malformed", "gzip",
                        "not a gzip header Python's gzip module reads", location=loc)
                return pos, "error"
            return pos, "eof"  # gzip raises here, after handing out the members before
        sink = _Crc(spool)
        pos, outcome = drain(ctx, Zlib(-15), buf, data, end, sink, origin=start, name="gzip",
                             where=loc)
        if outcome != "eof":
            return pos, outcome
        if pos + 8 > end:
            return pos, "truncated"
        crc, size = struct.unpack("<II", bytes(buf[pos:pos + 8]))
        if crc != sink.crc or size != sink.count & 0xFFFFFFFF:
            ctx.add(Grade.UNKNOWN, "archive", "gzip",
                    f"member at {pos - start}: CRC or size mismatch; gzip readers raise only "
                    "after handing out the data (pickle.load on a GzipFile has run it)",
                    location=loc)
        pos += 8
        while pos < end and buf[pos] == 0:  # "gzip files can be padded with zeroes"
            chunk = bytes(buf[pos:min(end, pos + _STEP)])
            pos += len(chunk) - len(chunk.lstrip(b"\0"))
        if pos >= end:
            return pos, "eof"


def _gzip_header(buf: Buffer, pos: int, end: int) -> int | None:
    """Where a member's deflate data starts (``gzip._read_gzip_header``), None if there is no
    gzip header at ``pos``."""
    if bytes(buf[pos:pos + 2]) != _GZIP_MAGIC or pos + 10 > end or buf[pos + 2] != 8:
        return None
    flag, at = buf[pos + 3], pos + 10
    if flag & _FEXTRA:
        at += 2 + int.from_bytes(buf[at:at + 2], "little")
    for bit in (_FNAME, _FCOMMENT):
        if flag & bit:  # a NUL-terminated string (or everything up to the end)
            nul = buf.find(b"\0", at, end)
            at = end if nul < 0 else nul + 1
    if flag & _FHCRC:
        at += 2  # read and discarded, never checked
    return at if at <= end else None
