"""Leaving pickle behind: write a safeart file from a legacy artifact.

* :func:`safeart.convert` (:mod:`safeart.transfer.convert`): a pickle file -> a safeart
  file; no Metaflow involved.
* :func:`safeart.export` (:mod:`safeart.transfer.export`): a Metaflow artifact (safeart or
  pickled) -> a safeart file that serving code loads without Metaflow.

Both load pickles only through :func:`safeart.guard.load_pickle` (scan, refuse unless clean,
restricted unpickle) and choose the policy with :func:`safeart.policy.resolve_policy`.
The package imports neither module until one of its names is used.
"""

from .._lazy import lazy_names

__all__ = ["Exported", "convert", "export"]

__getattr__, __dir__ = lazy_names(
    __name__, {"convert": ".convert", "export": ".export", "Exported": ".export"}, __all__
)
