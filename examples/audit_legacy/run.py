"""Example 2, auditing a legacy run: scan what plain Metaflow pickled, then leave pickle behind.

    python examples/audit_legacy/run.py [--keep]

1. flow.py has no safeart import: Metaflow pickles every artifact (the model is model.Net);
2. `safeart scan Flow/run` audits the pickles without unpickling them: model.Net is not on
   the built-in allowlist, so the scan fails (exit 1) and says how to allow it;
3. after review, safeart.toml allows model.Net (with the reason): the scan is clean;
4. `safeart export` scans the pickled model, loads it with the restricted unpickler and
   writes serving/model.safetensors (a pickle *file* would go through `safeart convert`);
5. serving code loads that file with safeart.load_file(..., allow=[Net]): no Metaflow, no
   pickle, same outputs as the run.
"""

import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing outside the temporary directory
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _env import check, example_env, section  # noqa: E402

HERE = Path(__file__).resolve().parent
POLICY = str(HERE / "safeart.toml")


def _findings(line: str) -> bool:
    return not line.startswith("CLEAN")


def main() -> None:
    with example_env("audit-legacy") as env:
        section("1. a legacy flow: no safeart import, every artifact is a pickle")
        run = env.run_flow(HERE / "flow.py")

        section("2. scan it with the built-in allowlist (nothing is unpickled)")
        code, out = env.safeart("scan", run, keep=_findings)
        check(code == 1 and "unknown import: model.Net" in out, "expected model.Net flagged")
        check(", 0 dangerous" in out, "expected no dangerous finding")

        section("3. after review, allow model.Net in safeart.toml (with its reason)")
        code, out = env.safeart("scan", run, "--policy", POLICY, keep=_findings)
        check(code == 0, "the scan with the reviewed policy is not clean")

        section("4. export the model to a safetensors file (scan, restricted load, re-encode)")
        # The CLI imports model.Net to rebuild it, like serving code would.
        pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        code, out = env.safeart("export", run, "serving", "--name", "model", "--policy", POLICY,
                                env={"PYTHONPATH": pythonpath})
        check(code == 0 and "converted from pickle" in out, "the export failed")

        section("5. serve it: safeart.load_file('serving/model.safetensors', allow=[Net])")
        import torch
        from safetensors import safe_open

        import safeart

        sys.path.insert(0, str(HERE))
        from model import Net

        path = env.root / "serving" / "model.safetensors"
        with safe_open(str(path), "pt") as f:  # a plain safetensors file
            print(f"   {path.name}: safetensors tensors {sorted(f.keys())}")
        model = safeart.load_file(path, allow=[Net])
        # To compare, read the run's inputs and outputs (pickled tensors: scanned, restricted).
        inputs, stored = safeart.load(run, "inputs"), safeart.load(run, "outputs")
        with torch.no_grad():
            same = torch.equal(model(inputs), stored)
        print(f"   loaded {type(model).__module__}.{type(model).__name__}; "
              f"outputs equal to the run's: {same}")
        check(same, "the exported model computes different outputs")
    print(f"\nOK: {run} audited (model.Net flagged until reviewed), exported to "
          "model.safetensors and served without pickle")


if __name__ == "__main__":
    main()
