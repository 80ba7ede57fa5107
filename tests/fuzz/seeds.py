"""The seed corpus, made by code: ``python -m tests.fuzz.seeds DIR`` writes ``DIR/<target>/``.

Nothing binary is committed; every seed is rebuilt from the libraries installed here. Seeds
are small (the fuzzer mutates bytes, so a small seed is explored faster) and cover each
entry point's formats: safeart blobs and plain safetensors (``format``); pickles of every
protocol, torch zip and legacy checkpoints, joblib, ``.npy``/``.npz``, compressed and tar
wrappers and the canary corpus of ``tests/payloads.py`` (``scan``, ``unpickle``); policy
files (``policy``: first byte picks ``safeart.toml``/``pyproject.toml``).
"""

from __future__ import annotations

import argparse
import bz2
import collections
import gzip
import io
import lzma
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["seeds", "write_seeds"]

#: Largest seed kept (bytes); matches the runner's -max_len.
MAX_SEED = 1 << 17


def _values() -> list[object]:
    import numpy as np
    import torch

    return [
        None, 0, -(2**70), 1.5, float("nan"), "x" * 300, b"\x00\xff", (1, "a"), [1, [2, [3]]],
        {"a": 1, 2: [3.0]}, {1, 2}, frozenset({b"z"}), collections.OrderedDict(a=1), 1j,
        np.arange(6, dtype="<i4").reshape(2, 3), np.float32(2.5), np.array(["ab"]),
        torch.ones(3), torch.arange(4, dtype=torch.int16), torch.nn.Linear(2, 2),
        torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()),
        {"w": torch.zeros(2, 2, dtype=torch.bfloat16), "cfg": {"lr": 0.1}},
    ]


def _saved(save: Callable[[io.BytesIO], object]) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _pickles() -> Iterator[tuple[str, bytes]]:
    for i, value in enumerate(_values()):
        for protocol in (0, 2, 4, 5):
            try:
                yield f"value{i}_p{protocol}", pickle.dumps(value, protocol=protocol)
            except (pickle.PicklingError, TypeError, AttributeError):
                continue


def _malicious() -> Iterator[tuple[str, bytes]]:
    from payloads import SAMPLES

    canary = Path("/nonexistent/safeart-fuzz-canary")  # never created: nothing runs
    for name, sample in SAMPLES.items():
        yield f"sample_{name}", sample.build(canary)


def _containers() -> Iterator[tuple[str, bytes]]:
    import joblib
    import numpy as np
    import torch

    inner = pickle.dumps({"a": [1, 2]}, protocol=4)
    model = {"w": torch.ones(2), "b": torch.zeros(1)}
    mixed = {"a": np.arange(4.0), "o": np.array([1, "x"], dtype=object)}
    yield "torch_zip", _saved(lambda f: torch.save(model, f))
    yield "torch_legacy", _saved(
        lambda f: torch.save(model, f, _use_new_zipfile_serialization=False))
    yield "joblib", _saved(lambda f: joblib.dump(mixed, f))
    yield "joblib_zlib", _saved(lambda f: joblib.dump([np.ones(3)], f, compress=3))
    yield "npy", _saved(lambda f: np.save(f, np.arange(3.0)))
    yield "npy_object", _saved(lambda f: np.save(f, mixed["o"], allow_pickle=True))
    yield "npz", _saved(lambda f: np.savez(f, a=np.arange(2), b=np.ones(1)))
    yield "gzip", gzip.compress(inner, mtime=0)
    yield "bz2", bz2.compress(inner)
    yield "xz", lzma.compress(inner)
    yield "zlib", zlib.compress(inner)
    yield "tar", _tar({"sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
                       "pickle": inner})
    yield from _victim_containers(inner)


