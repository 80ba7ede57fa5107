"""The writer: a Python object tree -> a JSON manifest (newest format version) plus tensors.

Objects of classes are taken apart exactly like pickle's default protocol does
(``obj.__reduce_ex__(4)``), and only the default shape is accepted: ``copyreg.__newobj__``
with the object's own class (plus ``__new__`` arguments) and a state. Values of the exact
types a safeart codec handles (``datetime``, ``Decimal``, ``defaultdict`` ...) become ``val``
nodes holding the codec's state. Module-level functions, builtins and classes become ``fn``
references when looking their name up again gives back the very same object. Anything else
that reduces to a callable -- lambdas, local functions, bound methods, custom ``__reduce__``
results, modules, open files -- is an :class:`~safeart.errors.EncodeError` naming the object
path and saying what to store instead. Nothing partial is ever returned.
"""

from __future__ import annotations

import base64
import copyreg
import enum
import json
import math
import struct
import sys
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from ...errors import EncodeError, SafeartError
from ...limits import Limits
from ..codecs import Codec, codec_for_type, codec_named, type_name
from ..codecs.torch_extra import BUFFER
from ..layout import MAX_RANK, ST_BY_NUMPY, ST_BY_TORCH, Piece
from .hints import (
    FUNCTION_TYPES, REFERENCE_HINT, STATE_HINTS, reduce_hint, reference_name, refusal,
)
from .schema import KEY, STATE, VERSION, format_path


_INT64 = 1 << 63
_NUMPY_KINDS = frozenset("biufcmMSU")
_BUFFER_MARKS = {"_is_buffer", "persistent"}


def encode(obj: Any, *, name: str, limits: Limits) -> tuple[str, list[Piece]]:
    """Encode ``obj``; returns the manifest JSON text and the tensors to store."""
    encoder = _Encoder(name, limits)
    try:
        root = encoder.encode(obj, (), 0)
    except RecursionError:
        raise EncodeError(
            "the object graph nests too deeply for Python's recursion limit",
            hint=f"flatten it below max_depth={limits.max_depth}",
        ) from None
    if encoder.nodes > limits.max_nodes:
        raise EncodeError(f"{encoder.nodes} values exceed max_nodes={limits.max_nodes}",
                          hint="store large lists of numbers as numpy arrays or tensors")
    if len(encoder.pieces) > limits.max_tensors:
        raise EncodeError(f"{len(encoder.pieces)} tensors exceed max_tensors={limits.max_tensors}")
    manifest = json.dumps({"version": VERSION, "root": root}, separators=(",", ":"),
                          allow_nan=False, check_circular=False)
    return manifest, encoder.pieces


