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
unpickler (see :mod:`safeart.metaflow.reading`). For production code,
``safeart.load("Flow/run", "model", allow=[Net])`` loads either kind explicitly.
"""

from __future__ import annotations

import sys

from .._lazy import lazy_names
from . import runtime as _runtime
from .runtime import allowing, enforce, is_enforced, is_strict, set_policy, strict

__all__ = ["strict", "is_strict", "set_policy", "allowing", "scan_run", "enforce", "is_enforced"]

#: ``scan_run`` imports the scanner (and numpy): loaded on first access only, so the
#: package stays cheap for the Metaflow extension that imports it in every process.
__getattr__, __dir__ = lazy_names(__name__, {"scan_run": ".runscan"}, __all__)


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


if _imported_for_itself():
    _runtime.opt_in_on_import()  # opt in, validate $SAFEART_STRICT, register if Metaflow is loaded
