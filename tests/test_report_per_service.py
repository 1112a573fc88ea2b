"""Each service's report leads with what its run measured, and leaves out what it has nothing to say
about (issue 24, point 4), checked in headless Chromium: an IVS Real-Time join storm (no messages at
all) and a Hotsock presence run (messages and presence)."""

from __future__ import annotations

import random

from harness.metrics.histograms import LatencyHistogram
from harness.report.document import build_report
from harness.report.html import render_html
from tests.browser import chromium  # noqa: F401  (the fixture)
from tests.test_report import sample_results
from tests.test_report_browser import ARTIFACTS, assert_clean, load

SECTIONS = """JSON.stringify(Array.from(document.querySelectorAll("main > section")).map(s => s.id))"""


def _latency(results: dict, name: str, values: list[int]) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    results["latency_us"][name] = histogram.summary()
    results["histograms"][name] = histogram.encode()


def join_storm() -> dict:
    """What an IVS Real-Time join storm's results hold: joins, pings, roster propagation; no message."""
    rng = random.Random(7)
    results = sample_results()
    for name in ("delivery", "ack", "send_lag"):
        results["latency_us"].pop(name, None)
        results["histograms"].pop(name, None)
    results["counters"] = {"connects": 30, "token_fetches": 30, "users_spawned.Participant0": 30,
                           "users_connected.Participant0": 30}
    results["accounting"] = None
    for i, row in enumerate(results["timeline"]):
        row.pop("delivery", None), row.pop("ack", None)
        row["counters"] = {}
        if i < 4:  # joins while the ramp lasts, per second
            row["join"] = {"count": 8, "p50_us": 9_000 + 1_000 * i, "p99_us": 30_000 + 2_000 * i, "max_us": 41_000}
    _latency(results, "join", [rng.randint(2_000, 40_000) for _ in range(30)])
    _latency(results, "ping", [rng.randint(200, 4_000) for _ in range(300)])
    _latency(results, "roster", [rng.randint(1_000, 90_000) for _ in range(435)])
    results["propagation"] = {"roster": {"expected": 435, "observed": 435, "missed": 0, "unconfirmed": 0,
                                         "extra": 0, "duplicates": 0, "unmatched": 0}}
    return build_report(results, checks=[], complete=True, scenario={
        "name": "ivsrealtime-join-storm", "as_run": {"target": {"service": "ivsrealtime"},
                                                      "populations": [{"kind": "participant", "users": 30}]}})


def test_a_join_storm_report_leads_with_joins_and_rosters_and_shows_no_message_sections(chromium, tmp_path):  # noqa: F811
    page = tmp_path / "report.html"
    page.write_text(render_html(join_storm()), encoding="utf-8")
    run = load(chromium, page, ARTIFACTS / "report-join-storm.png")
    assert_clean(run, {"chart-service-distribution", "chart-service-over-time", "chart-connections"})
    assert run.no_data == 1 and "No checks: this run was not judged" in run.text, "no section is shown empty"
    text = run.text
    assert text.index("Amazon IVS Real-Time: what it measured") < text.index("Key numbers")
    assert "roster" in text and "Propagation accounting" in text and "join" in text
    for absent in ("messages sent", "Throughput", "Rate limits", "Accounting", "No per-room rate data", "no data",
                   "\nreconnect\t0"):
        assert absent not in text, absent


def test_a_hotsock_presence_report_leads_with_presence_and_keeps_its_message_sections(chromium, tmp_path):  # noqa: F811
    rng = random.Random(11)
    results = sample_results()
    _latency(results, "subscribe", [rng.randint(300, 9_000) for _ in range(40)])
    _latency(results, "presence_join", [rng.randint(500, 30_000) for _ in range(800)])
    _latency(results, "presence_leave", [rng.randint(400, 25_000) for _ in range(700)])
    results["propagation"] = {
        "presence_join": {"expected": 802, "observed": 800, "missed": 2, "unconfirmed": 0, "extra": 3,
                          "duplicates": 0, "unmatched": 0},
        "presence_leave": {"expected": 700, "observed": 700, "missed": 0, "unconfirmed": 0, "extra": 0,
                           "duplicates": 0, "unmatched": 0}}
    report = build_report(results, checks=[], complete=True, scenario={
        "name": "hotsock-presence", "as_run": {"target": {"service": "hotsock"},
                                                "populations": [{"kind": "member", "users": 30}]}})
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    run = load(chromium, page, ARTIFACTS / "report-hotsock-presence.png")
    assert_clean(run, {"chart-service-distribution", "chart-latency-distribution", "chart-latency-over-time",
                       "chart-throughput", "chart-connections"})
    text = run.text
    assert text.index("Hotsock: what it measured") < text.index("Key numbers") < text.index("Throughput")
    assert "presence_join" in text and "presence_leave" in text and "subscribe" in text
    assert "messages sent" in text.lower() and "Accounting" in text


def test_the_live_progress_of_a_run_without_messages_shows_no_deliveries(tmp_path):
    from argparse import Namespace
    from pathlib import Path

    from harness.run.runner import Run
    from harness.scenario.reader import load_scenario

    scenarios = Path(__file__).resolve().parents[1] / "scenarios"
    record = {"elapsed_s": 3.0, "users": 30, "connections": 30, "deliveries_per_s": 0, "delivery_p99_ms": 0.0,
              "errors": 0, "rejected": 0, "measures": {"join": {"count": 30, "p99_ms": 41.5}}}

    def line(name: str) -> str:
        run = Run(load_scenario(scenarios / f"{name}.toml"), Namespace(report_dir=str(tmp_path), quiet=True))
        return run._progress_text(record)

    assert "deliveries/s" not in line("ivsrealtime-join-storm") and "connections     30" in line(
        "ivsrealtime-join-storm")
    assert line("ivsrealtime-join-storm").endswith("join p99 41.50 ms")  # its own measure instead
    assert "deliveries/s" in line("default")
