"""Decide what a blob is by its content (never its name) and scan it recursively: the archive
and stream formats a scanned artifact may come in (safeart's own file layout is
:mod:`safeart.format`, never read here).

Each format is recognised by what its victim's own reader accepts, not by the common case:

* compressed streams (:mod:`~safeart.scan.compressed`): joblib's legacy ``ZF`` files, gzip
  (every member, NUL padding), bzip2, xz/lzma-alone/lzip, zlib (joblib);
* zip (PyTorch checkpoints, ``.npz``: stored, deflate, bzip2 and LZMA members,
  :mod:`~safeart.scan.zipread`), also after other bytes;
* tar (legacy PyTorch) by a header block ``tarfile`` accepts (its checksum rule: GNU, PAX,
  ustar and old V7 headers alike), whatever else the bytes also are;
* ``.npy`` (object arrays hold a pickle after the header), with the header length
  ``numpy.load(allow_pickle=True)`` accepts (no 10 kB cap), parsed by numpy's literal parser;
* safetensors, and pickles: with a PROTO header, or headerless protocol 0/1 pickles that
  import something; tar, safetensors, bzip2 and lzma files are also read as pickles from
  offset 0 (polyglots).

7z, lz4, zstd and rar archives cannot be opened and are reported as such.
"""

from __future__ import annotations

import ast
import io
import pickletools
import tarfile
from typing import Any

from numpy.lib import format as npformat

try:  # the very header reader numpy.load uses (a literal parser, ast.literal_eval)
    from numpy.lib._format_impl import _read_array_header  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.lib.format import _read_array_header  # type: ignore[attr-defined,no-redef]

from ..pickle_facts import TORCH_ZIP_STORAGE_TYPES, proto_header
from ..policy import Grade
from .compressed import compressed_format, decompress
from .context import ScanContext
from .safetensors import scan_safetensors
from .streams import scan_stream
from .walker import Buffer
from .zipread import appended_zip, scan_zip


#: numpy.lib.format's default max_header_size.
_NPY_HEADER_CAP = 10_000

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
    tar = _is_tar(head)
    if tar:  # torch.load tries tarfile first, whatever else the bytes are
        ctx.format("tar")
        _tar(ctx, buf, start, end, loc)
        _polyglot_pickle(ctx, buf, start, end, loc)
        if appended_zip(buf, start, end) is not None:  # zipfile reads a zip after any bytes
            ctx.format("zip")
            scan_zip(ctx, buf, start, end, loc, scan_blob)
    codec = compressed_format(head)
    if codec is not None:
        ctx.format(codec)
        inner = decompress(ctx, buf, start, end, loc, codec, scan_blob)
        if inner is not None:  # joblib unpickles what a ZF file holds
            scan_blob(ctx, inner, 0, len(inner), f"{loc} > {codec}",
                      "pickle" if codec == "zfile" else hint)
        if not tar and head[:1] in _PICKLE_OPCODES:  # 'BZh', lzma property bytes
            _polyglot_pickle(ctx, buf, start, end, loc)
        return
    if tar:
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
    if _is_safetensors(head, end - start):
        ctx.format("safetensors")
        scan_safetensors(ctx, buf, start, end, loc)  # what the loader refuses is not clean
        _polyglot_pickle(ctx, buf, start, end, loc)
        return
    # A PROTO header makes top-level content a pickle for sure; inside an archive raw tensor
    # bytes start with 0x80 0x02 often enough that only a *.pkl name does.
    strict = hint in ("pickle", "torch-pickle") or (
        hint != "member" and proto_header(head) is not None
    )
    storages = TORCH_ZIP_STORAGE_TYPES if hint == "torch-pickle" else None
    if end > start and scan_stream(ctx, buf, start, end, loc, strict=strict, nested=scan_blob,
                                   torch_storages=storages):
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
    if proto_header(buf, start, end) is not None:
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


#: First bytes of some pickle opcode: where a compressed file's magic could start a pickle too.
_PICKLE_OPCODES = {op.code.encode("latin-1") for op in pickletools.opcodes}


#: Every byte ``int(field, 8)`` may take in a tar number field (digits, whitespace, sign,
#: underscores, a ``0o`` prefix).
_OCTAL_FIELD = b"01234567 \t\n\r\x0b\x0c+-_oO"


def _is_tar(head: bytes) -> bool:
    """Does ``tarfile`` (``TarInfo.frombuf``: a full 512-byte block, not all NUL, whose
    checksum field ``nti`` parses and matches ``calc_chksums``, numeric fields valid) accept
    this first header? ustar, GNU, PAX and magic-less V7 headers alike."""
    if len(head) < tarfile.BLOCKSIZE:
        return False
    field = head[148:156].split(b"\0", 1)[0]  # what tarfile.nti reads: int(..., 8) or base-256
    if head[148] not in (0o200, 0o377) and field.strip(_OCTAL_FIELD):
        return False  # cheap: tensor bytes in an archive almost never get past this
    try:
        tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], tarfile.ENCODING, "surrogateescape")
    except (tarfile.HeaderError, ValueError, OverflowError):
        return False
    return True


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
    """numpy.load reads the header with a literal parser; object dtypes pickle the data.

    Only ``allow_pickle=True`` unpickles, and it lifts numpy's 10 kB header cap
    (``read_array``: ``max_header_size = 2**64``): so does the scan, up to
    ``max_header_bytes``; the header is still parsed by numpy's own literal parser."""
    f = _View(buf, start, end)
    try:
        version = npformat.read_magic(f)
        if _slow_header(f, version):
            ctx.add(Grade.UNKNOWN, "limit", "npy", "a header past numpy's 10 kB cap that only "
                    "its Python 2 fallback parser reads (quadratic time); not parsed",
                    location=loc)
            return
        _shape, _fortran, dtype = _read_array_header(
            f, version, max_header_size=ctx.limits.max_header_bytes)
    except Exception as exc:  # noqa: BLE001 - any header numpy.load rejects runs nothing
        ctx.add(Grade.UNKNOWN, "malformed", "npy", f"bad .npy header: {exc}", location=loc)
        return
    if dtype.hasobject:
        body = start + f.tell()
        scan_stream(ctx, buf, body, end, f"{loc} > npy-objects@{body - start}", strict=True,
                    nested=scan_blob)


def _slow_header(f: "_View", version: tuple[int, int]) -> bool:
    """Is this a header longer than numpy's default cap that ``ast.literal_eval`` refuses?
    numpy then tokenizes it (``_filter_header``), in time quadratic in its length (20 s for
    12 kB of spaces): the reason for the cap, and a hang for the scanner."""
    at = f.tell()
    width = 2 if version == (1, 0) else 4
    size = int.from_bytes(f.read(width), "little")
    text = f.read(size) if size > _NPY_HEADER_CAP else b""
    f.seek(at)
    if not text:
        return False
    try:
        ast.literal_eval(text.decode("utf-8" if version >= (3, 0) else "latin-1"))
    except SyntaxError:
        return version <= (2, 0)
    except Exception:  # noqa: BLE001 - numpy's own parse reports it
        return False
    return False


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
