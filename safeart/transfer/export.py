"""Export a Metaflow artifact to a safeart file that serving code loads without Metaflow.

::

    exported = safeart.export("TrainFlow/1234/train/5:model", "serving/", allow=[Net])
    # exported.path == Path("serving/model.safetensors")

    # in the serving container: no Metaflow, no pickle
    model = safeart.load_file("serving/model.safetensors", allow=[Net])

The file is a safetensors file whose metadata carries the safeart manifest (see
``safeart/format/SPEC.md``), so safetensors tools read its tensors too. The artifact is
picked as :func:`safeart.load` picks it (``Flow/run/step/task``, ``Flow/run``, ``Flow`` ...)
and checked the same way:

* a ``safeart-v1`` artifact is audited under the policy (every class it names must be
  allowed) and its blob is written as is: nothing is rebuilt, the bytes are exactly what
  the flow stored;
* a pickled artifact is scanned and loaded with the restricted unpickler
  (:func:`safeart.guard.load_pickle`; an unclean scan refuses it), then encoded with
  :func:`safeart.save_file`. This is how a legacy model leaves pickle behind
  (:func:`safeart.convert` does the same for a pickle file).

With ``$SAFEART_SIGNING_KEY`` set, the file is signed once written (``<name>.safetensors.sig``,
checked with :func:`safeart.signing.verify_file`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import SafeartError
from ..format import audit, save_file
from ..metaflow.encodings import is_pickle
from ..metaflow.loader import check_safeart, decode, fetch, locate
from ..metaflow.stored import RunDatastore
from ..policy import AllowSpec, Policy, resolve_policy
from .convert import sign_written


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote.

    Attributes:
        path: The safeart file (``<directory>/<name>.safetensors``).
        artifact: The artifact exported, ``Flow/run/step/task:name``.
        encoding: How Metaflow had stored it (``safeart-v1``, ``pickle-v4`` ...).
        signature: The detached signature written beside ``path`` (``<path>.sig``) when
            ``$SAFEART_SIGNING_KEY`` is set; None otherwise.
    """

    path: Path
    artifact: str
    encoding: str
    signature: Path | None = None

    @property
    def converted(self) -> bool:
        """True when the artifact was a pickle, re-encoded after a clean scan."""
        return is_pickle(self.encoding)


def export(
    pathspec: str,
    directory: str | os.PathLike[str],
    name: str | None = None,
    *,
    allow: Iterable[AllowSpec] = (),
    policy: Policy | None = None,
) -> Exported:
    """Write a Metaflow artifact to ``<directory>/<name>.safetensors``.

    Args:
        pathspec: As for :func:`safeart.load` (``Flow/run/step/task:model``, ``Flow/run``
            with ``name`` ...).
        directory: Created if missing. An existing file of the same name is replaced.
        name: The artifact name, unless ``pathspec`` ends with ``:name``.
        allow: Extra classes to allow on top of ``policy``; ``policy``: the base policy
            (default ``$SAFEART_POLICY`` or the built-in allowlist:
            :func:`safeart.policy.resolve_policy`).

    Raises:
        UnsafeArtifactError, PolicyError, FormatError, ConfigError: as :func:`safeart.load`;
            nothing is written then.
        EncodeError: a pickled artifact holds something the safe format cannot store.
        ConfigError: also when ``$SAFEART_SIGNING_KEY`` names an unusable key (the file is
            written, not signed).
    """
    policy = resolve_policy(policy, allow)
    store = RunDatastore()
    record = locate(pathspec, name, policy=policy, store=store)
    blob = fetch(record, store=store)
    target = Path(directory) / f"{record.name}.safetensors"
    try:
        if is_pickle(record.encoding):
            obj = decode(record, blob, policy)
            del blob
            target.parent.mkdir(parents=True, exist_ok=True)
            save_file(obj, target, name=record.name)
        else:
            check_safeart(record, blob, policy)
            audit(blob.data or b"", policy=policy, name=record.name).raise_for_problems()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data or b"")
        signature = sign_written(target)
    except SafeartError as err:
        raise err.with_artifact(record.pathspec)
    return Exported(target, record.pathspec, record.encoding, signature)
