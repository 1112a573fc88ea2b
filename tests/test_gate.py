"""The CI gate: metric catalog, rule grammar and its errors, evaluation and regressions, outputs, CLI."""

from __future__ import annotations

import argparse
import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.gate import cli
from harness.gate.metrics import UnknownMetric, describe, listing, lookup
from harness.gate.outcome import decide
from harness.gate.output import format_junit, format_markdown, format_text
from harness.gate.rules import ERROR, FAIL, PASS, RulesError, evaluate, parse_rule, parse_rules

DOCS = Path(__file__).resolve().parent.parent / "docs" / "gate.md"

# The figures of a real results document (a 30-user Locust run against the emulator, 8 s), trimmed to
# what the gate reads.
SAMPLE = {
    "schema": "chatload.results/1",
    "complete": True,
    "metadata": {"started_at_ns": 1795326931256627543, "ended_at_ns": 1795326939827754502},
    "latency_us": {
        "delivery": {"count": 1375, "min": 1208, "mean": 2924.242181818182, "max": 10119,
                     "percentiles": {"50": 2553, "90": 4057, "99": 8375, "99.9": 10087, "99.99": 10119,
                                     "100": 10119}},
        "ack": {"count": 48, "min": 1323, "mean": 2656.0, "max": 9583,
                "percentiles": {"50": 2083, "90": 3713, "99": 9583, "99.9": 9583, "99.99": 9583, "100": 9583}},
        "connect": {"count": 30, "min": 6868, "mean": 13499.466666666667, "max": 17423,
                    "percentiles": {"50": 12639, "90": 17103, "99": 17423, "99.9": 17423, "99.99": 17423,
                                    "100": 17423}},
        "reconnect": {"count": 0, "min": 0, "mean": 0.0, "max": 0,
                      "percentiles": {"50": 0, "90": 0, "99": 0, "99.9": 0, "99.99": 0, "100": 0}},
        "token_fetch": {"count": 30, "min": 17808, "mean": 23586.133333333335, "max": 30095,
                        "percentiles": {"50": 22879, "90": 27023, "99": 30095, "99.9": 30095, "99.99": 30095,
                                        "100": 30095}},
        "send_lag": {"count": 48, "min": 817, "mean": 1890.1875, "max": 6111,
                     "percentiles": {"50": 1727, "90": 2405, "99": 6111, "99.9": 6111, "99.99": 6111,
                                     "100": 6111}},
    },
    "counters": {"token_fetches": 30, "connects": 30, "sent": 48, "accepted": 48,
                 "events.aws:DELETE_MESSAGE": 30, "not_sent.stopping": 3},
    "accounting": {"totals": {
        "expected": 1423, "delivered": 1423, "lost": 0, "unconfirmed_at_disconnect": 0, "missed_while_away": 0,
        "duplicates": 0, "out_of_order": 0, "unexpected": 0, "connections": 30, "accepted": 48, "sent": 48,
        "rejected_by_code": {}, "unconfirmed_sends": 0, "presumed_accepted": 0, "receivers": 30, "rejected": 0}},
    "health": {"saturated": False, "reasons": []},
}
RUN_SECONDS = (1795326939827754502 - 1795326931256627543) / 1e9


def sample(**changes) -> dict:
    report = copy.deepcopy(SAMPLE)
    report.update(changes)
    return report


def rate_limited() -> dict:
    """The sample as if the room's rate limit had rejected half of 96 sends with 429."""
    report = sample()
    totals = report["accounting"]["totals"]
    totals.update(sent=96, rejected=48, rejected_by_code={"429": 48})
    report["counters"].update({"sent": 96, "rejected.429": 48})
    return report


def check(report: dict, text: str):
    [result] = evaluate(report, [parse_rule(text)])
    return result


