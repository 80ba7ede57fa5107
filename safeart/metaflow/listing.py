"""One listing of a flow's whole datastore prefix: every stored object and its identity.

A whole-datastore audit (``safeart scan --all``) lists each flow's prefix once instead of
probing every task's folder. The listing tells, without reading anything:

* which attempt files each task has (``N.attempt.json``, ``N.DONE.lock``, ``N.data.json``),
  so the task record to read is known;
* an **identity** per object that changes whenever the object is rewritten: on S3 its
  size, ETag and LastModified (set by the server; an overwrite in place changes it); on
  a local datastore its size, mtime, ctime and inode (ctime cannot be set back by a user).
  The verdict cache (:mod:`safeart.metaflow.verdicts`) keys task records and blob verdicts
  by it, so a re-scan re-reads exactly what changed.

Other storage types (Azure, GCS ...) have no listing here: their audits read every task
record, and cached blob verdicts stand for the content address alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence
from urllib.parse import urlparse


@dataclass
class Listing:
    """Every object under one flow's prefix of one datastore.

    Attributes:
        objects: Path relative to the datastore root (``Flow/run/step/task/0.data.json``,
            ``Flow/data/ab/abcd...``) -> identity.
    """

    objects: dict[str, str] = field(default_factory=dict)
    _folders: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def add(self, path: str, identity: str) -> None:
        """Record one object."""
        self.objects[path] = identity
        folder, _, name = path.rpartition("/")
        self._folders.setdefault(folder, set()).add(name)

    def names_in(self, folder: str) -> set[str]:
        """The names of the objects directly in ``folder`` (``Flow/run/step/task``)."""
        return self._folders.get(folder, set())

    def folders(self) -> list[str]:
        """Every folder holding an object directly (``Flow/run/step/task``, ``Flow/data/ab``)."""
        return list(self._folders)

    def blob_identity(self, flow: str, sha: str) -> str | None:
        """The identity of blob ``sha`` (with its local ``_meta`` companion), None when the
        listing has no such blob."""
        path = f"{flow}/data/{sha[:2]}/{sha}"
        identity = self.objects.get(path)
        if identity is None:
            return None
        return identity + "|" + self.objects.get(path + "_meta", "")


def list_flow(ds_type: str, ds_root: str, flow: str, storage: Any,
              runs: Sequence[str] = ()) -> Listing | None:
    """List ``flow``'s prefix of the datastore (``storage``: Metaflow's storage instance for
    it); None for a storage type without a listing here. ``runs`` (run ids the metadata
    knows) only split an S3 listing into key ranges listed at the same time."""
    if ds_type == "local":
        return _list_local(os.path.join(ds_root, flow), flow)
    if ds_type == "s3":
        return _list_s3(ds_root, flow, storage.s3_client.client, runs)
    return None


def _list_local(top: str, flow: str) -> Listing:
    listing = Listing()
    pending = [(top, flow)]
    while pending:
        folder, rel = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, f"{rel}/{entry.name}"))
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                listing.add(f"{rel}/{entry.name}",
                            f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}")
    return listing


#: Most keys asked for per request: S3 answers at most 1,000 whatever is asked; servers
#: that allow more (moto) answer in fewer requests, each of which sorts every key under the
#: prefix. A range of run folders asks for about as many keys as its runs should still hold
#: (a page may run past the range's end: what it holds past it is read for nothing).
PAGE_KEYS = 100_000
#: S3's own page size: what is asked of a server that refuses PAGE_KEYS (SeaweedFS answers
#: ``InvalidArgument`` above 65,535 instead of capping the page as S3 does).
S3_PAGE_KEYS = 1000
#: Runs per key range of the run folders, and ranges listed at once.
RUNS_PER_RANGE = 1250
RANGE_THREADS = 2


def _list_s3(ds_root: str, flow: str, client: Any, runs: Sequence[str]) -> Listing:
    url = urlparse(ds_root)
    root = url.path.strip("/")
    prefix = f"{root}/{flow}/" if root else f"{flow}/"
    data = prefix + "data/"
    # Every key under the prefix is in one of these (a few in two: harmless), listed at
    # the same time: the blobs (data/...), the run folders before them in key order,
    # split at every RUNS_PER_RANGE-th run id the metadata knows, and any key after them.
    before_data = sorted(prefix + run for run in runs if prefix + run < data)
    bounds = before_data[RUNS_PER_RANGE::RUNS_PER_RANGE]
    ranges = [(prefix, after, before, RUNS_PER_RANGE)
              for after, before in zip([None, *map(_just_below, bounds)],
                                       [b + "\0" for b in bounds] + [data])]
    ranges[-1] = (*ranges[-1][:3], len(before_data) - RUNS_PER_RANGE * len(bounds))
    ranges += [(data, None, None, 0), (prefix, data + "\U0010ffff", None, 0)]
    listing = Listing()
    strip = len(prefix) - len(flow) - 1
    pages = Pages(client)
    with ThreadPoolExecutor(RANGE_THREADS, thread_name_prefix="safeart-list") as pool:
        for objects in pool.map(lambda r: _list_range(pages, url.netloc, *r), ranges):
            for key, identity in objects:
                listing.add(key[strip:], identity)
    return listing


def _just_below(folder: str) -> str:
    """A ``StartAfter`` for the keys in ``folder`` and after: the folder name with its last
    character one lower, then the highest character. S3 lists every key above it in UTF-8
    order, the folder's keys included; the folder name itself would do on S3, but SeaweedFS
    takes ``StartAfter=folder`` to skip the folder's whole subtree."""
    code = ord(folder[-1]) - 1
    return folder[:-1] + chr(0xD7FF if 0xD800 <= code <= 0xDFFF else code) + "\U0010ffff"


