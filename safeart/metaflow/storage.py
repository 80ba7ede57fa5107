"""Uncompressed storage of safeart blobs in Metaflow's content-addressed store, and their reads.

Why. Metaflow stores every artifact blob gzip-compressed (level 3) in its
content-addressed store (CAS). Tensor bytes barely compress (float32 weights shrink 7-8 %)
yet gzip runs at 20-40 MB/s, so it was 94-96 % of the time to persist a model and gunzip
86-94 % of the time to load one (``benchmarks/RESULTS.md``).

What Metaflow offers. Its reader already takes blobs as stored: ``ContentAddressedStore.
load_blobs`` returns the bytes of any blob whose per-blob metadata says ``cas_raw: true``
as they are, on every datastore (the local store keeps the metadata in a ``<key>_meta``
file, S3 in the object's metadata). Its writer has no per-artifact choice:
``TaskDataStore.save_artifacts`` calls ``save_blobs(blobs)`` with ``raw=False``, which
gzips everything. There is no public API for this, so this module writes a replacement
of ``ContentAddressedStore.save_blobs`` -- a monkeypatch of a Metaflow internal, which
:func:`safeart.metaflow.runtime.install_raw_storage` installs only in processes that opted
in to safeart (``import safeart.metaflow``), right before Metaflow saves a task's artifacts.

What the replacement does. Calls with ``raw=True`` or ``is_transfer=True`` go to
Metaflow's own method unchanged. Otherwise it does what Metaflow's does -- same key (sha1
of the uncompressed blob), same path, same existence check, same metadata layout, same
single ``save_bytes`` call with the same ``len_hint`` -- except that it decides per blob
whether to gzip (``cas_raw: false``, Metaflow's own ``_pack_v1``) or store the bytes as
they are (``cas_raw: true``). Stored raw (:func:`wants_raw`): safeart blobs of at least
:data:`MIN_RAW_BYTES` whose sampled compressibility says gzip would not halve them.
Everything else -- pickled artifacts, Metaflow's own, small or very compressible safeart
blobs -- is gzipped exactly as before.

Guard. The replacement is installed only when the runtime's check of Metaflow's version
and signatures passes (``save_blobs(self, blob_iter, raw=False, len_hint=0,
is_transfer=False)`` among them) and a self-test (:func:`works`) on a
temporary local store shows that it produces what Metaflow's own ``save_blobs`` produces
(same keys, same URIs, same metadata, byte-identical raw files, gzip files that unpack to
the blob) and that Metaflow's ``load_blobs`` returns the blobs it stored. Otherwise
Metaflow's behaviour is left alone (one ``RuntimeWarning``): artifacts are gzipped, and
everything still works, only slower. ``SAFEART_RAW_STORAGE=0`` turns raw storage off.

Limits. Any Metaflow client reads these runs (``cas_raw`` is part of the CAS's metadata
since CAS version 1); safeart's extension is still needed to decode safeart artifacts,
raw or not. A blob already in the CAS keeps the encoding it was first stored with (the
key is the same either way). Raw float weights take ~8 % more space than gzipped ones.
Metaflow's reader skips gunzip for these blobs by itself; within a checked load (the
runtime's hooks) :func:`read_blobs` also reads them once into memory of their own and, on a
local datastore, does not copy them into the client's cache (``METAFLOW_CLIENT_CACHE_PATH``,
a second copy on the same disk: 2.1 s of a 512 MB ``task.data.x`` read, measured on the
shared 2-core box); other blobs and datastores are cached as Metaflow caches them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tempfile
import zlib
from typing import Any, Callable, Collection, Iterable, Iterator

from ..format.layout import METADATA_KEY
from ..settings import RAW_STORAGE_ENV, env_flag


#: Smaller safeart blobs stay gzipped (gzip costs < 2 ms there; see benchmarks/RESULTS.md).
MIN_RAW_BYTES = 64 * 1024
#: A blob whose sample gzip would shrink to less than this fraction stays gzipped: gzip
#: is slower than the write it saves even then, but it at least halves the stored bytes.
MAX_GZIP_GAIN = 0.5
_SAMPLES, _WINDOW = 8, 4 * 1024  # 32 KiB sample: within 0.07 of gzip -3 (bench_gzip)
#: How every blob safeart writes starts after its 8-byte header length (``container.pack``
#: puts the manifest first). Cheaper than parsing a header of thousands of tensors, and
#: only decides gzip or not: any blob reads back either way.
_SAFEART_HEADER = b'{"__metadata__":{"' + METADATA_KEY.encode() + b'":'


def enabled() -> bool:
    """True unless ``$SAFEART_RAW_STORAGE`` is ``0``/``false``/``no``/``off``.

    Raises:
        ConfigError: it holds something other than a boolean word.
    """
    return env_flag(RAW_STORAGE_ENV, default=True)


def wants_raw(blob: bytes) -> bool:
    """Whether ``blob`` is stored uncompressed: a safeart blob of at least
    :data:`MIN_RAW_BYTES` that gzip would not halve (judged on an evenly spaced sample)."""
    if len(blob) < MIN_RAW_BYTES or not blob.startswith(_SAFEART_HEADER, 8):
        return False
    view, step = memoryview(blob), len(blob) // _SAMPLES
    window = min(_WINDOW, step)
    sample = b"".join(view[i * step : i * step + window] for i in range(_SAMPLES))
    return len(zlib.compress(sample, 1)) >= MAX_GZIP_GAIN * len(sample)


def replacement(stock: Callable[..., list]) -> Callable[..., list]:
    """Metaflow's ``save_blobs`` ``stock`` with the raw choice made per blob (:func:`wants_raw`)
    while :func:`enabled`; calls with ``raw``/``is_transfer`` go to ``stock`` unchanged."""

    def save_blobs(self: Any, blob_iter: Iterable[bytes], raw: bool = False,
                   len_hint: int = 0, is_transfer: bool = False) -> list:
        if raw or is_transfer or not enabled():
            return stock(self, blob_iter, raw=raw, len_hint=len_hint, is_transfer=is_transfer)
        return _save_mixed(self, blob_iter, len_hint, wants_raw)

    return save_blobs


def _save_mixed(cas: Any, blob_iter: Iterable[bytes], len_hint: int,
                decide: Callable[[bytes], bool]) -> list:
    """Metaflow's ``save_blobs`` (non-transfer branch) with the raw choice made per blob."""
    storage, results = cas._storage_impl, []

    def packing_iter() -> Iterable[tuple[str, tuple[io.BytesIO, dict]]]:
        for blob in blob_iter:
            sha = hashlib.sha1(blob).hexdigest()
            path = storage.path_join(cas._prefix, sha[:2], sha)
            raw = decide(blob)
            uri = storage.full_uri(path) if raw else None
            results.append(cas.save_blobs_result(uri=uri, key=sha))
            if not storage.is_file([path])[0]:
                meta = {"cas_raw": raw, "cas_version": 1}
                yield path, (io.BytesIO(blob) if raw else cas._pack_v1(blob), meta)

    storage.save_bytes(packing_iter(), overwrite=True, len_hint=len_hint)
    return results