# -- metric catalog -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("delivery.p99", 8375), ("delivery.p50", 2553), ("delivery.p99.9", 10087), ("delivery.p99.99", 10119),
    ("delivery.max", 10119), ("delivery.min", 1208), ("delivery.mean", 2924.242181818182),
    ("delivery.count", 1375), ("ack.p90", 3713), ("connect.p99", 17423), ("token_fetch.max", 30095),
    ("send_lag.p99", 6111), ("reconnect.count", 0),
    ("lost", 0), ("expected", 1423), ("delivered", 1423), ("accepted", 48), ("sent", 48),
    ("duplicates", 0), ("out_of_order", 0), ("unexpected", 0), ("missed_while_away", 0),
    ("unconfirmed_at_disconnect", 0), ("presumed_accepted", 0), ("unconfirmed_sends", 0),
    ("rejected", 0), ("rejected.429", 0), ("rejected.429.ratio", 0), ("loss.ratio", 0), ("delivery.ratio", 1),
    ("counters.connects", 30), ("counters.events.aws:DELETE_MESSAGE", 30), ("counters.reconnects", 0),
    ("health.saturated", 0), ("complete", 1),
    ("connects", 30), ("token_fetches", 30), ("protocol_errors", 0), ("reconnects", 0), ("errors.429", 0),
    ("not_sent.stopping", 3), ("events.aws:DELETE_MESSAGE", 30), ("timeouts.send", 0), ("closes.1006", 0),
])
def test_lookup_reads_the_sample(name, value):
    assert lookup(SAMPLE, name) == pytest.approx(value)


def test_rates_are_per_second_of_the_run():
    assert lookup(SAMPLE, "accepted.rate") == pytest.approx(48 / RUN_SECONDS)
    assert lookup(SAMPLE, "deliveries.rate") == pytest.approx(1423 / RUN_SECONDS)
    assert lookup(SAMPLE, "duration") == pytest.approx(RUN_SECONDS * 1e6)


def test_rejected_by_code_and_its_ratio():
    report = rate_limited()
    assert lookup(report, "rejected.429") == 48
    assert lookup(report, "rejected.429.ratio") == pytest.approx(0.5)
    assert lookup(report, "rejected.403") == 0


@pytest.mark.parametrize("name", ["reconnect.p99", "reconnect.max", "reconnect.mean"])
def test_an_empty_histogram_has_no_percentiles(name):
    assert lookup(SAMPLE, name) is None


def test_lookup_returns_none_for_what_the_report_lacks():
    bare = {"schema": "chatload.results/1"}
    for name in ("delivery.p99", "lost", "loss.ratio", "accepted.rate", "counters.sent", "complete"):
        assert lookup(bare, name) is None
    zero = sample()
    zero["accounting"]["totals"]["expected"] = 0
    assert lookup(zero, "loss.ratio") is None  # 0/0 is undefined, not 0


def test_unknown_metrics_name_close_matches():
    with pytest.raises(UnknownMetric, match=r"unknown metric 'delivery\.p95'; did you mean delivery\.p99"):
        lookup(SAMPLE, "delivery.p95")
    with pytest.raises(UnknownMetric, match="did you mean lost"):
        describe("lots")
    with pytest.raises(UnknownMetric, match="did you mean protocol_errors"):
        lookup(SAMPLE, "protocl_errors")  # bare counter names are the known ones: a typo is not a silent 0
    with pytest.raises(UnknownMetric, match="did you mean errors.429"):
        lookup(SAMPLE, "error.429")


def test_describe_states_the_unit():
    assert "µs" in describe("delivery.p99") and "ms" in describe("delivery.p99")
    assert "40%" in describe("rejected.429.ratio")
    assert "per second" in describe("accepted.rate")
    assert "plain number" in describe("lost")
    assert "rejected.<code>.ratio" in listing() and "delivery.ratio" in listing()


