"""The verdict cache that makes a re-scan of an unchanged datastore cheap.

::

    cache = VerdictCache.open(default_cache_path(), policy)   # None when it cannot be used
    report = scan_run("TrainFlow", cache=cache)               # or safeart scan --all

What one entry says. "The blob with content address ``sha`` in datastore ``where``,
stored as the object the listing described by ``identity``, analysed as ``analysis``
(``pickle`` or ``safeart``) by this scanner under this policy, gave this
:class:`Outcome`." The key is all of these, hashed:

* ``sha``: Metaflow's content address (sha1 of the blob's bytes) and ``where`` (datastore
  type, root and flow);
* ``identity``: with a datastore listing (``safeart scan --all``, runs of a flow; see
  :mod:`safeart.metaflow.listing`), what the listing says of the stored object -- S3 size,
  ETag and LastModified, or local size, mtime, ctime and inode -- so a blob rewritten in
  place under its old key is fetched and scanned again; "" for a scan without a listing;
* the **policy fingerprint** (:func:`policy_fingerprint`): every allowlist rule with its
  kind and reason, aliases, ``trust_main``, ``include_defaults`` and every limit, so a
  verdict reached under a laxer or older policy never answers for the current one;
* the **scanner fingerprint** (:func:`scanner_fingerprint`): the safeart version and a
  hash of every source file of the installed ``safeart`` package, so a fixed or stricter
  scanner re-scans everything.

Task records (``data.json``: which blob each artifact is, its encoding) are cached the same
way, by path and listed identity, and only with a listing; without one they are read
afresh on every scan. So a re-scan reads again exactly what changed: a new run, a new
attempt, a rewritten record or blob.

What a re-scan skips. A blob whose every needed analysis is cached (for its current
identity) is **not fetched**. Without a listing (``safeart scan Flow/run --cache FILE``)
the identity is empty and the cached verdict stands for the content address alone: a blob
overwritten in place after its first scan is then not seen; ``--rehash`` (``rehash=True``)
fetches every blob again and checks it against its content address, using the cached
analysis only for bytes that still hash to it (a fetch without the scan). Outcomes are
cached only for blobs whose bytes matched their content address; a tampered, missing or
unreadable blob is reported on every scan.

Storage and trust. One SQLite file (default ``$XDG_CACHE_HOME/safeart/verdicts.sqlite``,
else ``~/.cache/safeart/verdicts.sqlite``). Each scan's new entries are written in one
transaction (atomic: a killed scan leaves the previous state); concurrent scans share the
file. Every row carries a checksum over its key and outcome; a row that does not verify or
does not parse is ignored (the blob is scanned again), and a file that cannot be opened or
read is ignored with a warning, the scan then running uncached. The cache is trusted like
the safeart installation itself: keep it in a directory only you can write (whoever can
write it can forge a clean verdict, as whoever can write the installed scanner can).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sqlite3
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from ..policy import Policy, qualified_name
from ..scan import Finding


#: How a blob is analysed: by the pickle scanner, or by the safeart loader's checks.
Analysis = Literal["pickle", "safeart"]

_TABLES = ("verdicts", "records")


@dataclass
class Outcome:
    """What one analysis of one blob found (shared by every artifact using the blob)."""

    findings: list[Finding]
    size: int = 0
    complete: bool = True
    formats: tuple[str, ...] = ()
    globals: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> str:
        """The outcome as compact JSON (what the cache stores)."""
        return json.dumps({
            "findings": [f.to_dict() for f in self.findings], "size": self.size,
            "complete": self.complete, "formats": list(self.formats),
            "globals": self.globals, "seconds": self.seconds, "error": self.error,
        }, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Outcome":
        """Parse :meth:`to_json` output; ``ValueError``/``KeyError``/``TypeError`` if it is
        not one."""
        doc = json.loads(text)
        findings = [Finding.from_dict(f) for f in doc["findings"]]
        if not isinstance(doc["globals"], dict) or not isinstance(doc["complete"], bool):
            raise TypeError("malformed outcome")
        return cls(findings, size=int(doc["size"]), complete=doc["complete"],
                   formats=tuple(str(x) for x in doc["formats"]), globals=doc["globals"],
                   seconds=float(doc["seconds"]), error=doc["error"])


def policy_fingerprint(policy: Policy) -> str:
    """A sha256 over everything in ``policy`` that can change a verdict: the rules (name,
    kind, reason), aliases (recorded name -> target name), ``include_defaults``,
    ``trust_main`` and the limits."""
    aliases = {
        recorded: qualified_name(target) if isinstance(target, type) else str(target)
        for recorded, target in policy.aliases.items()
    }
    doc = {
        "rules": sorted((r.name, r.kind, r.reason) for r in policy.rules.values()),
        "aliases": sorted(aliases.items()),
        "include_defaults": policy.include_defaults,
        "trust_main": policy.trust_main,
        "limits": dataclasses.asdict(policy.limits),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def scanner_fingerprint() -> str:
    """``<version>+<sha256 of every .py file of the installed safeart package>``."""
    from .. import __version__

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:16]}"


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/safeart/verdicts.sqlite``, else ``~/.cache/safeart/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "safeart" / "verdicts.sqlite"


class VerdictCache:
    """Cached :class:`Outcome` per (datastore, sha, analysis) for one policy and scanner.

    Use :meth:`open`; look entries up with :meth:`get`, :meth:`put` new ones and
    :meth:`commit` them in one transaction at the end of a scan.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, policy: Policy) -> None:
        self.path = path
        self._db = connection
        self._scope = f"{policy_fingerprint(policy)}\0{scanner_fingerprint()}"
        self._pending: dict[str, list[tuple[str, str, str]]] = {t: [] for t in _TABLES}
        self._lock = threading.Lock()  # one connection, used from the fetch threads too

    @classmethod
    def open(cls, path: str | os.PathLike[str], policy: Policy) -> "VerdictCache | None":
        """The cache in file ``path`` (created with its folder), bound to ``policy``; None,
        with a warning, when the file cannot be created, opened or read."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            for table in _TABLES:
                db.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                           "(key TEXT PRIMARY KEY, value TEXT NOT NULL, checksum TEXT NOT NULL)")
                db.execute(f"SELECT count(*) FROM {table}").fetchone()
        except (OSError, sqlite3.Error) as exc:
            _warn(path, exc)
            return None
        return cls(db, path, policy)

    @staticmethod
    def _hash(*parts: str) -> str:
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def _get_many(self, table: str, keys: list[str]) -> dict[str, str]:
        """The verified values of those ``keys`` that have a row (one query per 500)."""
        found: dict[str, str] = {}
        try:
            with self._lock:
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    found.update((str(k), str(v)) for k, v, checksum in self._db.execute(
                        f"SELECT key, value, checksum FROM {table} WHERE key IN "
                        f"({','.join('?' * len(chunk))})", chunk)
                        if checksum == self._hash(k, v))
        except sqlite3.Error as exc:
            _warn(self.path, exc)
            return {}
        return found

    def _put(self, table: str, key: str, value: str) -> None:
        self._pending[table].append((key, value, self._hash(key, value)))

    def get(self, where: str, sha: str, analysis: Analysis, identity: str = "") -> Outcome | None:
        """The cached outcome of blob ``sha`` in ``where`` analysed as ``analysis`` under
        this policy and scanner, stored with ``identity`` (what the datastore listing
        says about the stored object; "" without a listing); None if not cached or the row
        does not verify."""
        return self.get_many([(where, sha, analysis, identity)]).get(0)

    def get_many(self, items: list[tuple[str, str, Analysis, str]]) -> dict[int, Outcome]:
        """:meth:`get` of each ``(where, sha, analysis, identity)`` in one lookup: index in
        ``items`` -> outcome, for those cached and verified."""
        keys = [self._hash(*item, self._scope) for item in items]
        rows = self._get_many("verdicts", keys)
        found: dict[int, Outcome] = {}
        for i, key in enumerate(keys):
            if key in rows:
                try:
                    found[i] = Outcome.from_json(rows[key])
                except (ValueError, KeyError, TypeError):
                    pass
        return found

    def put(self, where: str, sha: str, analysis: Analysis, outcome: Outcome,
            identity: str = "") -> None:
        """Remember ``outcome`` (written by the next :meth:`commit`)."""
        self._put("verdicts", self._hash(where, sha, analysis, identity, self._scope),
                  outcome.to_json())

    def get_records(self, where: str,
                    items: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """The task records (``data.json``) at each ``(path, identity)`` in ``where``, read
        when the listing showed ``identity``: path -> record, for those cached, verified and
        parsable."""
        keys = {self._hash(where, path, identity): path for path, identity in items}
        found: dict[str, dict[str, Any]] = {}
        for key, text in self._get_many("records", list(keys)).items():
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                found[keys[key]] = record
        return found

    def put_record(self, where: str, path: str, identity: str, record: dict[str, Any]) -> None:
        """Remember a task record read at ``identity`` (written by :meth:`commit`)."""
        self._put("records", self._hash(where, path, identity),
                  json.dumps(record, sort_keys=True, separators=(",", ":")))

    def commit(self) -> None:
        """Write every pending entry in one transaction (all or nothing)."""
        try:
            with self._lock, self._db:
                for table, rows in self._pending.items():
                    self._db.executemany(
                        f"INSERT OR REPLACE INTO {table} (key, value, checksum) "
                        "VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            _warn(self.path, exc)
        for rows in self._pending.values():
            rows.clear()

    def close(self) -> None:
        """Commit and close the file."""
        self.commit()
        self._db.close()


def _warn(path: Path, exc: BaseException) -> None:
    warnings.warn(
        f"safeart: verdict cache {path} is unusable ({type(exc).__name__}: {exc}); "
        "scanning without it (remove the file to start a new cache)",
        RuntimeWarning, stacklevel=3,
    )
