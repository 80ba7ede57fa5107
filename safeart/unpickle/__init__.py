"""Restricted loading of legacy pickled artifacts (Metaflow's ``pickle-v4`` encoding).

:func:`restricted_loads` is the last step of the production loader: the bytes have been
scanned and nothing above "allowed" was found; they are then unpickled by CPython's C
``pickle.Unpickler`` whose ``find_class`` admits only globals the :class:`~safeart.Policy`
allows, after checking the imported object is exactly the one the rule names.

What an allowed global can still do
    A pickle does more with a global than a safeart manifest does with a class. The
    manifest format only does ``cls.__new__`` plus state. A pickle may *call* any allowed
    global with arguments of its choosing (REDUCE), classes included, so an allowed class's
    ``__init__`` runs (``nn.Linear(10**6, 10**6)`` allocates terabytes: a denial of service,
    though no foreign code runs); it may call ``__setstate__``, ``append``/``extend``,
    ``add`` and ``__setitem__`` on objects built from allowed globals, and set attributes
    (BUILD) on allowed classes and functions themselves. Only add classes to a policy whose
    constructors and setters do nothing but build plain state.

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

Errors: refusals are :class:`~safeart.errors.PolicyError` (naming the global, the artifact
and how to allow it); malformed bytes are :class:`~safeart.errors.FormatError`; anything
else raised while rebuilding objects is wrapped in a FormatError naming the artifact.
"""

from __future__ import annotations

import io
from typing import Any

from ..errors import FormatError
from ..policy import Policy, policy_from_env
from .restricted import LoadSession, RestrictedUnpickler, load_one

__all__ = ["restricted_loads"]


def restricted_loads(
    data: bytes | bytearray | memoryview,
    *,
    policy: Policy | None = None,
    artifact: str | None = None,
    device: Any = None,
) -> Any:
    """Unpickle ``data`` admitting only the globals ``policy`` allows.

    Args:
        data: One complete pickle (any protocol), e.g. a Metaflow ``pickle-v4`` artifact
            after gzip decoding. Bytes after the pickle's last frame are an error (bytes
            after STOP inside that frame are never read; the scanner reports them).
        policy: The allowlist; default: ``$SAFEART_POLICY`` if set, else the built-in one.
            Add your own classes with ``Policy(allow=[Net])``.
        artifact: Where the bytes came from, named in every error.
        device: Where tensors' storages are placed (``"cuda:0"``, a ``torch.device``),
            like ``torch.load``'s ``map_location``; the CPU if None.

    Returns:
        The unpickled object. Tensors' storages are rebuilt on the CPU, then moved to
        ``device``.

    Raises:
        PolicyError: a global (or a persistent id) is not allowed; nothing it names ran.
        FormatError: the bytes are not a valid pickle, or rebuilding an object failed.
        LimitExceeded: nested torch payloads deeper than ``Limits.max_nesting``.
    """
    session = LoadSession(policy if policy is not None else policy_from_env(), artifact, device)
    size = memoryview(data).nbytes
    stream = io.BytesIO(data)

    def load() -> Any:
        result = load_one(stream, session, RestrictedUnpickler)
        if stream.tell() != size:
            raise FormatError(f"{size - stream.tell()} trailing bytes after the pickle")
        return result

    return session.guard("pickle", load)
