"""Enforcement for code that already exists: Metaflow's own reads of pickled artifacts go
through safeart's scan and restricted unpickler.

Turn it on for a whole process -- a notebook, a serving script, every task of a flow --
without changing how artifacts are read::

    SAFEART_ENFORCE=1 python serve.py           # or, in code:
    safeart.metaflow.enforce()

    model = Flow("TrainFlow").latest_run["end"].task.data.model   # scanned, restricted

In a flow file, ``SAFEART_ENFORCE=1`` protects every task without changing how the flow
stores its artifacts; calling ``safeart.metaflow.enforce()`` there imports
``safeart.metaflow``, which also opts the flow in to safeart-encoded artifacts.

Strict mode (``safeart.metaflow.strict()`` / ``SAFEART_STRICT=1``) turns it on too. Under
enforcement ``run.data.x``, ``task["x"].data`` and the artifacts a step inherits from
earlier steps are loaded by :func:`safeart.guard.load_pickle` whenever Metaflow stored them
with pickle; safeart-encoded artifacts are decoded by safeart as always. The policy is the
one every Metaflow load in the process uses: :func:`safeart.metaflow.allowing`,
:func:`safeart.metaflow.set_policy`, ``$SAFEART_POLICY`` (say, a TOML file with
``[aliases] "__main__.Net" = "mypkg.models.Net"``) or the built-in allowlist; inside a
flow's own tasks, classes defined in the flow file are allowed too.

A refused artifact raises :class:`~safeart.errors.UnsafeArtifactError` (scan findings in
``report``) or :class:`~safeart.errors.PolicyError`, naming ``Flow/run/step/task:name``.

How: Metaflow lets the serializer with the lowest PRIORITY that claims an encoding load it;
safeart's Metaflow extension registers a second serializer that claims pickle encodings on
load only, while enforcement is on (``metaflow_extensions.safeart.plugins.safeart_enforce``).
"""

from __future__ import annotations

from .. import guard

__all__ = ["enforce", "is_enforced"]


def enforce(enabled: bool = True) -> None:
    """Scan and restrict every pickled artifact Metaflow loads in this process.

    ``enforce(False)`` turns the switch off again (``$SAFEART_ENFORCE`` and strict mode
    still count).
    """
    guard.set_enforced(enabled)
    if enabled:
        from metaflow_extensions.safeart.plugins.safeart_enforce import ensure_registered

        ensure_registered()


def is_enforced() -> bool:
    """True when Metaflow's reads of pickled artifacts are enforced in this process."""
    from metaflow_extensions.safeart.plugins.safeart_enforce import enforcing

    return enforcing()
