"""Compat: the process switches moved to :mod:`safeart.metaflow.state` (issue 14); this module
goes once ``safeart/metaflow/__init__.py`` imports :mod:`safeart.metaflow.runtime`."""

from __future__ import annotations

from ..settings import STRICT_ENV
from .state import is_strict, opt_in, opted_in, set_strict

__all__ = ["STRICT_ENV", "opt_in", "opted_in", "set_strict", "is_strict"]
