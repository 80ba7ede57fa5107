"""Raw access to what a Metaflow run stored: artifact records and their blobs, never objects.

Everything goes through Metaflow's own datastore layer, so the datastore root, S3 endpoint,
credentials and profiles are honoured exactly as Metaflow honours them:

* Each task's ``data.json`` (the record the Metaflow runtime itself reads: sha, encoding,
  type and size of *every* artifact, the private ``_foreach_stack``/``_graph_info``/...
  included) is read for the latest *started* attempt, and only if that attempt is done --
  the rule of ``FlowDataStore.get_task_datastores``. The attempt is found by listing the
  task's folder (``list_content``, one listing per task, batched), so one record costs one
  listing and one read instead of Metaflow's probe of every possible attempt file
  (``MAX_ATTEMPTS`` x 3 reads).
* ``ContentAddressedStore.load_blobs`` fetches blob bytes in batches (parallel on S3) and
  gunzips them. Nothing is deserialized here.

Both run ``jobs`` batches at a time in threads (each S3 batch is one Metaflow ``s3op``
call with its own worker processes).

Which datastore holds a task's data is read from the ``ds-type``/``ds-root`` metadata the
task recorded (falling back to the current Metaflow configuration), one lookup per run.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Mapping, Protocol, Sequence

from ..errors import ConfigError
from .encodings import encoding_of
from .listing import Listing, list_flow

if TYPE_CHECKING:  # pragma: no cover
    from metaflow import Task


#: Batches fetched at once by default.
DEFAULT_JOBS = 8


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
        serializer_info: What the serializer recorded with it (``serializer_info`` of the
            record: safeart's signature is ``serializer_info["safeart_sig"]``); {} if none.
    """

    pathspec: str
    sha: str
    encoding: str
    type: str | None
    size: int
    store: StoreRef
    serializer_info: Mapping[str, Any] = field(default_factory=dict, compare=False)

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


class RecordCache(Protocol):
    """Where task records read through a listing are kept between scans (the verdict
    cache): looked up by datastore, path and the object's listed identity."""

    def get_records(self, where: str,
                    items: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]: ...

    def put_record(self, where: str, path: str, identity: str, record: dict[str, Any]) -> None: ...


