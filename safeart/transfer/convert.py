"""Convert a pickle file or a ``torch.save`` checkpoint into a safeart file (no Metaflow).

::

    safeart.convert("model.pkl", "model.safetensors", allow=[Net])
    safeart.convert("model.pt", "model.safetensors")        # a torch.save zip (state_dict ...)
    model = safeart.load_file("model.safetensors", allow=[Net])

The file is scanned and loaded with the restricted unpickler (an unclean scan refuses it):
a zip (``torch.save``'s format) by :func:`safeart.guard.load_torch_file`, anything else as
one pickle by :func:`safeart.guard.load_pickle`. The object is then encoded with
:func:`safeart.save_file`: the file-to-file twin of :func:`safeart.export`, which does the
same for an artifact a Metaflow run stored. When ``$SAFEART_SIGNING_KEY`` names a key,
both sign what they wrote (a detached ``<file>.sig``, :func:`safeart.signing.sign_file`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..guard import load_pickle, load_torch_file
from ..policy import AllowSpec, Policy, resolve_policy


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    allow: Iterable[AllowSpec] = (),
    policy: Policy | None = None,
) -> Path:
    """Turn a pickle file or a ``torch.save`` checkpoint into a safeart file, after a clean
    scan and a restricted load.

    Args:
        source: A plain pickle (``pickle.dump`` output, any protocol), e.g. a legacy model
            file, or a ``torch.save`` zip checkpoint (told apart by content; torch.load is
            never called). Legacy non-zip ``torch.save`` files are not read.
        destination: The safeart file to write (written only once the object is encoded).
        allow: Extra classes to allow on top of ``policy``; ``policy``: the base policy,
            default ``$SAFEART_POLICY`` or the built-in allowlist
            (:func:`safeart.policy.resolve_policy`).

    Raises:
        UnsafeArtifactError: the scan is not clean; nothing was unpickled or written.
        PolicyError, FormatError: the restricted load refused or failed.
        EncodeError: the object cannot be stored in the safe format.
        ConfigError: ``$SAFEART_POLICY`` names a missing or invalid policy file, or
            ``$SAFEART_SIGNING_KEY`` an unusable key (the file is written, not signed).
    """
    from ..format import save_file

    data = Path(source).read_bytes()
    # torch.save writes a zip: a local file header first (a pickle opening so would open
    # with a persistent id, which load_pickle refuses anyway).
    load = load_torch_file if data.startswith(b"PK\x03\x04") else load_pickle
    obj = load(data, policy=resolve_policy(policy, allow), artifact=os.fspath(source))
    del data
    save_file(obj, destination, name=Path(source).stem)
    sign_written(destination)
    return Path(destination)


def sign_written(path: str | os.PathLike[str]) -> Path | None:
    """Write ``<path>.sig`` for a file just written, when ``$SAFEART_SIGNING_KEY`` is set;
    return the sidecar's path (None: no key configured, nothing written).

    Raises:
        ConfigError: the key cannot be used, or the sidecar cannot be written.
    """
    from ..signing import sign_file, signer_from_settings

    signer = signer_from_settings()
    return sign_file(path, signer).sidecar if signer is not None else None
