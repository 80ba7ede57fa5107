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

The storage pieces (:class:`StorageTag`, :func:`storage_ref`, :class:`StorageTable`,
:func:`new_storage`, :func:`storage_bytes`, :class:`StorageUnpickler`, :func:`placed`) are
shared with :mod:`safeart.unpickle.torch_zip`, the reader of ``torch.save`` zip checkpoints.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

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


@dataclass(frozen=True)
class StorageTag:
    """What ``torch.<X>Storage`` means inside the stream: a dtype. Not callable."""

    name: str
    dtype: torch.dtype


@dataclass(frozen=True)
class StorageRef:
    """A storage persistent id that passed :func:`storage_ref`:
    ``('storage', tag, key, location, numel, *extra)``."""

    tag: StorageTag
    key: str
    location: str
    numel: int
    extra: tuple[Any, ...]

    @property
    def nbytes(self) -> int:
        return self.numel * self.tag.dtype.itemsize


def storage_ref(pid: Any, length: int, where: str) -> StorageRef:
    """Check ``pid`` is a storage persistent id of ``length`` items (6 in a legacy stream,
    5 in a zip checkpoint's ``data.pkl``) naming a storage type; ``where`` names the pickle."""
    if not (isinstance(pid, tuple) and len(pid) == length and isinstance(pid[0], str)):
        raise FormatError(f"unsupported persistent id in {where}: {short_repr(pid)} "
                          f"(torch writes ('storage', type, key, location, numel"
                          f"{', view' if length == 6 else ''}))")
    kind, tag, key, location, numel, *extra = pid
    if kind != "storage" or not isinstance(tag, StorageTag):
        raise FormatError(f"not a storage of a known type in {where}: {short_repr(pid)}")
    if not (isinstance(key, str) and isinstance(location, str)):
        raise FormatError(f"storage key and location must be strings in {where}")
    if type(numel) is not int or numel < 0:
        raise FormatError(f"invalid storage element count {short_repr(numel)} in {where}")
    return StorageRef(tag, key, location, numel, tuple(extra))


class StorageTable:
    """The storages of one torch pickle by key: each key stands for one storage, however
    often (and consistently) it is named, as in ``torch.load``."""

    def __init__(self) -> None:
        #: key -> (its first reference, the storage handed out)
        self.declared: dict[str, tuple[StorageRef, Any]] = {}

    def known(self, ref: StorageRef) -> Any | None:
        """The storage already handed out for ``ref.key``, if any; a different dtype or
        element count for the same key is an error."""
        if ref.key not in self.declared:
            return None
        first, storage = self.declared[ref.key]
        if first.tag.dtype != ref.tag.dtype or first.numel != ref.numel:
            raise FormatError(f"storage {short_repr(ref.key)} declared twice, differently")
        return storage

    def add(self, ref: StorageRef, storage: Any) -> Any:
        self.declared[ref.key] = (ref, storage)
        return storage


def new_storage(ref: StorageRef) -> Any:
    """A CPU TypedStorage of ``ref``'s dtype and size (as ``torch.load`` gives), contents
    undefined: the caller fills it through :func:`storage_bytes` or discards it. Callers
    charge ``ref.nbytes`` against the bytes they hold first."""
    untyped = torch.UntypedStorage(ref.nbytes)
    return torch.storage.TypedStorage(wrap_storage=untyped, dtype=ref.tag.dtype, _internal=True)


def storage_bytes(storage: Any) -> np.ndarray:
    """A writable uint8 array over ``storage``'s memory (a CPU storage)."""
    return torch.empty(0, dtype=torch.uint8).set_(storage._untyped_storage).numpy()


class StorageUnpickler(RestrictedUnpickler):
    """A torch pickle: the storage types of ``types`` become tags (never the classes), and
    persistent ids become the storages ``declare`` returns."""

    def __init__(self, file: io.BytesIO, session: LoadSession, protocol: int,
                 types: Mapping[str, str], declare: Callable[[Any], Any]) -> None:
        super().__init__(file, session, protocol)
        self._types = types
        self._declare = declare

    def find_class(self, module: str, name: str) -> Any:
        dtype = self._types.get(f"{module}.{name}")
        if dtype is not None:
            return StorageTag(name, getattr(torch, dtype))
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._declare(pid)


class _Storages(StorageTable):
    """Storages declared by persistent ids, charged against the bytes that follow them."""

    def __init__(self, stream: io.BytesIO, size: int) -> None:
        super().__init__()
        self.stream = stream
        self.size = size
        self.charged = 0

    def declare(self, pid: Any) -> Any:
        """The storage a persistent id describes (a TypedStorage, as ``torch.load`` gives)."""
        ref = storage_ref(pid, 6, "torch stream")
        if ref.extra[0] is not None:
            raise FormatError("legacy storage views (view_metadata) are not supported")
        storage = self.known(ref)
        if storage is not None:
            return storage
        self.charged += TORCH_RECORD_COUNT_BYTES + ref.nbytes
        if self.charged > self.size - self.stream.tell():  # raw data follows the main pickle
            raise FormatError(
                f"storage {short_repr(ref.key)} declares {ref.nbytes} bytes, more than the "
                "stream holds"
            )
        return self.add(ref, new_storage(ref))  # filled in full by fill(), or discarded

    def fill(self, keys: Any, data: memoryview, stream: io.BytesIO) -> None:
        """Copy each listed storage's raw bytes in; every declared storage exactly once."""
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise FormatError("torch stream storage key list is malformed")
        if len(set(keys)) != len(keys) or set(keys) != set(self.declared):
            raise FormatError("torch stream storage key list does not match its storages")
        pos = stream.tell()
        for key in keys:
            ref, storage = self.declared[key]
            end = pos + TORCH_RECORD_COUNT_BYTES + ref.nbytes
            if end > len(data):
                raise FormatError(f"torch stream truncated in storage {short_repr(key)}")
            count = int.from_bytes(data[pos : pos + TORCH_RECORD_COUNT_BYTES], "little",
                                   signed=True)
            if count != ref.numel:
                raise FormatError(
                    f"storage {short_repr(key)} holds {count} elements, not {ref.numel}")
            if ref.nbytes:
                offset = pos + TORCH_RECORD_COUNT_BYTES
                storage_bytes(storage)[:] = np.frombuffer(data, np.uint8, ref.nbytes, offset)
            pos = end
        stream.seek(pos)


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
    result = load_one(stream, session, lambda f, s, p: StorageUnpickler(
        f, s, p, TORCH_LEGACY_STORAGE_TYPES, storages.declare))
    storages.fill(load_one(stream, session), data, stream)
    if stream.tell() != len(data):
        raise FormatError(f"{len(data) - stream.tell()} trailing bytes after the torch stream")
    return placed(result, session.device)


def placed(result: Any, device: Any) -> Any:
    """``result`` with its storage on ``device``, when it is a storage (unchanged when
    ``device`` is None or the storage is already there)."""
    if device is None or not isinstance(result, torch.storage.TypedStorage):
        return result
    untyped, target = result._untyped_storage, torch.device(device)
    if untyped.device == target:
        return result
    return torch.storage.TypedStorage(
        wrap_storage=untyped.to(device=target), dtype=result.dtype, _internal=True
    )
