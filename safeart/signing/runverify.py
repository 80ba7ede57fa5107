"""``safeart verify Flow/run``: check every artifact of a run against its content address
and its signature.

Tasks come from :func:`safeart.metaflow.pathspec.resolve_tasks`, records and blob bytes from
:class:`safeart.metaflow.stored.RunDatastore` (Metaflow's datastore layer; nothing is
deserialized). For each artifact record:

* **content**: the fetched bytes must hash (sha1) to the record's content address;
* **signature**: ``serializer_info["safeart_sig"]`` must be a trust key's signature of the
  sha256 of those bytes for this flow, run and artifact name
  (:meth:`~safeart.signing.Verifier.verify`).

Every public artifact must be signed, whatever its encoding: a record rewritten to point a
signed name at a pickle is as unsigned as an artifact stored without a key. Metaflow's own
artifacts (``_``-prefixed names and ``name``) are stored by Metaflow's serializers, never
signed; their content address is still checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import IntegrityError
from .signature import SIG_FIELD, Verifier, digest


def metaflow_owned(name: str) -> bool:
    """True for the artifacts Metaflow stores for itself (never signed): ``_``-prefixed
    names and ``name`` -- the names safeart's serializer leaves to Metaflow."""
    return name.startswith("_") or name == "name"


@dataclass(frozen=True)
class Checked:
    """The verdict on one artifact record.

    Attributes:
        artifact: ``Flow/run/step/task:name`` of the record read.
        encoding: As recorded (``safeart-v1``, ``pickle-v4`` ...).
        content: ``ok``, ``changed`` (bytes no longer hash to the content address),
            ``missing``, ``corrupt`` or ``io`` (the blob could not be read).
        signature: ``ok``, ``metaflow`` (Metaflow's own, not signed), ``not checked``
            (bytes unreadable) or the failed check's reason (``unsigned``, ``bad-signature``
            ...; see :data:`safeart.signing.errors.Reason`).
        message: Why it failed (empty when it passed).
        key_id: The key of a good signature.
    """

    artifact: str
    encoding: str
    content: str
    signature: str
    message: str = ""
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the content address and (where required) the signature hold."""
        return self.content == "ok" and self.signature in ("ok", "metaflow")


@dataclass
class RunVerification:
    """What :func:`verify_run` found: one :class:`Checked` per artifact record, in task
    order, and the tasks without a completed attempt (nothing stored to verify)."""

    checked: list[Checked] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every artifact passed (and there was at least one)."""
        return bool(self.checked) and all(c.ok for c in self.checked)

    @property
    def failures(self) -> list[Checked]:
        """The artifacts that failed."""
        return [c for c in self.checked if not c.ok]


def verify_run(target: str, *, verifier: Verifier, store: Any = None) -> RunVerification:
    """Verify every artifact of ``target``: ``Flow/run``, ``Flow/run/step``,
    ``Flow/run/step/task`` or ``Flow/run/step/task:name`` (a bare ``Flow``: each of its runs
    in the current namespace).

    Args:
        verifier: The trust keys (:func:`~safeart.signing.verifier_from_settings`).
        store: A :class:`~safeart.metaflow.stored.RunDatastore` to reuse.

    Raises:
        ConfigError: a bad pathspec, or no such flow, run, step or task.
    """
    from ..metaflow.pathspec import parse_pathspec, resolve_tasks
    from ..metaflow.stored import RunDatastore

    spec = parse_pathspec(target)
    store = store or RunDatastore()
    tasks = resolve_tasks(spec)
    names = [spec.artifact] if spec.artifact else []
    records, incomplete = store.artifacts(tasks, names)
    sharing: dict[tuple[Any, str], list[int]] = {}
    for i, record in enumerate(records):
        sharing.setdefault((record.store, record.sha), []).append(i)
    checked: list[Checked | None] = [None] * len(records)
    for blob in store.fetch(records):  # each distinct blob once, then dropped
        value = digest(blob.data) if blob.data is not None else ""
        for i in sharing[(blob.store, blob.sha)]:
            checked[i] = _check(records[i], blob, value, verifier)
    return RunVerification([c for c in checked if c is not None], incomplete)


def _check(record: Any, blob: Any, value: str, verifier: Verifier) -> Checked:
    where, encoding = record.pathspec, record.encoding
    if blob.data is None:
        return Checked(where, encoding, blob.problem, "not checked", message=blob.message)
    content = "ok" if blob.intact else "changed"
    problem = "" if blob.intact else (
        f"the blob no longer hashes to its content address {record.sha}: changed in the datastore"
    )
    if metaflow_owned(record.name):
        return Checked(where, encoding, content, "metaflow", message=problem)
    sig = _signature_of(record.serializer_info)
    try:
        verifier.verify(where, value, sig)
    except IntegrityError as err:
        return Checked(where, encoding, content, err.reason, key_id=err.key_id,
                       message="; ".join(filter(None, [problem, f"{err.message} (hint: {err.hint})"])))
    return Checked(where, encoding, content, "ok", key_id=sig["key"], message=problem)


def _signature_of(info: Mapping[str, Any] | None) -> Any:
    return info.get(SIG_FIELD) if isinstance(info, Mapping) else None


def render_text(result: RunVerification, target: str) -> str:
    """The table ``safeart verify`` prints: one line per artifact (Metaflow's own only when
    they fail; they are counted), then each failure's message and a summary line."""
    rows = [("ARTIFACT", "ENCODING", "CONTENT", "SIGNATURE")]
    hidden = 0
    for c in result.checked:
        if c.signature == "metaflow" and c.ok:
            hidden += 1
            continue
        rows.append((c.artifact, c.encoding, c.content,
                     f"ok ({c.key_id})" if c.signature == "ok" else c.signature))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths)) + "  " + r[3]
             for r in rows]
    if hidden:
        lines.append(f"(+ {hidden} artifacts Metaflow stores for itself: not signed, "
                     "content address ok)")
    lines += [f"task {t}: no completed attempt (nothing to verify)" for t in result.incomplete]
    lines += [f"FAILED {c.artifact}: {c.message}" for c in result.failures]
    failed = len(result.failures)
    verdict = "verified" if result.ok else ("FAILED" if failed else "nothing to verify")
    lines.append(f"{target}: {verdict}: {len(result.checked)} artifacts, {failed} failed")
    return "\n".join(lines) + "\n"


def as_json(result: RunVerification) -> list[dict[str, Any]]:
    """The per-artifact verdicts as JSON-safe dicts (``safeart verify --format json``)."""
    return [
        {"artifact": c.artifact, "encoding": c.encoding, "content": c.content,
         "signature": c.signature, "key": c.key_id, "ok": c.ok, "message": c.message}
        for c in result.checked
    ]