# -- rule grammar ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "metric", "op", "value", "high", "unit"), [
    ("delivery.p99 < 250ms", "delivery.p99", "<", 250_000, None, "ms"),
    ("lost == 0", "lost", "==", 0, None, ""),
    ("lost==0", "lost", "==", 0, None, ""),
    ("rejected.429.ratio between 0.4 and 0.6", "rejected.429.ratio", "between", 0.4, 0.6, ""),
    ("rejected.429.ratio between 40% and 60%", "rejected.429.ratio", "between", 0.4, 0.6, "%"),
    ("reconnect.p99 < 5s", "reconnect.p99", "<", 5_000_000, None, "s"),
    ("ack.p99.9 <= 900us", "ack.p99.9", "<=", 900, None, "µs"),
    ("connect.max < 1500µs", "connect.max", "<", 1500, None, "µs"),
    ("delivery.p50 >= 0.5 ms", "delivery.p50", ">=", 500, None, "ms"),
    ("delivery.ratio >= 99.9%", "delivery.ratio", ">=", 0.999, None, "%"),
    ("accepted.rate > 10/s", "accepted.rate", ">", 10, None, "/s"),
    ("deliveries.rate > 100", "deliveries.rate", ">", 100, None, "/s"),
    ("complete == true", "complete", "==", 1, None, ""),
    ("health.saturated != 1", "health.saturated", "!=", 1, None, ""),
    ("counters.reconnects <= 3", "counters.reconnects", "<=", 3, None, ""),
    ("rejected.429 == 0", "rejected.429", "==", 0, None, ""),
    ("protocol_errors == 0", "protocol_errors", "==", 0, None, ""),
    ("timeouts.send < 5", "timeouts.send", "<", 5, None, ""),
    ("delivery.p99 > 0", "delivery.p99", ">", 0, None, "ms"),
])
def test_parse_rule(text, metric, op, value, high, unit):
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.unit) == (metric, op, unit)
    assert rule.value == pytest.approx(value)
    assert rule.high == (None if high is None else pytest.approx(high))
    assert rule.text == rule.name == text.strip()


@pytest.mark.parametrize(("text", "message"), [
    ("delivery.p95 < 250ms", r"unknown metric 'delivery\.p95'; did you mean delivery\.p99, delivery\.p90"),
    ("deliveries.p99 < 1ms", r"did you mean delivery\.p99"),
    ("rejected.ratoi < 0.1", r"did you mean rejected\.ratio"),
    ("lost = 0", r"bad operator '=': use <, <=, >, >=, ==, != or `between A and B`; for equality write =="),
    ("lost => 0", r"bad operator '=>'"),
    ("lost is 0", r"bad operator 'is'"),
    ("lost", r"missing operator and value after lost"),
    ("", r"empty rule"),
    ("250ms > delivery.p99", r"a rule starts with a metric name"),
    ("lost < many", r"expected a number with an optional unit, got 'many'"),
    ("delivery.p99 < 250msec", r"unknown unit 'msec': use µs \(or us\), ms, s, %, /s or a plain number"),
    ("delivery.p99 < 250", r"delivery\.p99 is a duration, so a plain number does not fit: write µs"),
    ("delivery.p99 < 10%", r"delivery\.p99 is a duration, so '%' does not fit"),
    ("lost == 0ms", r"lost is a count, so 'ms' does not fit: write a plain number"),
    ("accepted.rate > 5ms", r"accepted\.rate is a rate, so 'ms' does not fit"),
    ("complete == 2", r"complete is a flag: write 0, 1, false or true"),
    ("delivery.p99 between 5ms", r"`between` needs two bounds"),
    ("delivery.p99 between 5ms and 1ms", r"lower bound of `between` is above the upper bound"),
    # Rules that can never hold: every metric is a latency, count, ratio, rate or flag, never below 0.
    ("delivery.p99 < 0ms", r"can never hold: delivery\.p99 is never below 0, so it is never < 0 ms"),
    ("lost < 0", r"can never hold: lost is never below 0"),
    ("loss.ratio <= -1%", r"can never hold"),
    ("rejected.ratio between -0.5 and -0.1", r"can never hold: rejected\.ratio is never below 0 \(upper bound"),
])
def test_parse_rule_errors_say_what_is_wrong(text, message):
    with pytest.raises(RulesError, match=message) as caught:
        parse_rule(text)
    assert str(caught.value).startswith(f"rule {text!r}: ")


def test_parse_rule_names_where_the_rule_came_from():
    with pytest.raises(RulesError, match=r"^scenarios/x\.toml: expect\[2\]: 'lost = 0': bad operator"):
        parse_rule("lost = 0", where="scenarios/x.toml: expect[2]")
    with pytest.raises(RulesError, match="a rule is a string"):
        parse_rule(42)


