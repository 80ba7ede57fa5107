"""Save side of safeart's Metaflow serializer: what safeart stores, and strict mode.

Metaflow's registered serializer (``metaflow_extensions.safeart...SafeartSerializer``)
delegates here once a flow opted in with ``import safeart.metaflow``
(:func:`safeart.metaflow.state.opted_in`).

What safeart claims: every artifact Metaflow treats as public -- any name not starting with
``_`` except ``name`` (the flow name Metaflow itself writes) -- whose value ``dumps`` can
encode *and* that would load back in the flow under the in-flow policy (checked with
``audit``, without decoding). Plain values (numbers, strings, dicts, parameters) are
claimed too, so strict mode can promise that no public artifact is ever pickled. Left to
Metaflow: ``_``-prefixed names (``_foreach_stack``, ``_graph_info``, ``_transition``,
``_exception`` ...), ``name``, and values of Metaflow's own wrapper types
(``IncludedFile`` for ``IncludeFile`` parameters, ``MetaflowExceptionWrapper`` for
``@catch``).

An artifact safeart cannot store: with strict mode off, Metaflow pickles it and a
:class:`PickleFallbackWarning` names it -- artifact, type, reason and a hint that fits the
case -- once, in the task that stores it. Later steps that only read it re-save it (Metaflow
re-saves every artifact a step read), but that is the inherited artifact, not a new one: no
warning there (see ``inherited`` in the datastore hooks). With strict mode on
(``safeart.metaflow.strict()`` or ``SAFEART_STRICT=1``) the save fails with an
:class:`~safeart.errors.EncodeError` naming the artifact, its type, the object path and the
reason.

Metaflow calls ``can_serialize(obj)`` and then ``serialize(obj)`` for the same object; the
encoding done for the first is kept (for that exact object, in this thread) for the second.
Nothing here raises from ``can_serialize``: Metaflow would log the exception as a
"dispatch error" and silently try the next serializer (pickle), even in strict mode.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Union

from ..errors import EncodeError, PolicyError, SafeartError
from ..signing.runverify import metaflow_owned as metaflow_name
from .runtime import SUPPORTED_METAFLOW, hooks_installed
from .state import ArtifactRef, inherited, is_strict, policy_for


#: Metaflow types whose values Metaflow itself assigns to artifacts.
_METAFLOW_TYPES = frozenset(
    {"metaflow.includefile.IncludedFile", "metaflow.exception.MetaflowExceptionWrapper"}
)


class PickleFallbackWarning(UserWarning):
    """An artifact was stored with Metaflow's pickle serializer instead of safeart."""


_local = threading.local()
_warned: set[str] = set()

Outcome = Union[bytes, SafeartError]


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def metaflow_owned(name: str, obj: Any) -> bool:
    """True for artifacts Metaflow writes for itself (left to its own serializers): its own
    names (``_``-prefixed, ``name``: :func:`safeart.signing.runverify.metaflow_owned`) and
    values of Metaflow's wrapper types."""
    return metaflow_name(name) or _type_name(obj) in _METAFLOW_TYPES


def claims(obj: Any, ref: ArtifactRef) -> bool:
    """Whether safeart stores ``obj`` (Metaflow's ``can_serialize``).

    In strict mode every public artifact is claimed, so that :func:`serialize` can refuse
    it instead of Metaflow pickling it.
    """
    if ref.name is not None and metaflow_owned(ref.name, obj):
        return False
    outcome = _encode(obj, ref)
    if isinstance(outcome, bytes) or is_strict():
        _local.pending = (obj, outcome)
        return True
    # Unnamed: unsupported Metaflow, already warned at start-up. Inherited: warned where stored.
    if ref.name is not None and not inherited(obj, ref):
        _warn_fallback(obj, ref, outcome)
    return False


