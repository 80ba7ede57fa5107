"""Lazy public names for package ``__init__`` modules (PEP 562 module ``__getattr__``).

A package lists the names whose modules are costly to import (numpy, the scanner, Metaflow)
and where each lives; the module is imported on first access of the name only::

    __getattr__, __dir__ = lazy_names(__name__, {"scan_bytes": ".scan"}, __all__)
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable, Mapping


def lazy_names(
    package: str, names: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` resolving ``names`` (name -> module, relative to
    ``package`` when it starts with a dot) on first access, and a ``__dir__`` listing
    ``public`` too. A resolved name is cached in the package's namespace."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
