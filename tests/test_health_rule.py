"""One harness-health rule, the same everywhere (issue 24, point 2): the JSON's verdict, the HTML's
colours and words, the console and the docs all follow harness/metrics/saturation.py, and a scenario
that measures its ramp is judged on its ramp."""

from __future__ import annotations

import html
import re
from pathlib import Path

from harness.metrics import saturation
from harness.report.console import health_warning, saturation_line
from harness.report.document import build_report
from harness.report.html import health_section, render_html
from harness.scenario.reader import load_scenario

from .test_report import sample_results

ROOT = Path(__file__).resolve().parents[1]


def timeline(lags_ms: list[int], users: list[int]) -> list[dict]:
    return [{"t": 1000 + i, "users": n, "health": {"loop_lag_max_us": lag * 1000, "hub_stall_max_us": 0,
                                                     "cpu_percent": 40.0}}
            for i, (lag, n) in enumerate(zip(lags_ms, users, strict=True))]


# The README's default run: 58 ms of lag while the ramp's handshakes arrive, quiet afterwards.
RAMP_SPIKE = timeline([5, 58, 12, 9, 8, 10, 7, 30], [50, 150, 200, 200, 200, 200, 200, 200])


def test_the_steady_window_leaves_the_ramp_out_and_a_ramp_window_judges_it():
    steady = saturation.judge(RAMP_SPIKE)
    assert steady["saturated"] is False and steady["judged"]["loop_lag_max_us"] == 10_000
    assert steady["judged_seconds"] == 4 and steady["rule"] == saturation.rule("steady")
    ramp = saturation.judge(RAMP_SPIKE, "ramp")
    assert ramp["saturated"] is True and ramp["reasons"] == ["second 1: loop_lag_max_us reached 58000 (limit 50000)"]
    assert ramp["judged_seconds"] == 7  # the last second (drain) is never judged


def _report(window: str) -> dict:
    results = sample_results()
    results["health"] = {"per_process": {"local": {"loop_lag_max_us": 58_000, "loop_lag_mean_us": 1_000,
                                                   "hub_stall_max_us": 3_000, "cpu_percent": 60.0}},
                         **saturation.judge(RAMP_SPIKE, window)}
    return build_report(results, scenario=None, checks=[], complete=True)


def test_the_html_and_the_console_say_what_the_json_says():
    calm = _report("steady")
    section = html.unescape(str(health_section(calm)))
    # The whole run's 58 ms is shown, never in red beside "within limits": the judged window decides.
    assert "58.0" in section or "58 ms" in section or "58.00" in section, section
    assert "bad strong" not in section and "Within limits" in section and saturation.rule("steady") in section
    assert 'id="banner-saturated"' not in render_html(calm)
    storm = _report("ramp")
    section = html.unescape(str(health_section(storm)))
    assert section.count("bad strong") == 1 and "Saturated: second 1: loop_lag_max_us reached 58000" in section
    assert saturation.rule("ramp") in section and "Within limits" not in section
    assert 'id="banner-saturated"' in render_html(storm)
    line = saturation_line(storm["health"])
    assert "second 1: loop_lag_max_us reached 58000" in line and saturation.rule("ramp") in line


def test_the_docs_state_the_rule_in_the_same_words():
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "report-format.md").read_text(encoding="utf-8"))
    assert saturation.rule("steady") in text and saturation.rule("ramp") in text
    capacity = re.sub(r"\s+", " ", (ROOT / "docs" / "capacity.md").read_text(encoding="utf-8"))
    assert saturation.rule("steady") in capacity


def test_the_join_storm_is_judged_on_its_ramp():
    assert load_scenario(ROOT / "scenarios" / "ivsrealtime-join-storm.toml").measures_ramp is True
    assert load_scenario(ROOT / "scenarios" / "default.toml").measures_ramp is False


def test_a_window_without_seconds_is_not_judged_and_never_said_within_limits():
    moving = timeline([5, 80, 5, 5, 5], [10, 20, 15, 25, 20])  # a replay's gauge: never at its peak twice running
    verdict = saturation.judge(moving)
    assert verdict["judged_seconds"] == 0 and verdict["saturated"] is False
    assert verdict["verdict"] == saturation.NOT_JUDGED and saturation.judge(RAMP_SPIKE)["verdict"] == "within limits"
    results = sample_results()
    results["health"] = {"per_process": {"local": {"loop_lag_max_us": 80_000}}, **verdict}
    section = html.unescape(str(health_section(build_report(results, scenario=None, checks=[], complete=True))))
    assert "Within limits" not in section and "Not judged (0 seconds" in section
    assert saturation.NOT_JUDGED in health_warning(verdict) and health_warning(saturation.judge(RAMP_SPIKE)) is None


def test_the_capacity_steady_window_is_judged_by_the_same_limits():
    from harness.capacity.analysis import _window_health

    assert _window_health(RAMP_SPIKE)["saturated"] is True  # the 58 ms second
    assert _window_health(RAMP_SPIKE[2:])["saturated"] is False
    # A CPU-only timeline (no loop lag recorded) is judged on what it has.
    assert _window_health([{"health": {"cpu_percent": 95.0}}]) == {
        "loop_lag_max_us": None, "hub_stall_max_us": None, "cpu_percent": 95.0, "saturated": True}
