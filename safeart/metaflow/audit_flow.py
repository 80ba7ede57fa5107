"""A Metaflow flow that audits a whole datastore on your own compute and joins one report.

::

    python -m safeart.metaflow.audit_flow run                      # every flow, every run
    python -m safeart.metaflow.audit_flow run --flows TrainFlow,ScoreFlow --last 20 \\
        --runs-per-task 50 --with kubernetes                       # or --with batch
    python -m safeart.metaflow.audit_flow run --policy safeart.toml --fail-on dangerous

``start`` lists the runs of every flow the metadata provider knows (every namespace; this
flow's own runs are left out), or of ``--flows``, and cuts them into shards of
``--runs-per-task`` runs. ``audit`` is a ``foreach`` over the shards: each task scans its
runs with :func:`safeart.metaflow.scan_run` (nothing is deserialized; ``--jobs`` batches
fetched at once) -- with ``--with kubernetes``/``--with batch`` each shard runs on that
compute, next to the data. ``join`` merges the shards into one report, stored as the
artifacts ``report_json`` (``safeart scan --format json``), ``report_sarif`` (SARIF
2.1.0), ``report_text`` and ``summary`` (a dict of totals), and shown in a Metaflow card
(``python -m safeart.metaflow.audit_flow card view join``). ``end`` fails the run when
``--fail-on dangerous|unknown`` is given and the report has findings at that grade, so a
scheduled audit alerts like any failed flow.

Reading the report anywhere::

    from metaflow import Flow
    run = Flow("SafeartAuditFlow").latest_run
    open("audit.sarif", "w").write(run["join"].task["report_sarif"].data)

The artifacts are plain strings and a dict of numbers (Metaflow pickles them; any reader
-- the scan included -- sees only built-in types). To copy the flow instead, it is this
one file: it needs only ``safeart`` and Metaflow.
"""

from __future__ import annotations

import json

from metaflow import FlowSpec, Parameter, card, current, step

#: This flow's name, left out of "every flow" (its own reports are not audit targets).
AUDIT_FLOW = "SafeartAuditFlow"


def list_runs(flows: list[str], last: int) -> list[str]:
    """``Flow/run`` pathspecs of ``flows`` (every namespace), at most ``last`` newest per
    flow when ``last`` > 0, oldest first."""
    from metaflow import Flow

    runs: list[str] = []
    for name in flows:
        found = [run.pathspec for run in Flow(name, _namespace_check=False)]
        runs += reversed(found[:last] if last > 0 else found)
    return runs


def shards(items: list[str], size: int) -> list[list[str]]:
    """``items`` cut into consecutive lists of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]


class SafeartAuditFlow(FlowSpec):
    """Scan every stored artifact of many runs, fanned out with foreach; one report."""

    flows = Parameter("flows", default="",
                      help="comma-separated flow names (default: every flow but this one)")
    last = Parameter("last", type=int, default=0,
                     help="only the N newest runs of each flow (default: all)")
    runs_per_task = Parameter("runs-per-task", type=int, default=100,
                              help="runs scanned by one foreach task")
    policy = Parameter("policy", default="",
                       help="safeart.toml / pyproject.toml (default: $SAFEART_POLICY or "
                       "the built-in allowlist)")
    jobs = Parameter("jobs", type=int, default=8, help="batches fetched at once per task")
    fail_on = Parameter("fail-on", default="never",
                        help="never | unknown | dangerous: fail the run on findings")

    @step
    def start(self) -> None:
        from safeart.metaflow.runscan import list_flows

        if self.fail_on not in ("never", "unknown", "dangerous"):
            raise ValueError(f"--fail-on must be never, unknown or dangerous: {self.fail_on}")
        names = [f.strip() for f in self.flows.split(",") if f.strip()] or [
            f for f in list_flows() if f != AUDIT_FLOW]
        self.targets = list_runs(names, self.last)
        self.shards = shards(self.targets, self.runs_per_task) or [[]]
        print(f"auditing {len(self.targets)} runs of {len(names)} flows "
              f"in {len(self.shards)} tasks")
        self.next(self.audit, foreach="shards")

    @step
    def audit(self) -> None:
        from safeart.metaflow.runscan import scan_run
        from safeart.scan import ScanReport, render

        policy = _policy(self.policy)
        report = ScanReport()
        for pathspec in self.input:
            report.merge(scan_run(pathspec, policy=policy, jobs=self.jobs))
        self.part = render(report, "json")
        self.next(self.join)

    @card(type="blank", id="audit")
    @step
    def join(self, inputs: list) -> None:  # type: ignore[type-arg]
        from safeart.scan import ScanReport, render

        report = ScanReport()
        for task in inputs:
            report.merge(ScanReport.from_dict(json.loads(task.part)))
        report.seconds = sum(r.seconds for r in report.results)
        self.targets = inputs[0].targets
        self.summary = dict(report.summary)
        self.report_json = render(report, "json")
        self.report_sarif = render(report, "sarif")
        self.report_text = render(report, "text")
        _card(report, len(self.targets))
        self.next(self.end)

    @step
    def end(self) -> None:
        from safeart.policy import Grade
        from safeart.scan import ScanReport

        counts = {k: self.summary[k] for k in ("scanned", "clean", "unknown", "dangerous")}
        print(f"audit of {len(self.targets)} runs: {counts}")
        if self.fail_on != "never":
            report = ScanReport.from_dict(json.loads(self.report_json))
            if report.fails(Grade(self.fail_on)):
                raise RuntimeError(
                    f"the audit found artifacts at or above {self.fail_on}: see the "
                    f"report_text artifact or the card of {current.pathspec}")


def _policy(path: str):  # type: ignore[no-untyped-def]
    from safeart.policy import load_policy, resolve_policy

    return load_policy(path) if path else resolve_policy()


def _card(report, runs: int) -> None:  # type: ignore[no-untyped-def]
    """The join's card: totals, then one row per artifact that is not clean."""
    from metaflow.cards import Markdown, Table

    s = report.summary
    current.card["audit"].append(Markdown(
        f"# safeart audit\n\n{runs} runs, {s['scanned']} artifacts: **{s['dangerous']} "
        f"dangerous**, {s['unknown']} unknown, {s['clean']} clean, {s['error']} unreadable"))
    rows = [[r.verdict, r.target, "; ".join(f"{f.kind} {f.name}" for f in r.findings[:5])]
            for r in report.results if r.verdict != "clean"]
    if rows:
        current.card["audit"].append(Table(rows[:500], headers=["verdict", "artifact",
                                                                "findings"]))


if __name__ == "__main__":
    SafeartAuditFlow()
