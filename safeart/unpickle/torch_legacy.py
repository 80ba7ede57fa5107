"""Restricted reader for torch's legacy (non-zip) stream, the argument of
``torch.storage._load_from_bytes``.

Pickling a tensor with plain ``pickle`` pickles its storage as
``torch.storage._load_from_bytes(torch.save(storage, _use_new_zipfile_serialization=False))``
and torch loads that with ``torch.load(weights_only=False)``. This module reads the same
stream (layout checked against ``torch/serialization.py`` ``_legacy_save``/``_legacy_load``
of torch 2.13) with nested restricted unpicklers and builds storages itself:

1. three small pickles: the magic number, the protocol version (1001) and ``sys_info``;
2. the main pickle; its persistent ids are storage descriptors
   ``('storage', torch.<X>Storage, key, location, numel, view_metadata)``;
3. a pickle listing the storage keys;
4. per key, in that order: an 8-byte little-endian element count, then the raw bytes.

``torch.<X>Storage`` resolves to a :class:`StorageTag` (a dtype, never the class), so a
stream cannot call storage constructors. Declared sizes are charged against the bytes that
actually follow before anything is allocated, so a stream never allocates more than its own
length. Storages are always rebuilt on the CPU, whatever device they were saved from, then
moved to the session's ``device`` when one is set (``torch.load``'s ``map_location``).
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import FormatError, UnsupportedVersion
from ..pickle_facts import (
    TORCH_LEGACY_MAGIC,
    TORCH_LEGACY_PROTOCOL,
    TORCH_LEGACY_STORAGE_TYPES,
    TORCH_RECORD_COUNT_BYTES,
)
from .restricted import LoadSession, RestrictedUnpickler, load_one, short_repr

__all__ = ["StorageTag", "load_legacy_stream"]

@dataclass(frozen=True)
class StorageTag:
    """What ``torch.<X>Storage`` means inside the stream: a dtype. Not callable."""

    name: str
    dtype: torch.dtype


class _Storages:
    """Storages declared by persistent ids, charged against the bytes that follow them."""

    def __init__(self, stream: io.BytesIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self.charged = 0
        #: key -> (the storage handed out, its untyped bytes, its element count)
        self.declared: dict[str, tuple[Any, torch.UntypedStorage, int]] = {}

    def declare(self, pid: Any) -> Any:
        """The storage a persistent id describes (a TypedStorage, as ``torch.load`` gives)."""
        if not (isinstance(pid, tuple) and len(pid) == 6 and isinstance(pid[0], str)):
            raise FormatError(f"unsupported persistent id in torch stream: {short_repr(pid)}")
        kind, tag, key, location, numel, view = pid
        if kind != "storage" or not isinstance(tag, StorageTag):
            raise FormatError(f"not a storage of a known type: {short_repr(pid)}")
        if not (isinstance(key, str) and isinstance(location, str)):
            raise FormatError("storage key and location must be strings")
        if type(numel) is not int or numel < 0:
            raise FormatError(f"invalid storage element count {short_repr(numel)}")
        if view is not None:
            raise FormatError("legacy storage views (view_metadata) are not supported")
        if key in self.declared:
            storage, _, known = self.declared[key]
            if storage.dtype != tag.dtype or known != numel:
                raise FormatError(f"storage {short_repr(key)} declared twice, differently")
            return storage
        nbytes = numel * tag.dtype.itemsize
        self.charged += TORCH_RECORD_COUNT_BYTES + nbytes
        if self.charged > self.size - self.stream.tell():  # raw data follows the main pickle
            raise FormatError(
                f"storage {short_repr(key)} declares {nbytes} bytes, more than the stream holds"
            )
        untyped = torch.UntypedStorage(nbytes)  # filled in full by fill(), or discarded
        storage = torch.storage.TypedStorage(wrap_storage=untyped, dtype=tag.dtype, _internal=True)
        self.declared[key] = (storage, untyped, numel)
        return storage

    def fill(self, keys: Any, data: memoryview, stream: io.BytesIO) -> None:
        """Copy each listed storage's raw bytes in; every declared storage exactly once."""
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise FormatError("torch stream storage key list is malformed")
        if len(set(keys)) != len(keys) or set(keys) != set(self.declared):
            raise FormatError("torch stream storage key list does not match its storages")
        pos = stream.tell()
        for key in keys:
            _, untyped, numel = self.declared[key]
            nbytes = untyped.nbytes()
            end = pos + TORCH_RECORD_COUNT_BYTES + nbytes
            if end > len(data):
                raise FormatError(f"torch stream truncated in storage {short_repr(key)}")
            count = int.from_bytes(data[pos : pos + TORCH_RECORD_COUNT_BYTES], "little",
                                   signed=True)
            if count != numel:
                raise FormatError(f"storage {short_repr(key)} holds {count} elements, not {numel}")
            if nbytes:
                target = torch.empty(0, dtype=torch.uint8).set_(untyped).numpy()
                offset = pos + TORCH_RECORD_COUNT_BYTES
                target[:] = np.frombuffer(data, np.uint8, nbytes, offset)
            pos = end
        stream.seek(pos)


class _MainUnpickler(RestrictedUnpickler):
    """The main pickle: storage types become tags, persistent ids become storages."""

    def __init__(
        self, file: io.BytesIO, session: LoadSession, protocol: int, storages: _Storages
    ) -> None:
        super().__init__(file, session, protocol)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        dtype = TORCH_LEGACY_STORAGE_TYPES.get(f"{module}.{name}")
        if dtype is not None:
            return StorageTag(name, getattr(torch, dtype))
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._storages.declare(pid)


def _check_header(stream: io.BytesIO, session: LoadSession) -> None:
    magic = load_one(stream, session)
    if type(magic) is not int or magic != TORCH_LEGACY_MAGIC:
        raise FormatError("not a torch legacy stream (bad magic number)")
    version = load_one(stream, session)
    if type(version) is not int or version != TORCH_LEGACY_PROTOCOL:
        raise UnsupportedVersion(f"torch legacy stream protocol version {short_repr(version)}")
    sys_info = load_one(stream, session)
    if not isinstance(sys_info, dict):
        raise FormatError("torch legacy stream sys_info is malformed")
    if sys_info.get("little_endian") is not True or sys.byteorder != "little":
        raise UnsupportedVersion("big-endian torch legacy streams or hosts are not supported")


def load_legacy_stream(payload: object, session: LoadSession) -> Any:
    """Rebuild what ``torch.load`` would from a legacy stream, with restricted unpicklers.

    Raises:
        PolicyError: the stream names a global the session's policy does not allow.
        FormatError: the stream is truncated, inconsistent or declares impossible sizes.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise FormatError(f"torch storage payload must be bytes, got {type(payload).__name__}")
    data = memoryview(payload)
    stream = io.BytesIO(payload)
    _check_header(stream, session)
    storages = _Storages(stream, len(data))
    result = load_one(stream, session, lambda f, s, p: _MainUnpickler(f, s, p, storages))
    storages.fill(load_one(stream, session), data, stream)
    if stream.tell() != len(data):
        raise FormatError(f"{len(data) - stream.tell()} trailing bytes after the torch stream")
    return _placed(result, session.device)


def _placed(result: Any, device: Any) -> Any:
    """The stream's storage on ``device`` (unchanged when None or already there)."""
    if device is None or not isinstance(result, torch.storage.TypedStorage):
        return result
    untyped, target = result._untyped_storage, torch.device(device)
    if untyped.device == target:
        return result
    return torch.storage.TypedStorage(
        wrap_storage=untyped.to(device=target), dtype=result.dtype, _internal=True
    )
