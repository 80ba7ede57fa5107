"""Allowed callables that allocate from their arguments, bounded on load.

The restricted unpickler hands out a :class:`BoundedCall` instead of each allowed
``callable`` entry named in :data:`safeart.scan.calls.CHARGED` (``bytes``, ``bytearray``,
``set``, ``frozenset``, ``range``, ``collections.OrderedDict``, ``torch.Size``, numpy's
``_reconstruct`` and ``ndarray`` ...) and each number type charged in digits
(``fractions.Fraction``, ``decimal.Decimal``). It charges the real arguments with the
scanner's own rule (:func:`~safeart.scan.calls.check_call`) against
``Limits.max_alloc_bytes`` (or ``sys.get_int_max_str_digits()`` digits) before the real
callable runs, so the load is bounded even without a scan: ``bytes(2**36)``,
``frozenset(range(2**31))`` or ``Fraction('1e10000000')`` raise
:class:`~safeart.errors.LimitExceeded` having allocated or computed nothing.

A bounded callable is not the object it wraps: it is not a type, so ``NEWOBJ`` of it fails
(real pickles never ``NEWOBJ`` these), and an object that kept it would keep the wrapper.
So the wrapper is handed out only for globals the scan of the same bytes did not grade
(:attr:`LoadSession.checked`): a scanned global's every call was already charged with this
very rule, and it loads as itself (``defaultdict(set)``'s factory is ``set``). A bounded
callable passed to another bounded one is unwrapped first: ``_reconstruct(ndarray, ...)``
receives the real ``numpy.ndarray``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import LimitExceeded
from ..scan.calls import CHARGED, check_call, resource_hint

if TYPE_CHECKING:  # pragma: no cover
    from .restricted import LoadSession


class BoundedCall:
    """``wrapped`` (the allowed callable ``name``), checking each call's arguments first."""

    __slots__ = ("wrapped", "name", "_session")

    def __init__(self, wrapped: Any, name: str, session: "LoadSession") -> None:
        self.wrapped = wrapped
        self.name = name
        self._session = session

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(a.wrapped if type(a) is BoundedCall else a for a in args)
        policy = self._session.policy
        excess = check_call(self.name, args, kwargs, policy.limits)
        if excess is not None:
            self._session.refuse(LimitExceeded(
                f"pickle call refused: {excess.message}",
                hint=resource_hint(policy, self.name),
            ))
        return self.wrapped(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<bounded {self.name}>"


def bounded(name: str, obj: Any, session: "LoadSession") -> Any:
    """``obj`` (the allowed callable ``name``), bounded if it allocates from its arguments."""
    return BoundedCall(obj, name, session) if name in CHARGED else obj