def read_blobs(
    cas: Any, keys: Iterable[str], stock: Callable[..., Iterator[tuple]], own: Collection[str]
) -> Iterator[tuple[str, Any]]:
    """Metaflow's ``load_blobs(keys)`` (``stock``; not a transfer), except for the keys in
    ``own`` (safeart blobs of a checked load): one stored raw is read once into memory of its
    own (:func:`safeart.format.fileio.read_file`: no ``bytes`` copy, nothing mapped from the
    datastore file, so no later write to it shows through) and, on a local datastore, not
    copied into the client's blob cache (a second copy of a file already on that disk; a
    later read reads the file again). Gzipped ones are unpacked as Metaflow unpacks CAS
    version 1; anything else (missing, older layouts) goes to ``stock``."""
    from metaflow.datastore.exceptions import DataException

    from ..format.fileio import read_file

    keys, cache, impl = list(keys), cas._blob_cache, cas._storage_impl
    rest, paths = [k for k in keys if k not in own], {}
    for key in (k for k in keys if k in own):
        blob = cache.load_key(key) if cache else None
        if blob is not None:
            yield key, blob
        else:
            paths[impl.path_join(cas._prefix, key[:2], key)] = key
    with impl.load_bytes(list(paths)) as loaded:
        for path, file_path, meta in loaded:
            key, raw = paths[path], bool(meta and meta.get("cas_raw", False))
            if file_path is None or not (raw or (meta or {}).get("cas_version") == 1):
                rest.append(key)
                continue
            if raw:
                blob = read_file(file_path)
            else:
                with open(file_path, "rb") as file:
                    try:
                        blob = cas._unpack_v1(file)
                    except Exception as exc:  # noqa: BLE001 -- as Metaflow reports it
                        raise DataException(f"Could not unpack artifact '{path}': {exc}")
            if cache and not (raw and impl.TYPE == "local"):
                cache.store_key(key, blob)
            yield key, blob
    if rest:
        yield from stock(cas, rest)