def serialize(obj: Any, ref: ArtifactRef) -> tuple[bytes, dict[str, Any]]:
    """The safeart blob for ``obj`` and its Metaflow ``serializer_info``: the format
    version, and with ``$SAFEART_SIGNING_KEY`` set the signature of the blob's sha256 for
    ``ref`` (``serializer_info["safeart_sig"]``, :meth:`safeart.signing.Signer.sign`).

    Raises:
        EncodeError: strict mode and ``obj`` cannot be stored without pickle.
        ConfigError: ``$SAFEART_SIGNING_KEY`` names no readable Ed25519 private key.
    """
    pending = getattr(_local, "pending", None)
    _local.pending = None
    outcome = pending[1] if pending is not None and pending[0] is obj else _encode(obj, ref)
    if isinstance(outcome, SafeartError):
        raise _refusal(obj, ref, outcome)
    from ..format import FORMAT_VERSION
    from ..signing import SIG_FIELD, digest, signer_from_settings

    info: dict[str, Any] = {"format_version": FORMAT_VERSION}
    signer = signer_from_settings()
    if signer is not None:
        info[SIG_FIELD] = signer.sign(str(ref), digest(outcome))
    return outcome, info


def _encode(obj: Any, ref: ArtifactRef) -> Outcome:
    if ref.name is None or not hooks_installed():
        return EncodeError(
            "safeart cannot tell which artifact Metaflow is saving",
            hint=f"use Metaflow {SUPPORTED_METAFLOW} (safeart hooks its datastore to learn names)",
        )
    from ..format import audit, dumps

    try:
        blob = dumps(obj, name=ref.name)
        audit(blob, policy=policy_for(ref.flow), name=ref.name).raise_for_problems()
    except SafeartError as err:
        return err
    except Exception as exc:  # noqa: BLE001 -- Metaflow would swallow it and pickle
        err = EncodeError(
            f"safeart failed on this object: {type(exc).__name__}: {exc}",
            hint="this is a safeart bug; please report it with the object's type",
        )
        err.__cause__ = exc
        return err
    return blob


def _reason(err: SafeartError) -> str:
    where = f" at {err.path}" if err.path else ""
    if isinstance(err, PolicyError):
        return f"it would not load back in this flow{where}: {err.message}"
    return f"{err.message}{where}"


#: What safeart stores, for hints about values it cannot store.
_SUPPORTED = (
    "plain containers, numbers, strings, numpy arrays, tensors, torch modules and "
    "optimizers, and the library and stdlib types safeart has codecs for"
)


def _hint(err: SafeartError) -> str:
    """What the user can do, for this reason: for a class that would not load back, the
    rule to add where a flow sets it; otherwise the encoder's hint (which already tells a
    library class without a codec from the user's own class with a custom ``__reduce__``)."""
    if isinstance(err, PolicyError) and not err.name.startswith("__main__."):
        return (
            f"if you trust {err.name}, allow it where the flow loads it: "
            f"safeart.metaflow.set_policy(safeart.Policy(allow=['{err.name}'])) in the flow "
            "file, or add it to allow = [...] in the $SAFEART_POLICY file / [tool.safeart] "
            "(readers of the artifact need the same rule)"
        )
    return err.hint or f"store {_SUPPORTED}, or allowlisted classes"


def _refusal(obj: Any, ref: ArtifactRef, err: SafeartError) -> EncodeError:
    refusal = EncodeError(
        f"strict mode: artifact {ref.name!r} of type {_type_name(obj)} cannot be stored "
        f"without pickle: {_reason(err)}",
        artifact=str(ref),
        hint=_hint(err) + ", or leave strict mode so that Metaflow pickles it",
    )
    refusal.__cause__ = err
    return refusal


def _warn_fallback(obj: Any, ref: ArtifactRef, err: SafeartError) -> None:
    if ref.name in _warned:
        return
    _warned.add(ref.name or "")
    # Metaflow's CLI ignores every warning (``warnings.filterwarnings("ignore")``); this
    # one must reach the task log, and is already limited to once per artifact name.
    with warnings.catch_warnings():
        warnings.simplefilter("always", PickleFallbackWarning)
        warnings.warn_explicit(
            f"{ref} ({_type_name(obj)}) is stored with pickle: {_reason(err)}"
            f"\n  hint: {_hint(err)}"
            "\n  (safeart.metaflow.strict() makes this an error)",
            PickleFallbackWarning,
            filename="safeart.metaflow",
            lineno=0,
        )
