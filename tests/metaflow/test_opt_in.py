"""Opting in to safeart-encoded artifacts is ``import safeart.metaflow`` in the flow file,
nothing else: a step that reads another run's artifact with ``safeart.load`` (which loads
``safeart.metaflow.loader``) keeps Metaflow's pickle encoding for its own artifacts."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from runscan_support import TINY_FLOW

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONSUMER = """
import sys

import safeart
{imports}
from metaflow import FlowSpec, step


class {name}(FlowSpec):
    @step
    def start(self):
        self.loaded = safeart.load("TinyFlow", "payload")  # another run's artifact
        self.mine = {{"n": len(self.loaded["weights"])}}
        print("loader imported:", "safeart.metaflow.loader" in sys.modules)
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.loaded["weights"])


if __name__ == "__main__":
    {name}()
"""

WITHOUT = CONSUMER.format(imports="", name="LoadOnlyFlow")
WITH = CONSUMER.format(imports="import safeart.metaflow  # opt in", name="OptedInFlow")


@pytest.mark.parametrize(
    "code, opted_in",
    [
        ("import safeart.metaflow", True),
        ("from safeart.metaflow import strict", True),
        ("import safeart.metaflow.loader", False),
        ("import safeart; safeart.load", False),
        ("import safeart; safeart.export", False),
        ("import importlib; importlib.import_module('safeart.metaflow.runscan')", False),
        ("import safeart.metaflow.pathspec", False),
        ("import safeart.cli; safeart.cli.main(['scan', 'NoSuchFlow'])", False),
        ("import safeart.metaflow.loader; import safeart.metaflow; safeart.metaflow.strict()",
         True),
    ],
)
def test_only_the_package_import_opts_in(code: str, opted_in: bool) -> None:
    check = (
        "import sys\n"
        f"try:\n    {code}\nexcept SystemExit:\n    pass\n"
        "print(sys.modules['safeart.metaflow.state'].opted_in())\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1:] == [str(opted_in)]


def test_safeart_load_in_a_step_does_not_opt_the_flow_in(flow_env) -> None:
    flow_env.run(TINY_FLOW, name="tiny_flow.py")  # pickled, the run safeart.load reads
    with ThreadPoolExecutor(2) as pool:
        without = pool.submit(flow_env.run, WITHOUT, name="load_only.py")
        opted = pool.submit(flow_env.run, WITH, name="opted_in.py")
        without, opted = without.result(), opted.result()
    assert "loader imported: True" in without.output  # the bug's precondition
    with flow_env.client():
        for step, names in (("start", ("loaded", "mine")), ("end", ("total",))):
            plain = flow_env.task_datastore("LoadOnlyFlow", without.run_id, step)._info
            safe = flow_env.task_datastore("OptedInFlow", opted.run_id, step)._info
            for name in names:
                assert plain[name]["encoding"] == "pickle-v4", (step, name)
                assert safe[name]["encoding"] == "safeart-v1", (step, name)
    assert "PickleFallbackWarning" not in without.output + opted.output