BRIEF_RULES = """\
[[threshold]]
rule = "delivery.p99 < 250ms"
[[threshold]]
rule = "lost == 0"
[[threshold]]
rule = "rejected.429.ratio between 0.4 and 0.6"
[[threshold]]
rule = "reconnect.p99 < 5s"
[[regression]]
metric = "delivery.p99"
worse_by_at_most = "10%"     # relative to the baseline
noise = "2ms"                # absolute allowance below which no regression is reported
direction = "lower_is_better"  # default from the catalog
"""


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_rules_file(tmp_path):
    thresholds, regressions = parse_rules(write(tmp_path, BRIEF_RULES))
    assert [t.text for t in thresholds] == ["delivery.p99 < 250ms", "lost == 0",
                                            "rejected.429.ratio between 0.4 and 0.6", "reconnect.p99 < 5s"]
    [regression] = regressions
    assert (regression.metric, regression.relative, regression.direction) == ("delivery.p99", True, "lower_is_better")
    assert regression.allowed == pytest.approx(0.10)
    assert regression.noise == 2000
    assert regression.unit == "ms"


def test_every_toml_example_in_the_docs_parses(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert blocks
    for index, block in enumerate(blocks):
        parse_rules(write(tmp_path, block, f"docs{index}.toml"))


@pytest.mark.parametrize(("text", "message"), [
    ('[[thresholds]]\nrule = "lost == 0"\n', r"unknown key `thresholds`; did you mean `threshold`\?"),
    ('[[threshold]]\nrule = "lost == 0"\nlimit = 3\n', r"threshold\[0\]: unknown key `limit`"),
    ('[[threshold]]\nrule = "lost == 0"\n[[threshold]]\nrule = "lost = 0"\n',
     r"threshold\[1\]: 'lost = 0': bad operator '='"),
    ('[[threshold]]\nrule = "delivery.p95 < 1ms"\n', r"threshold\[0\]: 'delivery.p95 < 1ms': unknown metric"),
    ('[[threshold]]\nname = "x"\n', r"threshold\[0\]: missing `rule`"),
    ('[threshold]\nrule = "lost == 0"\n', r"`threshold` must be an array of tables: write \[\[threshold\]\]"),
    ('[[threshold]]\nrule = "lost == 0"\nname = ""\n', r"threshold\[0\]\.name: must be a non-empty string"),
    ("", r"no rules"),
    ("[[threshold]\n", r"not valid TOML"),
    ('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "10%"\nwindow = 3\n',
     r"regression\[0\] \(delivery.p99\): unknown key `window`"),
    ('[[regression]]\nmetric = "delivery.p99"\n', r"`worse_by_at_most` is required"),
    ('[[regression]]\nworse_by_at_most = "10%"\n', r"regression\[0\]: `metric` is required"),
    ('[[regression]]\nmetric = "delivery.p999"\nworse_by_at_most = "10%"\n',
     r"regression\[0\] \(delivery.p999\)\.metric: unknown metric"),
    ('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "10%"\nnoise = "2"\n',
     r"\.noise: '2': delivery\.p99 is a duration, so a plain number does not fit"),
    ('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "ten%"\n', r"\.worse_by_at_most: 'ten%'"),
    ('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "5 msec"\n',
     r"\.worse_by_at_most: '5 msec': unknown unit"),
    ('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "-5%"\n', r"cannot be negative"),
    ('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "10%"\ndirection = "down"\n',
     r"\.direction: 'down': use \"lower_is_better\" or \"higher_is_better\""),
    ('[[regression]]\nmetric = "complete"\nworse_by_at_most = "10%"\n', r"complete is a flag"),
])
def test_parse_rules_errors_name_file_index_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RulesError, match=message) as caught:
        parse_rules(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_parse_rules_unreadable_file(tmp_path):
    with pytest.raises(RulesError, match=r"missing\.toml: cannot read: No such file"):
        parse_rules(tmp_path / "missing.toml")


# -- evaluation -----------------------------------------------------------------------------------------

def test_a_rule_the_sample_meets_passes():
    result = check(SAMPLE, "delivery.p99 < 250ms")
    assert result.to_dict() == {"name": "delivery.p99 < 250ms", "rule": "delivery.p99 < 250ms",
                                "metric": "delivery.p99", "op": "<", "expected": 250.0, "observed": 8.375,
                                "unit": "ms", "verdict": PASS, "detail": ""}
    assert check(SAMPLE, "lost == 0").verdict == PASS
    assert check(SAMPLE, "delivery.ratio >= 99.9%").observed == 100
    assert check(rate_limited(), "rejected.429.ratio between 0.4 and 0.6").verdict == PASS


def test_a_rule_the_sample_cannot_meet_fails_with_a_detail():
    result = check(SAMPLE, "delivery.p99 < 5ms")
    assert (result.verdict, result.observed, result.expected) == (FAIL, 8.375, 5.0)
    assert result.detail == "delivery.p99 is 8.375 ms, not < 5 ms"
    between = check(SAMPLE, "rejected.429.ratio between 0.4 and 0.6")
    assert (between.verdict, between.expected) == (FAIL, [0.4, 0.6])
    assert between.detail == "rejected.429.ratio is 0, not between 0.4 and 0.6"


def test_a_missing_metric_is_an_error_verdict_not_an_exception():
    result = check(SAMPLE, "reconnect.p99 < 5s")
    assert result.verdict == ERROR and result.observed is None
    assert result.detail == "missing from the report: reconnect recorded no samples (count 0), so it has no p99"
    no_accounting = sample(accounting=None)
    result = check(no_accounting, "lost == 0")
    assert result.verdict == ERROR and "the report has no accounting" in result.detail


def test_a_failed_latency_on_a_saturated_run_says_the_harness_may_be_to_blame():
    saturated = sample(health={"saturated": True, "reasons": ["local: cpu_percent reached 99 (limit 90.0)"]})
    assert "harness saturated" in check(saturated, "delivery.p99 < 5ms").detail
    assert "harness saturated" not in check(saturated, "lost > 1000000").detail


def worse(factor: float) -> dict:
    report = sample()
    report["latency_us"]["delivery"]["percentiles"]["99"] = round(8375 * factor)
    return report


REGRESSION = """\
[[regression]]
metric = "delivery.p99"
worse_by_at_most = "10%"
"""


@pytest.mark.parametrize(("factor", "noise", "verdict"), [
    (1.20, "0", FAIL),     # 20 % worse, more than the 10 % allowed
    (1.05, "0", PASS),     # 5 % worse: within 10 %
    (1.20, "2ms", PASS),   # 20 % worse is +1.675 ms: within the noise
    (1.30, "2ms", FAIL),   # +2.5 ms: beyond both
    (0.50, "0", PASS),     # better is never a regression
])
def test_regression_against_a_baseline(tmp_path, factor, noise, verdict):
    _, regressions = parse_rules(write(tmp_path, REGRESSION + f'noise = "{noise}"\n'))
    [result] = evaluate(worse(factor), [], regressions, baseline=SAMPLE)
    assert result.verdict == verdict, result.detail
    assert result.op == "<="
    assert result.observed == pytest.approx(8.375 * factor, abs=0.001)
    assert result.expected == pytest.approx(8.375 + max(0.8375, 2.0 if noise == "2ms" else 0))
    assert "against baseline 8.375 ms" in result.detail


def test_regression_of_a_higher_is_better_metric(tmp_path):
    _, regressions = parse_rules(write(tmp_path, '[[regression]]\nmetric = "deliveries.rate"\n'
                                                 'worse_by_at_most = "10%"\n'))
    slower = sample(metadata={"started_at_ns": 0, "ended_at_ns": int(RUN_SECONDS * 1.5e9)})
    [result] = evaluate(slower, [], regressions, baseline=SAMPLE)
    assert (result.verdict, result.op) == (FAIL, ">=")
    [result] = evaluate(SAMPLE, [], regressions, baseline=slower)
    assert result.verdict == PASS


def test_regression_without_a_baseline_or_with_a_lacking_one_is_an_error(tmp_path):
    _, regressions = parse_rules(write(tmp_path, REGRESSION))
    [result] = evaluate(SAMPLE, [], regressions)
    assert result.verdict == ERROR and "needs a baseline report (--baseline)" in result.detail
    [result] = evaluate(SAMPLE, [], regressions, baseline={"schema": "chatload.results/1"})
    assert result.verdict == ERROR and result.detail.startswith("missing from the baseline")


# -- outputs --------------------------------------------------------------------------------------------

def outcome_with_every_verdict():
    rules = [parse_rule(text) for text in ("delivery.p99 < 250ms", "lost == 0", "delivery.p99 < 5ms",
                                           "reconnect.p99 < 5s")]
    return decide(SAMPLE, rules, report_name="reports/x/results.json")


def test_text_output_is_an_aligned_table_with_a_summary():
    text = format_text(outcome_with_every_verdict())
    lines = text.splitlines()
    assert lines[0] == "chatload gate: reports/x/results.json"
    rows = lines[1:-1]
    assert [row.split()[0] for row in rows] == ["VERDICT", "PASS", "PASS", "PASS", "FAIL", "ERROR"]
    for header, below in (("CHECK", rows[1:]), ("OBSERVED", rows[1:]), ("EXPECTED", rows[1:]),
                          ("DETAIL", rows[4:])):  # cells start under their header (passes have no detail)
        column = rows[0].index(header)
        assert all(row[column - 2:column] == "  " and row[column] != " " for row in below), header
    observed = rows[0].index("OBSERVED")
    assert [row[observed:].split("  ")[0] for row in rows[1:]] == ["1", "8.375 ms", "0", "8.375 ms", "—"]
    assert lines[-1] == "FAIL: 1 of 5 checks failed, 1 could not be evaluated"


def test_junit_output_is_valid_xml_with_a_testcase_per_check():
    root = ET.fromstring(format_junit(outcome_with_every_verdict()))
    [suite] = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "1", "1")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases][1:3] == ["delivery.p99 < 250ms", "lost == 0"]
    [failure] = [case.find("failure") for case in cases if case.find("failure") is not None]
    assert failure.get("message") == "delivery.p99 is 8.375 ms, not < 5 ms"
    [error] = [case.find("error") for case in cases if case.find("error") is not None]
    assert "no samples" in error.get("message")