def works(cas_cls: Any, save: Callable[..., list], load: Callable[..., Iterator]) -> bool:
    """The self-test guarding :func:`replacement` and :func:`read_blobs`: on a temporary
    local store they produce what Metaflow's own ``save_blobs`` (``save``) produces and read
    back what its ``load_blobs`` (``load``) reads (the signatures are checked with the other
    patches: :func:`safeart.metaflow.runtime.unsupported`)."""
    try:
        return _self_test(cas_cls, save, load)
    except Exception:  # noqa: BLE001 -- any surprise means "not what was verified"
        return False


def _self_test(cas_cls: Any, save: Callable[..., list], load: Callable[..., Iterator]) -> bool:
    from metaflow.plugins.datastores.local_storage import LocalStorage

    raw_blob, packed_blob = b"safeart probe: stored raw", b"safeart probe: gzipped"
    with tempfile.TemporaryDirectory(prefix="safeart-cas-probe-") as tmp:
        theirs, ours = cas_cls("theirs", LocalStorage(tmp)), cas_cls("ours", LocalStorage(tmp))
        expected = [*save(theirs, [raw_blob], raw=True), *save(theirs, [packed_blob])]
        got = _save_mixed(ours, iter([raw_blob, packed_blob]), 2, lambda b: b is raw_blob)
        keys = [r.key for r in got]
        if [(r.key, r.uri is None) for r in got] != [(r.key, r.uri is None) for r in expected]:
            return False
        stored, reference = _stored(ours, keys), _stored(theirs, keys)
        loaded = dict(load(cas_cls("ours", LocalStorage(tmp)), keys))
        read = read_blobs(cas_cls("ours", LocalStorage(tmp)), keys, load, keys)
        read = {key: bytes(blob) for key, blob in read}
    return (
        [meta for meta, _ in stored] == [meta for meta, _ in reference]
        == [{"cas_raw": True, "cas_version": 1}, {"cas_raw": False, "cas_version": 1}]
        and stored[0][1] == raw_blob
        and gzip.decompress(stored[1][1]) == packed_blob
        and loaded == read == dict(zip(keys, [raw_blob, packed_blob]))
    )


def _stored(cas: Any, keys: list[str]) -> list[tuple[Any, bytes]]:
    """(metadata, file bytes) of each key, in order, as the storage layer returns them."""
    storage = cas._storage_impl
    paths = [storage.path_join(cas._prefix, key[:2], key) for key in keys]
    found = {}
    with storage.load_bytes(paths) as loaded:
        for path, local_file, meta in loaded:
            with open(local_file, "rb") as file:
                found[path] = (meta, file.read())
    return [found[path] for path in paths]
