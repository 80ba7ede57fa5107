"""The restricted unpickler: CPython's C ``pickle.Unpickler`` with an allowlist ``find_class``.

Everything a pickle can import goes through :meth:`LoadSession.resolve`, which

1. applies CPython's ``_compat_pickle`` renaming exactly when CPython would (protocol < 3),
   so the name that is graded is the name that is imported;
2. grades that name with the policy and refuses anything not ``allowed``;
3. imports the object and checks it is what the allow rule names (see :func:`_resolve_callable`
   and :meth:`~safeart.policy.Policy.resolve_class`);
4. swaps ``torch.storage._load_from_bytes`` for safeart's restricted torch-stream reader, and
   hands out allowed callables that allocate from their arguments bounded
   (:mod:`safeart.unpickle.bounded`).
"""

from __future__ import annotations

import importlib
import io
import pickle
import reprlib
from typing import Any, Callable, Mapping, NoReturn, TypeVar

from ..errors import FormatError, LimitExceeded, PolicyError, SafeartError
from ..pickle_facts import compat_name, proto_header
from ..policy import Grade, Policy
from ..scan.calls import resource_hint
from ..scan.walker import Walker
from .bounded import bounded
from .estimators import check_loaded, from_sklearn


T = TypeVar("T")

#: Calls ``torch.load(weights_only=False)`` on nested bytes; always replaced, never returned.
TORCH_LOAD_FROM_BYTES = "torch.storage._load_from_bytes"

_DANGEROUS_HINT = (
    "{name} is a known code-execution, file, process or network primitive: do not allow it. "
    "Treat this artifact as malicious; re-create it from trusted code instead of loading it."
)
_FUNCTION_HINT = (
    "; a reconstructor function needs kind 'callable': Rule('{name}', reason, "
    "kind='callable'), or {{ name = \"{name}\", kind = \"callable\" }} in TOML"
)


def short_repr(value: object) -> str:
    """A bounded repr of an attacker-controlled value, for error messages."""
    return reprlib.repr(value)


def _own_parts(obj: object) -> tuple[str, str] | None:
    """``(obj.__module__, obj.__qualname__)`` when both are strings, else None."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return module, qualname
    return None


def _own_name(obj: object) -> str | None:
    """The ``module.qualname`` an object declares for itself, if any."""
    parts = _own_parts(obj)
    return ".".join(parts) if parts else None


def _lookup(module: str, qualname: str) -> object:
    """What CPython's ``find_class`` returns: import ``module``, then walk ``qualname``."""
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve_callable(policy: Policy, module: str, name: str) -> object:
    """Import an allowed reconstructor and check it is the object its rule names.

    The object's own ``__module__.__qualname__`` must equal the allowed name, or the object
    must be a documented alias: its own name is an allowed callable too and resolves to the
    very same object (``numpy.core.multiarray._reconstruct`` is
    ``numpy._core.multiarray._reconstruct`` under numpy 2).
    """
    full = f"{module}.{name}"
    try:
        obj = _lookup(module, name)
    except (ImportError, AttributeError) as exc:
        raise PolicyError(
            f"allowed global {full} cannot be imported in this environment ({exc})",
            name=full,
            hint=f"install the package that defines {full} (the versions that wrote the artifact)",
        ) from None
    parts = _own_parts(obj)
    own = ".".join(parts) if parts else None
    if own == full:
        return obj
    if parts and own and policy.rule_for(own, "callable") is not None:
        try:
            if _lookup(*parts) is obj:
                return obj
        except (ImportError, AttributeError):
            pass
    raise PolicyError(
        f"{full} resolves to {own or type(obj).__name__}, not to the object the allowlist names",
        name=full,
        hint="allowlist entries name objects by their defining module (module.qualname)",
    )


