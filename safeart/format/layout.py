"""The file layout of a safeart blob (safetensors): header validation, tensor bytes, files.

Layout (the safetensors format): an 8-byte little-endian header length ``N``, ``N`` bytes
of JSON header, then the tensor bytes. safeart writes this layout itself (the weights are
copied once, straight from zero-copy views of the tensors) and validates a header
completely before any byte behind it is interpreted:

* the length is within ``Limits.max_header_bytes`` and within the blob;
* the JSON is strict UTF-8 (no duplicate keys, no NaN/Infinity) and shaped as safetensors
  specifies; names are within ``max_name_length``, counts within ``max_tensors``;
* every dtype is known and every shape is consistent with its byte range;
* the byte ranges tile the data section exactly: no gap, no overlap, nothing out of range.

Nothing here imports torch: the caller passes the module in when it needs tensors.
"""

from __future__ import annotations

import json
import mmap
from typing import Any, Iterable, NamedTuple

import numpy as np

from ..errors import EncodeError, FormatError, LimitExceeded, SafeartError
from ..limits import Limits


#: The ``__metadata__`` key holding the safeart manifest (a JSON string).
METADATA_KEY = "safeart"
#: Most dimensions a stored tensor may have.
MAX_RANK = 64
_MAX_DIM = 1 << 62


class DType(NamedTuple):
    """How one safetensors dtype maps to torch and numpy."""

    torch: str  #: the ``torch.<name>`` dtype (also what safetensors calls it in Python)
    itemsize: int  #: bytes per stored element
    numpy: str | None = None  #: numpy dtype string, when numpy has the dtype
    packed: int = 1  #: logical elements per stored element (F4 packs two per byte)


DTYPES: dict[str, DType] = {
    "BOOL": DType("bool", 1, "|b1"),
    "U8": DType("uint8", 1, "|u1"),
    "I8": DType("int8", 1, "|i1"),
    "U16": DType("uint16", 2, "<u2"),
    "I16": DType("int16", 2, "<i2"),
    "U32": DType("uint32", 4, "<u4"),
    "I32": DType("int32", 4, "<i4"),
    "U64": DType("uint64", 8, "<u8"),
    "I64": DType("int64", 8, "<i8"),
    "F16": DType("float16", 2, "<f2"),
    "F32": DType("float32", 4, "<f4"),
    "F64": DType("float64", 8, "<f8"),
    "C64": DType("complex64", 8, "<c8"),
    "BF16": DType("bfloat16", 2),
    "F8_E4M3": DType("float8_e4m3fn", 1),
    "F8_E4M3FNUZ": DType("float8_e4m3fnuz", 1),
    "F8_E5M2": DType("float8_e5m2", 1),
    "F8_E5M2FNUZ": DType("float8_e5m2fnuz", 1),
    "F8_E8M0": DType("float8_e8m0fnu", 1),
    "F4": DType("float4_e2m1fn_x2", 1, packed=2),
}
#: torch dtype name -> safetensors dtype.
ST_BY_TORCH = {d.torch: st for st, d in DTYPES.items()}
#: little-endian numpy dtype string -> safetensors dtype.
ST_BY_NUMPY = {d.numpy: st for st, d in DTYPES.items() if d.numpy}
# Same-size signed integers carry the bytes of every dtype into torch (torch.from_numpy
# knows them in every supported torch version); a .view() then gives the real dtype.
_CARRIER = {1: np.dtype("|i1"), 2: np.dtype("<i2"), 4: np.dtype("<i4"), 8: np.dtype("<i8")}


class TensorEntry(NamedTuple):
    """One validated header entry. ``begin``/``end`` are absolute offsets in the blob."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def storage_shape(self) -> tuple[int, ...]:
        """The shape in stored elements (F4 stores two logical elements per byte)."""
        packed = DTYPES[self.dtype].packed
        if packed == 1:
            return self.shape
        return self.shape[:-1] + (self.shape[-1] // packed,)


class Header(NamedTuple):
    """A validated safetensors header."""

    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]


class Piece(NamedTuple):
    """A tensor to write: name, safetensors dtype, logical shape, bytes (1-D uint8 buffer)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: Any


