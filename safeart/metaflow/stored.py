"""Raw access to what a Metaflow run stored: artifact records and their blobs, never objects.

Everything goes through Metaflow's own datastore layer, so the datastore root, S3 endpoint,
credentials and profiles are honoured exactly as Metaflow honours them:

* ``FlowDataStore.get_task_datastores`` loads each task's ``data.json`` (the record the
  Metaflow runtime itself reads: sha, encoding, type and size of *every* artifact, the
  private ``_foreach_stack``/``_graph_info``/... included) for the latest completed attempt.
* ``ContentAddressedStore.load_blobs`` fetches blob bytes in batches (parallel on S3) and
  gunzips them. Nothing is deserialized here.

Which datastore holds a task's data is read from the ``ds-type``/``ds-root`` metadata the
task recorded (falling back to the current Metaflow configuration), one lookup per run.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Sequence

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from metaflow import Task

__all__ = ["StoreRef", "StoredArtifact", "FetchedBlob", "RunDatastore"]

#: What Metaflow assumes for artifacts recorded without an encoding (very old runs).
LEGACY_ENCODING = "gzip+pickle-v2"


@dataclass(frozen=True)
class StoreRef:
    """One flow's datastore: storage type (``local``, ``s3`` ...) and root."""

    ds_type: str
    ds_root: str
    flow: str


@dataclass(frozen=True)
class StoredArtifact:
    """One artifact of one task, as its task datastore recorded it.

    Attributes:
        pathspec: ``Flow/run/step/task:name``.
        sha: Content address of the blob (sha1 of the serialized bytes).
        encoding: Serializer encoding (``pickle-v4``, ``safeart-v1`` ...).
        type: The object's type as Metaflow recorded it (``<class 'dict'>``), if recorded.
        size: Serialized size in bytes as recorded (0 if not recorded).
        store: The datastore holding the blob.
    """

    pathspec: str
    sha: str
    encoding: str
    type: str | None
    size: int
    store: StoreRef

    @property
    def name(self) -> str:
        """The artifact name."""
        return self.pathspec.rsplit(":", 1)[1]


@dataclass(frozen=True)
class FetchedBlob:
    """The gunzipped bytes of one blob, or why they could not be read.

    Attributes:
        problem: None when ``data`` is set; else ``"missing"`` (no such blob in the
            datastore), ``"corrupt"`` (Metaflow cannot unpack it: broken gzip framing) or
            ``"io"`` (reading failed).
        message: What went wrong, when ``problem`` is set.
    """

    store: StoreRef
    sha: str
    data: bytes | None
    problem: Literal["missing", "corrupt", "io"] | None = None
    message: str = ""

    @property
    def intact(self) -> bool:
        """True when the bytes hash to the blob's content address."""
        return self.data is not None and hashlib.sha1(self.data).hexdigest() == self.sha


