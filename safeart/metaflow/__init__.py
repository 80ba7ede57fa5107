"""Metaflow glue: pickle-free artifacts, run scanning and production loading.

Importing this package in a flow file turns safeart on for that flow: every public
artifact (``self.model = Net()``) is stored as a safeart blob instead of a pickle.
Metaflow runs each task in a fresh process that re-imports the flow file, so the import
at the top of the file covers every task::

    import safeart.metaflow            # store artifacts with safeart
    safeart.metaflow.strict()          # optional: never fall back to pickle

Only this import opts in (and :func:`strict`): importing one of its modules
(``safeart.metaflow.loader`` ...), directly or through ``safeart.load``, ``safeart.export``
or ``safeart scan``, does not, so a step may load another run's artifacts with
``safeart.load`` without changing how its own flow stores artifacts. Import
``safeart.metaflow`` before any of its modules: once one of them loaded the package, a
later ``import safeart.metaflow`` is a no-op for Python (call ``strict()`` then).

Reading needs no import: safeart's Metaflow extension decodes safeart artifacts in every
Metaflow process (client, notebook, ``python flow.py dump``) under the default policy or
``$SAFEART_POLICY``. Inside the flow itself, classes defined in the flow file load too.
Elsewhere, allow them explicitly::

    with safeart.metaflow.allowing(Net):
        model = Flow("BlogFlow").latest_run["start"].task["model"].data

Pickled artifacts (flows without the import, older runs) are read by Metaflow's pickle
serializer, unless enforcement is on: ``safeart.metaflow.enforce()`` or
``SAFEART_ENFORCE=1`` (and strict mode) routes them through safeart's scan and restricted
unpickler (see :mod:`safeart.metaflow.enforcement`). For production code,
``safeart.load("Flow/run", "model", allow=[Net])`` loads either kind explicitly.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator, Mapping, Optional, Union

from .._lazy import lazy_names
from ..policy import AllowSpec, Policy
from . import modes
from .enforcement import enforce, is_enforced

__all__ = ["strict", "is_strict", "set_policy", "allowing", "scan_run", "enforce", "is_enforced"]

#: ``scan_run`` imports the scanner (and numpy): loaded on first access only, so the
#: package stays cheap for the Metaflow extension that imports it in every process.
__getattr__, __dir__ = lazy_names(__name__, {"scan_run": ".runscan"}, __all__)


def strict(enabled: bool = True) -> None:
    """Forbid pickle fallback for public artifacts of this flow (call at flow-file top).

    With strict mode on, a step whose artifact safeart cannot store fails at save time
    naming the artifact, its type, the object path and the reason. ``strict()`` also opts
    the process in, like ``import safeart.metaflow``. ``SAFEART_STRICT=1``
    in the environment does the same for every flow that imports ``safeart.metaflow``.
    """
    modes.set_strict(enabled)
    if enabled:
        modes.opt_in()
    _adapter().ensure_registered()


def is_strict() -> bool:
    """True when strict mode is on (:func:`strict` or ``$SAFEART_STRICT``)."""
    return modes.is_strict()


def set_policy(policy: Optional[Policy]) -> None:
    """Use ``policy`` for every Metaflow artifact load in this process.

    In a flow file, this is how classes from your own packages become loadable in
    downstream steps (``set_policy(Policy(allow=[mypkg.Net]))``); ``None`` restores the
    default (``$SAFEART_POLICY`` or the built-in allowlist).
    """
    _adapter().set_process_policy(policy)


@contextmanager
def allowing(
    *allow: AllowSpec,
    aliases: Optional[Mapping[str, Union[type, str]]] = None,
    policy: Optional[Policy] = None,
) -> Iterator[Policy]:
    """Load Metaflow artifacts inside the block with extra classes allowed.

    Args:
        allow: Classes (or ``module.Class`` names) to allow. A class object also stands for
            ``__main__.<its name>``, so ``allowing(Net)`` loads a ``Net`` that a flow file
            defined, as long as your ``Net`` has the same name.
        aliases: Recorded name -> class standing for it (``{"__main__.Net": MyNet}``).
        policy: Start from this policy instead of the current one.
    """
    adapter = _adapter()
    base = policy if policy is not None else adapter.base_policy()
    with adapter.scoped_policy(base.extend(allow, aliases=aliases)) as scoped:
        yield scoped


def _adapter() -> ModuleType:
    """safeart's registered Metaflow serializer module (imports Metaflow)."""
    from metaflow_extensions.safeart.plugins import safeart_serializer

    return safeart_serializer


def _imported_for_itself() -> bool:
    """True when this package is what is being imported (``import safeart.metaflow``,
    ``from safeart.metaflow import strict``); False when Python runs it only as the parent
    package of a submodule being imported (``import safeart.metaflow.loader``,
    ``importlib.import_module("safeart.metaflow.runscan")``).

    Python imports ``a.b.c`` by importing ``a.b`` inside ``_find_and_load("a.b.c")``; that
    frame is on this thread's stack while the package body runs.
    """
    prefix = __name__ + "."
    frame = sys._getframe(1)
    while frame is not None:
        if (frame.f_code.co_name == "_find_and_load"
                and frame.f_globals.get("__name__") == "importlib._bootstrap"
                and str(frame.f_locals.get("name", "")).startswith(prefix)):
            return False
        frame = frame.f_back
    return True


def _validate_environment() -> None:
    """Fail the flow at import on a malformed ``$SAFEART_STRICT`` instead of at save time,
    and register the serializer now if Metaflow is already loaded (the flow imported it
    first) or strict mode is requested."""
    if is_strict() or "metaflow" in sys.modules:
        _adapter().ensure_registered()


if _imported_for_itself():
    modes.opt_in()
_validate_environment()
