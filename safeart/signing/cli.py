"""``safeart verify``, ``safeart sign`` and ``safeart keygen``.

::

    safeart keygen PRIVATE.pem [--public PUBLIC.pem] [--force]
    safeart sign FILE... [--key PRIVATE.pem]
    safeart verify TARGET... [--trust-key PUBLIC.pem]... [--format text|json]

``verify`` takes Metaflow pathspecs (``Flow/run``, ``Flow/run/step``,
``Flow/run/step/task[:name]``) and files (a path that exists: its ``<file>.sig`` sidecar; a
folder: every ``*.safetensors`` file under it).
Trust keys: every ``--trust-key``, else ``$SAFEART_TRUST_KEYS``; signing key: ``--key``,
else ``$SAFEART_SIGNING_KEY``.

Exit codes: 0 verified / written; 1 any artifact or file failed verification; 2 usage,
configuration or I/O error (no trust keys, a bad key file, no such run).

Registered in :mod:`safeart.cli` through :func:`add_parser`. Nothing heavy is imported
until a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from ..errors import ConfigError, SafeartError

if TYPE_CHECKING:  # pragma: no cover
    from .runverify import RunVerification
    from .signature import Verifier


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``verify``, ``sign`` and ``keygen`` to the ``safeart`` command line."""
    p = subparsers.add_parser(
        "verify",
        help="check content addresses and signatures of a run's artifacts or signed files",
        description="Verify every artifact of a Metaflow run (or step, task, artifact): its "
        "bytes must match their content address and carry a signature by a trust key for "
        "this flow, run and artifact name. A TARGET that exists on disk is a file whose "
        "<file>.sig sidecar is checked.",
    )
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="Flow/run, Flow/run/step, Flow/run/step/task[:name], a file, or a "
                   "folder of exported *.safetensors files")
    p.add_argument("--trust-key", action="append", default=[], metavar="PUBLIC.pem",
                   help="a trusted public key (repeatable; default $SAFEART_TRUST_KEYS)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=verify_command)

    p = subparsers.add_parser(
        "sign", help="write a detached signature <file>.sig for exported files",
        description="Sign files (an exported .safetensors) with an Ed25519 key: writes "
        "<file>.sig over the file's sha256 and name.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--key", metavar="PRIVATE.pem",
                   help="the private key (default $SAFEART_SIGNING_KEY)")
    p.set_defaults(func=sign_command)

    p = subparsers.add_parser(
        "keygen", help="generate an Ed25519 signing key pair (PEM files)",
        description="Write a new Ed25519 private key (mode 0600) and its public key. Point "
        "$SAFEART_SIGNING_KEY at the private key where flows run, and list the public key "
        "in $SAFEART_TRUST_KEYS where artifacts are read.",
    )
    p.add_argument("private", metavar="PRIVATE.pem")
    p.add_argument("--public", metavar="PUBLIC.pem",
                   help="default: PRIVATE with .pem replaced by .pub.pem")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=keygen_command)


def verify_command(args: argparse.Namespace) -> int:
    """``safeart verify``: print a table per target; exit 1 on any failure."""
    from .runverify import as_json, render_text, verify_run

    try:
        verifier = _verifier(args.trust_key)
        results = []
        for target in args.targets:
            if os.path.exists(target):
                results.append((target, _verify_file(target, verifier)))
            else:
                results.append((target, verify_run(target, verifier=verifier)))
    except SafeartError as exc:  # ConfigError: keys, pathspec, no such run; I/O
        print(f"safeart verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:  # a pathspec without Metaflow installed
        print(f"safeart verify: {exc}\n  hint: Metaflow pathspecs need "
              "pip install 'safeart[metaflow]'", file=sys.stderr)
        return EXIT_USAGE
    ok = all(result.ok for _, result in results)
    if args.format == "json":
        out = {target: as_json(result) for target, result in results}
        sys.stdout.write(json.dumps({"ok": ok, "targets": out}, indent=1) + "\n")
    else:
        for target, result in results:
            sys.stdout.write(render_text(result, target))
    return EXIT_OK if ok else EXIT_FAILED


def sign_command(args: argparse.Namespace) -> int:
    """``safeart sign``: write ``<file>.sig`` for each file."""
    from .configured import signer_from_settings
    from .files import sign_file
    from .signature import Signer

    try:
        signer = Signer.from_file(args.key, source="--key") if args.key else signer_from_settings()
        if signer is None:
            raise ConfigError("no signing key: pass --key PRIVATE.pem or set $SAFEART_SIGNING_KEY",
                              hint="make one with `safeart keygen PRIVATE.pem`")
        for path in args.files:
            done = sign_file(path, signer)
            print(f"signed {done.path} ({done.digest}, key {done.key_id}) -> {done.sidecar}")
    except SafeartError as exc:
        print(f"safeart sign: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def keygen_command(args: argparse.Namespace) -> int:
    """``safeart keygen``: write a key pair and say how to use it."""
    from .keys import keygen

    try:
        pair = keygen(args.private, args.public, overwrite=args.force)
    except SafeartError as exc:
        print(f"safeart keygen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"key {pair.key_id}\n  private: {pair.private_path} (keep secret; "
          f"SAFEART_SIGNING_KEY={pair.private_path} where flows run)\n"
          f"  public:  {pair.public_path} (SAFEART_TRUST_KEYS={pair.public_path} where "
          "artifacts are read)")
    return EXIT_OK


def _verifier(paths: list[str]) -> "Verifier":
    from .configured import verifier_from_settings
    from .signature import Verifier

    verifier = Verifier.from_files(paths, source="--trust-key") if paths else verifier_from_settings()
    if verifier is None:
        raise ConfigError("no trust keys: pass --trust-key PUBLIC.pem or set $SAFEART_TRUST_KEYS",
                          hint="list the public key files of the keys that sign your flows")
    return verifier


def _verify_file(target: str, verifier: "Verifier") -> "RunVerification":
    """Sidecar checks as rows: the file, or every ``*.safetensors`` under a folder (an export
    directory). The signature covers the bytes: a changed file fails as ``bad-signature``."""
    from pathlib import Path

    from .errors import IntegrityError
    from .files import verify_file
    from .runverify import Checked, RunVerification

    root = Path(target)
    files = sorted(root.rglob("*.safetensors")) if root.is_dir() else [root]
    result = RunVerification()
    for path in files:
        try:
            done = verify_file(path, verifier)
        except IntegrityError as err:
            result.checked.append(Checked(str(path), "file", "unverified", err.reason, key_id=err.key_id,
                                          message=f"{err.message} (hint: {err.hint})"))
        else:
            result.checked.append(Checked(str(path), "file", "ok", "ok", key_id=done.key_id))
    return result
