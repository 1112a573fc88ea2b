"""The gate's outcome as text (a terminal table), Markdown (GitHub step summaries) and JUnit XML (CI test
reports). Pure functions of a `GateOutcome`: the CLI decides where each goes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..report.numbers import format_value
from .outcome import GateOutcome
from .rules import ERROR, FAIL, PASS, CheckResult

LABELS = {PASS: "PASS", FAIL: "FAIL", ERROR: "ERROR"}
ICONS = {PASS: "✅", FAIL: "❌", ERROR: "⚠️"}
# Characters XML 1.0 cannot hold at all, even escaped (control characters but tab, LF, CR).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _check_label(check: CheckResult) -> str:
    return check.rule if check.name == check.rule or not check.rule else f"{check.name}: {check.rule}"


def _expected(check: CheckResult) -> str:
    if check.expected is None:
        return "—"
    value = format_value(check.expected, check.unit, exact=True)
    return value if value.startswith("between") else f"{check.op} {value}"


def _heading(outcome: GateOutcome) -> str:
    against = f" against baseline {outcome.baseline}" if outcome.baseline else ""
    return f"chatload gate: {outcome.report or 'report'}{against}"


def format_text(outcome: GateOutcome) -> str:
    rows = [("VERDICT", "CHECK", "OBSERVED", "EXPECTED", "DETAIL")]
    rows += [(LABELS[check.verdict], _check_label(check), format_value(check.observed, check.unit, exact=True),
              _expected(check), check.detail) for check in outcome.checks]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [_heading(outcome)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[4]]).rstrip())
    lines += [f"warning: {warning}" for warning in outcome.warnings]
    lines.append(outcome.summary())
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Table-safe Markdown: pipes escaped (GFM splits cells before reading code spans), one line."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def format_markdown(outcome: GateOutcome) -> str:
    verdict = "✅ PASS" if outcome.passed else "❌ FAIL"
    against = f" against `{_cell(outcome.baseline)}`" if outcome.baseline else ""
    lines = [f"### chatload gate: {verdict}", "",
             f"{_cell(outcome.summary())} — `{_cell(outcome.report or 'report')}`{against}", ""]
    lines += [f"> ⚠️ {_cell(warning)}" for warning in outcome.warnings]
    if outcome.warnings:
        lines.append("")
    lines += ["| | Check | Observed | Expected | Detail |", "|---|---|---|---|---|"]
    for check in outcome.checks:
        label = _check_label(check)
        lines.append(f"| {ICONS[check.verdict]} {LABELS[check.verdict]} | `{_cell(label)}` "
                     f"| {_cell(format_value(check.observed, check.unit, exact=True))} | {_cell(_expected(check))} "
                     f"| {_cell(check.detail)} |")
    return "\n".join(lines) + "\n"


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def format_junit(outcome: GateOutcome) -> str:
    """One testsuite, one testcase per check; a failed check is a <failure>, one that could not be
    evaluated an <error>; warnings go to the suite's <system-out>."""
    counts = {"tests": str(len(outcome.checks)), "failures": str(outcome.count(FAIL)),
              "errors": str(outcome.count(ERROR)), "skipped": "0", "time": "0"}
    root = ET.Element("testsuites", {"name": "chatload gate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "chatload gate", **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("report", outcome.report), ("baseline", outcome.baseline)):
        if value:
            ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for check in outcome.checks:
        case = ET.SubElement(suite, "testcase", {"classname": "chatload.gate", "name": _xml(_check_label(check)),
                                                 "time": "0"})
        body = (f"observed {format_value(check.observed, check.unit, exact=True)}, expected {_expected(check)}"
                f"\n{check.detail}")
        if check.verdict == FAIL:
            ET.SubElement(case, "failure", {"message": _xml(check.detail), "type": "fail"}).text = _xml(body)
        elif check.verdict == ERROR:
            ET.SubElement(case, "error", {"message": _xml(check.detail), "type": "error"}).text = _xml(body)
    if outcome.warnings:
        ET.SubElement(suite, "system-out").text = _xml("\n".join(f"warning: {w}" for w in outcome.warnings))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


FORMATTERS = {"text": format_text, "markdown": format_markdown, "junit": format_junit}
