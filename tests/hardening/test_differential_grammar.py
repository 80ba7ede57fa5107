"""Differential testing of the scanner against a victim unpickler, with generated pickles.

tests/scan/test_differential.py checks the opcode walker against CPython on serialized
values and byte flips. Here whole scans are checked against :func:`fuzz.oracle.victim_imports`
(CPython's C unpickler with inert stubs, on the raw bytes and on every container layer):

* pickles generated from a grammar of valid-ish opcodes (imports of every kind, memo tricks,
  frames with right and wrong lengths, stacked pickles, junk after STOP);
* real pickles (the canary corpus, the benign corpus) mutated at opcode boundaries: import
  snippets inserted, ranges deleted or duplicated, pickles spliced, and wrapped in containers
  (gzip, bz2, xz, zip, tar, an ``.npy`` object array).

Any import the victim performs that the scan does not report is a bypass.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickletools
import tarfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.oracle import unreported, victim_imports
from grammar import opcode, pickles
from payloads import SAMPLES
from safeart.scan import scan_bytes

_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
_CANARY = Path("/nonexistent/safeart-differential-canary")
def _assert_reported(data: bytes) -> None:
    result = scan_bytes(data, name="generated")
    assert not [f for f in result.findings if f.kind == "error"], result.findings
    missing = unreported(data, result)
    assert not missing, (missing, data, result.findings)


@_SETTINGS
@given(pickles)
def test_grammar_pickles_report_every_import(data: bytes) -> None:
    _assert_reported(data)


@_SETTINGS
@given(st.lists(pickles, min_size=2, max_size=4))
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
            data[at:at] = draw(opcode) + draw(st.sampled_from([b"", b"0", b")R0", b"(tR0"]))
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
    out = io.BytesIO()
    if how == "zip":
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("archive/data.pkl", data)
    elif how == "tar":
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("pickle")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    elif how == "npy":  # an object array's header, then the pickle numpy.load would run
        header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
        header += b" " * (-(len(header) + 11) % 64) + b"\n"
        out.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data)
    else:
        compress = {"gzip": lambda d: gzip.compress(d, mtime=0), "bz2": bz2.compress,
                    "xz": lzma.compress, "raw": bytes}[how]
        out.write(compress(data))
    return out.getvalue()


@_SETTINGS
@given(_mutated(), st.sampled_from(["raw", "raw", "raw", "gzip", "bz2", "xz", "zip", "tar",
                                    "npy"]))
def test_mutated_real_pickles_report_every_import(data: bytes, how: str) -> None:
    _assert_reported(_wrapped(data, how))


def test_the_victim_model_sees_what_the_canary_corpus_imports():
    """The oracle is not vacuous: it finds the payload's import in every wrapped pickle."""
    for name in ("reduce_builtins_open_p2", "gzip_wrapped", "torch_zip_sleepy_pickle",
                 "legacy_torch_tar", "numpy_object_npy", "stop_inside_frame_hidden_pickle"):
        imports = victim_imports(SAMPLES[name].build(_CANARY))
        assert ("builtins", "open") in imports, name
