"""Signed artifacts: Ed25519 signatures binding each artifact's content hash to its pathspec.

::

    safeart keygen keys/flows.pem                 # keys/flows.pem + keys/flows.pub.pem
    SAFEART_SIGNING_KEY=keys/flows.pem python flow.py run     # every safeart artifact signed
    SAFEART_TRUST_KEYS=keys/flows.pub.pem safeart verify Flow/1234
    safeart sign serving/model.safetensors        # detached serving/model.safetensors.sig

The hook interface Metaflow's serializer and load paths call (``safeart.metaflow``)::

    signer = signer_from_settings()               # None unless $SAFEART_SIGNING_KEY
    info["safeart_sig"] = signer.sign("Flow/run/step/task:name", digest(blob))
    verifier = verifier_from_settings()           # None unless $SAFEART_TRUST_KEYS
    verifier.verify("Flow/run/step/task:name", digest(blob), info.get("safeart_sig"))

``verify`` raises :class:`IntegrityError` (an :class:`~safeart.errors.UnsafeArtifactError`)
naming the artifact when it is unsigned, signed by an unknown key, changed since signing or
signed for another flow, run or name. What is signed and which pathspecs a signature is good
for: :mod:`safeart.signing.signature`; the threat model: threat-model.md section 5.10.

``cryptography`` (``pip install 'safeart[signing]'``) is imported only when a key is used.
"""

from __future__ import annotations

from .configured import signer_from_settings, verifier_from_settings
from .errors import IntegrityError
from .files import FileSignature, sign_file, verify_file
from .signature import SIG_FIELD, Signer, Verifier, digest, same_artifact

__all__ = [
    "SIG_FIELD",
    "FileSignature",
    "IntegrityError",
    "Signer",
    "Verifier",
    "digest",
    "keygen",
    "same_artifact",
    "sign_file",
    "signer_from_settings",
    "verifier_from_settings",
    "verify_file",
]


def __getattr__(name: str) -> object:
    """``keygen`` (:func:`safeart.signing.keys.keygen`), imported on first use."""
    if name == "keygen":
        from .keys import keygen

        return keygen
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
