"""`chatload gate REPORT`: pass or fail a run's report in CI, against rules and a baseline report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..report.document import ReportInputError, load_document
from .metrics import listing
from .outcome import decide
from .output import FORMATTERS, format_junit, format_markdown
from .rules import RulesError, RuleSet, parse_rules

DESCRIPTION = """\
Pass or fail a run's report (report.json, or a bare results.json). Without --rules the gate uses the
report's own checks (the scenario's expectations, with the verdicts the run gave them); --rules adds
thresholds, and regressions against --baseline. A run that measured nothing is an error (exit 2)
whatever its checks say. An incomplete run fails unless --allow-incomplete; a
run whose harness saturated passes or fails on its checks, with a warning. See docs/gate.md."""

EPILOG = """\
examples:
  chatload gate reports/smoke/20260101T000000Z/report.json
  chatload gate report.json --baseline baselines/smoke.json --rules gate/smoke.toml \\
      --junit gate.xml --markdown gate.md
  chatload gate --list-metrics

exit status: 0 every check passed, 1 a check failed or could not be evaluated (or the run is
incomplete), 2 the run measured nothing (no user connected, nothing accepted, nothing delivered —
the gate says which), or the gate could not run: unreadable report, baseline or rules file, bad
arguments."""


class GateInputError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("report", nargs="?", metavar="REPORT", help="the run's report.json (or a results.json)")
    parser.add_argument("--baseline", metavar="REPORT", help="an earlier report that [[regression]] rules compare with")
    parser.add_argument("--rules", metavar="FILE", help="TOML file of [[threshold]] and [[regression]] rules")
    parser.add_argument("--no-report-checks", dest="report_checks", action="store_false",
                        help="ignore the report's own checks; gate only on --rules (and completeness)")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="gate an incomplete run instead of failing it (a warning says so)")
    parser.add_argument("--format", choices=sorted(FORMATTERS), default="text",
                        help="what to print on standard output (default %(default)s)")
    parser.add_argument("--junit", metavar="PATH", help="also write JUnit XML here (one testcase per check)")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write a Markdown table here (append it to $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--list-metrics", action="store_true", help="list the metric names rules can use, and exit")


def load_report(path: str, role: str = "report") -> dict:
    """A report (`chatload.report/1`) or a bare results document, read by the report module's reader."""
    try:
        return load_document(path)
    except ReportInputError as exc:
        raise GateInputError(f"{role} {exc}") from None


def _write(path: str, text: str) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise GateInputError(f"cannot write {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.list_metrics:
        print(listing())
        return 0
    if not args.report:
        print("chatload gate: a REPORT (report.json or results.json) is required", file=sys.stderr)
        return 2
    try:
        rules = parse_rules(args.rules) if args.rules else RuleSet((), ())
        report = load_report(args.report)
        baseline = load_report(args.baseline, "baseline") if args.baseline else None
        outcome = decide(report, rules.thresholds, rules.regressions, baseline,
                         allow_incomplete=args.allow_incomplete, report_checks=args.report_checks,
                         report_name=args.report, baseline_name=args.baseline or "")
        if args.junit:
            _write(args.junit, format_junit(outcome))
        if args.markdown:
            _write(args.markdown, format_markdown(outcome))
    except RulesError as exc:
        for problem in exc.problems:
            print(f"chatload gate: {problem}", file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"chatload gate: {len(exc.problems)} errors in {args.rules}", file=sys.stderr)
        return 2
    except GateInputError as exc:
        print(f"chatload gate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(FORMATTERS[args.format](outcome))
    sys.stdout.flush()
    return outcome.exit_code