def test_junit_survives_characters_xml_cannot_hold():
    report = sample(checks=[{"name": "odd \x01 <name> & \"q\"", "rule": "x", "verdict": "fail",
                             "detail": "bell \x07 here"}])
    ET.fromstring(format_junit(decide(report)))


def test_markdown_output_is_a_table_for_step_summaries():
    markdown = format_markdown(outcome_with_every_verdict())
    assert markdown.startswith("### chatload gate: ❌ FAIL\n")
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[0] == "| | Check | Observed | Expected | Detail |"
    assert len(rows) == 1 + 5
    assert rows[2] == "| ✅ PASS | `delivery.p99 < 250ms` | 8.375 ms | < 250 ms |  |"
    assert rows[4].startswith("| ❌ FAIL | `delivery.p99 < 5ms` |")
    piped = sample(checks=[{"name": "a | b", "rule": "a | b", "verdict": "pass"}])
    assert "`a \\| b`" in format_markdown(decide(piped))


# -- the gate's decision and its CLI ----------------------------------------------------------------------

def test_the_report_checks_gate_when_no_rules_are_given():
    failing = sample(checks=[check(SAMPLE, "lost == 0").to_dict(), check(SAMPLE, "delivery.p99 < 5ms").to_dict()])
    outcome = decide(failing)
    assert [c.verdict for c in outcome.checks] == [PASS, PASS, FAIL]
    assert not outcome.passed and outcome.exit_code == 1
    assert decide(failing, report_checks=False).passed
    broken = decide(sample(checks=[{"rule": "lost == 0", "verdict": "maybe"}]))
    assert broken.checks[-1].verdict == ERROR


