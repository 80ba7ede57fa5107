"""The ``safeart`` command line.

::

    safeart scan PATH... [--format text|json|sarif] [--policy FILE] [--allow CLASS]...
                         [--alias NAME=CLASS]... [--fail-on dangerous|unknown] [--output FILE]
                         [--jobs N] [--cache FILE | --no-cache] [--rehash]
    safeart scan --all [...]          every run of every flow Metaflow's metadata lists

    safeart export Flow/run/step/task:NAME DIR [--allow CLASS]... [--alias NAME=CLASS]...
                   [--policy FILE]
    safeart convert SOURCE OUTPUT [--allow CLASS]... [--alias NAME=CLASS]... [--policy FILE]
    safeart verify|sign|keygen ...    signatures (:mod:`safeart.signing.cli`)

Exit codes: 0 clean (``scan``) or written (``export``/``convert``); 1 findings at or above
``--fail-on`` or anything that could not be fully analysed (``scan``), or the artifact was
refused: unclean scan, class not allowed, malformed, not storable (``export``/``convert``);
2 usage, configuration or I/O error.

Extending it:

* a subcommand is a function ``register(subparsers)`` that adds its parser and sets
  ``func(args) -> int``; append it to :data:`SUBCOMMANDS`;
* ``scan`` treats arguments that exist on the file system as files or folders and hands
  anything else (a Metaflow pathspec such as ``Flow/12/step``) to the :data:`RESOLVERS`, each
  ``resolver(arg, policy, args, progress) -> ScanReport | None`` (None: not mine). The module
  ``safeart.metaflow.runscan``, when present, is asked through its ``scan_target`` function
  with the Metaflow options (``--artifact``, ``--latest``, ``--last``, ``--all-namespaces``,
  ``--jobs``, the verdict cache, ``--rehash``); ``--all`` calls its ``scan_all``.

The verdict cache (:mod:`safeart.metaflow.verdicts`) is used by ``--all`` by default (file
:func:`~safeart.metaflow.verdicts.default_cache_path`) and by any Metaflow scan given
``--cache FILE``; ``--no-cache`` turns it off.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
from typing import Any, Callable, TextIO

from .errors import ConfigError, SafeartError
from .policy import Grade, Policy, load_policy, resolve_policy
from .scan import ScanReport, collect_files, render, scan_file
from .scan.render import FORMATS
from .signing.cli import add_parser as _register_signing


EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

#: ``resolver(arg, policy, args, progress)`` scans a non-path target, or returns None when it
#: is not its kind.
Resolver = Callable[
    [str, Policy, argparse.Namespace, Callable[[int, int, str], None]], "ScanReport | None"
]
RESOLVERS: list[Resolver] = []
_RUNSCAN_MODULE = "safeart.metaflow.runscan"


def _runscan_resolver(
    arg: str, policy: Policy, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> ScanReport | None:
    try:
        module = importlib.import_module(_RUNSCAN_MODULE)
    except ImportError:
        return None
    return module.scan_target(  # type: ignore[no-any-return]
        arg, all_namespaces=args.all_namespaces, **_metaflow_options(policy, args, progress)
    )


def _metaflow_options(
    policy: Policy, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> dict[str, Any]:
    """The keyword arguments ``scan_target``/``scan_all`` take from the command line."""
    return dict(policy=policy, artifacts=args.artifact, latest=args.latest, last=args.last,
                progress=progress, cache=_open_cache(args, policy), jobs=args.jobs,
                rehash=args.rehash)


def _open_cache(args: argparse.Namespace, policy: Policy) -> Any:
    """The verdict cache the options ask for (opened once per command), or None."""
    if args.no_cache or not (args.cache or args.all):
        return None
    if getattr(args, "_cache", None) is None:
        from .metaflow.verdicts import VerdictCache, default_cache_path

        args._cache = VerdictCache.open(args.cache or default_cache_path(), policy)
    return args._cache


def _scan_all(
    policy: Policy, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> list[ScanReport]:
    if not args.all:
        return []
    from .metaflow.runscan import scan_all

    return [scan_all(**_metaflow_options(policy, args, progress))]


RESOLVERS.append(_runscan_resolver)


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, done: int, total: int, current: str) -> None:
        if not self.enabled or total == 0:
            return
        width = 30
        filled = width * done // total
        name = current[-40:]
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<40}")
        if done == total:
            self.stream.write("\r" + " " * (width + 55) + "\r")
        self.stream.flush()


def _resolve(arg: str, policy: Policy, args: argparse.Namespace, progress: _Progress) -> ScanReport:
    for resolver in RESOLVERS:
        report = resolver(arg, policy, args, progress)
        if report is not None:
            return report
    raise FileNotFoundError(f"no such file or directory: {arg}")


def _scan(args: argparse.Namespace) -> int:
    """audit pickles, checkpoints, archives and Metaflow runs without unpickling them

    Scan files and folders (recursively) by content: pickles, PyTorch checkpoints,
    joblib/numpy files, gzip/bz2/xz/zip/tar wrappers; and Metaflow runs by pathspec, or
    every flow with --all.
    """
    try:
        policy = _load_policy(args)
    except SafeartError as exc:
        print(f"safeart scan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.perf_counter()
    report = ScanReport()
    progress = _Progress(sys.stderr)
    try:
        if not args.paths and not args.all:
            raise ConfigError("nothing to scan", hint="name files, folders or pathspecs, "
                              "or pass --all for every flow in the Metaflow datastore")
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
        files = collect_files([a for a in args.paths if os.path.exists(a)])
        targets = [a for a in args.paths if not os.path.exists(a)]
        resolved = [_resolve(a, policy, args, progress) for a in targets]
        resolved += _scan_all(policy, args, progress)
    except (FileNotFoundError, SafeartError) as exc:
        print(f"safeart scan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if getattr(args, "_cache", None) is not None:
            args._cache.close()
    for i, path in enumerate(files):
        progress(i, len(files), str(path))
        report.results.append(scan_file(path, policy=policy))
    progress(len(files), len(files), "")
    for sub in resolved:
        report.merge(sub)
    report.seconds = time.perf_counter() - started
    text = render(report, args.format)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            print(f"safeart scan: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
    if any(r.error for r in report.results):
        return EXIT_USAGE
    threshold = Grade.DANGEROUS if args.fail_on == "dangerous" else Grade.UNKNOWN
    return EXIT_FINDINGS if report.fails(threshold) else EXIT_CLEAN


def _subcommand(
    subparsers: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func(args)``: its help is the first paragraph of
    ``func``'s docstring, its description the rest. Returns its parser."""
    summary, _, details = inspect.getdoc(func).partition("\n\n")  # type: ignore[union-attr]
    p = subparsers.add_parser(name, help=summary, description=" ".join(details.split()))
    p.set_defaults(func=func)
    return p


