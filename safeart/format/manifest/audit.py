"""Reader, phase 1: audit a manifest without importing or building anything.

One auditor serves every format version: the version a manifest declares picks its set of
node kinds (``schema.KINDS``), so a version-1 blob naming a version-2 kind is refused.

The walk is iterative (no recursion, so no recursion bomb) and visits nodes in exactly
the order the builder will, which is what makes the reference rule checkable: a ``ref``
may only point to a node seen earlier whose object already exists at that point.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ...errors import FormatError, LimitExceeded, PolicyError
from ...policy import Policy
from ..codecs import codec_named
from ..layout import ST_BY_NUMPY, Header, TensorEntry
from ..report import AuditReport, ClassRef
from .schema import (
    AFTER_CHILDREN, BASE64, CLASS_NAME, DEVICE, EMPTY, FIELDS, FLOAT_BITS, HEX, KEY, KINDS,
    REQUIRED, STATE, TORCH_DTYPE, dt_itemsize, format_path,
)


_LEAVE = object()  # stack marker: the object of a pending node now exists
Children = list[tuple[Any, Any]]


def audit(manifest: Any, header: Header, policy: Policy, name: str = "") -> AuditReport:
    """Validate a manifest (of a version in ``schema.KINDS``) against its header and the
    policy."""
    version = manifest.get("version") if type(manifest) is dict else None
    auditor = _Auditor(header, policy, name, KINDS.get(version, frozenset()))
    try:
        auditor.run(manifest)
    except FormatError as exc:  # structural: the rest cannot be interpreted reliably
        auditor.problems.append(exc)
    return AuditReport(version, tuple(auditor.classes), len(header.tensors), auditor.nodes,
                       tuple(auditor.problems))


class _Auditor:
    def __init__(self, header: Header, policy: Policy, name: str, kinds: frozenset[str]) -> None:
        self.tensors = header.tensors
        self.policy = policy
        self.limits = policy.limits
        self.name = name
        self.classes: list[ClassRef] = []
        self.problems: list[Any] = []
        self.refused: set[str] = set()
        self.declared: set[int] = set()
        self.pending: set[int] = set()
        self.used: set[str] = set()
        self.nodes = 0
        self.stack: list[tuple[Any, Any, int]] = []
        self.kinds: dict[str, Callable[[dict, tuple, Any], Children]] = {
            kind: getattr(self, "_k_" + kind) for kind in FIELDS if kind in kinds
        }

    def fail(self, message: str, path: tuple) -> FormatError:
        return FormatError(message, path=format_path(path, self.name))

    def run(self, manifest: Any) -> None:
        if type(manifest) is not dict or manifest.keys() != {"version", "root"}:
            raise FormatError("the manifest must hold exactly 'version' and 'root'")
        max_depth = self.limits.max_depth
        stack = self.stack
        self.visit([(manifest["root"], ())], -1)
        while stack:
            node, path, depth = stack.pop()
            if node is _LEAVE:
                self.pending.discard(path)
                continue
            if depth > max_depth:
                raise LimitExceeded(f"nesting deeper than max_depth={max_depth}",
                                    path=format_path(path, self.name))
            self.nodes += 1
            self.visit(self._node(node, path), depth)
        unused = self.tensors.keys() - self.used
        if unused:
            raise FormatError(f"{len(unused)} stored tensors are not referenced by the "
                              f"manifest, e.g. {min(unused)!r}")

    def visit(self, children: Children, depth: int) -> None:
        """Queue the node children of a node at ``depth``; check its literal children."""
        if self.nodes + len(children) > self.limits.max_nodes:  # before any work on them
            raise LimitExceeded(f"more than max_nodes={self.limits.max_nodes} manifest nodes")
        stack = self.stack
        max_str = self.limits.max_name_length
        for child, path in reversed(children):
            cls = type(child)
            if cls is dict:
                kind = child.get("k")
                if len(child) == 1 and type(kind) is str and kind in EMPTY:  # {"k": "odict"}
                    if depth + 1 > self.limits.max_depth:
                        raise LimitExceeded(f"nesting deeper than max_depth={self.limits.max_depth}",
                                            path=format_path(path, self.name))
                    self.nodes += 1
                else:
                    stack.append((child, path, depth + 1))
                continue
            if child is _LEAVE:
                stack.append((child, path, depth + 1))
                continue
            self.nodes += 1
            if cls is str:
                if len(child) > max_str:
                    raise LimitExceeded(f"string of {len(child)} characters exceeds max_name_"
                                        f"length={max_str}", path=format_path(path, self.name))
            elif cls is float:
                if not math.isfinite(child):
                    raise self.fail("non-finite float literal", path)
            elif not (child is None or cls is bool or cls is int):
                raise self.fail(f"a JSON {cls.__name__} is not a value node", path)

    def _node(self, node: dict, path: tuple) -> Children:
        kind = node.get("k")
        fields = FIELDS.get(kind) if type(kind) is str and kind in self.kinds else None
        if fields is None:
            raise self.fail(f"unknown node kind {kind!r}", path)
        if not fields.issuperset(node):
            unknown = sorted(set(node) - fields)
            raise self.fail(f"unknown field {unknown[0]!r} in a {kind} node", path)
        required = REQUIRED.get(kind)
        if required is not None and not node.keys() >= required:
            raise self.fail(f"{kind} node without {sorted(required - node.keys())[0]!r}", path)
        ident = node.get("id")
        if "id" in node and kind != "ref":
            self._check_id(ident, path)
            if ident in self.declared:
                raise self.fail(f"id {ident} is defined twice", path)
            self.declared.add(ident)
        return self.kinds[kind](node, path, ident)

    # -- field checks ---------------------------------------------------------------------
    def _check_id(self, ident: Any, path: tuple) -> None:
        if type(ident) is not int or ident < 0:
            raise self.fail(f"id must be a non-negative integer, not {ident!r}", path)

    def _text(self, node: dict, key: str, pattern: Any, path: tuple) -> str:
        value = node[key]
        if type(value) is not str or len(value) > self.limits.max_name_length:
            raise self.fail(f"field {key!r} must be a string of at most max_name_length", path)
        if pattern is not None and not pattern.match(value):
            raise self.fail(f"field {key!r} has invalid syntax: {value[:80]!r}", path)
        return value

    def _items(self, node: dict, key: str, path: tuple) -> list:
        value = node.get(key, [])
        if type(value) is not list:
            raise self.fail(f"field {key!r} must be a list", path)
        return value

    def _tensor_ref(self, node: dict, path: tuple) -> TensorEntry:
        name = node["t"]
        entry = self.tensors.get(name) if type(name) is str else None
        if entry is None:
            raise self.fail(f"refers to a missing tensor {name!r}", path)
        if name in self.used:
            raise self.fail(f"tensor {name!r} is referenced twice (sharing uses ref nodes)", path)
        self.used.add(name)
        return entry

    def _inline_or_tensor(self, node: dict, pattern: Any, path: tuple) -> None:
        if ("v" in node) == ("t" in node):
            raise self.fail(f"a {node['k']} node needs exactly one of 'v' and 't'", path)
        if "v" in node:
            self._text(node, "v", pattern, path)
        else:
            self._payload(node, path)

    def _payload(self, node: dict, path: tuple) -> None:
        entry = self._tensor_ref(node, path)
        if entry.dtype != "U8" or len(entry.shape) != 1:
            raise self.fail("a str/bytes/int payload must be a 1-D U8 tensor", path)

    def _name(self, node: dict, path: tuple) -> list[str]:
        c = node["c"]
        max_str = self.limits.max_name_length
        if not (type(c) is list and len(c) == 2 and all(
                type(p) is str and len(p) <= max_str and CLASS_NAME.match(p) for p in c)):
            raise self.fail("'c' must be [module, qualname], both dotted identifiers", path)
        return c

    def _class(self, node: dict, path: tuple, kind: str = "class", check: Any = None) -> ClassRef:
        """Check ``c`` and record it; a refused name is a problem (once per name)."""
        c = self._name(node, path)
        text_path = format_path(path, self.name)
        ref = ClassRef(c[0], c[1], text_path, kind)
        self.classes.append(ref)
        check = check or {"class": self.policy.check_class, "codec": self.policy.check_codec,
                          "reference": self.policy.check_reference}[kind]
        try:
            check(c[0], c[1], path=text_path)
        except PolicyError as exc:
            if ref.name not in self.refused:
                self.refused.add(ref.name)
                self.problems.append(exc)
        return ref

    def _pending(self, ident: Any, children: Children) -> Children:
        if ident is not None and children:
            self.pending.add(ident)
            children.append((_LEAVE, ident))
        return children

    # -- kinds (each returns its children in build order) ---------------------------------
    def _k_ref(self, node: dict, path: tuple, ident: Any) -> Children:
        self._check_id(ident, path)
        if ident not in self.declared:
            raise self.fail(f"ref to id {ident}, which is not defined before it", path)
        if ident in self.pending:
            raise self.fail(f"ref to id {ident}, whose object is still being built", path)
        return []

    def _k_float(self, node: dict, path: tuple, ident: Any) -> Children:
        self._text(node, "v", FLOAT_BITS, path)
        return []

    def _k_int(self, node: dict, path: tuple, ident: Any) -> Children:
        self._inline_or_tensor(node, HEX, path)
        return []

    def _k_str(self, node: dict, path: tuple, ident: Any) -> Children:
        self._payload(node, path)
        return []

    def _k_bytes(self, node: dict, path: tuple, ident: Any) -> Children:
        self._inline_or_tensor(node, BASE64, path)
        return []

    def _k_sequence(self, node: dict, path: tuple, ident: Any) -> Children:
        children = [(item, (path, i)) for i, item in enumerate(self._items(node, "v", path))]
        return self._pending(ident, children) if node["k"] in AFTER_CHILDREN else children

    _k_list = _k_tuple = _k_set = _k_frozenset = _k_sequence

    def _k_dict(self, node: dict, path: tuple, ident: Any) -> Children:
        if "m" in node:
            mapping = node["m"]
            if "v" in node or type(mapping) is not dict:
                raise self.fail("a dict node has either a map 'm' or pairs 'v'", path)
            self.visit([(key, (path, KEY)) for key in mapping], -1)  # keys are strings
            return [(value, (path, (key,))) for key, value in mapping.items()]
        children: Children = []
        for pair in self._items(node, "v", path):
            if type(pair) is not list or len(pair) != 2:
                raise self.fail("dict items must be [key, value] pairs", path)
            children.append((pair[0], (path, KEY)))
            children.append((pair[1], (path, (pair[0],))))
        return children

    _k_odict = _k_dict

    def _k_tensor(self, node: dict, path: tuple, ident: Any) -> Children:
        self._tensor_ref(node, path)
        if "rg" in node and type(node["rg"]) is not bool:
            raise self.fail("'rg' must be true or false", path)
        return []

    _k_param = _k_tensor

    def _k_ndarray(self, node: dict, path: tuple, ident: Any) -> Children:
        dt = self._text(node, "dt", None, path)
        itemsize = dt_itemsize(dt)
        if itemsize is None:
            raise self.fail(f"unsupported numpy dtype {dt!r}", path)
        entry = self._tensor_ref(node, path)
        native = ST_BY_NUMPY.get(dt.replace(">", "<"))
        if native is not None and entry.dtype != native:
            raise self.fail(f"numpy dtype {dt} stored as {entry.dtype}, expected {native}", path)
        if native is None and (entry.dtype != "U8" or entry.shape[-1:] != (itemsize,)):
            raise self.fail(f"numpy dtype {dt} must be stored as U8 bytes, {itemsize} per item", path)
        return []

    def _k_npscalar(self, node: dict, path: tuple, ident: Any) -> Children:
        itemsize = dt_itemsize(self._text(node, "dt", None, path))
        raw = self._text(node, "v", None, path)
        if itemsize is None or len(raw) != 2 * itemsize or not HEX.match(raw) or raw[0] == "-":
            raise self.fail("npscalar needs a supported dtype and its bytes as hex", path)
        if node["dt"] == "|b1" and raw not in ("00", "01"):
            raise self.fail("a numpy bool must be 00 or 01", path)
        return []

    def _k_dtype(self, node: dict, path: tuple, ident: Any) -> Children:
        self._text(node, "v", TORCH_DTYPE, path)
        return []

    def _k_device(self, node: dict, path: tuple, ident: Any) -> Children:
        self._text(node, "v", DEVICE, path)
        return []

    def _k_size(self, node: dict, path: tuple, ident: Any) -> Children:
        sizes = self._items(node, "v", path)
        if not all(type(s) is int for s in sizes):
            raise self.fail("a torch.Size holds integers only", path)
        self.nodes += len(sizes)
        return []

    def _k_obj(self, node: dict, path: tuple, ident: Any) -> Children:
        self._class(node, path)
        children: Children = []
        if "args" in node:
            args = self._items(node, "args", path)
            children = [(arg, (path, f"<__new__ arg {i}>")) for i, arg in enumerate(args)]
            self._pending(ident, children)
        if "state" in node:
            children.append((node["state"], (path, STATE)))
        return children

    def _k_enum(self, node: dict, path: tuple, ident: Any) -> Children:
        self._class(node, path, check=self.policy.check_codec)  # cls(value): class or callable
        return self._pending(ident, [(node["v"], (path, ".value"))])

    def _k_val(self, node: dict, path: tuple, ident: Any) -> Children:
        name = ".".join(self._name(node, path))
        codec = codec_named(name)
        if codec is None:  # malformed, whatever the policy says
            raise self.fail(f"no safeart codec is named {name!r} (a newer safeart, or "
                            "one whose library codecs are missing, wrote it)", path)
        cv = node["cv"]
        if type(cv) is not int or not 1 <= cv <= codec.version:
            raise self.fail(f"codec {codec.name} reads versions 1 to {codec.version}, not "
                            f"{cv!r}", path)
        self._class(node, path, "codec")
        return self._pending(ident, [(node["v"], (path, STATE))])

    def _k_fn(self, node: dict, path: tuple, ident: Any) -> Children:
        self._class(node, path, "reference")
        return []