class _Encoder:
    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.max_str = limits.max_name_length
        self.memo: dict[int, tuple[Any, dict]] = {}  # id -> (object kept alive, its node)
        self.pending: set[int] = set()  # objects that exist only after their children
        self.next_id = 0
        self.nodes = 0
        self.pieces: list[Piece] = []
        self.names: set[str] = set()
        self.torch = sys.modules.get("torch")
        handlers: dict[type, Callable[[Any, tuple, int], dict]] = {
            list: self._sequence, tuple: self._sequence, set: self._sequence,
            frozenset: self._sequence, dict: self._dict, OrderedDict: self._dict,
            bytes: self._bytes, np.ndarray: self._ndarray,
        }
        if self.torch is not None:
            torch = self.torch
            handlers.update({
                torch.Tensor: self._tensor, torch.nn.Parameter: self._tensor,
                torch.dtype: self._torch_dtype, torch.device: self._device,
                torch.Size: self._size,
            })
        self.handlers = handlers

    def fail(self, message: str, path: tuple, hint: str | None = None) -> EncodeError:
        return EncodeError(message, path=format_path(path, self.name), hint=hint)

    # -- dispatch -------------------------------------------------------------------------
    def encode(self, obj: Any, path: tuple, depth: int) -> Any:
        self.nodes += 1
        cls = type(obj)
        if (obj is None or cls is bool or (cls is int and -_INT64 <= obj < _INT64)
                or (cls is float and math.isfinite(obj)) or (cls is str and len(obj) <= self.max_str)):
            return obj  # a JSON literal
        if depth > self.limits.max_depth:  # the reader's rule: no node object deeper than this
            raise self.fail(f"nesting deeper than max_depth={self.limits.max_depth}", path)
        if cls is int:
            return self._big_int(obj, path)
        if cls is float:
            return {"k": "float", "v": struct.pack("<d", obj).hex()}
        if cls is str:
            return {"k": "str", "t": self._add(path, "U8", obj.encode("utf-8", "surrogatepass"))}
        seen = self.memo.get(id(obj))
        if seen is not None:
            return self._ref(seen[1], id(obj), path)
        handler = self.handlers.get(cls)
        if handler is None:
            handler = self._fallback(obj)
        try:
            return handler(obj, path, depth)
        except (SafeartError, RecursionError):
            raise
        except Exception as exc:  # a user __reduce_ex__/__getstate__/__iter__ failed
            raise self.fail(f"{type(obj).__name__} cannot be encoded: {type(exc).__name__}: {exc}",
                            path) from exc

    def _fallback(self, obj: Any) -> Callable[[Any, tuple, int], dict]:
        if codec_for_type(type(obj)) is not None:
            return self._value
        if isinstance(obj, (type, FUNCTION_TYPES)):
            return self._reference
        if isinstance(obj, np.generic):
            return self._np_scalar
        if self.torch is not None and isinstance(obj, self.torch.Tensor):
            return self._tensor  # a subclass: refused there with a precise message
        if isinstance(obj, enum.Enum):
            return self._enum
        return self._object

    def _new(self, obj: Any, kind: str) -> dict:
        node = {"k": kind}
        self.memo[id(obj)] = (obj, node)
        return node

    def _ref(self, node: dict, key: int, path: tuple) -> dict:
        if key in self.pending:
            raise self.fail("a tuple, set, enum, codec value or __new__ argument contains "
                            "itself; such cycles cannot be stored", path)
        if "id" not in node:
            node["id"] = self.next_id
            self.next_id += 1
        return {"k": "ref", "id": node["id"]}

    def _add(self, path: tuple, dtype: str, data: Any, shape: tuple[int, ...] | None = None) -> str:
        """Store ``data`` (a bytes-like object) as a tensor named after the object path."""
        name = format_path(path, state_dict_style=True)
        if (name in self.names or name == "__metadata__" or len(name) > self.max_str
                or not name.isprintable()):
            name = f"#{len(self.pieces)}"
            while name in self.names:
                name += "#"
        self.names.add(name)
        buf = memoryview(data).cast("B")
        self.pieces.append(Piece(name, dtype, (buf.nbytes,) if shape is None else shape, buf))
        return name

    # -- plain values ---------------------------------------------------------------------
    def _big_int(self, value: int, path: tuple) -> dict:
        digits = format(value, "x")
        if len(digits) <= self.max_str:
            return {"k": "int", "v": digits}
        raw = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
        return {"k": "int", "t": self._add(path, "U8", raw)}

    def _bytes(self, value: bytes, path: tuple, depth: int) -> dict:
        node = self._new(value, "bytes")
        if len(value) * 4 // 3 + 4 <= self.max_str:
            node["v"] = base64.b64encode(value).decode("ascii")
        else:
            node["t"] = self._add(path, "U8", value)
        return node

    def _sequence(self, value: Any, path: tuple, depth: int) -> dict:
        kind = type(value).__name__
        node = self._new(value, kind)
        after = kind != "list"
        if after:
            self.pending.add(id(value))
        items = []
        for i, item in enumerate(value):
            items.append(self.encode(item, (path, i), depth + 1))
        if items:
            node["v"] = items
        if after:
            self.pending.discard(id(value))
        return node

    def _dict(self, value: dict, path: tuple, depth: int) -> dict:
        node = self._new(value, "dict" if type(value) is dict else "odict")
        if not value:
            return node
        encode = self.encode
        if all(type(key) is str and len(key) <= self.max_str for key in value):
            self.nodes += len(value)  # the keys, as the reader counts them
            node["m"] = {key: encode(item, (path, (key,)), depth + 1)
                         for key, item in value.items()}
        else:
            node["v"] = [[encode(key, (path, KEY), depth + 1),
                          encode(item, (path, (key,)), depth + 1)]
                         for key, item in value.items()]
        return node

    # -- torch and numpy ------------------------------------------------------------------
    def _tensor(self, tensor: Any, path: tuple, depth: int) -> dict:
        torch = self.torch
        cls = type(tensor)
        if sys.byteorder != "little":
            raise self.fail("tensors can only be stored on little-endian hosts", path)
        if cls is not torch.Tensor and cls is not torch.nn.Parameter:
            raise self.fail(f"tensor subclass {cls.__module__}.{cls.__qualname__} cannot be stored",
                            path, hint="store a plain tensor: t.as_subclass(torch.Tensor)")
        if (tensor.layout is not torch.strided or tensor.is_quantized or tensor.is_nested
                or tensor.device.type == "meta"):
            raise self.fail(f"{tensor.layout} / quantized / nested / meta tensors cannot be stored",
                            path, hint="convert it to a dense tensor first")
        dtype = ST_BY_TORCH.get(str(tensor.dtype).removeprefix("torch."))
        if dtype is None:
            raise self.fail(f"dtype {tensor.dtype} has no safetensors equivalent", path,
                            hint="convert the tensor to a supported dtype (see SPEC.md)")
        if tensor.__dict__.keys() == _BUFFER_MARKS and cls is torch.Tensor:  # torch.nn.Buffer
            return self._value(tensor, path, depth, BUFFER)
        if tensor.__dict__:
            raise self.fail(f"tensor attributes {sorted(tensor.__dict__)} cannot be stored", path)
        data = tensor.detach()
        if data.device.type != "cpu":
            data = data.cpu()  # CUDA and other devices: saved from a CPU copy
        data = data.resolve_conj().resolve_neg().contiguous()
        shape = tuple(data.shape)
        if dtype == "F4":
            if not shape:
                raise self.fail("a 0-dimensional float4_e2m1fn_x2 tensor cannot be stored", path)
            shape = shape[:-1] + (shape[-1] * 2,)
        if len(shape) > MAX_RANK:
            raise self.fail(f"tensors of more than {MAX_RANK} dimensions cannot be stored", path)
        node = self._new(tensor, "param" if cls is torch.nn.Parameter else "tensor")
        node["t"] = self._add(path, dtype, data.reshape(-1).view(torch.uint8).numpy(), shape)
        if tensor.requires_grad:
            node["rg"] = True
        return node

    def _torch_dtype(self, value: Any, path: tuple, depth: int) -> dict:
        node = self._new(value, "dtype")
        node["v"] = str(value).removeprefix("torch.")
        return node

    def _device(self, value: Any, path: tuple, depth: int) -> dict:
        node = self._new(value, "device")
        node["v"] = str(value)
        return node

    def _size(self, value: Any, path: tuple, depth: int) -> dict:
        self.nodes += len(value)
        node = self._new(value, "size")
        node["v"] = list(value)
        return node

    def _numpy_dtype(self, dtype: np.dtype, path: tuple) -> None:
        if (dtype.kind not in _NUMPY_KINDS or dtype.fields is not None
                or dtype.subdtype is not None or dtype.itemsize == 0):
            raise self.fail(f"numpy dtype {dtype} cannot be stored (object, void and "
                            "structured dtypes are not supported)", path)

    def _ndarray(self, array: np.ndarray, path: tuple, depth: int) -> dict:
        dtype = array.dtype
        if dtype.kind == "O" or dtype.fields is not None:  # elements or fields, by the codec
            codec = codec_named("numpy.ndarray")
            if codec is not None:
                return self._value(array, path, depth, codec)
        self._numpy_dtype(dtype, path)
        little = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
        data = array.astype(little, order="C", copy=False)  # copies only to fix layout/order
        st = ST_BY_NUMPY.get(little.str)
        shape = array.shape if st else array.shape + (dtype.itemsize,)
        if len(shape) > MAX_RANK:
            raise self.fail(f"arrays of more than {MAX_RANK} dimensions cannot be stored", path)
        node = self._new(array, "ndarray")
        node["dt"] = dtype.str
        node["t"] = self._add(path, st or "U8", data.reshape(-1).view(np.uint8), shape)
        return node

    def _np_scalar(self, value: np.generic, path: tuple, depth: int) -> dict:
        self._numpy_dtype(value.dtype, path)
        raw = value.tobytes().hex()
        if len(raw) > self.max_str:
            raise self.fail("numpy scalar too large to store", path, hint="store a 0-d array")
        node = self._new(value, "npscalar")
        node["dt"] = value.dtype.str
        node["v"] = raw
        return node

    # -- class instances ------------------------------------------------------------------
    def _class_name(self, cls: type, path: tuple) -> list[str]:
        if "<" in cls.__qualname__:
            raise self.fail(f"instances of local class {cls.__qualname__} cannot be loaded back",
                            path, hint="define the class at module level")
        return [cls.__module__, cls.__qualname__]

    def _enum(self, member: enum.Enum, path: tuple, depth: int) -> dict:
        cls = type(member)
        if cls(member.value) != member:
            raise self.fail(f"{cls.__qualname__} member cannot be looked up by its value", path)
        node = self._new(member, "enum")
        node["c"] = self._class_name(cls, path)
        self.pending.add(id(member))
        node["v"] = self.encode(member.value, (path, ".value"), depth + 1)
        self.pending.discard(id(member))
        return node

    def _value(self, obj: Any, path: tuple, depth: int, codec: Codec | None = None) -> dict:
        codec = codec or codec_for_type(type(obj))
        assert codec is not None
        node = self._new(obj, "val")
        module, _, qualname = codec.name.rpartition(".")
        node["c"] = [module, qualname]
        node["cv"] = codec.version
        self.pending.add(id(obj))
        try:
            state = codec.encode(obj)
        except EncodeError as exc:
            if exc.path is None:
                exc.path = format_path(path, self.name)
            raise
        node["v"] = self.encode(state, (path, STATE), depth + 1)
        self.pending.discard(id(obj))
        return node

    def _reference(self, obj: Any, path: tuple, depth: int) -> dict:
        name = reference_name(obj)
        if type(name) is str:  # why it cannot be referenced
            raise self.fail(name, path, hint=REFERENCE_HINT)
        node = self._new(obj, "fn")
        node["c"] = list(name)
        return node

    def _object(self, obj: Any, path: tuple, depth: int) -> dict:
        cls = type(obj)
        why = refusal(obj)
        if why is not None:
            raise self.fail(why[0], path, hint=why[1])
        reducer = copyreg.dispatch_table.get(cls)  # as pickle: registered reducers first
        reduced = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
        if isinstance(reduced, str):  # pickle's "a global name": np.mean, ufuncs
            return self._reference(obj, path, depth)
        if not isinstance(reduced, tuple) or not 2 <= len(reduced) <= 6:
            raise self.fail(f"{cls.__qualname__} reduces to a global name, not to data", path)
        func, args, state, listitems, dictitems, setter = reduced + (None,) * (6 - len(reduced))
        if func is not copyreg.__newobj__ or not args or args[0] is not cls:
            how = getattr(func, "__qualname__", repr(func))
            raise self.fail(
                f"{cls.__qualname__} is rebuilt by calling {how}(...); only classes rebuilt by "
                "__new__ plus state (pickle's default protocol) can be stored", path,
                hint=reduce_hint(cls))
        if listitems is not None or dictitems is not None or setter is not None:
            raise self.fail(f"{cls.__qualname__}: list/dict subclass items and state setters "
                            "cannot be stored", path, hint="store a plain list or dict")
        node = self._new(obj, "obj")
        node["c"] = self._class_name(cls, path)
        if len(args) > 1:
            self.pending.add(id(obj))
            new_args = []
            for i, arg in enumerate(args[1:]):
                new_args.append(self.encode(arg, (path, f"<__new__ arg {i}>"), depth + 1))
            node["args"] = new_args
            self.pending.discard(id(obj))
        if state is not None:
            try:
                node["state"] = self.encode(state, (path, STATE), depth + 1)
            except EncodeError as exc:
                exc.hint = STATE_HINTS.get(type_name(cls), exc.hint)
                raise
        return node
