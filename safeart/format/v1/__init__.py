"""Format version 1: the writer, the auditor (phase 1) and the builder (phase 2).

A later format version gets its own package next to this one; readers are looked up by
the version a blob declares, so old blobs stay readable.
"""

from .audit import audit
from .build import build
from .encode import encode
from .schema import VERSION

__all__ = ["VERSION", "audit", "build", "encode"]