class Pages:
    """``ListObjectsV2`` pages of one listing, asking for at most PAGE_KEYS keys until the
    server refuses that many, then for S3_PAGE_KEYS (shared by the listing's ranges)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cap = PAGE_KEYS

    def get(self, request: dict[str, Any]) -> dict[str, Any]:
        """One page of ``request`` (its ``MaxKeys`` lowered to the cap)."""
        request["MaxKeys"] = min(request["MaxKeys"], self.cap)
        try:
            return self.client.list_objects_v2(**request)
        except Exception as err:  # botocore's ClientError, carrying the server's answer
            code = getattr(err, "response", {}).get("Error", {}).get("Code")
            if request["MaxKeys"] <= S3_PAGE_KEYS or code != "InvalidArgument":
                raise
            self.cap = S3_PAGE_KEYS
            return self.get(request)


def _list_range(pages: Pages, bucket: str, prefix: str, after: str | None,
                before: str | None, runs: int) -> list[tuple[str, str]]:
    """``(key, identity)`` of the objects under ``prefix`` with ``after < key < before``
    (None: unbounded), holding about ``runs`` run folders (0: not a range of runs)."""
    found: list[tuple[str, str]] = []
    request = {"Bucket": bucket, "Prefix": prefix,
               "MaxKeys": PAGE_KEYS if not runs else S3_PAGE_KEYS,
               **({"StartAfter": after} if after else {})}
    seen: set[str] = set()
    while True:
        page = pages.get(request)
        for obj in page.get("Contents", ()):
            if before is not None and obj["Key"] >= before:
                return found
            found.append((obj["Key"],
                          f"{obj['Size']}:{obj['ETag']}:{obj['LastModified'].isoformat()}"))
        if not page.get("IsTruncated"):
            return found
        request["ContinuationToken"] = page["NextContinuationToken"]
        if runs:
            seen.update(key[len(prefix):].split("/", 1)[0] for key, _ in found[-1000:])
            left = max(runs - len(seen) + 1, 1) * len(found) // max(len(seen), 1)
            request["MaxKeys"] = min(max(left + left // 10 + 10, 100), PAGE_KEYS)