def test_the_runner_stores_checks_the_gate_reads_back():
    """The runner keeps `to_dict()` of each check in its report.json; the gate gates on them."""
    from harness.report.document import build_report

    checks = [result.to_dict() for result in evaluate(SAMPLE, [parse_rule("lost == 0"),
                                                               parse_rule("delivery.p99 < 5ms")])]
    report = build_report(SAMPLE, scenario={"name": "smoke"}, checks=checks, complete=True)
    outcome = decide(json.loads(json.dumps(report)))
    assert [(c.rule, c.verdict) for c in outcome.checks[1:]] == [("lost == 0", PASS), ("delivery.p99 < 5ms", FAIL)]
    assert outcome.checks[2].to_dict() == checks[1]


def test_cli_gates_a_report_json_on_its_own_checks(tmp_path):
    from harness.report.document import build_report

    checks = [check(SAMPLE, "delivery.p99 < 5ms").to_dict()]
    report = write(tmp_path, json.dumps(build_report(SAMPLE, scenario={"name": "smoke"}, checks=checks,
                                                     complete=True)), "report.json")
    assert gate(report) == 1
    assert gate(report, "--no-report-checks") == 0


def test_incomplete_fails_unless_allowed_and_saturation_only_warns():
    incomplete = decide(sample(complete=False, incomplete_reason="interrupted (Ctrl-C)"))
    assert incomplete.checks[0].verdict == FAIL
    assert incomplete.checks[0].detail == ("the run did not complete (interrupted (Ctrl-C)); "
                                           "pass --allow-incomplete to gate it anyway")
    allowed = decide(sample(complete=False), [parse_rule("lost == 0")], allow_incomplete=True)
    assert allowed.passed and any("incomplete" in warning for warning in allowed.warnings)
    saturated = decide(sample(health={"saturated": True, "reasons": ["local: loop_lag_max_us reached 80000"]}),
                       [parse_rule("lost == 0")])
    assert saturated.passed
    assert any("saturated" in w and "loop_lag_max_us" in w for w in saturated.warnings)


