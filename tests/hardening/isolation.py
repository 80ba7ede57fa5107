"""Helpers of the hardening tests (a plain module: ``conftest`` names are ambiguous).

:func:`isolated` runs a snippet in a fresh interpreter and reports its peak memory growth:
resource-limit tests assert a memory bound there, never a duration (the timeout is only a
safety net against a hang taking the test run down).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
#: Generous bound on what one bomb may add to a process's peak memory.
BOMB_BOUND_MB = 300

_PRELUDE = """
import json, resource, sys
sys.path[:0] = {paths!r}
import safeart, safeart.scan, safeart.unpickle
{setup}
_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_out = {{}}
def report(**values):
    _out.update(values)
"""
_EPILOGUE = """
_out["grew_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - _base) / 1024
print("@@" + json.dumps(_out))
"""


@dataclass
class Isolated:
    """What :func:`isolated` measured: peak RSS growth (MB) and the values ``report``-ed."""

    grew_mb: float
    values: dict[str, Any]


def isolated(code: str, *, setup: str = "", timeout: float = 120) -> Isolated:
    """Run ``code`` in a new interpreter (safeart and ``setup`` imported first, outside the
    measurement) and return its peak memory growth; ``report(k=v)`` passes values back."""
    program = (_PRELUDE.format(paths=[str(TESTS), str(TESTS / "scan")], setup=setup)
               + textwrap.dedent(code) + _EPILOGUE)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("@@"))
    values = json.loads(line[2:])
    return Isolated(values.pop("grew_mb"), values)
