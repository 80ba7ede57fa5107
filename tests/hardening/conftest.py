"""tests/hardening: ``tests/`` goes on ``sys.path`` (the canary builders in ``payloads``, the
fuzz oracles in ``fuzz``, the helpers in ``isolation``)."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for _path in (TESTS, TESTS / "hardening"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import fuzz  # noqa: E402,F401 - also puts tests/scan on sys.path
