"""Coverage-guided fuzzing of safeart's parsers with atheris (see docs/adding-a-bypass.md).

::

    python -m tests.fuzz.run --seconds 10            # every target, ~10 s each (CI smoke)
    python -m tests.fuzz.run --seconds 300 --jobs 2  # the longer run
    python tests/fuzz/target.py scan CORPUS_DIR ...  # one target, any libFuzzer flags

Modules: ``targets`` (one function per entry point, raising on anything that is a bug),
``oracle`` (what a victim unpickler would import; an audit hook that notices execution),
``seeds`` (the seed corpus, made by code), ``target`` (the atheris entry) and ``run``.

Importing this package puts ``tests/`` and ``tests/scan/`` on ``sys.path``, so the shared
canary builders (``payloads``) and the scanner's differential helpers are importable.
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for _path in (TESTS, TESTS / "scan"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
