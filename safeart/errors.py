"""The one exception hierarchy of safeart.

Every error safeart raises on bad input is a :class:`SafeartError`. Each carries
enough context to act on: *where* (artifact pathspec and object path inside it),
*what* (the offending class, opcode or field) and *how to fix it* (``hint``).

    SafeartError
    ├── PolicyError          a class or global is not on the allowlist
    ├── EncodeError          an object cannot be stored without pickle
    ├── FormatError          a blob is malformed (truncated, bad header, ...)
    │   ├── LimitExceeded    a resource limit was hit (size, depth, count)
    │   └── UnsupportedVersion  the blob was written by an unknown format version
    ├── UnsafeArtifactError  a scan found something above "allowed"; load refused
    └── ConfigError          a policy file or option is invalid
"""

from __future__ import annotations


class SafeartError(Exception):
    """Base class of every safeart error.

    Attributes:
        artifact: Where the bytes came from (``Flow/run/step/task:name`` or a file
            path), when known.
        path: Object path inside the artifact (``model.head.act``), when known.
        hint: What the user can do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        artifact: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.artifact = artifact
        self.path = path
        self.hint = hint

    def with_artifact(self, artifact: str) -> "SafeartError":
        """Return this error with ``artifact`` set (keeps an existing one)."""
        if self.artifact is None:
            self.artifact = artifact
        return self

    def __str__(self) -> str:
        parts = []
        if self.artifact:
            parts.append(f"{self.artifact}: ")
        if self.path:
            parts.append(f"at {self.path}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f"\n  hint: {self.hint}")
        return "".join(parts)


class PolicyError(SafeartError):
    """A class (or pickle global) is not allowed by the policy.

    Attributes:
        name: The fully qualified name that was refused (``mypkg.models.Net``).
    """

    def __init__(self, message: str, *, name: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.name = name


class EncodeError(SafeartError):
    """An object cannot be encoded in the safe format (raised by ``dumps``)."""


class FormatError(SafeartError):
    """A blob or file is not a valid safeart/safetensors blob."""


class LimitExceeded(FormatError):
    """A configured resource limit was exceeded (see :class:`safeart.Limits`)."""


class UnsupportedVersion(FormatError):
    """The blob declares a format version this reader does not know."""


class UnsafeArtifactError(SafeartError):
    """A scan found findings above "allowed", so the load was refused.

    Attributes:
        report: The scan report (a :class:`safeart.scan.ScanReport`).
    """

    def __init__(self, message: str, *, report: object, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.report = report


class ConfigError(SafeartError):
    """A policy file, environment variable or option is invalid."""
