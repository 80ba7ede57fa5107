"""Ed25519 signatures over an artifact's content hash, bound to its pathspec.

What is signed. Never the bytes of a record, always a domain-separated canonical message::

    b"safeart-sig-v1\\0" + b"Flow/run/step/task:name" + b"\\0" + b"sha256:<64 hex>"

for a Metaflow artifact (the pathspec of the task that *produced* it, and the sha256 of the
exact blob bytes Metaflow stores), and ``b"safeart-file-sig-v1\\0" + file name + b"\\0" +
digest`` for an exported file (:mod:`safeart.signing.files`). Pathspecs and names hold no
NUL, so the encoding is unambiguous, and the two prefixes keep a signature made for one
context from verifying in another.

The record :meth:`Signer.sign` returns is what Metaflow keeps in the artifact's
``serializer_info["safeart_sig"]`` (:data:`SIG_FIELD`)::

    {"v": 1, "alg": "ed25519", "key": "<key id>", "ps": "Flow/run/step/task:name",
     "sig": "<base64 of 64 bytes>"}

Which pathspecs a signature is good for (:func:`same_artifact`). A downstream task carries
its parent's artifacts with the parent's record, so the record read at
``Flow/7/end/3:model`` holds the signature made at ``Flow/7/train/2:model``. A signature is
accepted when its flow, run id and artifact name are the ones read; its step and task may
differ (an ancestor's). A blob and signature from another run, another flow or under another
name are refused (``pathspec-mismatch``); threat-model.md section 5.10 says what this leaves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING, Any, Mapping

from .errors import IntegrityError

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


#: The ``serializer_info`` key holding an artifact's signature record.
SIG_FIELD = "safeart_sig"
SIG_VERSION = 1
ALGORITHM = "ed25519"
ARTIFACT_DOMAIN = b"safeart-sig-v1\0"
FILE_DOMAIN = b"safeart-file-sig-v1\0"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_SIG_B64_LEN = 88  # base64 of 64 bytes
_MAX_PATHSPEC = 1024
_RESIGN = ("re-run the step that produced it with $SAFEART_SIGNING_KEY set, and check who "
           "can write the datastore")


def digest(data: bytes | bytearray | memoryview) -> str:
    """The digest signatures are made over: ``"sha256:<hex>"`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_digest(value: str) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ValueError(f"digest must be 'sha256:<64 lowercase hex>' (safeart.signing.digest), "
                         f"got {value!r}")
    return value


def _split(pathspec: str) -> tuple[str, str, str] | None:
    """(flow, run, name) of ``Flow/run/step/task:name``; None if it has another shape."""
    if not isinstance(pathspec, str) or len(pathspec) > _MAX_PATHSPEC or "\0" in pathspec:
        return None
    task, sep, name = pathspec.rpartition(":")
    parts = task.split("/")
    if not sep or not name or len(parts) != 4 or not all(parts):
        return None
    return parts[0], parts[1], name


def artifact_message(pathspec: str, value_digest: str) -> bytes:
    """The bytes signed for artifact ``pathspec`` (``Flow/run/step/task:name``) whose blob
    has digest ``value_digest``.

    Raises:
        ValueError: ``pathspec`` is not of that form, or ``value_digest`` is not a digest.
    """
    if _split(pathspec) is None:
        raise ValueError(f"pathspec must be 'Flow/run/step/task:name', got {pathspec!r}")
    return ARTIFACT_DOMAIN + pathspec.encode() + b"\0" + _check_digest(value_digest).encode()


def file_message(name: str, value_digest: str) -> bytes:
    """The bytes signed for an exported file called ``name`` with digest ``value_digest``."""
    if not name or "\0" in name or "/" in name:
        raise ValueError(f"a file name without '/' or NUL, got {name!r}")
    return FILE_DOMAIN + name.encode() + b"\0" + _check_digest(value_digest).encode()


def same_artifact(signed: str, read: str) -> bool:
    """True when a signature made for pathspec ``signed`` is good for the artifact read at
    ``read``: same flow, run id and artifact name (step and task may be an ancestor's)."""
    a, b = _split(signed), _split(read)
    return a is not None and a == b


class Signer:
    """Signs artifacts and files with one Ed25519 private key.

    Make one with :func:`safeart.signing.signer_from_settings` (``$SAFEART_SIGNING_KEY``)
    or :meth:`from_file`.
    """

    def __init__(self, key: "Ed25519PrivateKey") -> None:
        from .keys import key_id

        self._key = key
        self.key_id: str = key_id(key.public_key())

    @classmethod
    def from_file(cls, path: str, *, source: str = "signing key") -> "Signer":
        """The signer of the PEM private key at ``path`` (``source`` names it in errors)."""
        from .keys import load_private_key

        return cls(load_private_key(path, source=source))

    def sign(self, pathspec: str, digest: str) -> dict[str, Any]:
        """The signature record of artifact ``pathspec`` (``Flow/run/step/task:name`` of the
        task storing it) whose blob has ``digest`` (:func:`digest` of the stored bytes).
        JSON-safe: Metaflow keeps it in ``serializer_info["safeart_sig"]``.

        Raises:
            ValueError: ``pathspec`` or ``digest`` is malformed (a caller's bug).
        """
        return self._record(artifact_message(pathspec, digest), ps=pathspec)

    def _record(self, message: bytes, **fields: str) -> dict[str, Any]:
        sig = base64.b64encode(self._key.sign(message)).decode("ascii")
        return {"v": SIG_VERSION, "alg": ALGORITHM, "key": self.key_id, **fields, "sig": sig}

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


class Verifier:
    """Checks signatures against a set of trusted Ed25519 public keys.

    Make one with :func:`safeart.signing.verifier_from_settings` (``$SAFEART_TRUST_KEYS``)
    or :meth:`from_files`.
    """

    def __init__(self, keys: Mapping[str, "Ed25519PublicKey"]) -> None:
        if not keys:
            raise ValueError("a Verifier needs at least one trust key")
        self._keys = dict(keys)

    @classmethod
    def from_files(cls, paths: list[str], *, source: str = "trust key") -> "Verifier":
        """The verifier trusting the PEM public keys at ``paths``."""
        from .keys import key_id, load_public_key

        keys = [load_public_key(p, source=source) for p in paths]
        return cls({key_id(k): k for k in keys})

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the trusted keys."""
        return tuple(sorted(self._keys))

    def verify(self, pathspec: str, digest: str, sig: Mapping[str, Any] | None) -> None:
        """Check that ``sig`` (the artifact's ``serializer_info["safeart_sig"]``, None when it
        has none) is a trusted key's signature of this blob for this artifact.

        Args:
            pathspec: ``Flow/run/step/task:name`` of the task whose record is read (the
                producer's, or a descendant's for an inherited artifact).
            digest: :func:`digest` of the blob bytes as fetched.

        Raises:
            IntegrityError: unsigned, malformed, unknown key, bad signature, or signed for
                another flow/run/artifact; it names the artifact and what to do.
        """
        _check_digest(digest)
        record = self._trusted(sig, pathspec, "artifact")
        signed = record.get("ps")
        if not isinstance(signed, str) or _split(signed) is None:
            raise _malformed(pathspec, "its 'ps' is not a Flow/run/step/task:name pathspec")
        self._check(record, artifact_message(signed, digest), pathspec, digest)
        if not same_artifact(signed, pathspec):
            raise IntegrityError(
                f"the blob and signature were made for {signed} ({_difference(signed, pathspec)}"
                "): replayed from elsewhere in the datastore",
                reason="pathspec-mismatch", artifact=pathspec, key_id=record["key"],
                hint="do not use it; " + _RESIGN,
            )

    # -- shared by artifacts and files ---------------------------------------------------
    def _trusted(self, sig: Any, where: str, what: str) -> Mapping[str, Any]:
        """``sig`` checked for shape: a dict safeart writes, with a trusted key id."""
        if sig is None:
            raise IntegrityError(
                f"the {what} is not signed, and trust keys are configured "
                f"(keys {', '.join(self.key_ids)})",
                reason="unsigned", artifact=where,
                hint="store it with $SAFEART_SIGNING_KEY set (sign exported files with "
                "`safeart sign FILE`); a signature removed from its record looks the same. "
                "Unset $SAFEART_TRUST_KEYS only to read unsigned artifacts on purpose",
            )
        if not isinstance(sig, Mapping):
            raise _malformed(where, f"it is a {type(sig).__name__}, not a record")
        if sig.get("v") != SIG_VERSION or sig.get("alg") != ALGORITHM:
            raise _malformed(where, f"version {sig.get('v')!r} / algorithm {sig.get('alg')!r} "
                             f"is not {SIG_VERSION} / {ALGORITHM!r}")
        key = sig.get("key")
        if not isinstance(key, str) or not _KEY_ID.match(key):
            raise _malformed(where, "its key id is not 16 hex digits")
        if key not in self._keys:
            raise IntegrityError(
                f"the {what} is signed by key {key}, which is not a trust key "
                f"(trusted: {', '.join(self.key_ids)})",
                reason="unknown-key", artifact=where, key_id=key,
                hint="if you trust the key that signed it, add its public key file to "
                "$SAFEART_TRUST_KEYS; otherwise do not use it",
            )
        return sig

    def _check(self, record: Mapping[str, Any], message: bytes, where: str, digest: str) -> None:
        from cryptography.exceptions import InvalidSignature

        raw = record.get("sig")
        try:
            if not isinstance(raw, str) or len(raw) != _SIG_B64_LEN:
                raise binascii.Error
            signature = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise _malformed(where, "its signature is not base64 of 64 bytes") from None
        try:
            self._keys[record["key"]].verify(signature, message)
        except InvalidSignature:
            raise IntegrityError(
                f"signature check failed: the bytes read ({digest}) or their signature "
                "record were changed after signing (a swapped blob or rewritten metadata)",
                reason="bad-signature", artifact=where, key_id=record["key"],
                hint="do not use it; " + _RESIGN,
            ) from None

    def __repr__(self) -> str:
        return f"Verifier(key_ids={self.key_ids!r})"


def _difference(signed: str, read: str) -> str:
    """What differs between two pathspecs, for a mismatch message."""
    a, b = _split(signed), _split(read)
    assert a is not None
    if b is None:
        return f"read as {read!r}, which is not a Flow/run/step/task:name pathspec"
    labels = ("flow", "run", "artifact name")
    return ", ".join(f"{label} {x!r}, not {y!r}" for label, x, y in zip(labels, a, b) if x != y)


def _malformed(where: str, why: str) -> IntegrityError:
    return IntegrityError(
        f"the signature record is malformed: {why}",
        reason="malformed", artifact=where,
        hint="safeart did not write this record; do not use the artifact, and check who "
        "can write the datastore",
    )
