"""Restricted reader for ``torch.save`` zip checkpoints (torch's default format since 1.6).

Layout (checked against ``torch/serialization.py`` ``_save``/``_load`` of torch 2.13): one
top-level folder ``<prefix>/`` holding

* ``data.pkl``: the pickled object; its persistent ids are storage descriptors
  ``('storage', torch.<X>Storage | torch.UntypedStorage, key, location, numel)``;
* ``data/<key>``: each storage's raw bytes, exactly ``numel * itemsize`` of them;
* ``byteorder`` (``little``/``big``; little when absent, as ``torch.load`` assumes),
  ``version``, and dot-named metadata records (``.format_version``, ``.storage_alignment``,
  ``.data/serialization_id``), which are never unpickled.

:func:`load_torch_zip` reads *the bytes the scanner just graded* with :mod:`zipfile` and
first checks that zipfile sees the very members the scanner's own zip reader saw (names,
offsets, sizes): a member one reader sees and the other does not is a differential. It
refuses archives torch would read differently from a naive reader (members under several
top-level folders: torch reads the first entry's folder; several ``data.pkl``) and members
that are no part of a ``torch.save`` checkpoint (TorchScript's ``code/``, ``constants.pkl``).

``data.pkl`` is unpickled by the restricted unpickler of the load session (the same policy
and bounds as every pickle). Storage types become dtypes (never the classes, never called);
a persistent id of another shape, an unknown type, or a record whose size is not exactly
``numel * itemsize`` is a FormatError naming the record, raised before anything is
allocated. Records are copied into storages of their own in chunks, byte-swapped when the
file's byte order is not the host's (as ``torch.load``), then moved to the session's
``device`` (the CPU when None: the ``location`` a storage was saved from is not used).
"""

from __future__ import annotations

import io
import sys
import zipfile
from typing import Any

import numpy as np

from ..errors import FormatError
from ..pickle_facts import TORCH_ZIP_STORAGE_TYPES
from .restricted import LoadSession, load_one, short_repr
from .torch_legacy import (
    StorageRef,
    StorageTable,
    StorageUnpickler,
    new_storage,
    placed,
    storage_bytes,
    storage_ref,
)


#: Records of a ``torch.save`` checkpoint besides ``data.pkl`` and ``data/<key>``.
_RECORDS = ("byteorder", "version")
#: Copy records into storages this much at a time (no full-size temporary copy).
_CHUNK = 1 << 22
_HINT = ("re-create the checkpoint with torch.save from trusted code; do not load it with "
         "torch.load(weights_only=False)")


