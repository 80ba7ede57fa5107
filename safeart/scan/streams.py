"""Pickle streams: stacked pickles, data after STOP, and PyTorch's legacy stream format.

A legacy torch stream (``torch.save(..., _use_new_zipfile_serialization=False)``, and the
bytes every plain-pickled tensor hands to ``torch.storage._load_from_bytes``) is five stacked
pickles — magic number, protocol, sys info, the object, the storage keys — followed by one
raw record per storage (an int64 element count, then the elements). ``torch.load`` unpickles
all five with the full pickle machinery, so all five are scanned; the raw records are
accounted for byte by byte and anything after them is scanned as trailing data.
"""

from __future__ import annotations

from typing import Mapping

from ..limits import Limits
from ..pickle_facts import TORCH_LEGACY_MAGIC, TORCH_LEGACY_STORAGE_TYPES, storage_itemsize
from ..policy import Grade
from .context import ScanContext
from .pickles import BlobScanner, PickleOutcome, scan_pickle
from .stubs import stub_name
from .walker import Buffer
from .zipread import appended_zip


_LEGACY_PARTS = ("protocol", "sys_info", "data", "storage keys")


def scan_stream(
    ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str, *,
    strict: bool, nested: BlobScanner, torch_storages: Mapping[str, str] | None = None,
) -> bool:
    """Scan stacked pickles at ``buf[start:end]``; False when it is not a pickle at all.

    ``torch_storages``: the first pickle is a torch checkpoint's ``data.pkl``, whose
    persistent ids name storages of these types.
    """
    header = _known_header(ctx, buf, start, end)
    if header:  # the very bytes of a legacy header already scanned clean: same outcome
        ctx.format("pickle")
        ctx.format("torch-legacy")
        _legacy(ctx, buf, start + header, end, loc, nested, _LEGACY_PARTS[2:])
        return True
    mark = ctx.mark()
    first = scan_pickle(ctx, buf, start, end, loc, strict=strict, nested=nested,
                        torch_storages=torch_storages)
    if not first.is_pickle:
        return False
    ctx.format("pickle")
    if first.complete and type(first.result) is int and first.result == TORCH_LEGACY_MAGIC:
        ctx.format("torch-legacy")
        pos = _legacy(ctx, buf, first.next_start or end, end, loc, nested, _LEGACY_PARTS[:2])
        # Remember the header only if it added nothing at all: no finding, no import.
        if pos is not None and ctx.unchanged_since(mark) and not first.persistent_ids:
            _remember_header(ctx, bytes(buf[start:pos]))
        if pos is not None:
            _legacy(ctx, buf, pos, end, loc, nested, _LEGACY_PARTS[2:])
    elif first.complete:
        _stacked(ctx, buf, first.next_start or end, end, loc, nested)
    else:
        _zip_after_break(ctx, buf, start, end, loc, nested)
    return True


def _zip_after_break(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str,
                     nested: BlobScanner) -> None:
    """Where a broken pickle ends is unknown, but a zip appended to it is found by its end
    record (:func:`~safeart.scan.zipread.appended_zip`)."""
    at = appended_zip(buf, start, end)
    if at is not None:
        nested(ctx, buf, at, end, f"{loc} > zip@{at}", "")


def _stacked(ctx: ScanContext, buf: Buffer, pos: int, end: int, loc: str,
             nested: BlobScanner) -> None:
    """Further pickles after the first (``pickle.load`` called again reads them)."""
    while pos < end:
        if bytes(buf[pos:pos + 4]) in (b"PK\x03\x04", b"PK\x05\x06"):
            # An appended zip: zip readers find it; pickle.load would stop at its first
            # byte (PERSID without persistent_load), so it is no stacked pickle.
            nested(ctx, buf, pos, end, f"{loc} > after-STOP@{pos}", "trailing")
            return
        out = scan_pickle(ctx, buf, pos, end, f"{loc} > pickle@{pos}", strict=False,
                          nested=nested)
        if not out.is_pickle:
            nested(ctx, buf, pos, end, f"{loc} > after-STOP@{pos}", "trailing")
            return
        if not out.complete or out.next_start is None:
            return
        pos = out.next_start


#: Legacy headers (magic, protocol and sys_info pickles) that scanned clean without any
#: import, by limits: every tensor of a plain-pickled model repeats the same one.
_CLEAN_HEADERS: dict[Limits, set[bytes]] = {}
_MAX_HEADERS = 64


def _known_header(ctx: ScanContext, buf: Buffer, start: int, end: int) -> int:
    if not _CLEAN_HEADERS:  # (spares hashing the limits for every zip member)
        return 0
    for header in _CLEAN_HEADERS.get(ctx.limits, ()):
        n = len(header)
        if n <= end - start and buf[start:start + n] == header:
            return n
    return 0


def _remember_header(ctx: ScanContext, header: bytes) -> None:
    known = _CLEAN_HEADERS.setdefault(ctx.limits, set())
    if len(known) < _MAX_HEADERS and len(header) <= 1024:
        known.add(header)


def _legacy(ctx: ScanContext, buf: Buffer, pos: int, end: int, loc: str,
            nested: BlobScanner, parts: tuple[str, ...]) -> int | None:
    """Scan ``parts`` of a legacy stream from ``pos`` (and the raw records after the storage
    keys); returns where the parts end, None when one of them is broken."""
    outs: list[PickleOutcome] = []
    for part in parts:
        out = scan_pickle(ctx, buf, pos, end, f"{loc} > {part}@{pos}", strict=True,
                          nested=nested,
                          torch_storages=TORCH_LEGACY_STORAGE_TYPES if part == "data" else None)
        if not out.complete or out.next_start is None:
            return None
        outs.append(out)
        pos = out.next_start
    if parts[-1] != "storage keys":
        return pos
    _records(ctx, buf, pos, end, loc, nested, outs[0], outs[1])
    return pos


def _records(ctx: ScanContext, buf: Buffer, pos: int, end: int, loc: str,
             nested: BlobScanner, data: PickleOutcome, keys_out: PickleOutcome) -> None:
    """Account for the raw storage records byte by byte; scan whatever follows them."""
    where = f"{loc} > storages@{pos}"
    sizes = {
        pid[2]: storage_itemsize(stub_name(pid[1]))
        for pid in data.persistent_ids
        if type(pid) is tuple and len(pid) >= 3 and type(pid[2]) is str
    }
    keys = keys_out.result
    if type(keys) is not list or not all(type(k) is str and k in sizes for k in keys):
        ctx.add(Grade.UNKNOWN, "malformed", "storage keys",
                "the storage key list does not match the storages the data pickle references",
                location=where, offset=pos)
        _stacked(ctx, buf, pos, end, loc, nested)  # no records: pickle.load reads on
        return
    for key in keys:
        elsize = sizes[key]
        numel = int.from_bytes(buf[pos:pos + 8], "little", signed=True) if pos + 8 <= end else -1
        if elsize is None or numel < 0 or pos + 8 + numel * elsize > end:
            ctx.add(Grade.UNKNOWN, "malformed", f"storage {key}",
                    "raw storage record is truncated or of an unknown storage type",
                    location=where, offset=pos)
            return
        pos += 8 + numel * elsize
    if pos < end:
        _stacked(ctx, buf, pos, end, loc, nested)
