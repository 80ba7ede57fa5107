"""The main demo (`make demo`): the blog's flow end to end, then a scan of its run.

    python examples/run_demo.py [--keep]

1. examples/blog: the flow stores its PyTorch model without pickle; a production script
   loads it with safeart.load(..., allow=[Net]) and gets exactly the DAG's outputs;
2. `safeart scan Flow/run` audits every stored artifact of the run without deserializing
   anything, under the reviewed policy examples/blog/safeart.toml.

Offline; writes only under a temporary directory (removed at the end unless --keep).
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing outside the temporary directory
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import check, example_env, import_example, section  # noqa: E402

blog = import_example("blog/run.py")


def _public(line: str) -> bool:
    """Scan lines worth showing: findings, the flow's own artifacts, the totals."""
    return not line.startswith("CLEAN") or ":_" not in line.split()[1] and ":name " not in line


def main() -> None:
    with example_env("demo") as env:
        run = blog.main(env)
        section(f"3. audit the stored run without unpickling: safeart scan {run}")
        code, out = env.safeart("scan", run, "--policy", str(blog.POLICY), keep=_public)
        print("   (Metaflow's own artifacts -- _graph_info, _transition ..., pickled by Metaflow "
              "-- are scanned too; their CLEAN lines are not shown)")
        check(code == 0, f"the scan of {run} is not clean (exit {code})")
        summary = next(line for line in out.splitlines() if " scanned: " in line)
    print(f"\nDEMO OK: {run} stored without pickle, served by safeart.load with outputs "
          f"identical to the DAG's; scan clean ({summary.split(';')[0]})")


if __name__ == "__main__":
    main()
