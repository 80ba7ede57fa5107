"""Example 3, an attack caught: a model blob swapped in the datastore for a malicious pickle.

    python examples/attack_caught/run.py [--keep]

An attacker with write access to the datastore (or the bucket behind it) replaces the stored
bytes of a legacy run's ``model`` with a pickle that would create a canary file when
unpickled (payload.py builds it; nothing here unpickles it). Plain Metaflow would run it at
``run.data.model``. Then:

1. `safeart scan Flow/run` flags it: a dangerous import, and bytes that no longer hash to
   their content address (exit 1);
2. production code, ``safeart.load(run, "model", ...)``, refuses it (UnsafeArtifactError);
3. unchanged client code (``Run(...).data.model``) refuses it too under SAFEART_ENFORCE=1;
4. the canary file was never created.
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing outside the temporary directory
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _env import EXAMPLES, check, example_env, section  # noqa: E402

HERE = Path(__file__).resolve().parent
POLICY = str(EXAMPLES / "audit_legacy" / "safeart.toml")  # the legacy flow's reviewed policy
sys.path.insert(0, str(HERE))
from payload import malicious_pickle  # noqa: E402


def main() -> None:
    with example_env("attack") as env:
        canary = env.root / "canary"
        section("1. a legacy run: examples/audit_legacy/flow.py, every artifact pickled")
        run = env.run_flow(EXAMPLES / "audit_legacy" / "flow.py")

        section("2. the attacker swaps the stored model for a malicious pickle")
        blob = env.rewrite_blob(run, "end", "model", lambda _: malicious_pickle(canary))
        print(f"   rewrote {blob.relative_to(env.root)} (same name, same content address)")
        print(f"   payload: builtins.open({canary.name!r}, 'w') when unpickled")

        section("3. audit: safeart scan (nothing is unpickled)")
        code, out = env.safeart("scan", run, "--artifact", "model", "--policy", POLICY,
                                keep=lambda line: not line.startswith("CLEAN"))
        check(code == 1 and "dangerous import: builtins.open" in out, "the scan missed it")
        check("integrity" in out, "the scan did not notice the changed bytes")

        section("4. production: safeart.load(run, 'model', allow=['model.Net'])")
        import safeart

        try:
            safeart.load(run, "model", allow=["model.Net"])
        except safeart.UnsafeArtifactError as err:
            print(f"   refused: UnsafeArtifactError: {str(err).splitlines()[0][:300]}")
        else:
            check(False, "safeart.load did not refuse the malicious model")

        section("5. unchanged client code, Run(...).data.model, with SAFEART_ENFORCE=1")
        proc = env.python(HERE / "client.py", run, env={"SAFEART_ENFORCE": "1"}, check_ok=False,
                          keep=lambda line: line.startswith(("safeart.errors.", "  hint:")))
        check(proc.returncode != 0 and "refused to load" in proc.stdout + proc.stderr,
              "the enforced Metaflow read did not refuse the malicious model")

        section("6. the canary")
        check(not canary.exists(), f"{canary} exists: the payload ran")
        print(f"   {canary} does not exist: the payload never ran")
    print(f"\nOK: the swapped model of {run} was flagged by the scan and refused by "
          "safeart.load and by the enforced Metaflow client; canary untouched")


if __name__ == "__main__":
    main()
