"""The atheris entry point: ``python -m tests.fuzz.target NAME [CORPUS_DIR...] [-flags]``.

``NAME`` is one of :data:`tests.fuzz.targets.TARGETS`; everything after it goes to libFuzzer
(``-max_total_time=``, ``-rss_limit_mb=``, ``-timeout=``, ``-runs=``, an input file to replay
a crash ...). Run from the repository root; ``python -m tests.fuzz.run`` does all of it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Iterator

import atheris

#: Modules instrumented for coverage feedback, per target (safeart always).
INSTRUMENT = {
    "format": ("safeart",),
    "scan": ("safeart", "tarfile"),
    "unpickle": ("safeart",),
    "policy": ("safeart", "tomllib"),
}


def _inputs(args: list[str]) -> Iterator[bytes]:
    """The bytes of every file named by the non-flag arguments (corpus folders or files)."""
    for arg in args:
        path = Path(arg)
        if arg.startswith("-") or not path.exists():
            continue
        for file in sorted(path.iterdir()) if path.is_dir() else [path]:
            yield file.read_bytes()


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in INSTRUMENT:
        sys.exit(f"usage: python -m tests.fuzz.target {{{','.join(INSTRUMENT)}}} [libFuzzer args]")
    name = argv[1]
    with atheris.instrument_imports(include=list(INSTRUMENT[name])):
        for module in INSTRUMENT[name]:
            importlib.import_module(module)
        from . import targets
    targets.warm_up(name, _inputs(argv[2:]))
    if name == "unpickle":  # an unbounded allocation fails (reported) instead of eating RAM
        from .oracle import cap_address_space

        cap_address_space(4 * targets.MEMORY_BOUND)
    target = targets.TARGETS[name]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
