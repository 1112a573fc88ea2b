"""The gate's decision for one report: which checks count, and what is only a warning.

- The report's own `checks` (its scenario's expectations, with the verdicts the runner gave them) count
  unless the caller leaves them out; rules given to the gate are evaluated on top.
- `complete == 1` is always a check: an incomplete run (stopped early, failed to drain) fails the gate
  unless `allow_incomplete`, when it becomes a warning.
- `health.saturated == 1` is a warning, not a failure: saturation inflates measured latency, so a
  latency check that passes still holds; one that fails says the harness may be to blame.
- A check whose verdict is "error" (a metric the report lacks, a regression without a baseline) fails
  the gate too: a gate that could not check something has not passed it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..report.document import shape_differences
from ..results import measured
from .rules import ERROR, FAIL, PASS, CheckResult, Regression, Threshold, evaluate, parse_rule

COMPLETE_RULE = parse_rule("complete == 1", name="report complete")


MEASURED = "the run measured something"


@dataclass
class GateOutcome:
    checks: list[CheckResult]
    warnings: list[str] = field(default_factory=list)
    report: str = ""  # where the report came from, for headings
    baseline: str = ""
    measured_nothing: list[str] = field(default_factory=list)  # harness.results.measured's problems

    def count(self, verdict: str) -> int:
        return sum(check.verdict == verdict for check in self.checks)

    @property
    def passed(self) -> bool:
        return all(check.verdict == PASS for check in self.checks)

    @property
    def exit_code(self) -> int:
        if self.measured_nothing:
            return 2  # not a failed check: the run itself failed, whatever its checks say
        return 0 if self.passed else 1

    def summary(self) -> str:
        if self.measured_nothing:
            return "ERROR: the run measured nothing: " + "; ".join(self.measured_nothing)
        failed, errors = self.count(FAIL), self.count(ERROR)
        total = len(self.checks)
        if self.passed:
            return f"PASS: {total} of {total} checks passed"
        parts = [f"{failed} of {total} checks failed"] if failed else []
        if errors:
            parts.append(f"{errors} could not be evaluated")
        return "FAIL: " + ", ".join(parts)


def decide(report: Mapping, thresholds: Sequence[Threshold] = (), regressions: Sequence[Regression] = (),
           baseline: Mapping | None = None, *, allow_incomplete: bool = False, report_checks: bool = True,
           report_name: str = "", baseline_name: str = "") -> GateOutcome:
    outcome = GateOutcome(checks=[], report=report_name, baseline=baseline_name)
    outcome.measured_nothing = measured.judge_report(report)
    if outcome.measured_nothing:
        outcome.checks.append(CheckResult(MEASURED, MEASURED, "", "", None, None, "", ERROR,
                                          "; ".join(outcome.measured_nothing)))
    complete = evaluate(report, [COMPLETE_RULE])[0]
    if complete.verdict == FAIL and allow_incomplete:
        why = report.get("incomplete_reason") or "the run stopped early or did not drain"
        outcome.warnings.append(f"the report is incomplete ({why}); gated anyway because of --allow-incomplete")
    else:
        if complete.verdict == FAIL:
            why = report.get("incomplete_reason") or "stopped early or did not drain"
            complete = replace(complete, detail=f"the run did not complete ({why}); "
                                                "pass --allow-incomplete to gate it anyway")
        outcome.checks.append(complete)
    if report_checks:
        outcome.checks += _report_checks(report)
    outcome.checks += evaluate(report, thresholds, regressions, baseline)
    if len(outcome.checks) <= 1:
        outcome.warnings.append("nothing to gate on but completeness: the report has no checks "
                                "and no rules were given (--rules)")
    outcome.warnings += _saturation_warnings(report, "the harness saturated during this run")
    if baseline is not None:
        outcome.warnings += _saturation_warnings(baseline, "the harness saturated during the baseline run")
        differences = shape_differences(report, baseline)
        if differences:
            outcome.warnings.append("the baseline ran another shape of load (" + "; ".join(differences)
                                    + "): regressions compare unlike runs")
        if baseline.get("complete") is False:
            outcome.warnings.append("the baseline report is incomplete: regressions compare against a partial run")
    return outcome


def _report_checks(report: Mapping) -> list[CheckResult]:
    checks = report.get("checks")
    if checks is None:
        return []
    if not isinstance(checks, list):
        return [CheckResult("checks", "", "", "", None, None, "", ERROR,
                            "the report's `checks` is not a list of check records")]
    return [CheckResult.from_dict(check, index) for index, check in enumerate(checks)]


def _saturation_warnings(report: Mapping, what: str) -> list[str]:
    health = report.get("health")
    if not isinstance(health, Mapping) or health.get("saturated") is not True:
        return []
    reasons = [str(reason) for reason in health.get("reasons") or ()]
    because = f" ({'; '.join(reasons)})" if reasons else ""
    return [f"{what}{because}: its latencies may include the harness's own queueing"]