class RunDatastore:
    """Reads task records and blobs of runs through Metaflow's datastore classes.

    Args:
        batch_keys: Most blobs (or records, with a listing) per ``load_blobs`` /
            ``load_bytes`` call. Metaflow's S3 storage loads up to 10 keys in this process
            and more in ``s3op`` worker processes; small batches in ``jobs`` threads were
            faster on every machine measured (benchmarks/bench_audit.py).
        batch_bytes: Most recorded bytes fetched per call (bounds memory: about
            ``jobs + 1`` batches are in memory at once).
        batch_tasks: Most task folders probed per ``list_content`` call (no listing).
        jobs: Batches (of blobs or of task records) loaded at the same time, >= 1.
        listed: List each flow's whole datastore prefix once (:mod:`.listing`) instead of
            probing each task's folder: for scans of many runs.
        record_cache: With ``listed``: task records kept by their listed identity.
    """

    def __init__(self, *, batch_keys: int = 10, batch_bytes: int = 256 << 20,
                 batch_tasks: int = 500, jobs: int = DEFAULT_JOBS, listed: bool = False,
                 record_cache: RecordCache | None = None) -> None:
        if jobs < 1:
            raise ConfigError(f"jobs must be at least 1, got {jobs}")
        self._batch_keys = batch_keys
        self._batch_bytes = batch_bytes
        self._batch_tasks = batch_tasks
        self.jobs = jobs
        self._listed = listed
        self._record_cache = record_cache
        self._listings: dict[StoreRef, "Listing | None | Future[Listing | None]"] = {}
        self._background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="safeart-list")
        self._flow_stores: dict[StoreRef, Any] = {}
        self._run_stores: dict[tuple[str, str], StoreRef] = {}

    def listing(self, store: StoreRef) -> Listing | None:
        """The listing of ``store``'s flow prefix (taken once), None unless ``listed`` or
        when the storage type has none."""
        if not self._listed:
            return None
        if store not in self._listings:
            self.prefetch_listing(store)
        listing = self._listings[store]
        return listing.result() if isinstance(listing, Future) else listing

    def prefetch_listing(self, store: StoreRef, runs: Sequence[str] = ()) -> None:
        """Start listing ``store``'s flow prefix in a background thread (with ``listed``),
        so it overlaps with the enumeration of runs and tasks (``runs``: the run ids
        known, to list key ranges at once)."""
        if self._listed and store not in self._listings:
            self._listings[store] = self._background.submit(
                list_flow, store.ds_type, store.ds_root, store.flow,
                self._flow_store(store)._storage_impl, runs)

    def configured_store(self, flow: str) -> StoreRef:
        """``flow`` in the datastore of the current Metaflow configuration."""
        return StoreRef(*_configured_store(), flow)

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
        chunks = []
        for store, group in by_store.items():
            step = self._batch_tasks if self.listing(store) is None else self._batch_keys
            chunks += [(store, ["/".join(t.path_components[1:]) for t in group[i:i + step]])
                       for i in range(0, len(group), step)]
        records: dict[str, dict[str, Any]] = {}
        for loaded in _in_parallel(self.jobs, self._task_records, chunks):
            records.update(loaded)
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
                        encoding=encoding_of(info),
                        type=info.get("type"),
                        size=int(info.get("size") or 0),
                        store=store,
                        serializer_info=info.get("serializer_info") or {},
                    )
                )
        return found, missing

    def _task_records(self, store: StoreRef, specs: list[str]) -> dict[str, dict[str, Any]]:
        """``{"Flow/run/step/task": data.json}`` of the tasks ``specs`` (``run/step/task``)
        whose latest started attempt is done; the others are left out."""
        storage = self._flow_store(store)._storage_impl
        urls = {storage.path_join(store.flow, spec): spec for spec in specs}
        listing = self.listing(store)
        if listing is None:
            listing = Listing()
            for entry in storage.list_content(list(urls)):
                if entry.is_file:
                    listing.add(entry.path.rstrip("/"), "")
        wanted: dict[str, str] = {}
        for url, spec in urls.items():
            attempt = _done_attempt(listing.names_in(url))
            if attempt is not None:
                wanted[storage.path_join(url, f"{attempt}.data.json")] = spec
        records: dict[str, dict[str, Any]] = {}
        cache = self._record_cache if self._listed else None
        where = f"{store.ds_type}:{store.ds_root}"
        known = cache.get_records(where, [(path, listing.objects.get(path, ""))
                                          for path in wanted]) if cache is not None else {}
        for path, record in known.items():
            records[f"{store.flow}/{wanted.pop(path)}"] = record
        with storage.load_bytes(list(wanted)) as loaded:
            for key, path, _meta in loaded:
                if path is not None:
                    with open(path, encoding="utf-8") as f:
                        record = records[f"{store.flow}/{wanted[key]}"] = json.load(f)
                    if cache is not None and key in listing.objects:
                        cache.put_record(where, key, listing.objects[key], record)
        return records

    def _store_of(self, task: "Task") -> StoreRef:
        listed = getattr(task, "store", None)  # enumerate.ListedTask: found in a listing
        if isinstance(listed, StoreRef):
            return listed
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

        ``jobs`` batches download in background threads while the caller works on the
        one it was handed (blobs come in the order their batches complete). A blob
        Metaflow cannot read (missing, broken gzip, I/O error) comes back with ``problem``
        set instead of failing its whole batch.
        """
        sizes: dict[tuple[StoreRef, str], int] = {}
        for art in artifacts:
            sizes.setdefault((art.store, art.sha), art.size)
        for loaded in _in_parallel(self.jobs, self._load_batch, self._batches(sizes)):
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


def _in_parallel(jobs: int, work: Any, batches: list[tuple[Any, ...]]) -> Iterator[Any]:
    """``work(*batch)`` of each batch, ``jobs`` at a time in threads, yielded as they
    complete (at most ``jobs`` results wait in memory besides the one yielded)."""
    if not batches:
        return
    todo = iter(batches)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="safeart-fetch") as pool:
        running: set[Future[Any]] = set()
        for batch in todo:
            running.add(pool.submit(work, *batch))
            if len(running) >= jobs:
                break
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                for batch in todo:  # refill before handing the result over
                    running.add(pool.submit(work, *batch))
                    break
                yield future.result()


def _done_attempt(names: set[str]) -> int | None:
    """The task's latest started attempt (``N.attempt.json``) if it is done
    (``N.DONE.lock``), as ``FlowDataStore.get_task_datastores`` decides; else None."""
    started = [int(n.split(".", 1)[0]) for n in names
               if n.endswith(".attempt.json") and n.split(".", 1)[0].isdigit()]
    if not started:
        return None
    latest = max(started)
    return latest if f"{latest}.DONE.lock" in names else None


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
    root = impl.get_datastore_root_from_config(lambda *a, **k: None, create_on_absent=False)
    if not root:
        raise ConfigError(
            f"no {DEFAULT_DATASTORE} Metaflow datastore found for the current configuration",
            hint="run from the directory holding .metaflow (local datastore) or set "
            "METAFLOW_DATASTORE_SYSROOT_*",
        )
    return DEFAULT_DATASTORE, root
