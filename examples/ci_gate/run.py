"""Example 5, a CI gate: scan runs, emit SARIF, let the exit code pass or fail the job.

    python examples/ci_gate/run.py [--keep]

gate.sh is the CI step itself (`safeart scan Flow/run --format sarif --output report.sarif`,
policy from $SAFEART_POLICY). This driver runs the blog's flow, gates the clean run (exit 0,
pass), then changes one weight of the stored model in the datastore -- the bytes are still
a valid safeart blob -- and gates again: the content-address check fails it (exit 1).
"""

import json
import struct
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing outside the temporary directory
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _env import EXAMPLES, Env, check, example_env, section  # noqa: E402

GATE = Path(__file__).resolve().parent / "gate.sh"
POLICY = EXAMPLES / "blog" / "safeart.toml"


def gate(env: Env, run: str, report: str) -> int:
    proc = env.command(["bash", str(GATE), run, report], env={"SAFEART_POLICY": str(POLICY)},
                       check_ok=False)
    results = json.loads((env.root / report).read_text())["runs"][0]["results"]
    print(f"   exit code {proc.returncode}; {report}: {len(results)} SARIF result(s)")
    for r in results:
        where = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        reason = r["message"]["text"].split(": ", 1)[-1]
        print(f"     {r['level']} {r['ruleId']} {where}: {reason[:80]}")
    return proc.returncode


def poison(blob: bytes) -> bytes:
    """The last float32 of the blob's tensor data (a model weight) set to 1000."""
    return blob[:-4] + struct.pack("<f", 1000.0)


def main() -> None:
    with example_env("ci-gate") as env:
        section("1. a run to gate: examples/blog/flow.py")
        run = env.run_flow(EXAMPLES / "blog" / "flow.py")

        section("2. gate the clean run")
        clean = gate(env, run, "clean.sarif")
        check(clean == 0, f"the clean run failed the gate ({clean})")

        section("3. someone changes one weight of the stored model in the datastore")
        import safeart

        blob = env.rewrite_blob(run, "start", "model", poison)
        audit = safeart.audit(env.blob_bytes(run, "start", "model"),
                              policy=safeart.load_policy(POLICY))
        print(f"   rewrote {blob.relative_to(env.root)}; still a valid safeart blob "
              f"(audit ok: {audit.ok}), but no longer what Metaflow stored")

        section("4. gate the tampered run")
        tampered = gate(env, run, "tampered.sarif")
        check(tampered == 1, f"the tampered run passed the gate ({tampered})")
    print(f"\nOK: gate exit codes: clean run {clean} (pass), tampered run {tampered} (fail)")


if __name__ == "__main__":
    main()
