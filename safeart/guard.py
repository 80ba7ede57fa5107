"""The guarded load of pickled bytes: scan, refuse unless clean, then restricted unpickle.

(:func:`load_torch_file` does the same for ``torch.save`` zip checkpoints.)

Every pickled artifact safeart loads goes through :func:`load_pickle`, whoever asks
(:func:`safeart.load`, :func:`safeart.export`, :func:`safeart.convert` of pickle files, or
Metaflow's own reads while enforcement is on)::

    obj = load_pickle(blob, policy=Policy(allow=[Net]), artifact="TrainFlow/12/start/3:model")

1. :func:`safeart.scan.scan_bytes` grades every import of the pickle, of nested
   ``torch.storage._load_from_bytes`` streams and of containers, with the policy;
2. anything above "allowed" (or anything the scanner could not fully analyse) refuses the
   load with an :class:`~safeart.errors.UnsafeArtifactError` that carries the scan result,
   names the artifact and tells the user what to add to the allowlist, if anything;
3. otherwise :func:`safeart.unpickle.restricted_loads` unpickles *the very same bytes
   object* under the same policy (handed this scan, it does not scan again). Whatever fails
   there raises; nothing ever falls back to an unrestricted ``pickle.loads``.

The scan is what bounds calls the restricted unpickler cannot intercept: a ``REDUCE`` of an
allowed *class* runs its ``__init__`` (``nn.Linear(2**17, 2**17)`` allocates 64 GiB), which
the scan grades ``unknown`` (kind ``resource``) unless a ``callable`` entry admits the call.

The module is free of Metaflow and torch imports so that Metaflow's extension can use it
in every process without side effects. The process switches that route Metaflow's own reads
here (``$SAFEART_ENFORCE``, :func:`safeart.metaflow.enforce`) live in
:mod:`safeart.metaflow.state`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .errors import UnsafeArtifactError
from .policy import AllowSpec, Grade, Policy, resolve_policy

if TYPE_CHECKING:  # pragma: no cover
    from .scan import Finding, ScanResult


#: Findings listed in an error message (the rest is counted; all are in ``report``).
_SHOWN = 5


def load_pickle(
    data: bytes,
    *,
    policy: Policy | None = None,
    artifact: str | None = None,
    device: Any = None,
    findings: Iterable["Finding"] = (),
) -> Any:
    """Scan ``data``, then unpickle the same bytes with the restricted unpickler.

    Args:
        data: One complete pickle (a Metaflow ``pickle-v4`` artifact after gzip decoding).
        policy: The allowlist for both the scan and the load; default ``$SAFEART_POLICY``
            or the built-in one (:func:`safeart.policy.resolve_policy`).
        artifact: What to call the bytes in errors (``Flow/run/step/task:name``, a path).
        device: Where tensors' storages go (``"cuda:0"``); the CPU if None.
        findings: Findings the caller already has about these bytes (e.g. an integrity
            finding), which refuse the load like scan findings.

    Raises:
        UnsafeArtifactError: the scan found something above "allowed" (or could not
            analyse everything); nothing was unpickled.
        PolicyError, FormatError: the restricted load refused or failed.
    """
    from .unpickle import restricted_loads

    policy = resolve_policy(policy)
    result = _scan_or_refuse(data, policy, artifact, findings)
    return restricted_loads(data, policy=policy, artifact=artifact, device=device,
                            scanned=result)


def load_torch_file(
    source: "str | os.PathLike[str] | bytes",
    *,
    policy: Policy | None = None,
    allow: Iterable[AllowSpec] = (),
    device: Any = None,
    artifact: str | None = None,
) -> Any:
    """Load a ``torch.save`` zip checkpoint like ``torch.load(source, weights_only=True)``,
    after a clean scan, never running ``torch.load``::

        state = load_torch_file("model.pt")            # a state_dict, an optimizer state ...
        model.load_state_dict(state)

    The whole file is scanned (every member, by content) and refused exactly as
    :func:`load_pickle` refuses; then :func:`safeart.unpickle.restricted_load_torch_zip`
    reads *the same bytes*: ``data.pkl`` with the restricted unpickler under the same
    policy, storages from the archive's records (dtype from the storage type, sizes checked
    before allocating, byte order honoured).

    Args:
        source: A path, or the file's bytes.
        policy: The allowlist; default ``$SAFEART_POLICY`` or the built-in one. ``allow``:
            extra classes on top of it (:func:`safeart.policy.resolve_policy`).
        device: Where storages go (``"cuda:0"``), like ``map_location``; the CPU if None
            (the device a storage was saved from is not used).
        artifact: What to call the file in errors; default: the path.

    Raises:
        UnsafeArtifactError: the scan found something above "allowed"; nothing was unpickled.
        PolicyError, FormatError: the restricted load refused or failed (not a ``torch.save``
            checkpoint, a storage record missing or of the wrong size, ...).
    """
    from .unpickle import restricted_load_torch_zip

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = Path(source).read_bytes()
        artifact = artifact or os.fspath(source)
    policy = resolve_policy(policy, allow)
    result = _scan_or_refuse(data, policy, artifact, ())
    return restricted_load_torch_zip(data, policy=policy, artifact=artifact, device=device,
                                     scanned=result)


def _scan_or_refuse(data: bytes, policy: Policy, artifact: str | None,
                    findings: Iterable["Finding"]) -> "ScanResult":
    """Scan ``data`` (with the caller's ``findings`` first); refuse unless clean."""
    from .scan import scan_bytes

    result = scan_bytes(data, policy=policy, name=artifact or "<bytes>")
    result.findings[:0] = list(findings)
    refuse_unless_clean(result, policy, artifact)
    return result


def refuse_unless_clean(result: "ScanResult", policy: Policy, artifact: str | None) -> None:
    """Raise an :class:`UnsafeArtifactError` for ``result`` unless it is clean.

    The message lists the first findings; the hint says exactly which allowlist entry (or
    alias, for classes recorded as ``__main__.X``) admits each class that is merely not on
    the allowlist, and warns off dangerous ones.
    """
    if not result.fails(Grade.UNKNOWN):
        return
    shown = "; ".join(
        f"{f.grade.value} {f.kind} {f.name} ({f.reason})" for f in result.findings[:_SHOWN]
    )
    more = len(result.findings) - _SHOWN
    if more > 0:
        shown += f"; and {more} more"
    if result.error:
        shown = shown or result.error
    raise UnsafeArtifactError(
        f"refused to load: the scan verdict is {result.verdict}"
        + ("" if result.complete else " (not fully analysed)")
        + f": {shown or 'incomplete analysis'}",
        report=result,
        artifact=artifact,
        hint=_hint(result, policy),
    )


def _hint(result: "ScanResult", policy: Policy) -> str:
    changed = any(f.kind == "integrity" for f in result.findings)
    dangerous = sorted(
        {f.name for f in result.findings if f.grade is Grade.DANGEROUS and f.kind != "integrity"}
    )
    if changed or dangerous:
        parts = []
        if changed:
            parts.append(
                "the blob was changed in the datastore after Metaflow stored it: do not use "
                "it; re-run the step that produced it and check who can write the datastore."
            )
        if dangerous:
            parts.append(
                f"{', '.join(dangerous)}: known code-execution, file, process or network "
                "primitives; never allow them. Treat the artifact as malicious and re-create "
                "it from trusted code."
            )
        return " ".join(parts)
    if result.complete and all(
        f.kind in ("import", "class") and f.grade is Grade.UNKNOWN for f in result.findings
    ):
        missing = sorted({f.name for f in result.findings})
        return "\n  ".join(policy.how_to_allow(name) for name in missing)
    calls = sorted({f.name for f in result.findings if f.kind == "resource"})
    if calls:
        from .scan.calls import resource_hint

        return "\n  ".join(f"{name}: {resource_hint(policy, name)}" for name in calls)
    return (
        "the artifact is malformed, truncated, changed in its store or too large for the "
        "policy's limits; re-create it, or inspect it with `safeart scan`"
    )
