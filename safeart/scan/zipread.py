"""Read a zip archive the way PyTorch's loader does, and scan every member by content.

PyTorch's reader (miniz) trusts the central directory for sizes and the local header only
for where the data starts; it ignores CRCs, flag bits and the local copy of the name. Python's
``zipfile`` raises on all three, which is how scanners built on it were bypassed (bad CRC,
the "encrypted" flag, local/central name mismatch). This parser never raises on them: it
reports each as an archive anomaly and scans the bytes anyway, every member, whatever it is
called. Stored members are scanned in place (no copy); deflated, bzip2 and LZMA members (the
methods Python's ``zipfile`` reads, so ``numpy.load`` reads them in an ``.npz``) are
decompressed within the size and ratio limits.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from ..policy import Grade
from .compressed import Spool, Zlib, drain
from .context import ScanContext
from .walker import Buffer


_EOCD, _EOCD64, _LOC64 = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
_CENTRAL, _LOCAL = b"PK\x01\x02", b"PK\x03\x04"
_TRICK = "a known way to hide a member from zipfile-based scanners"
#: CRCs are checked (as an anomaly signal) for members up to this size: pickles, not tensors.
_CRC_MAX = 1 << 20
# signature, flags, method, crc, compressed and uncompressed size, name/extra/comment
# lengths, local header offset (APPNOTE 4.3.12)
_CENTRAL_ENTRY = struct.Struct("<4s4xHH4xIIIHHH8xI")
# signature, flags, name and extra lengths (APPNOTE 4.3.7)
_LOCAL_HEADER = struct.Struct("<4s2xH18xHH")


@dataclass
class ZipMember:
    """One central directory entry, with where its data starts."""

    name: str
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header: int
    data: int = -1
    local_name: str = ""


def _u(buf: Buffer, pos: int, n: int) -> int:
    return int.from_bytes(buf[pos:pos + n], "little")


def _find_eocd(buf: Buffer, start: int, end: int) -> int:
    return buf.rfind(_EOCD, max(start, end - 22 - 65535), end - 18) if end - start >= 22 else -1


def read_members(buf: Buffer, start: int, end: int) -> tuple[list[ZipMember], int, str | None]:
    """Central directory entries, the offset shift (bytes prepended), and an error."""
    eocd = _find_eocd(buf, start, end)
    if eocd < 0:
        return [], 0, "no end-of-central-directory record"
    count, cd_size, cd_off = _u(buf, eocd + 10, 2), _u(buf, eocd + 12, 4), _u(buf, eocd + 16, 4)
    cd_end = eocd
    if eocd - 20 >= start and bytes(buf[eocd - 20:eocd - 16]) == _LOC64:
        rec = start + _u(buf, eocd - 12, 8)
        if bytes(buf[rec:rec + 4]) != _EOCD64:  # bytes prepended: where zipfile looks
            rec = eocd - 20 - 56
        if rec >= start and bytes(buf[rec:rec + 4]) == _EOCD64:
            count, cd_size, cd_off = _u(buf, rec + 32, 8), _u(buf, rec + 40, 8), _u(buf, rec + 48, 8)
            cd_end = rec
    shift = cd_end - cd_size - cd_off - start  # bytes prepended to the archive
    pos, members = start + shift + cd_off, []
    for _ in range(count):
        if not 0 <= pos <= end - 46:  # (a negative offset is no place in the data)
            return members, shift, "central directory is truncated or corrupt"
        sig, flags, method, crc, csize, usize, nlen, xlen, clen, header = \
            _CENTRAL_ENTRY.unpack_from(buf, pos)
        if sig != _CENTRAL:
            return members, shift, "central directory is truncated or corrupt"
        name = _decode(bytes(buf[pos + 46:pos + 46 + nlen]), flags)
        usize, csize, header = _zip64(buf, pos + 46 + nlen, xlen, usize, csize, header)
        members.append(ZipMember(name, flags, method, crc, csize, usize, start + shift + header))
        pos += 46 + nlen + xlen + clen
    return members, shift, None


def appended_zip(buf: Buffer, start: int, end: int) -> int | None:
    """Where a zip that follows other bytes starts, found by its end record as zip readers
    find it (``zipfile`` accepts any bytes before an archive, and reads the entries a damaged
    central directory still holds); None if there is none."""
    members, shift, _ = read_members(buf, start, end)
    return start + shift if members and shift > 0 else None


def _decode(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def _zip64(buf: Buffer, pos: int, xlen: int, usize: int, csize: int,
           header: int) -> tuple[int, int, int]:
    end = pos + xlen
    while pos + 4 <= end:
        tag, size = _u(buf, pos, 2), _u(buf, pos + 2, 2)
        if tag == 1:
            field, values = pos + 4, []
            for value in (usize, csize, header):
                if value == 0xFFFFFFFF and field + 8 <= pos + 4 + size:
                    value = _u(buf, field, 8)
                    field += 8
                values.append(value)
            return values[0], values[1], values[2]
        pos += 4 + size
    return usize, csize, header


def scan_zip(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str,
             scan_blob: Callable[..., None]) -> None:
    """Scan every member of the zip at ``buf[start:end]`` by content."""
    members, shift, error = read_members(buf, start, end)
    if error:
        ctx.add(Grade.UNKNOWN, "malformed", "zip", error, location=loc)
    if shift:
        ctx.add(Grade.UNKNOWN, "archive", "zip",
                f"{shift} bytes precede the archive; they are scanned separately", location=loc)
        scan_blob(ctx, buf, start, start + shift, f"{loc} > before-zip")
    limit = ctx.limits.max_archive_members
    if len(members) > limit:
        ctx.add(Grade.UNKNOWN, "limit", "zip", f"more than {limit} members; the rest were "
                "not scanned (max_archive_members)", location=loc)
    torch_zip = any(m.name.lower().endswith("data.pkl") for m in members)
    if torch_zip:
        ctx.format("torch-zip")
    seen: set[str] = set()
    for m in members[:limit]:
        where = f"{loc} > {m.name}"
        if m.name.lower() in seen:
            ctx.add(Grade.UNKNOWN, "archive", m.name,
                    "duplicate member name: which copy loads depends on the reader", location=where)
        seen.add(m.name.lower())
        content = _member(ctx, buf, end, m, where)
        if content is None:
            continue
        data, a, b = content
        hint = "pickle" if m.name.lower().endswith((".pkl", ".pickle")) else "member"
        if hint == "pickle" and torch_zip:
            hint = "torch-pickle"
        scan_blob(ctx, data, a, b, where, hint)


def _member(ctx: ScanContext, buf: Buffer, end: int, m: ZipMember,
            where: str) -> tuple[Buffer, int, int] | None:
    h = m.header
    sig, flags, nlen, xlen = _LOCAL_HEADER.unpack_from(buf, h) if 0 <= h <= end - 30 else (
        b"", 0, 0, 0)
    if sig != _LOCAL:
        ctx.add(Grade.UNKNOWN, "malformed", m.name, "local header missing", location=where)
        return None
    m.local_name = _decode(bytes(buf[h + 30:h + 30 + nlen]), flags)
    m.data = h + 30 + nlen + xlen
    if m.local_name != m.name:
        ctx.add(Grade.UNKNOWN, "archive", m.name,
                f"local header names it {m.local_name!r} (name mismatch, CVE-2025-1944: "
                f"{_TRICK})", location=where)
    if m.flags & 0x1:
        ctx.add(Grade.UNKNOWN, "archive", m.name,
                f"'encrypted' flag bit set; PyTorch ignores it (CVE-2025-1945: {_TRICK})",
                location=where)
    if m.data + m.csize > end:  # zipfile reads such a member up to the end: so does the scan
        ctx.add(Grade.UNKNOWN, "malformed", m.name, "member data runs past the end; what is "
                "there is scanned", location=where)
        m.csize = max(0, end - m.data)
    data: Buffer
    if m.method == 0:
        data, a, b = buf, m.data, m.data + m.csize
    elif m.method in (8, 12, 14):
        inflated = _inflate(ctx, buf, m, where)
        if inflated is None:
            return None
        data, a, b = inflated, 0, len(inflated)
    else:
        ctx.add(Grade.UNKNOWN, "unsupported", m.name,
                f"compression method {m.method} is not supported; not scanned", location=where)
        return None
    if b - a <= _CRC_MAX and zlib.crc32(memoryview(data)[a:b]) != m.crc:
        ctx.add(Grade.UNKNOWN, "archive", m.name,
                f"CRC mismatch; PyTorch does not check it (CVE-2025-10156: {_TRICK})",
                location=where)
    return data, a, b


def _inflate(ctx: ScanContext, buf: Buffer, m: ZipMember, where: str) -> Buffer | None:
    """Decompress a member block by block into a :class:`Spool` (memory stays bounded), as
    ``zipfile`` does: raw deflate (8), bzip2 (12), or LZMA (14: a 4-byte header, then the
    LZMA1 properties, then raw LZMA1 data)."""
    pos, end = m.data, m.data + m.csize
    dec: Any
    if m.method == 8:
        dec = Zlib(-15)
    elif m.method == 12:
        dec = bz2.BZ2Decompressor()
    else:
        psize = _u(buf, pos + 2, 2)
        try:
            props = lzma._decode_filter_properties(  # type: ignore[attr-defined]
                lzma.FILTER_LZMA1, bytes(buf[pos + 4:pos + 4 + psize]))
            dec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[props])
        except (lzma.LZMAError, ValueError) as exc:
            ctx.add(Grade.UNKNOWN, "malformed", m.name, f"bad LZMA header: {exc}",
                    location=where)
            return None
        pos += 4 + psize
    spool = Spool()
    _, outcome = drain(ctx, dec, buf, pos, end, spool, origin=m.data, name=m.name,
                       where=where)
    return None if outcome == "limit" else spool.buffer()