def _register_scan(subparsers: argparse._SubParsersAction) -> None:
    p = _subcommand(subparsers, "scan", _scan)
    p.add_argument("paths", nargs="*", metavar="PATH", help="file, folder or other target")
    p.add_argument("--format", choices=sorted(FORMATS), default="text")
    _policy_options(p)
    p.add_argument("--fail-on", choices=["dangerous", "unknown"], default="unknown",
                   help="lowest grade that fails the scan (default: unknown)")
    p.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")
    mf = p.add_argument_group(
        "Metaflow", "a PATH that does not exist is a Metaflow pathspec: Flow, Flow/run, "
        "Flow/run/step, Flow/run/step/task or Flow/run/step/task:artifact",
    )
    mf.add_argument("--artifact", action="append", default=[], metavar="NAME",
                    help="only this artifact (repeatable)")
    mf.add_argument("--latest", action="store_true",
                    help="Flow: only its latest successful run (the one safeart.load loads)")
    mf.add_argument("--last", type=int, metavar="N",
                    help="Flow: only its N latest runs, failed ones included")
    mf.add_argument("--all-namespaces", action="store_true",
                    help="Flow: runs of every namespace, not only the current one")
    mf.add_argument("--all", action="store_true",
                    help="every run of every flow the metadata lists, every namespace "
                    "(--latest/--last apply per flow); keeps a verdict cache")
    mf.add_argument("--jobs", type=int, default=4, metavar="N",
                    help="batches of task records and blobs fetched at once (default 4)")
    mf.add_argument("--cache", metavar="FILE",
                    help="verdict cache file (default for --all: "
                    "$XDG_CACHE_HOME/safeart/verdicts.sqlite): blobs analysed before under "
                    "the same policy and safeart are not fetched again")
    mf.add_argument("--no-cache", action="store_true", help="never use a verdict cache")
    mf.add_argument("--rehash", action="store_true",
                    help="with a cache: fetch every blob and check it against its content "
                    "address, the scan still skipped (a Flow/run scan cannot otherwise see a "
                    "blob overwritten in place; --all and Flow scans see it in their listing)")


