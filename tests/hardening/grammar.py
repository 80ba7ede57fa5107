"""Hypothesis grammars for the hardening tests: pickles and policy files.

``opcode``: one production of a grammar of valid-ish pickle opcodes -- imports of every kind
(GLOBAL, INST, STACK_GLOBAL, EXT), literals, memo PUT/GET, frames with right and wrong
lengths, PROTO, stack and call opcodes, an early STOP. ``pickles``: a sequence of them plus
STOP. ``policy_files``: TOML text built from the policy keys, right and wrong.
"""

from __future__ import annotations

import json
import struct

from hypothesis import strategies as st

__all__ = ["opcode", "pickles", "policy_files"]

_MODULES = ["builtins", "os", "posix", "collections", "torch.storage", "torch._utils",
            "_codecs", "__builtin__", "copy_reg", "numpy", "pathlib", "b\u0578iltins", "",
            "a.b", "operator", "dbm", "exceptions", "UserDict"]
_NAMES = ["open", "system", "OrderedDict", "_load_from_bytes", "_rebuild_tensor_v2", "encode",
          "getattr", "os.system", "", "xrange", "UserDict", "_reconstructor", "1x", "eval"]


def _unicode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else \
        b"X" + struct.pack("<I", len(raw)) + raw


_name = st.sampled_from(_MODULES)
_attr = st.sampled_from(_NAMES)
_small = st.integers(0, 6)

# One grammar production: bytes that push, pop, import, call or frame something.
opcode = st.one_of(
    st.builds(lambda m, n: b"c" + f"{m}\n{n}\n".encode(), _name, _attr),
    st.builds(lambda m, n: b"(i" + f"{m}\n{n}\n".encode(), _name, _attr),
    st.builds(lambda m, n: _unicode(m) + _unicode(n) + b"\x93", _name, _attr),
    st.builds(lambda s: _unicode(s), _name | _attr),
    st.builds(lambda s: b"V" + s.encode("raw_unicode_escape") + b"\n", _name | _attr),
    st.builds(lambda s: b"S'" + s.encode() + b"'\n", st.sampled_from(["os", "open", "x"])),
    st.builds(lambda c: b"\x82" + bytes([c]), st.integers(0, 255)),
    st.builds(lambda i: b"q" + bytes([i]), _small),
    st.builds(lambda i: b"h" + bytes([i]), _small),
    st.builds(lambda i: b"r" + struct.pack("<I", i), _small),
    st.builds(lambda i: b"j" + struct.pack("<I", i), _small),
    st.builds(lambda i: f"p{i}\n".encode(), _small),
    st.builds(lambda i: f"g{i}\n".encode(), _small),
    st.builds(lambda n: b"\x95" + struct.pack("<Q", n), st.integers(0, 40)),
    st.builds(lambda p: b"\x80" + bytes([p]), st.integers(0, 5)),
    st.builds(lambda b: b"C" + bytes([len(b)]) + b, st.binary(max_size=8)),
    st.builds(lambda i: b"K" + bytes([i]), st.integers(0, 255)),
    st.sampled_from([b"\x94", b"(", b"0", b"1", b"2", b"N", b")", b"]", b"}", b"\x85", b"\x86",
                     b"\x87", b"t", b"l", b"d", b"a", b"e", b"s", b"u", b"\x90", b"\x91",
                     b"\x8f", b"R", b"b", b"\x81", b"\x92", b"o", b"Q", b"Pid\n", b".",
                     b"I0x10\n", b"\x88"]),
)
pickles = st.builds(lambda ops: b"".join(ops) + b".", st.lists(opcode, max_size=24))




# -- policy files ----------------------------------------------------------------------------
_LIMITS = ["max_header_bytes", "max_depth", "max_nodes", "max_tensors", "max_name_length",
           "max_scan_bytes", "max_opcodes", "max_decompression_ratio", "max_nesting",
           "max_archive_members", "max_bogus"]
_scalar = st.one_of(
    st.booleans(), st.integers(-2, 3), st.sampled_from([2**31, 2**63 - 1, 10**30]),
    st.floats(allow_nan=True), st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["mypkg.models.Net", "__main__.Net", "os.system", "", "a..b", "class",
                     "callable", "torch.nn.modules.linear.Linear", "x" * 2000]),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "reason", "kind", "other"]), inner, max_size=3),
    max_leaves=8,
)
_tables = {
    "limits": st.dictionaries(st.sampled_from(_LIMITS), _value, max_size=4),
    "aliases": st.dictionaries(st.sampled_from(["__main__.Net", "a.B", ""]), _value, max_size=2),
}
_top = st.dictionaries(
    st.sampled_from(["allow", "include_defaults", "trust_main", "unknown_key"]), _value,
    max_size=4)


def _key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else json.dumps(key)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if value == value else "nan"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"


@st.composite
def _policy_text(draw: st.DrawFn) -> bytes:
    pyproject = draw(st.booleans())
    prefix = "tool.safeart." if pyproject else ""
    lines = ["[tool.safeart]"] if pyproject else []
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in draw(_top).items()]
    for table, entries in _tables.items():
        if draw(st.booleans()):
            lines.append(f"[{prefix}{table}]")
            lines += [f"{_key(k)} = {_toml(v)}" for k, v in draw(entries).items()]
    text = "\n".join(lines).encode()
    if draw(st.sampled_from([False] * 9 + [True])):  # now and then, damage the text
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=3)) + text[at:]
    return bytes([pyproject]) + text


#: Bytes for :func:`fuzz.targets.fuzz_policy`: first byte 1 = pyproject.toml, then the file.
policy_files = _policy_text()