class RunDatastore:
    """Reads task records and blobs of runs through Metaflow's datastore classes.

    Args:
        batch_keys: Most blobs fetched per ``load_blobs`` call (S3 loads > 10 keys in
            parallel worker processes).
        batch_bytes: Most recorded bytes fetched per call (bounds memory).
    """

    def __init__(self, *, batch_keys: int = 64, batch_bytes: int = 256 << 20) -> None:
        self._batch_keys = batch_keys
        self._batch_bytes = batch_bytes
        self._flow_stores: dict[StoreRef, Any] = {}
        self._run_stores: dict[tuple[str, str], StoreRef] = {}

    # -- records ---------------------------------------------------------------------
    def artifacts(
        self, tasks: Sequence["Task"], names: Iterable[str] = ()
    ) -> tuple[list[StoredArtifact], list[str]]:
        """Artifact records of ``tasks`` (only ``names`` when given), in task order.

        Returns:
            The records, and the pathspecs of tasks without a completed attempt in the
            datastore (Metaflow itself refuses to load their data).
        """
        wanted = set(names)
        by_store: dict[StoreRef, list["Task"]] = {}
        for task in tasks:
            by_store.setdefault(self._store_of(task), []).append(task)
        records: dict[str, dict[str, Any]] = {}
        for store, group in by_store.items():
            specs = ["/".join(t.path_components[1:]) for t in group]
            for tds in self._flow_store(store).get_task_datastores(pathspecs=specs):
                records[f"{store.flow}/{tds.pathspec}"] = tds.ds_metadata
        found: list[StoredArtifact] = []
        missing: list[str] = []
        for task in tasks:
            meta = records.get(task.pathspec)
            if meta is None:
                missing.append(task.pathspec)
                continue
            store = self._store_of(task)
            for name, sha in sorted(meta["objects"].items()):
                if wanted and name not in wanted:
                    continue
                info = meta["info"].get(name, {})
                found.append(
                    StoredArtifact(
                        pathspec=f"{task.pathspec}:{name}",
                        sha=sha,
                        encoding=info.get("encoding") or LEGACY_ENCODING,
                        type=info.get("type"),
                        size=int(info.get("size") or 0),
                        store=store,
                    )
                )
        return found, missing

    def _store_of(self, task: "Task") -> StoreRef:
        flow, run = task.path_components[:2]
        ref = self._run_stores.get((flow, run))
        if ref is None:
            meta = task.metadata_dict
            ds_type, ds_root = meta.get("ds-type"), meta.get("ds-root")
            if not ds_type or not ds_root:
                ds_type, ds_root = _configured_store()
            ref = self._run_stores[(flow, run)] = StoreRef(ds_type, ds_root, flow)
        return ref

    def _flow_store(self, ref: StoreRef) -> Any:
        store = self._flow_stores.get(ref)
        if store is None:
            from metaflow.datastore import FlowDataStore

            store = self._flow_stores[ref] = FlowDataStore(
                ref.flow, storage_impl=_storage_impl(ref.ds_type), ds_root=ref.ds_root
            )
        return store

    # -- blobs -----------------------------------------------------------------------
    def fetch(self, artifacts: Iterable[StoredArtifact]) -> Iterator[FetchedBlob]:
        """Each distinct blob behind ``artifacts`` exactly once, in batches.

        The next batch downloads in a background thread while the caller works on the
        current one (so about two batches are in memory at once). A blob Metaflow cannot
        read (missing, broken gzip, I/O error) comes back with ``problem`` set instead of
        failing its whole batch.
        """
        sizes: dict[tuple[StoreRef, str], int] = {}
        for art in artifacts:
            sizes.setdefault((art.store, art.sha), art.size)
        batches = self._batches(sizes)
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="safeart-fetch") as pool:
            pending = pool.submit(self._load_batch, *batches[0])
            for following in batches[1:] + [None]:
                loaded = pending.result()
                if following is not None:
                    pending = pool.submit(self._load_batch, *following)
                yield from loaded

    def _batches(
        self, sizes: dict[tuple[StoreRef, str], int]
    ) -> list[tuple[StoreRef, list[str]]]:
        batches: list[tuple[StoreRef, list[str]]] = []
        current: list[str] = []
        current_bytes = 0
        current_store: StoreRef | None = None
        for (store, sha), size in sizes.items():
            full = len(current) >= self._batch_keys or current_bytes + size > self._batch_bytes
            if current and (store != current_store or full):
                batches.append((current_store, current))  # type: ignore[arg-type]
                current, current_bytes = [], 0
            current.append(sha)
            current_bytes += size
            current_store = store
        if current:
            batches.append((current_store, current))  # type: ignore[arg-type]
        return batches

    def _load_batch(self, store: StoreRef, keys: list[str]) -> list[FetchedBlob]:
        ca_store = self._flow_store(store).ca_store
        got: dict[str, bytes] = {}
        try:
            for key, blob in ca_store.load_blobs(keys):
                got[key] = blob
        except Exception:  # one unreadable blob aborts Metaflow's batch: retry one by one
            return [
                FetchedBlob(store, key, got[key]) if key in got else self._load_one(store, key)
                for key in keys
            ]
        return [
            FetchedBlob(store, key, got[key])
            if key in got
            else FetchedBlob(store, key, None, "io", "the datastore returned no data")
            for key in keys
        ]

    def _load_one(self, store: StoreRef, key: str) -> FetchedBlob:
        from metaflow.datastore.exceptions import DataException

        flow_store = self._flow_store(store)
        storage = flow_store._storage_impl
        try:
            if not storage.is_file([storage.path_join(store.flow, "data", key[:2], key)])[0]:
                return FetchedBlob(store, key, None, "missing", "no such blob in the datastore")
            (_, blob), *_ = flow_store.ca_store.load_blobs([key])
        except DataException as exc:  # Metaflow could not unpack (gunzip) the stored bytes
            return FetchedBlob(store, key, None, "corrupt", str(exc))
        except Exception as exc:
            return FetchedBlob(store, key, None, "io", f"{type(exc).__name__}: {exc}")
        return FetchedBlob(store, key, blob)


def _storage_impl(ds_type: str) -> type:
    from metaflow.plugins import DATASTORES

    for impl in DATASTORES:
        if impl.TYPE == ds_type:
            return impl
    raise ConfigError(
        f"the run's data lives in a {ds_type!r} datastore, which this Metaflow "
        "installation does not provide",
        hint="install the Metaflow extension that provides it",
    )


def _configured_store() -> tuple[str, str]:
    """The datastore type and root of the current Metaflow configuration."""
    from metaflow.metaflow_config import DEFAULT_DATASTORE

    impl = _storage_impl(DEFAULT_DATASTORE)
    return DEFAULT_DATASTORE, impl.get_datastore_root_from_config(
        lambda *a, **k: None, create_on_absent=False
    )
