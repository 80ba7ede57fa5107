"""What an audit of a blob found: the classes it names and its problems."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SafeartError


@dataclass(frozen=True)
class ClassRef:
    """One name a manifest records, and where: ``torch.nn.modules.linear.Linear`` at ``head``.

    ``kind`` says how it is used: ``"class"`` (an ``obj``/``enum`` node), ``"codec"`` (a
    ``val`` node: the type safeart's codec rebuilds) or ``"reference"`` (an ``fn`` node).
    """

    module: str
    qualname: str
    path: str
    kind: str = "class"

    @property
    def name(self) -> str:
        """The recorded ``module.qualname``."""
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class AuditReport:
    """The result of :func:`safeart.audit`.

    Attributes:
        version: The format version of the blob (None if it could not be read).
        classes: Every name the manifest records (classes, codecs, references), in
            manifest order.
        tensors: How many tensors the blob stores.
        nodes: How many manifest nodes were audited.
        problems: Everything wrong: a malformed blob stops the audit at its first
            :class:`~safeart.errors.FormatError`; every refused class is a
            :class:`~safeart.errors.PolicyError` (one per class name).
    """

    version: int | None
    classes: tuple[ClassRef, ...] = ()
    tensors: int = 0
    nodes: int = 0
    problems: tuple[SafeartError, ...] = ()

    @property
    def ok(self) -> bool:
        """True if the blob is well formed and every class it names is allowed."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise the first problem, if any."""
        if self.problems:
            raise self.problems[0]
