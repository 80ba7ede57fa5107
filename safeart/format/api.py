"""The public API of the safe artifact format.

A blob is one safetensors file: tensors and arrays are safetensors tensors, and the
structure is a JSON manifest in the ``__metadata__`` entry ``"safeart"``. Loading is two
phases: an audit of the whole header and manifest (nothing imported, nothing built), then
construction with the classes the policy allows. See ``safeart/format/SPEC.md``.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Union

from ..errors import ConfigError, FormatError, SafeartError, UnsupportedVersion
from ..limits import Limits
from ..policy import AllowSpec, Policy, resolve_policy
from ..settings import TRUST_KEYS_ENV, env_paths
from . import manifest as _manifest
from .fileio import map_file, read_file, write_file
from .layout import METADATA_KEY, Header, as_view, pack, parse_json, read_header, sniff
from .report import AuditReport


#: The version :func:`dumps` writes.
FORMAT_VERSION: int = _manifest.VERSION
#: A reader per known version, so blobs written by an older safeart stay readable (one
#: auditor/builder serves them all, each blob checked against its version's kinds).
_READERS = {version: _manifest for version in _manifest.KINDS}
#: What ``dumps`` enforces, so that whatever it writes loads under the default limits.
_WRITE_LIMITS = Limits()

Buffer = Union[bytes, bytearray, memoryview]
PathLike = Union[str, "os.PathLike[str]"]


def dumps(obj: Any, *, name: str = "") -> bytes:
    """Encode ``obj`` as a safeart blob (a valid safetensors file), without pickle.

    Args:
        obj: Plain values, containers, tensors, numpy arrays and instances of classes
            that pickle's default protocol rebuilds from state (torch.nn modules,
            dataclasses, namedtuples, enums ...). See SPEC.md for the full list.
        name: What to call ``obj`` in error paths (e.g. the artifact name ``"model"``).

    Raises:
        EncodeError: something in ``obj`` cannot be stored (a function, a custom
            ``__reduce__``, an unsupported dtype ...); names its object path.
    """
    return b"".join(_encode(obj, name))


def save_file(obj: Any, path: PathLike, *, name: str = "") -> None:
    """Encode ``obj`` like :func:`dumps` and write it to ``path``, streaming the tensors.

    The blob goes to a new file renamed over ``path`` (see :func:`load_file`: objects
    loaded from the old file keep its content); an interrupted write leaves no partial file.
    """
    write_file(path, _encode(obj, name))  # encoding fails before any file is touched


def loads(data: Buffer, *, policy: Policy | None = None, allow: Iterable[AllowSpec] = (),
          device: Any = None, name: str = "", copy: bool = True) -> Any:
    """Audit, then rebuild the object in a safeart blob.

    Args:
        data: The blob (bytes, bytearray or memoryview; never copied as a whole).
        policy: Which classes may be rebuilt, and the limits; if None, ``$SAFEART_POLICY``
            or else the built-in allowlist (:func:`safeart.policy.resolve_policy`).
        allow: Extra classes to allow on top of that base, as for ``Policy(allow=...)``. A
            class object also stands for ``__main__.<its name>`` (models defined in a flow
            file).
        device: Move tensors there (``"cuda:0"``, a ``torch.device``); CPU if None.
        name: What to call the root object in error paths.
        copy: If False and ``data`` is writable (a ``bytearray``, a private mapping), the
            tensors and arrays share its memory instead of copying out of it: the caller
            hands ``data`` over and must not change it afterwards. Read-only ``data``
            (``bytes``) is always copied from.

    Raises:
        PolicyError: the blob names a class the policy does not allow (nothing was
            imported or built).
        FormatError: the blob is malformed (LimitExceeded: a limit was hit;
            UnsupportedVersion: written by an unknown format version).
    """
    buf = as_view(data)
    return _load(buf, resolve_policy(policy, allow), device, name, owned=not (copy or buf.readonly))


def load_file(path: PathLike, *, policy: Policy | None = None, allow: Iterable[AllowSpec] = (),
              device: Any = None, name: str = "", mmap: bool = True,
              verify: bool | None = None) -> Any:
    """Like :func:`loads` for a file: only its header and manifest are read and audited
    before anything is built, and the tensors and arrays share the file's bytes.

    With ``mmap`` (the default) they are backed by a private, copy-on-write mapping of the
    file, as with ``safetensors.torch.load_file`` or ``torch.load(mmap=True)``: a weight
    is read from disk when it is first used, writing to it never changes the file, and
    the mapping lives as long as an object uses it. Replace a loaded file by renaming a
    new one over it (as :func:`save_file` does); a file rewritten in place changes the
    weights not yet written to, and one truncated makes the process fail (``SIGBUS``)
    when it uses them. With ``mmap=False`` the file is read once into memory of its own:
    one copy of the weights, independent of the file from then on.

    ``verify`` checks the file's detached signature (``<file>.sig``, see
    :func:`safeart.signing.verify_file`) over exactly the bytes then loaded: the file is
    read once (as with ``mmap=False``), its digest checked against a trusted key, and the
    objects built from that copy. None (the default) verifies when ``$SAFEART_TRUST_KEYS``
    is set; True requires it; False never verifies.

    Raises:
        IntegrityError: verifying, the file is unsigned, signed by an untrusted key, or
            changed since it was signed.
        ConfigError: ``verify=True`` and no trust keys are configured.
    """
    policy = resolve_policy(policy, allow)
    try:
        if not _verifying(verify):
            data = map_file(path) if mmap else read_file(path)
        else:
            from ..signing import verify_file

            data = read_file(path)
            verify_file(path, data=data)
        return _load(data, policy, device, name, owned=True)
    except SafeartError as exc:
        raise exc.with_artifact(os.fspath(path))


def audit(data: Buffer, *, policy: Policy | None = None, name: str = "") -> AuditReport:
    """Check a blob without importing or building anything.

    Validates the safetensors header and the whole manifest, and checks every class it
    names against ``policy`` (chosen as for :func:`loads`). Never raises for bad input:
    problems are in the report.
    """
    policy = resolve_policy(policy)
    try:
        header, manifest, reader = _open(as_view(data), policy.limits)
    except FormatError as exc:
        return AuditReport(None, problems=(exc,))
    return reader.audit(manifest, header, policy, name)


def is_safeart(data: Buffer) -> bool:
    """Cheap sniff: does ``data`` start with a safetensors header carrying a safeart manifest?

    Only the header is read, so a prefix of a blob that covers the header is enough.
    """
    return sniff(data)


# -- internals -----------------------------------------------------------------------------
def _encode(obj: Any, name: str) -> list[Any]:
    manifest, pieces = _manifest.encode(obj, name=name, limits=_WRITE_LIMITS)
    return pack(manifest, pieces, _WRITE_LIMITS)


def _verifying(verify: bool | None) -> bool:
    if verify is None:
        return bool(env_paths(TRUST_KEYS_ENV))
    if verify and not env_paths(TRUST_KEYS_ENV):
        raise ConfigError("verify=True, but no trust keys: $SAFEART_TRUST_KEYS is not set",
                          hint="list the signers' public key files in $SAFEART_TRUST_KEYS")
    return verify


def _open(buf: memoryview, limits: Limits) -> tuple[Header, dict, Any]:
    """Validate the header, parse the manifest and pick the reader for its version."""
    header = read_header(buf, limits)
    text = header.metadata.get(METADATA_KEY)
    if text is None:
        raise FormatError(
            f"no safeart manifest: the safetensors metadata has no {METADATA_KEY!r} entry",
            hint="a plain safetensors file holds tensors only; read it with safetensors.safe_open",
        )
    manifest = parse_json(text, "safeart manifest")
    version = manifest.get("version") if type(manifest) is dict else None
    if type(version) is not int:
        raise FormatError("the safeart manifest has no integer 'version'")
    reader = _READERS.get(version)
    if reader is None:
        raise UnsupportedVersion(
            f"format version {version} is unknown to this safeart (it reads {sorted(_READERS)})",
            hint="upgrade safeart to read blobs written by a newer version",
        )
    return header, manifest, reader


def _load(buf: memoryview, policy: Policy, device: Any, name: str, owned: bool = False) -> Any:
    header, manifest, reader = _open(buf, policy.limits)
    reader.audit(manifest, header, policy, name).raise_for_problems()
    return reader.build(manifest, header, buf, policy, device, name, owned=owned)