def gate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="chatload gate")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(arg) for arg in argv]))


@pytest.fixture
def report_file(tmp_path):
    return write(tmp_path, json.dumps(SAMPLE), "results.json")


def test_cli_exit_0_when_every_check_passes(tmp_path, report_file, capsys):
    rules = write(tmp_path, BRIEF_RULES.replace('rule = "reconnect.p99 < 5s"', 'rule = "reconnect.count == 0"')
                  .replace('rule = "rejected.429.ratio between 0.4 and 0.6"', 'rule = "rejected.429.ratio < 1%"'))
    junit, markdown = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    code = gate(report_file, "--rules", rules, "--baseline", report_file, "--junit", junit, "--markdown", markdown)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[-1] == "PASS: 6 of 6 checks passed"
    assert ET.parse(junit).getroot().find("testsuite").get("tests") == "6"
    assert markdown.read_text(encoding="utf-8").startswith("### chatload gate: ✅ PASS")


def test_cli_exit_1_when_a_check_fails(tmp_path, report_file, capsys):
    assert gate(report_file, "--rules", write(tmp_path, BRIEF_RULES), "--baseline", report_file) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and out.splitlines()[-1] == "FAIL: 1 of 6 checks failed, 1 could not be evaluated"


def test_cli_exit_1_for_an_incomplete_report_unless_allowed(tmp_path, capsys):
    report = write(tmp_path, json.dumps(sample(complete=False)), "results.json")
    rules = write(tmp_path, '[[threshold]]\nrule = "lost == 0"\n')
    assert gate(report, "--rules", rules) == 1
    assert gate(report, "--rules", rules, "--allow-incomplete") == 0
    assert "warning: the report is incomplete" in capsys.readouterr().out


def test_cli_exit_1_for_a_regression_without_baseline(tmp_path, report_file):
    assert gate(report_file, "--rules", write(tmp_path, REGRESSION)) == 1


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: ["--rules", write(tmp, '[[threshold]]\nrule = "lost = 0"\n')],
     r"rules\.toml: threshold\[0\]: 'lost = 0': bad operator"),
    (lambda tmp: ["--baseline", tmp / "nope.json"], r"baseline .*nope\.json: no such file"),
    (lambda tmp: ["--baseline", write(tmp, "{", "broken.json")], r"baseline .*broken\.json: not JSON"),
    (lambda tmp: ["--baseline", write(tmp, "[1]", "list.json")], r"list\.json: not a chatload report"),
    (lambda tmp: ["--baseline", write(tmp, '{"schema": "other/1"}', "other.json")],
     r"other\.json: wrong schema 'other/1'"),
])
def test_cli_exit_2_when_the_gate_cannot_run(tmp_path, report_file, capsys, make, message):
    assert gate(report_file, *make(tmp_path)) == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_exit_2_for_an_unreadable_report(tmp_path, capsys):
    assert gate(tmp_path / "missing.json") == 2
    assert "chatload gate: report" in capsys.readouterr().err
    assert gate() == 2


