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
from typing import Any
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

    def blob_identity(self, flow: str, sha: str) -> str | None:
        """The identity of blob ``sha`` (with its local ``_meta`` companion), None when the
        listing has no such blob."""
        path = f"{flow}/data/{sha[:2]}/{sha}"
        identity = self.objects.get(path)
        if identity is None:
            return None
        return identity + "|" + self.objects.get(path + "_meta", "")


def list_flow(ds_type: str, ds_root: str, flow: str, storage: Any) -> Listing | None:
    """List ``flow``'s prefix of the datastore (``storage``: Metaflow's storage instance for
    it); None for a storage type without a listing here."""
    if ds_type == "local":
        return _list_local(os.path.join(ds_root, flow), flow)
    if ds_type == "s3":
        return _list_s3(ds_root, flow, storage.s3_client.client)
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


def _list_s3(ds_root: str, flow: str, client: Any) -> Listing:
    url = urlparse(ds_root)
    root = url.path.strip("/")
    prefix = f"{root}/{flow}/" if root else f"{flow}/"
    strip = len(prefix) - len(flow) - 1
    listing = Listing()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=url.netloc,
                                                                 Prefix=prefix):
        for obj in page.get("Contents", ()):
            listing.add(obj["Key"][strip:],
                        f"{obj['Size']}:{obj['ETag']}:{obj['LastModified'].isoformat()}")
    return listing
