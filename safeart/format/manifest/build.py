"""Reader, phase 2: build the objects of an audited manifest (any format version).

Runs only after :func:`safeart.format.manifest.audit.audit` found no problem, so node shapes,
field types, tensor references, ids and depth are already known to be valid. Classes are
resolved through :meth:`Policy.resolve_class` (the only imports), instances rebuilt like
pickle's default protocol: ``cls.__new__(cls, *args)``, then ``__setstate__(state)`` or a
``__dict__``/slots update. ``val`` nodes are rebuilt by safeart's own codec of that name
from their built state; ``fn`` nodes are looked up with :meth:`Policy.resolve_reference` and
never called. Once every object is built, estimators are checked against the compiled
objects they hold (:mod:`safeart.format.codecs.sklearn_checks`). Tensors are copied once
out of the blob, straight into the tree, or share the blob's memory when the caller hands
it over (``load_file``'s mapping or read, ``loads(copy=False)`` of a writable buffer).
"""

from __future__ import annotations

import base64
import enum
import struct
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from ...errors import FormatError, LimitExceeded, SafeartError
from ...policy import Policy, qualified_name
from ..codecs import codec_named, type_name
from ..codecs.sklearn_checks import check_consistency, checks_for
from ..layout import ST_BY_NUMPY, Header, array_view, to_torch
from .schema import EMPTY, KEY, STATE, format_path


def build(manifest: dict, header: Header, buf: memoryview, policy: Policy,
          device: Any = None, name: str = "", *, owned: bool = False) -> Any:
    """Build the root object of an audited manifest. ``owned``: ``buf`` is writable
    memory handed over by the caller (a read of its own, a private mapping), so tensors
    and arrays may share it."""
    builder = _Builder(header, buf, policy, device, name, owned)
    try:
        root = builder.build(manifest["root"], ())
        for obj, path in builder.to_check:  # once every state is final (cycles included)
            try:
                check_consistency(obj)
            except FormatError as exc:
                exc.path = format_path(path, name)
                raise
        return root
    except SafeartError:
        raise
    except RecursionError:
        raise LimitExceeded("the object graph nests too deeply for Python's recursion limit",
                            hint="lower Limits.max_depth") from None
    except Exception as exc:  # a last line of defence: bad input is always a SafeartError
        raise FormatError(f"cannot rebuild the object: {type(exc).__name__}: {exc}") from exc


def set_state(obj: Any, state: Any) -> None:
    """Apply ``state`` to a fresh instance as pickle's BUILD opcode does (``__setstate__``
    is looked up on the class, so an instance ``__getattr__`` is never consulted)."""
    setstate = getattr(type(obj), "__setstate__", None)
    if setstate is not None:
        setstate(obj, state)
        return
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    if state:
        inst_dict = obj.__dict__
        for key, value in state.items():
            inst_dict[key] = value
    if slots:
        for key, value in slots.items():
            setattr(obj, key, value)