def _victim_containers(inner: bytes) -> Iterator[tuple[str, bytes]]:
    """Benign members of each container class a victim reads in a less common way (issue 12,
    "Misses"), so the fuzzer mutates from them: joblib's ZF files, V7 tar headers, gzip with
    NUL padding between members, npz members compressed with LZMA/bzip2, npy headers past
    10 kB, lzma-alone with a small dictionary, joblib arrays whose dtype is spelled in
    other ways."""
    import numpy as np
    from payloads import _dtype, joblib_wrapper, npy_long_header, stack_global, v7_tar

    yield "zfile", b"ZF" + f"{len(inner):#x}".encode().ljust(19) + zlib.compress(inner)
    yield "tar_v7", v7_tar({"sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
                            "pickle": inner})
    yield "gzip_padded", (gzip.compress(inner[:5], mtime=0) + bytes(8)
                          + gzip.compress(inner[5:], mtime=0))
    npy = _saved(lambda f: np.save(f, np.array([1, "x"], dtype=object), allow_pickle=True))
    for method in (zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=method) as z:
            z.writestr("o.npy", npy)
        yield f"npz_method{method}", out.getvalue()
    yield "npy_long_header", npy_long_header("|O", (1,), pickle.dumps(
        np.array(["x"], dtype=object), protocol=3))
    yield "lzma_small_dict", lzma.compress(inner, format=lzma.FORMAT_ALONE, filters=[
        {"id": lzma.FILTER_LZMA1, "dict_size": 12 << 10}])
    objects = pickle.dumps(np.array([1, "x"], dtype=object), protocol=2)
    spellings = {"pipe_O": _dtype("|O", False, True), "object": _dtype("object"),
                 "flag": _dtype("V8", False, True, state=(3, "|", None, None, None, 8, 1, 1)),
                 "struct": _dtype([("a", "<f8"), ("b", "|O")], False, True),
                 "subarray": _dtype("(2,)O", False, True), "cls": stack_global("numpy", "dtype"),
                 "f8": _dtype("<f8", False, True, state=(3, "<", None, None, None, -1, -1, 0))}
    for name, ops in spellings.items():
        for layout in ("dict", "slots", "init"):
            yield f"joblib_dtype_{name}_{layout}", joblib_wrapper(
                ops, objects if name != "f8" else bytes(8), layout)


def _blobs() -> Iterator[tuple[str, bytes]]:
    import safeart
    import safetensors.torch
    import torch

    for i, value in enumerate(_values()):
        try:
            yield f"blob{i}", safeart.dumps(value)
        except safeart.EncodeError:
            continue
    yield "blob_v2", safeart.dumps(_v2_values())  # val and fn nodes (format version 2)
    yield "safetensors_plain", safetensors.torch.save({"a": torch.ones(2), "b": torch.zeros(0)})
    yield "empty_manifest", safetensors.torch.save({}, metadata={"safeart": '{"version":1,'
                                                                  '"root":null}'})


def _v2_values() -> dict:
    import datetime
    import decimal
    import uuid
    import zoneinfo

    import torch

    return {"when": datetime.datetime(2021, 10, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo("UTC"),
                                      fold=1),
            "d": decimal.Decimal("-1.50E+3"), "u": uuid.UUID(int=7), "z": 1 + 2j,
            "dd": collections.defaultdict(list, {"k": [1]}), "q": collections.deque([1], 4),
            "act": torch.nn.functional.relu, "cls": torch.nn.Linear,
            "enc": torch.nn.TransformerEncoderLayer(4, 1, 8)}


_POLICIES = [
    'allow = ["mypkg.models.Net"]\n',
    'allow = [{ name = "mypkg.Head", reason = "reviewed" }, '
    '{ name = "mypkg.rebuild", kind = "callable" }]\ninclude_defaults = false\n'
    'trust_main = true\n',
    '[aliases]\n"__main__.Net" = "mypkg.models.Net"\n',
    "[limits]\nmax_depth = 3\nmax_nodes = 10\nmax_name_length = 5\nmax_opcodes = 4\n",
    '[tool.safeart]\nallow = ["collections.OrderedDict"]\n[tool.safeart.limits]\n'
    "max_nesting = 1\n",
    '[tool.other]\nx = 1\n',
    'allow = "not a list"\n',
]


def seeds() -> dict[str, list[tuple[str, bytes]]]:
    """Seeds per target, each at most :data:`MAX_SEED` bytes."""
    pickles = list(_pickles()) + list(_malicious())
    corpus = {
        "format": list(_blobs()),
        "scan": pickles + list(_containers()),
        "unpickle": pickles,
        "policy": [(f"policy{i}", bytes([i % 2]) + text.encode())
                   for i, text in enumerate(_POLICIES)],
    }
    return {t: [(n, d) for n, d in items if len(d) <= MAX_SEED] for t, items in corpus.items()}


def write_seeds(root: Path) -> dict[str, Path]:
    """Write every target's seeds into ``root/<target>/`` (replacing old seeds)."""
    dirs = {}
    for target, items in seeds().items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, data in items:
            (folder / name).write_bytes(data)
        dirs[target] = folder
    return dirs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    for target, folder in write_seeds(parser.parse_args().dir).items():
        print(f"{target}: {sum(1 for _ in folder.iterdir())} seeds in {folder}")
