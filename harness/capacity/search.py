"""The stepped search: run each step of a capacity plan as an ordinary scenario, stop once the
objective breaks (or at the ceiling), and write capacity.json and capacity.html.

Each step is `harness.run.runner.Run` on a scenario file written next to the results, so every step
leaves its own complete report (exact HDR percentiles, accounting, harness health) that `chatload
report`, `gate` and `compare` read like any other. With the embedded emulator, one emulator serves
the whole search (started here, with the artificial per-delivery cost if asked): no restart between
steps, and every step is a `running-emulator` target.

Ctrl-C: during a step, the runner drains and writes that step's report (marked incomplete); the
search then stops and still writes what was measured, marked incomplete. Exit codes: 0 a knee was
found or the ceiling met the objective, 1 even the first step failed it, 2 the search failed or was
interrupted before it could answer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..report.console import check_line
from ..scenario.reader import Scenario, load_scenario
from .analysis import cost_section, find_knee, measure_step, monthly, sizing_section, usl_section
from .plan import CapacityPlan, PlannedStep, dump_toml, step_name, step_tables

EXIT_OK, EXIT_FIRST_STEP_FAILED, EXIT_ERROR = 0, 1, 2
INTERRUPTED = "interrupted (Ctrl-C)"


@dataclass
class StepOutcome:
    """What running one step gave: its report (None when the run failed before writing one)."""
    report: dict | None
    folder: Path | None  # the step's report folder
    exit_code: int | None
    interrupted: bool = False
    error: str | None = None


StepRunner = Callable[[Scenario, argparse.Namespace], StepOutcome]


def run_step_with_runner(scenario: Scenario, args: argparse.Namespace) -> StepOutcome:
    """The real step: `chatload run` on the step's scenario. Its summary goes to stderr with the
    progress, so stdout keeps only the capacity summary."""
    from ..run.runner import Run, RunError

    run = Run(scenario, args)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            code = run.execute()
    except RunError as exc:
        return StepOutcome(None, run.folder, None, run.interrupted, str(exc))
    path = run.folder / "report.json"
    report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return StepOutcome(report, run.folder, code, run.interrupted,
                       None if report is not None else f"no report in {run.folder}")


class CapacitySearch:
    def __init__(self, plan: CapacityPlan, args: argparse.Namespace, *, run_step: StepRunner | None = None) -> None:
        self.plan = plan
        self.args = args
        self.run_step = run_step or run_step_with_runner
        self.folder = _new_folder(Path(args.report_dir) / "capacity" / plan.name)
        self.steps_dir = self.folder / "steps"
        self.records: list[dict] = []
        self.emulator = None
        self.target: dict | None = None
        self.incomplete_reason: str | None = None
        self.error: str | None = None
        self.started_ns = time.time_ns()

    # -- the search -----------------------------------------------------------------------------------

    def execute(self) -> int:
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._confirm_billing()
            self._start_target()
            for step in self.plan.steps:
                record = self._step(step)
                self.records.append(record)
                self._progress_result(record)
                if record.get("run_failed"):
                    self.error = self.incomplete_reason = f"step {step.index} failed: {record['error']}"
                    break
                if not record["judged"]:
                    self.incomplete_reason = INTERRUPTED
                    break
                if not record["objective_met"]:
                    break
        except KeyboardInterrupt:
            self.incomplete_reason = INTERRUPTED
            print(f"\nchatload capacity: {INTERRUPTED}; writing what was measured", file=sys.stderr)
        except _Refused as exc:
            self.error = self.incomplete_reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - the search failed; still write what it measured
            self.error = self.incomplete_reason = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        finally:
            self._stop_target()
        document = self.document()
        from .document import write_capacity

        json_path, html_path = write_capacity(self.folder, document)
        self._summary(document, json_path, html_path)
        return document["exit_code"]

    def _step(self, step: PlannedStep) -> dict:
        name = step_name(self.plan, step.index)
        file = self.steps_dir / f"{name}.toml"
        file.write_text(_step_header(self.plan, step) + dump_toml(step_tables(self.plan, step.index, step.value,
                                                                              self.target)), encoding="utf-8")
        scenario = load_scenario(file)
        self._progress_start(step, scenario)
        args = argparse.Namespace(processes=self.args.processes, report_dir=str(self.steps_dir), yes=True,
                                  quiet=self.args.quiet, reconnect=None)
        outcome = self.run_step(scenario, args)
        links = {"scenario_file": self._relative(file)}
        if outcome.folder is not None:
            links["report"] = self._relative(outcome.folder / "report.json")
            links["report_html"] = self._relative(outcome.folder / "report.html")
        return measure_step(self.plan, step, outcome.report, interrupted=outcome.interrupted, error=outcome.error,
                            links=links)

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return str(path)

    # -- the target -----------------------------------------------------------------------------------

    def _start_target(self) -> None:
        if self.plan.target_kind != "emulator":
            return
        options = self.plan.spec.emulator
        most = max(step.users for step in self.plan.steps)
        extra = ["--max-connections", str(options.max_connections or max(50_000, most * 2))]
        if options.delivery_cost_us:
            extra += ["--delivery-cost-us", f"{options.delivery_cost_us:g}"]
        if options.rate_limit:
            extra += ["--rate-limit", options.rate_limit]
        self.emulator = self.plan.service.start_emulator(*extra)
        self.target = {"service": self.plan.service_name, "kind": "running-emulator",
                       "endpoint": self.emulator.messaging_endpoint,
                       "control_endpoint": self.emulator.control_endpoint, "region": self.emulator.region}
        print(f"chatload capacity: emulator for every step at {self.emulator.messaging_endpoint}"
              + (f" (artificial cost {options.delivery_cost_us:g} µs per delivery)" if options.delivery_cost_us
                 else ""), file=sys.stderr)

    def _stop_target(self) -> None:
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                self.emulator.__exit__(None, None, None)  # stops it and removes its log file

    def _confirm_billing(self) -> None:
        service = self.plan.service
        if self.plan.target_kind != service.real_kind or not service.bills_messages:
            return
        from ..services.billing import ask_before_billing

        sent = delivered = 0
        for step in self.plan.steps:
            s, d = step.scenario.estimated_messages()
            sent, delivered = sent + s, delivered + d
        refusal = ask_before_billing(f"chatload capacity: {self.plan.name} targets the REAL {service.title} "
                                     f"({len(self.plan.steps)} steps in all).", service.billing_note(sent, delivered),
                                     self.args.yes)
        if refusal:
            raise _Refused(refusal)

    # -- output ---------------------------------------------------------------------------------------

    def document(self) -> dict:
        from .document import build_document

        plan, spec = self.plan, self.plan.spec
        for record in self.records:
            steady = record.get("steady") or {}
            record["monthly"] = monthly(steady.get("accepted_per_s"), steady.get("deliveries_per_s"), spec.prices)
        knee = find_knee(plan, self.records)
        exit_code = _exit_code(knee["outcome"])
        return build_document(
            plan=plan, steps=self.records, knee=knee, usl=usl_section(plan, self.records),
            sizing=sizing_section(plan, self.records, knee, spec.sizing, os.cpu_count() or 1),
            cost=cost_section(self.records, knee, spec.prices), target=self._target_summary(),
            complete=self.incomplete_reason is None and knee["outcome"] != "undecided",
            incomplete_reason=self.incomplete_reason, error=self.error, exit_code=exit_code,
            started_ns=self.started_ns, ended_ns=time.time_ns(), processes=self.args.processes,
        )

    def _target_summary(self) -> dict:
        out = {"kind": self.plan.target_kind}
        if self.target:
            out["endpoint"] = self.target["endpoint"]
            out["started_by_capacity"] = True
        elif isinstance(self.plan.base.get("target"), dict):
            out["endpoint"] = self.plan.base["target"].get("endpoint", "")
        out["delivery_cost_us"] = self.plan.spec.emulator.delivery_cost_us
        return out

    def _progress_start(self, step: PlannedStep, scenario: Scenario) -> None:
        print(f"\nchatload capacity: step {step.index}/{len(self.plan.steps)}: {self.plan.spec.vary} = {step.value} "
              f"(room size {step.room_size}, {step.rooms} room(s), {step.users} users, "
              f"{step.offered_messages_per_s:g} msg/s offered), ramp {scenario.ramp_s:g} s + hold "
              f"{self.plan.spec.hold_s:g} s", file=sys.stderr)

    def _progress_result(self, record: dict) -> None:
        if not record.get("checks") and record.get("error"):
            print(f"chatload capacity: step {record['index']}: no report: {record['error']}", file=sys.stderr)
            return
        delivery = record.get("delivery_us") or {}
        steady = record.get("steady") or {}
        harness = record.get("harness") or {}
        verdict = ("not judged (interrupted)" if not record["judged"] else
                   "meets the objective" if record["objective_met"] else "BREAKS the objective")
        p99 = delivery.get("p99")
        print(f"chatload capacity: step {record['index']}: delivery p99 "
              f"{'—' if p99 is None else f'{p99 / 1000:,.1f} ms'}, "
              f"{steady.get('deliveries_per_s') or 0:,.0f} deliveries/s, harness CPU "
              f"{harness.get('cpu_percent_max') or 0:.0f} %{' (SATURATED)' if harness.get('saturated') else ''} "
              f"→ {verdict}", file=sys.stderr)
        for check in record.get("checks", []):
            if check["verdict"] != "pass":
                print(f"    {check_line(check)}", file=sys.stderr)

    def _summary(self, document: dict, json_path: Path, html_path: Path) -> None:
        knee = document["knee"]
        label = self.plan.load_short
        print(f"\n{self.plan.name}: capacity — {document['headline']}"
              f"{'' if document['complete'] else ' (INCOMPLETE: ' + str(document['incomplete_reason']) + ')'}")
        if knee.get("knee"):
            k = knee["knee"]
            print(f"  knee: {label} {k['load']:g} (step {k['index']}, {self.plan.spec.vary} = {k['value']})")
            for m in k["margins"]:
                ratio = "" if m.get("headroom_ratio") is None else f" ({m['headroom_ratio']:.0%} headroom)"
                print(f"    {m['rule']}: observed {m['observed']} {m['unit'] or ''}".rstrip() + ratio)
        if knee.get("breaking"):
            b = knee["breaking"]
            rules = "; ".join(f"{c['rule']} (observed {c.get('observed')})" for c in b["checks"]) or b.get("reason")
            print(f"  broken at step {b['index']} ({label} {b['load']:g}): {rules}")
        if knee.get("limit_note"):
            print(f"  limited by: {knee['limited_by']} — {knee['limit_note']}")
        usl = document["usl"]
        if usl.get("parameters"):
            p = usl["parameters"]
            peak = usl.get("peak")
            shape = (f"peak {peak['throughput']:,.0f} deliveries/s at {label} {peak['load']:,.1f} ({peak['basis']})"
                     if peak else f"plateau {usl['asymptote']['throughput']:,.0f} deliveries/s (extrapolated)"
                     if usl.get("asymptote") else "linear over the measured range")
            r2 = usl["quality"]["r2"]
            print(f"  USL: λ {p['lambda']:.4g}, σ {p['sigma']:.4g}, κ {p['kappa']:.4g}, R² "
                  f"{'—' if r2 is None else f'{r2:.4f}'}; {shape}")
        sizing = document["sizing"].get("target")
        if sizing:
            print(f"  load generator for room size {sizing['room_size']:,}: {sizing['processes']} process(es) on "
                  f"{sizing['machines']} machine(s) ({sizing['basis']})")
            if (sizing.get("reach") or {}).get("words"):
                print(f"    how far this reaches: {sizing['reach']['words']}")
        cost = document["cost"].get("at_knee")
        if cost:
            currency = document["cost"]["prices"]["currency"]
            print(f"  a month at the knee: {cost['messages_sent']:,} sent, {cost['messages_delivered']:,} delivered "
                  f"≈ {cost['cost_total']:,.2f} {currency} (prices are inputs, not quotes)")
        print(f"  capacity report: {html_path}")


class _Refused(Exception):
    """The user did not confirm sending to a real room."""


def _exit_code(outcome: str) -> int:
    """A step that failed to run or was interrupted is never judged, so it cannot make an answer."""
    if outcome in ("knee", "ceiling"):
        return EXIT_OK
    if outcome == "first_step_failed":
        return EXIT_FIRST_STEP_FAILED
    return EXIT_ERROR


def _step_header(plan: CapacityPlan, step: PlannedStep) -> str:
    return (f"# Step {step.index} of {len(plan.steps)} of the capacity search {plan.file}\n"
            f"# ({plan.spec.vary} = {step.value}); written by chatload capacity, runnable with chatload run.\n\n")


def _new_folder(parent: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        folder = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot make a new folder under {parent}")
