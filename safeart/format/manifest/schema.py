"""The manifest schema of every format version: node kinds, their fields, field syntax,
object paths.

One table of kinds and fields drives the writer, the auditor and the builder, so they cannot
drift apart; :data:`KINDS` says which kinds each format version has (a version only ever adds
kinds, so the reader of an older version is the same code with a smaller kind set). See
``safeart/format/SPEC.md`` for the prose version.
"""

from __future__ import annotations

import re
from collections import OrderedDict


#: The version the writer writes (the newest).
VERSION = 2

#: Every node kind of any version and the fields it may carry ("k" is the kind itself; "id"
#: names a node that ``ref`` nodes point back to).
FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset(("k",) + fields)
    for kind, fields in {
        "ref": ("id",),
        "float": ("v",),  # non-finite float: 16 hex digits of its IEEE-754 bits
        "int": ("v", "t"),  # beyond 64 bits: hex digits, or two's complement bytes in a tensor
        "str": ("t",),  # too long to inline: UTF-8 (surrogatepass) bytes in a tensor
        "bytes": ("v", "t", "id"),  # base64, or the bytes as a tensor
        "list": ("v", "id"),  # v: the items; absent when empty
        "tuple": ("v", "id"),
        "set": ("v", "id"),
        "frozenset": ("v", "id"),
        "dict": ("v", "m", "id"),  # m: {str key: value}, or v: [[key, value], ...]; in order
        "odict": ("v", "m", "id"),
        "tensor": ("t", "rg", "id"),
        "param": ("t", "rg", "id"),
        "ndarray": ("t", "dt", "id"),
        "npscalar": ("dt", "v", "id"),
        "dtype": ("v", "id"),
        "device": ("v", "id"),
        "size": ("v", "id"),
        "obj": ("c", "args", "state", "id"),
        "enum": ("c", "v", "id"),
        "val": ("c", "cv", "v", "id"),  # version 2: a value rebuilt by safeart's codec "c"
        "fn": ("c", "id"),  # version 2: a function, class or constant referenced by name
    }.items()
}
_V1_KINDS = frozenset(FIELDS) - {"val", "fn"}
#: The node kinds of each format version a reader knows.
KINDS: dict[int, frozenset[str]] = {1: _V1_KINDS, 2: frozenset(FIELDS)}
#: Fields a kind must carry (``int`` and ``bytes`` need exactly one of ``v``/``t``).
REQUIRED: dict[str, frozenset[str]] = {
    kind: frozenset(fields)
    for kind, fields in {
        "ref": ("id",), "float": ("v",), "str": ("t",), "tensor": ("t",), "param": ("t",),
        "ndarray": ("t", "dt"), "npscalar": ("dt", "v"), "dtype": ("v",), "device": ("v",),
        "size": ("v",), "obj": ("c",), "enum": ("c", "v"), "val": ("c", "cv", "v"),
        "fn": ("c",),
    }.items()
}
#: Kinds whose object exists only once its children are built (and ``obj`` while its
#: ``args`` are built): a reference from inside them back to them cannot be resolved.
AFTER_CHILDREN = frozenset({"tuple", "set", "frozenset", "enum", "val"})
#: Container kinds and what a node of that kind without fields (``{"k": kind}``) builds.
EMPTY = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "dict": dict,
         "odict": OrderedDict}
#: torch.nn.Module state entries shown as plain attributes in object paths
#: (``model.head.weight`` rather than ``model._modules['head']._parameters['weight']``).
MODULE_CONTAINERS = frozenset({"_modules", "_parameters", "_buffers"})

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CLASS_NAME = re.compile(rf"{_IDENT}(?:\.{_IDENT})*\Z")
NUMPY_DT = re.compile(r"([<>|])([biufcmMSU])([0-9]{1,6})(\[[0-9]{0,6}[A-Za-z]{1,2}\])?\Z")
HEX = re.compile(r"-?[0-9a-f]+\Z")
FLOAT_BITS = re.compile(r"[0-9a-f]{16}\Z")
BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
TORCH_DTYPE = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")
DEVICE = re.compile(r"[a-z][a-z0-9_]{0,31}(?::[0-9]{1,4})?\Z")


_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8, 12, 16),
          "c": (8, 16, 24, 32), "m": (8,), "M": (8,)}


def dt_itemsize(dt: str) -> int | None:
    """Bytes per element of a numpy dtype string from a manifest, or None if refused."""
    match = NUMPY_DT.match(dt)
    if match is None:
        return None
    order, kind, text, unit = match.groups()
    size = int(text)
    if kind in _SIZES:
        ok = size in _SIZES[kind] and (unit is None or kind in "mM")
    else:  # S: bytes; U: characters of 4 bytes each
        ok = unit is None and size >= 1
    single_byte = kind == "S" or (size == 1 and kind in "biu")
    if not ok or (order == "|") != single_byte:
        return None
    return 4 * size if kind == "U" else size


# -- object paths --------------------------------------------------------------------------
# A path is a linked chain (parent, segment), () being the root, built cheaply while walking
# and formatted only when needed. Segments: an int is a position ([3]); a 1-tuple holds a dict
# key; STATE marks an object's state; any other str is preformatted ("<key>", ".value").
STATE = ""
KEY = "<key>"
_REPR_KEYS = (str, int, float, bool, type(None), bytes)


def format_path(path: tuple, root: str = "", *, state_dict_style: bool = False) -> str:
    """``model.layers[0].weight`` style text for a path chain; ``root`` names the root.

    String keys of an object's state read as attributes (``.weight``), and torch.nn's
    ``_modules``/``_parameters``/``_buffers`` are flattened into their object.
    ``state_dict_style`` writes numbered children the way ``Module.state_dict`` names them
    (``layers.0.weight``); the writer names tensors so.
    """
    segments = []
    while path:
        path, seg = path
        segments.append(seg)
    parts = []
    in_state = False  # the previous segment entered an object's state
    for seg in reversed(segments):
        if in_state and type(seg) is tuple and type(seg[0]) is str:
            key = seg[0]
            if key in MODULE_CONTAINERS:
                continue  # still in the object's state
            if state_dict_style or not key.isdigit():
                parts.append("." + key)
            else:
                parts.append(f"[{key}]")
        elif type(seg) is int:
            parts.append(f"[{seg}]")
        elif type(seg) is tuple:
            key = seg[0]
            parts.append(f"[{key!r}]" if type(key) in _REPR_KEYS else f"[<{type(key).__name__}>]")
        else:
            parts.append(seg)
        in_state = seg is STATE
    text = "".join(parts)
    if root:
        return root + text
    return text[1:] if text.startswith(".") else (text or "<root>")
