"""The error a failed signature check raises.

:class:`IntegrityError` is an :class:`~safeart.errors.UnsafeArtifactError` (the load is
refused, like a blob that no longer matches its content address), so code that already
refuses unsafe artifacts refuses unverifiable ones too. It has no scan report (``report``
is None); ``reason`` says which check failed.
"""

from __future__ import annotations

from typing import Literal

from ..errors import UnsafeArtifactError


#: Which check failed:
#:
#: * ``unsigned``: no signature, while trust keys are configured;
#: * ``malformed``: a signature record that is not one safeart writes;
#: * ``unknown-key``: signed by a key that is not among the trust keys;
#: * ``bad-signature``: the signature does not match these bytes (blob, file or record
#:   changed after signing);
#: * ``pathspec-mismatch``: a valid signature made for another flow, run or artifact
#:   (replayed), or for a file of another name.
Reason = Literal["unsigned", "malformed", "unknown-key", "bad-signature", "pathspec-mismatch"]


class IntegrityError(UnsafeArtifactError):
    """An artifact or file failed signature verification; it must not be used.

    Attributes:
        reason: Which check failed (:data:`Reason`).
        key_id: The key the signature names, when it names one.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: Reason,
        artifact: str,
        hint: str,
        key_id: str | None = None,
    ) -> None:
        super().__init__(message, report=None, artifact=artifact, hint=hint)
        self.reason: Reason = reason
        self.key_id = key_id