def load_torch_zip(data: bytes | bytearray, session: LoadSession) -> Any:
    """What ``torch.load(weights_only=True)`` returns for the checkpoint ``data``, rebuilt
    with the session's restricted unpickler (run it inside ``session.guard``).

    Raises:
        PolicyError: ``data.pkl`` names a global the session's policy does not allow.
        FormatError: not a ``torch.save`` zip, a differential between zip readers, a record
            missing, of the wrong size, or a persistent id torch does not write.
        UnsupportedVersion: a byte order other than ``little``/``big``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise FormatError(f"not a readable zip archive: {exc}", hint=_HINT) from None
    with archive:
        _same_members_as_scanned(archive, data)
        prefix = _prefix(archive)
        swap = _byte_swap(archive, prefix)
        pickle_name = f"{prefix}data.pkl"
        pickled = _read(archive, pickle_name)
        records = _Records(archive, prefix, pickle_name, swap, session.device)
        stream = io.BytesIO(pickled)
        result = load_one(stream, session, lambda f, s, p: StorageUnpickler(
            f, s, p, TORCH_ZIP_STORAGE_TYPES, records.declare))
        if stream.tell() != len(pickled):
            raise FormatError(f"{len(pickled) - stream.tell()} trailing bytes after the "
                              f"pickle in {pickle_name}", hint=_HINT)
    return result


def _same_members_as_scanned(archive: zipfile.ZipFile,
                             data: bytes | bytearray) -> None:
    """zipfile must see exactly the members (name, local header, sizes) the scanner read."""
    from ..scan.zipread import read_members

    scanned, shift, error = read_members(data, 0, len(data))
    seen = [(i.filename, i.header_offset, i.compress_size, i.file_size)
            for i in archive.infolist()]
    if error or shift or seen != [(m.name, m.header, m.csize, m.usize) for m in scanned]:
        raise FormatError(
            "zip readers disagree on this archive's members (differential): "
            f"{error or 'the scanned and the read members differ'}",
            hint="the archive is malformed or crafted to show scanners other members; "
            + _HINT)


def _prefix(archive: zipfile.ZipFile) -> str:
    """``<prefix>/``: the one top-level folder every member is in, holding one data.pkl."""
    names = archive.namelist()
    folders = {name.split("/", 1)[0] + "/" for name in names}
    if len(folders) != 1 or any("/" not in name for name in names):
        raise FormatError(
            f"members under {len(folders)} top-level folders ({short_repr(sorted(folders))}): "
            "torch.save writes one, and torch.load reads only the first entry's, so readers "
            "would disagree on what loads (differential)", hint=_HINT)
    (prefix,) = folders
    for name in names:
        rest = name[len(prefix):]
        if not (rest == "data.pkl" or rest.startswith(("data/", ".")) or rest in _RECORDS):
            raise FormatError(
                f"member {name!r} is not part of a torch.save checkpoint (TorchScript "
                "archives and other zips are not read here)",
                hint="load TorchScript with torch.jit.load only if you trust it; " + _HINT)
    if f"{prefix}data.pkl" not in names:
        raise FormatError(f"no {prefix}data.pkl: not a torch.save checkpoint", hint=_HINT)
    return prefix


def _byte_swap(archive: zipfile.ZipFile, prefix: str) -> bool:
    """Must storages be byte-swapped (the file's ``byteorder`` is not the host's)?"""
    name = f"{prefix}byteorder"
    if name not in archive.NameToInfo:
        return sys.byteorder != "little"  # torch.load's default: little
    order = _read(archive, name)
    if order not in (b"little", b"big"):
        raise FormatError(f"record {name} holds {short_repr(order)}, not little or big",
                          hint=_HINT)
    return order.decode() != sys.byteorder


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # bad CRC, truncated, ...
        raise FormatError(f"cannot read record {name}: {exc}", hint=_HINT) from None


class _Records(StorageTable):
    """The storages ``data.pkl`` names, each built from its ``data/<key>`` record."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, pickle_name: str, swap: bool,
                 device: Any) -> None:
        super().__init__()
        self.archive, self.prefix, self.where = archive, prefix, pickle_name
        self.swap, self.device = swap, device

    def declare(self, pid: Any) -> Any:
        ref = storage_ref(pid, 5, self.where)
        storage = self.known(ref)
        if storage is not None:
            return storage
        name = f"{self.prefix}data/{ref.key}"
        info = self.archive.NameToInfo.get(name)
        if info is None:
            raise FormatError(f"record {name} is missing (storage {short_repr(ref.key)} of "
                              f"{self.where})", hint=_HINT)
        if info.file_size != ref.nbytes:
            raise FormatError(
                f"record {name} holds {info.file_size} bytes, but {self.where} declares "
                f"{ref.numel} x {ref.tag.dtype} = {ref.nbytes} bytes for storage "
                f"{short_repr(ref.key)} (truncated or crafted)", hint=_HINT)
        storage = new_storage(ref)
        self._fill(storage, ref, name)
        return self.add(ref, placed(storage, self.device))

    def _fill(self, storage: Any, ref: StorageRef, name: str) -> None:
        target = storage_bytes(storage) if ref.nbytes else np.empty(0, np.uint8)
        pos = 0
        try:
            with self.archive.open(name) as record:  # file_size == nbytes: no more
                while pos < ref.nbytes and (chunk := record.read(min(_CHUNK, ref.nbytes - pos))):
                    target[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
                    pos += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FormatError(f"cannot read record {name}: {exc}", hint=_HINT) from None
        if pos != ref.nbytes:
            raise FormatError(f"record {name} ends after {pos} of {ref.nbytes} bytes",
                              hint=_HINT)
        size = ref.tag.dtype.itemsize // (2 if ref.tag.dtype.is_complex else 1)
        if self.swap and size > 1:  # torch swaps complex numbers' halves one by one
            elements = target.reshape(-1, size)
            elements[:] = elements[:, ::-1].copy()
