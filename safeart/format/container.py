"""Compat alias of :mod:`safeart.format.layout` (renamed: issue 14), until ``api.py`` switches."""

from .layout import *  # noqa: F401,F403
from .layout import __all__  # noqa: F401
