"""Differential testing of the scanner against a victim unpickler, with generated pickles.

tests/scan/test_differential.py checks the opcode walker against CPython on serialized
values and byte flips. Here whole scans are checked against :func:`fuzz.oracle.victim_imports`
(CPython's C unpickler with inert stubs, on the raw bytes and on every container layer):

* pickles generated from a grammar of valid-ish opcodes (imports of every kind, memo tricks,
  frames with right and wrong lengths, stacked pickles, junk after STOP);
* real pickles (the canary corpus, the benign corpus) mutated at opcode boundaries: import
  snippets inserted, ranges deleted or duplicated, pickles spliced, and wrapped in containers.

Any import the victim performs that the scan does not report is a bypass.
"""

from __future__ import annotations

import gzip
import io
import pickletools
import struct
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.oracle import unreported, victim_imports
from payloads import SAMPLES
from safeart.scan import scan_bytes

_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
_CANARY = Path("/nonexistent/safeart-differential-canary")

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
_op = st.one_of(
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
_grammar_pickle = st.builds(lambda ops: b"".join(ops) + b".", st.lists(_op, max_size=24))


def _assert_reported(data: bytes) -> None:
    result = scan_bytes(data, name="generated")
    assert not [f for f in result.findings if f.kind == "error"], result.findings
    missing = unreported(data, result)
    assert not missing, (missing, data, result.findings)


@_SETTINGS
@given(_grammar_pickle)
def test_grammar_pickles_report_every_import(data: bytes) -> None:
    _assert_reported(data)


@_SETTINGS
@given(st.lists(_grammar_pickle, min_size=2, max_size=4))
def test_stacked_grammar_pickles_report_every_import(pickles: list[bytes]) -> None:
    _assert_reported(b"".join(pickles))


# -- mutations of real pickles ---------------------------------------------------------------
def _real_pickles() -> list[bytes]:
    from test_benign import CORPUS

    seeds = [sample.build(_CANARY) for sample in SAMPLES.values()]
    seeds += [data for name, data in CORPUS.items() if len(data) < 20_000]
    return [d for d in seeds if d[:1] in (b"\x80", b"(", b"c", b"I")]


_REAL = _real_pickles()


def _boundaries(data: bytes) -> list[int]:
    """Offsets of opcodes (as far as pickletools can parse), else every 7th byte."""
    try:
        return [pos for _, _, pos in pickletools.genops(data)] or [0]
    except Exception:  # noqa: BLE001 - a malformed seed: coarse offsets
        return list(range(0, len(data), 7))


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_REAL)))
    for _ in range(draw(st.integers(1, 3))):
        cuts = _boundaries(bytes(data))
        at = draw(st.sampled_from(cuts))
        action = draw(st.sampled_from(["insert", "delete", "duplicate", "splice", "flip"]))
        if action == "insert":
            data[at:at] = draw(_op) + draw(st.sampled_from([b"", b"0", b")R0", b"(tR0"]))
        elif action == "delete":
            del data[at:draw(st.sampled_from(cuts + [len(data)]))]
        elif action == "duplicate":
            to = draw(st.sampled_from(cuts + [len(data)]))
            data[to:to] = data[at:to] if to > at else data[to:at]
        elif action == "splice":
            other = draw(st.sampled_from(_REAL))
            data[at:] = other[draw(st.sampled_from(_boundaries(other))):]
        elif data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


def _wrapped(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("archive/data.pkl", data)
        return out.getvalue()
    return data


@_SETTINGS
@given(_mutated(), st.sampled_from(["raw", "raw", "gzip", "zip"]))
def test_mutated_real_pickles_report_every_import(data: bytes, how: str) -> None:
    _assert_reported(_wrapped(data, how))


def test_the_victim_model_sees_what_the_canary_corpus_imports():
    """The oracle is not vacuous: it finds the payload's import in every wrapped pickle."""
    for name in ("reduce_builtins_open_p2", "gzip_wrapped", "torch_zip_sleepy_pickle",
                 "legacy_torch_tar", "numpy_object_npy", "stop_inside_frame_hidden_pickle"):
        imports = victim_imports(SAMPLES[name].build(_CANARY))
        assert ("builtins", "open") in imports, name
