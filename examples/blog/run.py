"""Example 1, the blog's flow: train-time artifacts without pickle, served with safeart.load.

    python examples/blog/run.py [--keep]

Runs flow.py (artifacts stored as safetensors + JSON manifest), then serve.py, a production
script that loads the model with ``safeart.load(..., allow=[Net])`` and checks that it
computes exactly the outputs the DAG computed.
"""

import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing outside the temporary directory
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _env import Env, check, example_env, section  # noqa: E402

HERE = Path(__file__).resolve().parent
POLICY = HERE / "safeart.toml"
_OUTPUTS = re.compile(r"outputs in (?:the DAG|production): (\[.*\])")


def main(env: Env) -> str:
    """Run the flow and the production script in ``env``; returns the run's pathspec."""
    section("1. run the flow: `import safeart.metaflow` stores artifacts without pickle")
    run = env.run_flow(HERE / "flow.py")
    section("2. production: safeart.load(run, 'model', allow=[Net])")
    served = env.python(HERE / "serve.py", run)
    dag = _OUTPUTS.findall(env.last_output)
    prod = _OUTPUTS.findall(served.stdout)
    check(dag and prod and dag == prod, f"outputs differ: DAG {dag}, production {prod}")
    print(f"   the DAG and production printed the same outputs: {prod[0]}")
    return run


if __name__ == "__main__":
    with example_env("blog") as env:
        pathspec = main(env)
    print(f"\nOK: {pathspec} stored without pickle; production outputs identical to the DAG's")
