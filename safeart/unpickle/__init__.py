"""Restricted loading of legacy pickled artifacts (Metaflow's ``pickle-v4`` encoding).

:func:`restricted_loads` is the last step of the production loader: the bytes have been
scanned and nothing above "allowed" was found; they are then unpickled by CPython's C
``pickle.Unpickler`` whose ``find_class`` admits only globals the :class:`~safeart.Policy`
allows, after checking the imported object is exactly the one the rule names.

Every restricted load is scanned first
    :func:`restricted_loads` runs :func:`safeart.scan.scan_bytes` on the very bytes it loads,
    with the same policy, unless its caller hands it the scan of those bytes it just made
    (``scanned=``: :func:`safeart.guard.load_pickle` does, and every public loader goes
    through that: :func:`safeart.load`, :func:`safeart.export`, :func:`safeart.convert`,
    :mod:`safeart.metaflow.loader` and Metaflow's reads under enforcement,
    ``metaflow_extensions/safeart/plugins/safeart_enforce.py``). The guard refuses any finding;
    :func:`restricted_loads` itself enforces what ``find_class`` cannot see: a global the
    scan found called beyond what its entry or ``Limits`` admit (kind ``resource``) is
    refused when the load resolves it, and bytes the scan could not analyse (``limit``,
    ``error``) or that parsers read differently (``differential``) are refused before
    loading. Import grades are left to ``find_class``, which
    enforces them exactly.

What an allowed global can still do
    A pickle does more with a global than a safeart manifest does with a class. The
    manifest format only does ``cls.__new__`` plus state. A pickle may *call* any allowed
    global with arguments of its choosing (REDUCE). Calling a ``class`` (or ``reference``)
    entry runs its ``__init__`` (``nn.Linear(2**17, 2**17)`` allocates 64 GiB: a denial of
    service, though no foreign code runs); the C unpickler lets no one intercept that call
    without breaking NEWOBJ, which needs the real class, so the scan grades it (kind
    ``resource``) and the load is refused: only a ``callable`` entry admits a call. Allowed
    callables that allocate from their arguments (``bytes(n)``, ``frozenset(range(n))``,
    array shapes) are handed out bounded (:mod:`safeart.unpickle.bounded`): they raise
    :class:`~safeart.errors.LimitExceeded` past ``Limits.max_alloc_bytes`` before
    allocating, scanned or not. A pickle may also call ``__setstate__``, ``append``/
    ``extend``, ``add`` and ``__setitem__`` on objects built from allowed globals, and set
    attributes (BUILD) on allowed classes and functions themselves. Only add classes to a
    policy whose setters do nothing but build plain state, and callables whose calls do
    nothing but build plain values.

Why not torch's ``weights_only`` unpickler
    ``torch.load(weights_only=True)`` reads torch's own files; its Python unpickler rejects
    opcodes every protocol-4 pickle uses (FRAME, STACK_GLOBAL, MEMOIZE), so it cannot read
    what Metaflow writes. The C unpickler reads every protocol; the allowlist is the guard.

Why ``torch.storage._load_from_bytes`` is replaced
    A tensor pickled with plain pickle stores its data as
    ``_load_from_bytes(<torch legacy stream>)``, and the real function runs
    ``torch.load(weights_only=False)`` on those bytes: an unrestricted unpickler hidden one
    level down. safeart never returns that function; ``find_class`` hands out
    :mod:`safeart.unpickle.torch_legacy`'s reader, which parses the nested stream with
    restricted unpicklers under the same policy and builds storages from the raw bytes
    without allocating more than the payload holds.

``torch.save`` zip checkpoints
    :func:`restricted_load_torch_zip` reads them (:mod:`safeart.unpickle.torch_zip`): the
    archive's ``data.pkl`` with the same restricted unpickler and session, its storages
    built from the archive's records with the legacy reader's storage helpers.

Errors: refusals are :class:`~safeart.errors.PolicyError` (naming the global, the artifact
and how to allow it); malformed bytes are :class:`~safeart.errors.FormatError`; anything
else raised while rebuilding objects is wrapped in a FormatError naming the artifact.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ..errors import FormatError, LimitExceeded
from ..policy import Policy, resolve_policy
from ..scan.stubs import UNNAMED, stub_name
from .restricted import LoadSession, RestrictedUnpickler, load_one

_UNNAMED = stub_name(UNNAMED)

if TYPE_CHECKING:  # pragma: no cover
    from ..scan import ScanResult

__all__ = ["restricted_load_torch_zip", "restricted_loads"]


def restricted_loads(
    data: bytes | bytearray | memoryview,
    *,
    policy: Policy | None = None,
    artifact: str | None = None,
    device: Any = None,
    scanned: "ScanResult | None" = None,
) -> Any:
    """Scan ``data``, then unpickle it admitting only the globals ``policy`` allows.

    Args:
        data: One complete pickle (any protocol), e.g. a Metaflow ``pickle-v4`` artifact
            after gzip decoding. Bytes after the pickle's last frame are an error (bytes
            after STOP inside that frame are never read; the scanner reports them).
        policy: The allowlist; default: ``$SAFEART_POLICY`` if set, else the built-in one
            (:func:`safeart.policy.resolve_policy`).
            Add your own classes with ``Policy(allow=[Net])``.
        artifact: Where the bytes came from, named in every error.
        device: Where tensors' storages are placed (``"cuda:0"``, a ``torch.device``),
            like ``torch.load``'s ``map_location``; the CPU if None.
        scanned: The scan of these very bytes under this very policy, when the caller has
            just made it (:func:`safeart.guard.load_pickle`); scanned here otherwise.

    Returns:
        The unpickled object. Tensors' storages are rebuilt on the CPU, then moved to
        ``device``.

    Raises:
        PolicyError: a global (or a persistent id) is not allowed; nothing it names ran.
        FormatError: the bytes are not a valid pickle, or rebuilding an object failed.
        LimitExceeded: the scan found a call that allocates more than ``Limits`` allow (or
            of a ``class`` entry), an allowed callable was asked for more than
            ``Limits.max_alloc_bytes``, or nested torch payloads are deeper than
            ``Limits.max_nesting``.
    """
    session = _session(data, policy, artifact, device, scanned)
    size = memoryview(data).nbytes
    stream = io.BytesIO(data)

    def load() -> Any:
        result = load_one(stream, session, RestrictedUnpickler)
        if stream.tell() != size:
            raise FormatError(f"{size - stream.tell()} trailing bytes after the pickle")
        return result

    return session.guard("pickle", load)


def restricted_load_torch_zip(
    data: bytes | bytearray,
    *,
    policy: Policy | None = None,
    artifact: str | None = None,
    device: Any = None,
    scanned: "ScanResult | None" = None,
) -> Any:
    """Scan ``data``, a ``torch.save`` zip checkpoint, then rebuild what
    ``torch.load(data, weights_only=True)`` returns with the restricted unpickler: its
    ``data.pkl`` under ``policy``, with :func:`restricted_loads`' bounds, and its storages
    from the archive's records (:mod:`safeart.unpickle.torch_zip`); torch.load never runs.

    Arguments as for :func:`restricted_loads`; ``scanned`` is the scan of the whole file.

    Raises:
        PolicyError: ``data.pkl`` names a global (or a storage type) the policy does not allow.
        FormatError: not a ``torch.save`` checkpoint, or one zip readers would read
            differently, a storage record missing or of the wrong size, a persistent id of
            another shape; every message names the record or member.
        LimitExceeded: as for :func:`restricted_loads`.
    """
    from .torch_zip import load_torch_zip

    session = _session(data, policy, artifact, device, scanned)
    return session.guard("torch checkpoint", lambda: load_torch_zip(data, session))


def _session(data: bytes | bytearray | memoryview, policy: Policy | None,
             artifact: str | None, device: Any, scanned: "ScanResult | None") -> LoadSession:
    """The load session of ``data``: the resolved policy, with what the scan of ``data``
    (made here unless handed in) leaves for the load to enforce."""
    policy = resolve_policy(policy)
    if scanned is None:
        from ..scan import scan_bytes

        scanned = scan_bytes(data, policy=policy, name=artifact or "<bytes>")
    return LoadSession(policy, artifact, device, _unbounded_calls(scanned, artifact),
                       checked=frozenset(scanned.globals))


def _unbounded_calls(scanned: "ScanResult", artifact: str | None) -> dict[str, str]:
    """The callables ``scanned`` found called beyond what Limits or their entry admit
    (kind ``resource``), by name, to be refused when the load resolves them. Raises for
    bytes the scan could not analyse (``limit``, ``error``) and for bytes CPython would read
    differently from the scan (``differential``)."""
    calls: dict[str, str] = {}
    for finding in scanned.findings:
        if finding.kind == "resource" and finding.name != _UNNAMED:
            calls.setdefault(finding.name, finding.reason)
        elif finding.kind == "differential":
            # Parsers disagree: what the C unpickler reads here is not what was scanned (a BINBYTES length hidden behind a FRAME straddle
            # makes it allocate gigabytes first; found by the unpickle fuzz target).
            raise FormatError(
                f"pickle refused before loading: {finding.kind} {finding.name}: {finding.reason}",
                artifact=artifact,
                hint="the bytes are malformed or crafted; re-create the artifact from trusted code",
            )
        elif finding.kind in ("resource", "limit", "error"):
            error = FormatError if finding.kind == "error" else LimitExceeded
            raise error(
                f"pickle refused before loading: {finding.kind} {finding.name}: {finding.reason}",
                artifact=artifact,
                hint="the scan of these bytes could not bound what they call; inspect them with "
                "`safeart scan`, and raise Limits only for artifacts you trust",
            )
    return calls