def test_cli_formats_and_metric_list(tmp_path, report_file, capsys):
    assert gate(report_file, "--format", "junit") == 0
    ET.fromstring(capsys.readouterr().out)
    assert gate(report_file, "--format", "markdown") == 0
    assert "nothing to gate on but completeness" in capsys.readouterr().out
    assert gate("--list-metrics") == 0
    assert "delivery.ratio" in capsys.readouterr().out


def test_rules_that_can_hold_at_zero_are_kept():
    for text in ("lost == 0", "lost <= 0", "delivery.p99 < 1us", "lost > -1", "loss.ratio between -1 and 0"):
        assert parse_rule(text).text == text


def test_a_bad_rules_file_lists_every_error_not_the_first(tmp_path, report_file, capsys):
    path = write(tmp_path, '[[threshold]]\nrule = "lost = 0"\n[[threshold]]\nrule = "lost == 0"\n'
                           '[[threshold]]\nrule = "delivery.p99 < 0ms"\n[[regression]]\nmetric = "delivery.p95"\n'
                           'worse_by_at_most = "10%"\n[[tresholds]]\n')
    with pytest.raises(RulesError) as caught:
        parse_rules(path)
    assert [problem.split(": ", 2)[1] for problem in caught.value.problems] == [
        "unknown key `tresholds`; did you mean `threshold`? (allowed", "threshold[0]", "threshold[2]",
        "regression[0] (delivery.p95).metric"]
    assert gate(report_file, "--rules", path) == 2
    err = capsys.readouterr().err
    assert err.count("chatload gate: ") == 5 and "4 errors in " in err, err


def test_gate_warns_when_the_baseline_ran_another_shape_of_load():
    def run(users: dict[str, int], duration: float) -> dict:
        from harness.report.document import build_report

        populations = [{"kind": kind, "users": n} for kind, n in users.items()]
        return build_report(sample(), checks=[], complete=True, scenario={"name": "x", "as_run": {
            "target": {"service": "ivschat"}, "populations": populations, "duration_s": duration}})

    now, same = run({"viewer": 50, "chatter": 5}, 30.0), run({"viewer": 50, "chatter": 5}, 30.0)
    regression = parse_rules_text("[[regression]]\nmetric = \"delivery.p99\"\nworse_by_at_most = \"10%\"\n")
    assert not [w for w in decide(now, (), regression, same).warnings if "shape" in w]
    bigger = run({"viewer": 500, "chatter": 5}, 60.0)
    (warning,) = [w for w in decide(now, (), regression, bigger).warnings if "shape" in w]
    assert "users 505 in the baseline, 55 here" in warning and "duration (s) 60 in the baseline, 30 here" in warning
    mixed = run({"viewer": 45, "chatter": 10}, 30.0)
    (warning,) = [w for w in decide(now, (), regression, mixed).warnings if "shape" in w]
    assert "users by kind 45 viewer, 10 chatter in the baseline, 50 viewer, 5 chatter here" in warning
    # `chatload compare` says it too, on its page (A is the baseline).
    from harness.report.compare import render_compare_html

    assert 'id="banner-shape"' not in render_compare_html(same, now)
    page = render_compare_html(bigger, now)
    assert 'id="banner-shape"' in page and "users 505 in A, 55 in B" in page


def test_compare_says_on_the_console_when_the_runs_applied_different_loads(tmp_path, capsys):
    from harness.report import cli as report_cli
    from harness.report.document import build_report

    def saved(name: str, users: int) -> Path:
        report = build_report(sample(), checks=[], complete=True, scenario={"name": "x", "as_run": {
            "target": {"service": "ivschat"}, "populations": [{"kind": "viewer", "users": users}], "duration_s": 30.0}})
        return write(tmp_path, json.dumps(report), name)

    a, b = saved("a.json", 505), saved("b.json", 55)
    assert report_cli.run_compare(argparse.Namespace(a=str(a), b=str(b), output=str(tmp_path / "c.html"))) == 0
    assert "warning: the runs applied different loads (users 505 in A, 55 in B)" in capsys.readouterr().err


def parse_rules_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return parse_rules(write(Path(folder), text)).regressions