def as_view(data: Any) -> memoryview:
    """A flat byte view of ``data`` (bytes, bytearray, memoryview, mmap ...) without copying."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise FormatError("duplicate key in a JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise FormatError(f"non-standard JSON constant {name}")


def parse_json(text: str, what: str, max_tensors: int | None = None) -> Any:
    """Strict JSON: no duplicate keys, no NaN/Infinity; every failure is a FormatError.

    ``max_tensors`` (safetensors headers: one JSON object per tensor, plus the header and
    ``__metadata__``): LimitExceeded as soon as the parser has built more objects, so a
    header declaring millions of tensors is refused before they are all in memory.
    """
    hook = _strict_object
    if max_tensors is not None:
        count = iter(range(max_tensors + 2))

        def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            if next(count, None) is None:
                raise LimitExceeded(f"more than max_tensors={max_tensors} tensors")
            return _strict_object(pairs)

    try:
        return json.loads(text, object_pairs_hook=hook, parse_constant=_no_constant)
    except LimitExceeded as exc:
        raise LimitExceeded(f"{what}: {exc.message}") from None
    except FormatError as exc:
        raise FormatError(f"{what}: {exc.message}") from None
    except RecursionError:
        raise LimitExceeded(f"{what} nests too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, and ints past sys.get_int_max_str_digits()
        raise FormatError(f"{what} is not valid JSON: {exc}") from None


def _header_object(buf: memoryview, limits: Limits) -> tuple[dict[str, Any], int]:
    """Parse the header JSON; returns it and the offset where tensor data starts."""
    if len(buf) < 8:
        raise FormatError(f"truncated blob: {len(buf)} bytes, shorter than the 8-byte header length")
    size = int.from_bytes(buf[:8], "little")
    if size > limits.max_header_bytes:
        raise LimitExceeded(
            f"safetensors header of {size} bytes exceeds max_header_bytes={limits.max_header_bytes}",
            hint="raise Limits.max_header_bytes only for blobs you trust",
        )
    if 8 + size > len(buf):
        raise FormatError(f"truncated blob: the header says {size} bytes, {len(buf) - 8} follow")
    raw = bytes(buf[8 : 8 + size])
    if not raw.startswith(b"{"):
        raise FormatError("the safetensors header is not a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"the safetensors header is not UTF-8: {exc}") from None
    obj = parse_json(text, "safetensors header", limits.max_tensors)
    return obj, 8 + size


def read_header(buf: memoryview, limits: Limits) -> Header:
    """Validate the whole safetensors header of ``buf`` (see the module docstring)."""
    obj, start = _header_object(buf, limits)
    metadata = obj.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(type(v) is str for v in metadata.values()):
        raise FormatError("safetensors __metadata__ must map strings to strings")
    if len(obj) > limits.max_tensors:
        raise LimitExceeded(f"{len(obj)} tensors exceed max_tensors={limits.max_tensors}")
    tensors = {name: _entry(name, spec, start, limits) for name, spec in obj.items()}
    _check_tiling(tensors, start, len(buf))
    return Header(metadata, tensors)


def _entry(name: str, spec: Any, start: int, limits: Limits) -> TensorEntry:
    if len(name) > limits.max_name_length:
        raise LimitExceeded(f"tensor name of {len(name)} characters exceeds max_name_length")
    if not isinstance(spec, dict) or spec.keys() != {"dtype", "shape", "data_offsets"}:
        raise FormatError(f"tensor {name!r}: expected exactly dtype, shape and data_offsets")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    info = DTYPES.get(dtype) if type(dtype) is str else None
    if info is None:
        raise FormatError(f"tensor {name!r}: unknown dtype {dtype!r}")
    if type(shape) is not list or len(shape) > MAX_RANK:
        raise FormatError(f"tensor {name!r}: shape must be a list of at most {MAX_RANK} sizes")
    count = 1
    for dim in shape:
        if type(dim) is not int or not 0 <= dim <= _MAX_DIM:
            raise FormatError(f"tensor {name!r}: shape holds {dim!r}, not a size")
        count *= dim
    if not (type(offsets) is list and len(offsets) == 2 and type(offsets[0]) is int
            and type(offsets[1]) is int and 0 <= offsets[0] <= offsets[1]):
        raise FormatError(f"tensor {name!r}: data_offsets must be [begin, end] with begin <= end")
    if info.packed > 1:
        if not shape or shape[-1] % info.packed:
            raise FormatError(f"tensor {name!r}: {dtype} needs a last dimension divisible by {info.packed}")
        count //= info.packed
    if count * info.itemsize != offsets[1] - offsets[0]:
        raise FormatError(
            f"tensor {name!r}: {dtype}{shape} needs {count * info.itemsize} bytes, "
            f"its data_offsets span {offsets[1] - offsets[0]}"
        )
    return TensorEntry(dtype, tuple(shape), start + offsets[0], start + offsets[1])


def _check_tiling(tensors: dict[str, TensorEntry], start: int, total: int) -> None:
    cursor = start
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.end > total:
            raise FormatError(f"tensor {name!r}: data_offsets run past the end of the blob (truncated?)")
        if entry.begin != cursor:
            what = "overlaps the previous tensor" if entry.begin < cursor else "leaves a gap before it"
            raise FormatError(f"tensor {name!r}: data {what}")
        cursor = entry.end
    if cursor != total:
        raise FormatError(f"{total - cursor} trailing bytes after the last tensor")


def sniff(data: Any) -> bool:
    """True if ``data`` starts with a safetensors header carrying a safeart manifest."""
    try:
        obj, _ = _header_object(as_view(data), Limits())
    except SafeartError:
        return False
    meta = obj.get("__metadata__")
    return isinstance(meta, dict) and type(meta.get(METADATA_KEY)) is str


def array_view(buf: memoryview, entry: TensorEntry, dtype: np.dtype, *,
               copy: bool = False) -> np.ndarray:
    """A 1-D numpy array of an entry's bytes as ``dtype``: a zero-copy view of ``buf``
    (read-only if ``buf`` is), or with ``copy`` an array of its own.

    A BOOL tensor must hold only bytes 0 and 1. The check runs on the bytes the array
    keeps: on the copy, and always on a copy for mapped memory (a mapped file's pages may
    change after the check; BOOL tensors are masks, small next to the weights).
    """
    count = (entry.end - entry.begin) // dtype.itemsize
    view = np.frombuffer(buf, dtype=dtype, count=count, offset=entry.begin)
    boolean = entry.dtype == "BOOL"
    if copy or (boolean and isinstance(buf.obj, mmap.mmap)):
        view = view.copy()
    if boolean and view.view(np.uint8).max(initial=0) > 1:
        raise FormatError("a BOOL tensor holds bytes other than 0 and 1")
    return view


def to_torch(buf: memoryview, entry: TensorEntry, torch: Any, *, copy: bool = True) -> Any:
    """A CPU tensor holding an entry's bytes: a copy out of ``buf``, or with ``copy=False``
    (``buf`` writable and handed over by the caller) a tensor sharing its memory, if aligned."""
    info = DTYPES[entry.dtype]
    view = array_view(buf, entry, _CARRIER[info.itemsize], copy=copy)
    if not view.flags.aligned:
        view = view.copy()
    tensor = torch.from_numpy(view.reshape(entry.storage_shape))
    target = getattr(torch, info.torch)
    return tensor if tensor.dtype is target else tensor.view(target)


def pack(manifest: str, pieces: Iterable[Piece], limits: Limits) -> list[Any]:
    """The blob as buffers to join or write: header length, header, tensor bytes.

    Tensors are laid out by decreasing item size, so each one starts aligned to its item
    size (the header is space-padded to a multiple of 8, as safetensors does).
    """
    header: dict[str, Any] = {"__metadata__": {METADATA_KEY: manifest}}
    ordered = sorted(pieces, key=lambda p: -DTYPES[p.dtype].itemsize)
    offset = 0
    for piece in ordered:
        end = offset + piece.data.nbytes
        header[piece.name] = {"dtype": piece.dtype, "shape": list(piece.shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":"), check_circular=False).encode("ascii")
    raw += b" " * (-len(raw) % 8)
    if len(raw) > limits.max_header_bytes:
        raise EncodeError(
            f"the header would be {len(raw)} bytes, over max_header_bytes={limits.max_header_bytes}",
            hint="store large strings, bytes and lists as numpy arrays or tensors",
        )
    return [len(raw).to_bytes(8, "little"), raw, *(p.data for p in ordered)]