class LoadSession:
    """State shared by the unpicklers of one restricted load (outer pickle and nested torch
    streams): the policy, the artifact name, the target device of tensor storages, the
    nesting depth and the first refusal.

    A refusal (a :class:`~safeart.errors.PolicyError`, or the
    :class:`~safeart.errors.LimitExceeded` of a bounded call) is remembered so that an
    allowed callable that catches it cannot make the load succeed regardless.
    """

    def __init__(self, policy: Policy, artifact: str | None, device: Any = None,
                 unbounded: Mapping[str, str] | None = None,
                 checked: frozenset[str] = frozenset()) -> None:
        self.policy = policy
        self.artifact = artifact
        self.device = device
        #: Globals the scan found called beyond what their entry or the limits admit (a
        #: class's __init__, which no find_class can intercept) -> why; refused on resolve.
        self.unbounded = dict(unbounded or {})
        #: Globals the scan of these bytes graded, every call of them charged with the same
        #: rule the bounded wrappers apply: they are handed out as themselves, so that one
        #: kept as a value (``defaultdict(set)``'s factory, ``[bytes]``) loads as itself.
        self.checked = checked
        self.depth = 0
        self.refusal: SafeartError | None = None
        #: A resolved class derives from a sklearn class: check estimators after loading.
        self.estimators = False

    def _tag(self, error: SafeartError) -> SafeartError:
        return error.with_artifact(self.artifact) if self.artifact else error

    def refuse(self, error: SafeartError) -> NoReturn:
        """Record ``error`` as this load's refusal (the first one wins) and raise it."""
        self._tag(error)
        if self.refusal is None:
            self.refusal = error
        raise error

    def resolve(self, module: str, name: str, protocol: int) -> Any:
        """Return the object a pickle global names, if the policy allows it, else refuse."""
        if len(module) + len(name) > self.policy.limits.max_name_length:
            shown = short_repr(f"{module}.{name}")
            self.refuse(
                PolicyError(
                    f"pickle global {shown} is longer than max_name_length "
                    f"({self.policy.limits.max_name_length}); no allowed name is",
                    name=shown,
                    hint="a name this long is a crafted pickle, not a real import",
                )
            )
        module, name = compat_name(module, name, protocol)  # as the C Unpickler's find_class
        verdict = self.policy.grade(module, name)
        full = verdict.name
        if verdict.grade is not Grade.ALLOWED:
            if verdict.grade is Grade.DANGEROUS:
                hint = _DANGEROUS_HINT.format(name=full)
            elif module == "__main__":
                hint = self.policy.how_to_allow(full)
            else:
                hint = self.policy.how_to_allow(full) + _FUNCTION_HINT.format(name=full)
            self.refuse(
                PolicyError(
                    f"pickle global {full} is not allowed ({verdict.grade.value}: {verdict.reason})",
                    name=full,
                    hint=hint,
                )
            )
        rule = self.policy.rule_for(full)
        try:
            if rule is None or rule.kind == "class":  # rule None: trust_main admits __main__.X
                obj: object = self.policy.resolve_class(module, name)
            elif rule.kind == "reference":
                obj = self.policy.resolve_reference(module, name)
            elif rule.name != full:
                raise PolicyError(
                    f"{full} is an alias of the callable {rule.name}; aliases stand for classes only",
                    name=full,
                    hint="remove the alias; name the callable itself in allow=",
                )
            else:
                obj = _resolve_callable(self.policy, module, name)
                if full not in self.checked:
                    obj = bounded(full, obj, self)
        except PolicyError as error:
            self.refuse(error)
        if full in self.unbounded:
            self.refuse(LimitExceeded(f"pickle global {full} refused: {self.unbounded[full]}",
                                      hint=resource_hint(self.policy, full)))
        if _own_name(obj) == TORCH_LOAD_FROM_BYTES:
            return self.torch_load_from_bytes
        self.estimators = self.estimators or from_sklearn(obj)
        return obj

    def torch_load_from_bytes(self, payload: object) -> Any:
        """Stand-in for ``torch.storage._load_from_bytes``: a restricted torch-stream load."""
        from .torch_legacy import load_legacy_stream

        if self.depth >= self.policy.limits.max_nesting:
            raise self._tag(
                LimitExceeded(
                    f"torch storage payloads nested deeper than {self.policy.limits.max_nesting}",
                    hint="raise Limits.max_nesting only if you trust the artifact",
                )
            )
        self.depth += 1
        try:
            return self.guard("torch storage payload", lambda: load_legacy_stream(payload, self))
        finally:
            self.depth -= 1

    def guard(self, what: str, load: Callable[[], T]) -> T:
        """Run ``load``; turn every failure into a SafeartError naming the artifact.

        A recorded refusal always wins over whatever exception it caused downstream.
        """
        try:
            result = load()
        except Exception as exc:
            error = self.refusal or (exc if isinstance(exc, SafeartError) else None)
            if error is None:
                if isinstance(exc, (pickle.UnpicklingError, EOFError)):
                    error = FormatError(f"{what} is not a valid pickle: {exc}")
                else:
                    error = FormatError(
                        f"{what} could not be rebuilt: {type(exc).__name__}: {exc}",
                        hint="the bytes are malformed or were written by other library versions",
                    )
            self._tag(error)
            if error is exc:
                raise
            raise error from exc
        if self.refusal is not None:  # an allowed callable swallowed the PolicyError
            raise self.refusal
        return result


class RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler, admitting only globals the session's policy allows.

    Persistent ids are refused: plain pickles (Metaflow's ``pickle-v4`` artifacts) never
    contain them; they mean "ask an external loader", which only a known container may do.
    """

    def __init__(self, file: io.BytesIO, session: LoadSession, protocol: int) -> None:
        super().__init__(file)
        self._session = session
        self._protocol = protocol

    def find_class(self, module: str, name: str) -> Any:
        return self._session.resolve(module, name, self._protocol)

    def persistent_load(self, pid: Any) -> Any:
        self._session.refuse(
            PolicyError(
                f"pickle persistent id {short_repr(pid)} refused: a plain pickle has none",
                name=f"persistent id {short_repr(pid)}",
                hint="this stream needs an external loader (torch.save / joblib files?); "
                "convert it with the tool that wrote it, or re-create the artifact",
            )
        )


def load_one(
    stream: io.BytesIO,
    session: LoadSession,
    factory: Callable[[io.BytesIO, LoadSession, int], RestrictedUnpickler] = RestrictedUnpickler,
) -> Any:
    """Load the pickle starting at ``stream``'s position; the stream ends right after its STOP.

    The protocol that decides ``_compat_pickle`` renaming is the one the leading PROTO opcode
    declares (0 without one), as for CPython. CPython also honours a PROTO opcode in the middle
    of a stream; safeart does not, which can only refuse more, never admit more: the graded name
    is always the imported one.
    """
    start = stream.tell()
    _check_limits(stream, start, session)
    head = stream.read(2)
    stream.seek(start)
    protocol = proto_header(head) or 0  # a PROTO above the highest fails at once anyway
    unpickler = factory(stream, session, protocol)
    result = unpickler.load()
    if session.estimators:  # sklearn estimators: consistent with their compiled objects
        check_loaded(result, unpickler.memo.copy())
    return result


def _check_limits(stream: io.BytesIO, start: int, session: LoadSession) -> None:
    """Walk the pickle first (no objects built): CPython allocates its memo table up to
    the largest index a PUT names, so nine bytes can ask for gigabytes; and it allocates a
    bytes literal's declared size before reading it, so five bytes can ask for 4 GiB
    (``BINBYTES``) that the data does not hold."""
    data = stream.getvalue()  # the BytesIO's own buffer, not a copy
    walker = Walker(data, start, len(data), session.policy.limits)
    walker.finish()
    if walker.limit:
        raise LimitExceeded(f"pickle refused before loading: {walker.limit}",
                            hint="raise Limits only for artifacts you trust")
    if walker.error and "past the end of the data" in walker.error:  # the walker's wording
        raise FormatError(f"pickle refused before loading: {walker.error}",
                          hint="the bytes are truncated or crafted; re-create the artifact")
