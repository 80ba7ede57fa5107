"""The manifest of every format version: the writer (newest version only), the auditor
(phase 1) and the builder (phase 2).

One schema (:mod:`.schema`) lists every node kind and which kinds each version has; a newer
version only adds kinds, so the same auditor and builder read every version, each blob
checked against the kinds of the version it declares.
"""

from .audit import audit
from .build import build
from .encode import encode
from .schema import KINDS, VERSION

__all__ = ["KINDS", "VERSION", "audit", "build", "encode"]