def _policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", metavar="FILE", help="safeart.toml or pyproject.toml")
    p.add_argument("--allow", action="append", default=[], metavar="CLASS",
                   help="also allow this class, module.Class (repeatable)")
    p.add_argument("--alias", action="append", default=[], metavar="NAME=CLASS",
                   help="load the recorded class NAME as CLASS, e.g. "
                   "__main__.Net=mypkg.models.Net for a class defined in a flow file (repeatable)")


def _load_policy(args: argparse.Namespace) -> Policy:
    policy = load_policy(args.policy) if args.policy else resolve_policy()
    aliases = {}
    for spec in args.alias:
        recorded, sep, target = spec.partition("=")
        if not (sep and recorded.strip() and target.strip()):
            raise ConfigError(f"--alias {spec!r} is not NAME=CLASS",
                              hint="e.g. --alias __main__.Net=mypkg.models.Net")
        aliases[recorded.strip()] = target.strip()
    return policy.extend(args.allow, aliases=aliases)


def _write(command: str, args: argparse.Namespace, write: Callable[[Policy], str]) -> int:
    """Run ``write(policy)`` (returns what to print); map errors to exit codes."""
    try:
        print(write(_load_policy(args)))
    except (ConfigError, OSError) as exc:
        print(f"safeart {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SafeartError as exc:
        print(f"safeart {command}: refused: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _export(args: argparse.Namespace) -> int:
    """write a Metaflow artifact to DIR/NAME.safetensors for serving without Metaflow

    Export one Metaflow artifact as a safeart file (safetensors + manifest). safeart
    artifacts are audited and copied; pickled ones are scanned, loaded with the restricted
    unpickler and re-encoded, or refused. Load the file with
    safeart.load_file(path, allow=[...]).
    """
    def write(policy: Policy) -> str:
        from .transfer.export import export

        done = export(args.pathspec, args.directory, args.name, policy=policy)
        how = "scanned clean, converted from pickle" if done.converted else "audited, copied"
        return f"exported {done.artifact} ({done.encoding}: {how}) -> {done.path}"

    return _write("export", args, write)


def _convert(args: argparse.Namespace) -> int:
    """turn a pickle file or torch.save checkpoint into a safeart file after a clean scan

    Scan a plain pickle file or a torch.save zip checkpoint, load it with the restricted
    unpickler and write it in the safe format; refused unless the scan is clean.
    """
    def write(policy: Policy) -> str:
        from .transfer.convert import convert

        path = convert(args.source, args.output, policy=policy)
        return f"converted {args.source} (scanned clean) -> {path}"

    return _write("convert", args, write)


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    p = _subcommand(subparsers, "export", _export)
    p.add_argument("pathspec", help="Flow/run/step/task:NAME, or Flow/run, Flow with --name")
    p.add_argument("directory", metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--name", help="the artifact name, unless the pathspec ends with :NAME")
    _policy_options(p)


def _register_convert(subparsers: argparse._SubParsersAction) -> None:
    p = _subcommand(subparsers, "convert", _convert)
    p.add_argument("source", metavar="SOURCE",
                   help="a plain pickle file (pickle.dump output) or a torch.save zip checkpoint")
    p.add_argument("output", metavar="OUTPUT", help="the safeart file to write")
    _policy_options(p)


#: Every subcommand's ``register(subparsers)``.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _register_scan, _register_export, _register_convert, _register_signing,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="safeart", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"safeart {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse usage errors exit 2)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
