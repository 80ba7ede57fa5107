"""Shared by the run-scan tests: a tiny pickled flow and in-process scan/CLI helpers.

Importing it also puts ``tests/`` on ``sys.path`` for the shared canary builders
(``tests/payloads.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from safeart.cli import main as cli_main
from safeart.metaflow import scan_run
from safeart.scan import ScanReport, ScanResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY_FLOW = """
from metaflow import FlowSpec, step


class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.payload = {"weights": [1.0, 2.0, 3.0]}
        self.count = 3
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TinyFlow()
"""


def scan(env: Any, pathspec: str, **kw: Any) -> ScanReport:
    """``scan_run`` with the Metaflow client pointed at ``env``'s datastore."""
    with env.client():
        return scan_run(pathspec, **kw)


def scan_cli(
    env: Any, capsys: pytest.CaptureFixture[str], *argv: str, namespace: str | None = None
) -> tuple[int, str]:
    """``safeart scan *argv`` in-process against ``env`` (in Metaflow ``namespace``; None:
    every namespace): exit code, stdout + stderr."""
    capsys.readouterr()
    with env.client() as mf:
        mf.namespace(namespace)
        code = cli_main(["scan", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def names(report: ScanReport) -> list[str]:
    """``step/task:name`` of every result (flow and run id dropped)."""
    return [r.target.split("/", 2)[2] for r in report.results]


def result(report: ScanReport, suffix: str) -> ScanResult:
    """The one result whose target ends with ``suffix``."""
    (found,) = [r for r in report.results if r.target.endswith(suffix)]
    return found
