"""Compat: ``enforce``/``is_enforced`` moved to :mod:`safeart.metaflow.runtime`, the reads they
switch to :mod:`safeart.metaflow.reading` (issue 14); this module goes once
``safeart/metaflow/__init__.py`` imports them from the runtime."""

from __future__ import annotations

from .runtime import enforce, is_enforced

__all__ = ["enforce", "is_enforced"]
