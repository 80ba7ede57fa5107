"""Facts about the pickle and torch formats that the scanner, the restricted unpickler and the
policy generator must agree on, written once.

Torch-free: names and numbers only (``tests/test_pickle_facts.py`` checks them against the
installed torch's ``torch/serialization.py`` and ``torch/storage.py``). What is here decides
what a stream means, so a value that differs between the scanner and the loader is a
scan/load differential: import these, never restate them.

* :func:`proto_header`: does a stream open with a PROTO opcode CPython accepts ("is this
  certainly a pickle"), and which protocol it declares;
* :func:`compat_name`: the name CPython's ``find_class`` really imports (``_compat_pickle``);
* torch's legacy stream (``torch.save(..., _use_new_zipfile_serialization=False)``, and the
  bytes of every plain-pickled storage): its magic number, protocol version, record layout
  and storage types, and the storage types a zip checkpoint's ``data.pkl`` may name.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from types import MappingProxyType
from typing import Mapping, Union


#: The highest protocol this interpreter's unpickler reads; a PROTO opcode declaring more
#: makes ``pickle.loads`` raise before anything else.
HIGHEST_PROTOCOL: int = pickle.HIGHEST_PROTOCOL
_PROTO = pickle.PROTO[0]  # 0x80


def proto_header(buf: Union[bytes, bytearray, memoryview], start: int = 0,
                 end: int | None = None) -> int | None:
    """The protocol the PROTO opcode at ``buf[start]`` declares, when CPython accepts it.

    None when ``buf[start:end]`` does not open with ``PROTO <0..HIGHEST_PROTOCOL>``: then the
    bytes are a protocol 0/1 pickle or no pickle at all (a protocol 2+ pickle always opens
    with PROTO). CPython takes the renaming protocol (:func:`compat_name`) from it.
    """
    stop = len(buf) if end is None else min(end, len(buf))
    if stop - start < 2 or buf[start] != _PROTO or buf[start + 1] > HIGHEST_PROTOCOL:
        return None
    return int(buf[start + 1])


def compat_name(module: str, name: str, proto: int) -> tuple[str, str]:
    """The ``(module, name)`` CPython's ``find_class`` imports for a pickle global.

    Below protocol 3 the unpickler (``fix_imports=True``, the default of ``pickle.loads`` and
    ``pickle.Unpickler``) maps Python 2 names to Python 3 ones: first the exact pair
    (``_compat_pickle.NAME_MAPPING``), else the module alone (``IMPORT_MAPPING``). The name a
    policy grades must be this one, the name that is imported.
    """
    if proto < 3:
        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped:
            return mapped  # type: ignore[no-any-return]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return module, name


#: ``torch.serialization.MAGIC_NUMBER``: the first of a legacy torch stream's pickles.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: ``torch.serialization.PROTOCOL_VERSION``: the second pickle of a legacy stream.
TORCH_LEGACY_PROTOCOL = 1001
#: Each raw storage record after a legacy stream's pickles opens with its element count as a
#: little-endian signed integer of this many bytes (``torch/serialization.py``
#: ``_legacy_save``: ``storage._write_file(f, ..., element_size)``), then the elements.
TORCH_RECORD_COUNT_BYTES = 8

#: Bytes per element of each dtype a storage type stands for (``torch.<dtype>.itemsize``).
TORCH_DTYPE_ITEMSIZE: Mapping[str, int] = MappingProxyType({
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1,
    "complex128": 16, "complex64": 8,
    "qint8": 1, "qint32": 4, "quint8": 1, "quint4x2": 1, "quint2x4": 1,
})

#: The storage types a legacy stream's persistent ids name -> the ``torch.<dtype>`` each
#: stands for: ``torch/storage.py`` ``_dtype_to_storage_type_map`` (torch writes them as
#: ``torch.<X>Storage``, and its ``_legacy_load`` reads ``storage_type.dtype``, which
#: ``UntypedStorage`` lacks: a legacy stream naming it does not load). Nothing else is one.
TORCH_LEGACY_STORAGE_TYPES: Mapping[str, str] = MappingProxyType({
    "torch.DoubleStorage": "float64",
    "torch.FloatStorage": "float32",
    "torch.HalfStorage": "float16",
    "torch.LongStorage": "int64",
    "torch.IntStorage": "int32",
    "torch.ShortStorage": "int16",
    "torch.CharStorage": "int8",
    "torch.ByteStorage": "uint8",
    "torch.BoolStorage": "bool",
    "torch.BFloat16Storage": "bfloat16",
    "torch.ComplexDoubleStorage": "complex128",
    "torch.ComplexFloatStorage": "complex64",
    "torch.QInt8Storage": "qint8",
    "torch.QInt32Storage": "qint32",
    "torch.QUInt8Storage": "quint8",
    "torch.QUInt4x2Storage": "quint4x2",
    "torch.QUInt2x4Storage": "quint2x4",
})

#: The storage types a zip checkpoint's ``data.pkl`` persistent ids name: the legacy ones
#: plus ``UntypedStorage`` (bytes), which ``torch.save`` writes for an untyped storage as
#: ``torch.storage.UntypedStorage`` and ``torch.load`` reads by identity (``storage_type is
#: torch.UntypedStorage``), so under either of its two names.
TORCH_ZIP_STORAGE_TYPES: Mapping[str, str] = MappingProxyType({
    **TORCH_LEGACY_STORAGE_TYPES,
    "torch.storage.UntypedStorage": "uint8",
    "torch.UntypedStorage": "uint8",
})


def storage_itemsize(storage_type: str | None,
                     types: Mapping[str, str] = TORCH_LEGACY_STORAGE_TYPES) -> int | None:
    """Bytes per element of the storage type named ``storage_type`` (``torch.FloatStorage``)
    among ``types``; None when it is not one of them."""
    dtype = types.get(storage_type) if storage_type is not None else None
    return TORCH_DTYPE_ITEMSIZE[dtype] if dtype is not None else None