class _Builder:
    def __init__(self, header: Header, buf: memoryview, policy: Policy, device: Any,
                 name: str, owned: bool) -> None:
        self.tensors = header.tensors
        self.buf = buf
        self.owned = owned
        self.policy = policy
        self.device = device
        self.name = name
        self.memo: dict[int, Any] = {}
        self.classes: dict[tuple[str, str], type] = {}
        #: Built objects with estimator-level consistency checks, and their paths.
        self.to_check: list[tuple[Any, tuple]] = []
        self._torch: Any = None
        self.kinds: dict[str, Callable[[dict, tuple], Any]] = {
            "ref": self._ref, "float": self._float, "int": self._int, "str": self._str,
            "bytes": self._bytes, "list": self._list, "tuple": self._collection,
            "set": self._collection, "frozenset": self._collection, "dict": self._dict,
            "odict": self._dict, "tensor": self._tensor, "param": self._tensor,
            "ndarray": self._ndarray, "npscalar": self._npscalar, "dtype": self._dtype,
            "device": self._device, "size": self._size, "obj": self._obj, "enum": self._enum,
            "val": self._val, "fn": self._fn,
        }

    def build(self, node: Any, path: tuple) -> Any:
        if type(node) is not dict:
            return node
        if len(node) == 1:  # the audit admits a lone "k" only for empty containers
            return EMPTY[node["k"]]()
        return self.kinds[node["k"]](node, path)

    def fail(self, message: str, path: tuple, exc: BaseException | None = None) -> FormatError:
        if exc is not None:
            message = f"{message}: {type(exc).__name__}: {exc}"
        return FormatError(message, path=format_path(path, self.name))

    def remember(self, node: dict, obj: Any) -> Any:
        if "id" in node:
            self.memo[node["id"]] = obj
        return obj

    @property
    def torch(self) -> Any:
        if self._torch is None:
            try:
                import torch
            except ImportError:
                raise FormatError("this blob holds torch objects but torch is not installed",
                                  hint="pip install torch") from None
            self._torch = torch
        return self._torch

    def payload(self, node: dict) -> bytes:
        entry = self.tensors[node["t"]]
        return bytes(self.buf[entry.begin:entry.end])

    # -- plain values ---------------------------------------------------------------------
    def _ref(self, node: dict, path: tuple) -> Any:
        return self.memo[node["id"]]

    def _float(self, node: dict, path: tuple) -> float:
        return struct.unpack("<d", bytes.fromhex(node["v"]))[0]

    def _int(self, node: dict, path: tuple) -> int:
        if "v" in node:
            return int(node["v"], 16)
        return int.from_bytes(self.payload(node), "little", signed=True)

    def _str(self, node: dict, path: tuple) -> str:
        try:
            return self.payload(node).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise self.fail("a stored string is not UTF-8", path, exc) from None

    def _bytes(self, node: dict, path: tuple) -> bytes:
        if "t" in node:
            return self.remember(node, self.payload(node))
        return self.remember(node, base64.b64decode(node["v"], validate=True))

    def _list(self, node: dict, path: tuple) -> list:
        out: list = self.remember(node, [])
        build = self.build
        for i, item in enumerate(node.get("v", ())):
            out.append(build(item, (path, i)) if type(item) is dict else item)
        return out

    def _collection(self, node: dict, path: tuple) -> Any:
        build = self.build
        items = [build(item, (path, i)) if type(item) is dict else item
                 for i, item in enumerate(node.get("v", ()))]
        kind = tuple if node["k"] == "tuple" else set if node["k"] == "set" else frozenset
        try:
            return self.remember(node, kind(items))
        except TypeError as exc:  # unhashable element
            raise self.fail(f"cannot build a {node['k']}", path, exc) from None

    def _dict(self, node: dict, path: tuple) -> dict:
        out: dict = self.remember(node, {} if node["k"] == "dict" else OrderedDict())
        build = self.build
        if "m" in node:  # string keys: nothing to hash but str
            for key, value in node["m"].items():
                out[key] = build(value, (path, (key,))) if type(value) is dict else value
            return out
        for key_node, value_node in node.get("v", ()):
            key = build(key_node, (path, KEY))
            value = build(value_node, (path, (key,)))
            try:
                out[key] = value
            except Exception as exc:  # unhashable key, or a user __hash__/__eq__ failed
                raise self.fail("cannot use a dict key", path, exc) from None
        return out

    # -- torch and numpy ------------------------------------------------------------------
    def _tensor(self, node: dict, path: tuple) -> Any:
        torch = self.torch
        tensor = to_torch(self.buf, self.tensors[node["t"]], torch, copy=not self.owned)
        if self.device is not None:
            tensor = tensor.to(self.device)
        grad = node.get("rg", False)
        try:
            if node["k"] == "param":
                tensor = torch.nn.Parameter(tensor, requires_grad=grad)
            elif grad:
                tensor.requires_grad_(True)
        except RuntimeError as exc:  # e.g. requires_grad on an integer tensor
            raise self.fail("cannot rebuild the tensor", path, exc) from None
        return self.remember(node, tensor)

    def _numpy_dtype(self, dt: str, path: tuple) -> np.dtype:
        try:
            dtype = np.dtype(dt)
        except TypeError as exc:
            raise self.fail("invalid numpy dtype", path, exc) from None
        if dtype.str != dt:
            raise self.fail(f"numpy dtype {dt!r} is not available on this platform", path)
        return dtype

    def _ndarray(self, node: dict, path: tuple) -> np.ndarray:
        dtype = self._numpy_dtype(node["dt"], path)
        entry = self.tensors[node["t"]]
        little = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
        shape = entry.shape if little.str in ST_BY_NUMPY else entry.shape[:-1]
        swapped = little is not dtype  # astype makes the copy
        array = array_view(self.buf, entry, little, copy=not (self.owned or swapped)).reshape(shape)
        return self.remember(node, array.astype(dtype) if swapped else array)

    def _npscalar(self, node: dict, path: tuple) -> np.generic:
        dtype = self._numpy_dtype(node["dt"], path)
        return self.remember(node, np.frombuffer(bytes.fromhex(node["v"]), dtype=dtype)[0])

    def _dtype(self, node: dict, path: tuple) -> Any:
        value = vars(self.torch).get(node["v"])
        if not isinstance(value, self.torch.dtype):
            raise self.fail(f"torch has no dtype {node['v']!r}", path)
        return self.remember(node, value)

    def _device(self, node: dict, path: tuple) -> Any:
        try:
            return self.remember(node, self.torch.device(node["v"]))
        except RuntimeError as exc:
            raise self.fail("invalid torch device", path, exc) from None

    def _size(self, node: dict, path: tuple) -> Any:
        return self.remember(node, self.torch.Size(node["v"]))

    # -- class instances ------------------------------------------------------------------
    def resolve(self, node: dict, path: tuple) -> type:
        module, qualname = node["c"]
        cls = self.classes.get((module, qualname))
        if cls is None:
            cls = self.policy.resolve_class(module, qualname, path=format_path(path, self.name))
            self.classes[(module, qualname)] = cls
        return cls

    def _obj(self, node: dict, path: tuple) -> Any:
        cls = self.resolve(node, path)
        args = [self.build(arg, (path, f"<__new__ arg {i}>"))
                for i, arg in enumerate(node.get("args", ()))]
        try:
            obj = cls.__new__(cls, *args)
        except Exception as exc:
            raise self.fail(f"{cls.__qualname__}.__new__ failed", path, exc) from exc
        if type(obj) is not cls:
            raise self.fail(f"{cls.__qualname__}.__new__ returned a {type(obj).__qualname__}", path)
        self.remember(node, obj)
        if "state" in node:
            state = self.build(node["state"], (path, STATE))
            try:
                set_state(obj, state)
            except Exception as exc:
                raise self.fail(f"cannot set the state of a {cls.__qualname__}", path, exc) from exc
            if type(obj) is not cls:  # e.g. a slot state assigning __class__
                raise self.fail(f"the state of a {cls.__qualname__} changed its class", path)
        if checks_for(cls):
            self.to_check.append((obj, path))
        return obj

    def _enum(self, node: dict, path: tuple) -> enum.Enum:
        module, qualname = node["c"]
        text_path = format_path(path, self.name)
        self.policy.check_codec(module, qualname, path=text_path)  # a class or callable entry
        cls = self.policy.resolve_reference(module, qualname, path=text_path)
        wanted = self.policy.aliases_target(f"{module}.{qualname}")
        if not isinstance(cls, enum.EnumMeta) or qualified_name(cls) != wanted:
            raise self.fail(f"{wanted} is not an Enum class defined under that name", path)
        value = self.build(node["v"], (path, ".value"))
        try:
            member = cls(value)
        except Exception as exc:
            raise self.fail(f"{cls.__qualname__} has no member with that value", path, exc) from None
        return self.remember(node, member)

    def _val(self, node: dict, path: tuple) -> Any:
        module, qualname = node["c"]
        text_path = format_path(path, self.name)
        self.policy.check_codec(module, qualname, path=text_path)
        codec = codec_named(f"{module}.{qualname}")
        state = self.build(node["v"], (path, STATE))
        try:
            value = codec.decode(state, node["cv"])
        except SafeartError as exc:
            if exc.path is None:
                exc.path = text_path
            raise
        except (TypeError, ValueError, LookupError, ArithmeticError) as exc:
            raise self.fail(f"invalid state for a {codec.name}", path, exc) from None
        if codec.types and type_name(type(value)) not in codec.types:
            raise self.fail(f"codec {codec.name} built a {type_name(type(value))}", path)
        return self.remember(node, value)

    def _fn(self, node: dict, path: tuple) -> Any:
        module, qualname = node["c"]
        obj = self.policy.resolve_reference(module, qualname, path=format_path(path, self.name))
        return self.remember(node, obj)
