"""The HTML report in a real headless Chromium, driven over the Chrome DevTools Protocol: no console
errors or exceptions, no network request, every chart rendered as a plotly SVG. Screenshots are kept
under reports/test-artifacts/ for a human to look at.

Chromium comes from the Debian package `chromium`; when /usr/bin/chromium is missing the test installs
it with apt-get (and skips only where there is no apt-get).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest

from harness.report.compare import render_compare_html
from harness.report.document import build_report
from harness.report.run_page import render_html
from tests.browser import browser_page, console_errors, evaluate
from tests.test_report import CHECKS, FAULTS, SCENARIO, degraded_results, sample_results

ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "test-artifacts"
WIDTH = 1366  # a laptop

pytestmark = pytest.mark.timeout(900)  # the first test may install Chromium


class PageRun:
    """What one page load showed: console errors, exceptions, requests, the charts' state."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.requests: list[str] = []
        self.charts: list[dict] = []
        self.no_data: int = 0
        self.text: str = ""


CHART_STATE = """JSON.stringify({
  charts: Array.from(document.querySelectorAll("[data-chart]")).map(function (el) { return {
    id: el.id, chart: el.getAttribute("data-chart"), rendered: el.getAttribute("data-rendered"),
    svg: el.querySelectorAll(".main-svg").length, traces: el.querySelectorAll("g.trace").length}; }),
  noData: document.querySelectorAll(".nodata").length,
  text: document.body.innerText})"""


async def _load(chromium: Path, page: Path, screenshot: Path | None) -> PageRun:
    run = PageRun()
    async with browser_page(chromium, width=WIDTH) as (cdp, session):
        await cdp.send("Page.navigate", {"url": page.as_uri()}, session=session)
        await cdp.wait_event("Page.loadEventFired", timeout=60)
        state: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = json.loads(await evaluate(cdp, session, CHART_STATE))
            if all(chart["rendered"] for chart in state["charts"]):
                break
            await asyncio.sleep(0.1)
        run.charts, run.no_data, run.text = state["charts"], state["noData"], state["text"]
        if screenshot is not None:
            metrics = await cdp.send("Page.getLayoutMetrics", session=session)
            height = int(metrics["cssContentSize"]["height"])
            await cdp.send("Emulation.setDeviceMetricsOverride", {
                "width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            await asyncio.sleep(0.8)  # plotly relayouts on resize
            shot = await cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                  session=session, timeout=60)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        await asyncio.sleep(0.2)  # late console events
        run.errors = console_errors(cdp)
        for event in cdp.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] == "warning":
                run.warnings.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file:", "data:", "about:", "blob:")):
                    run.requests.append(url)
    return run


def load(chromium: Path, page: Path, screenshot: Path | None = None) -> PageRun:
    return asyncio.run(_load(chromium, page, screenshot))


def assert_clean(run: PageRun, expected_charts: set[str]) -> None:
    assert not run.errors, "console errors:\n" + "\n".join(run.errors)
    assert not run.requests, f"the page went to the network: {run.requests}"
    assert {chart["id"] for chart in run.charts} == expected_charts
    for chart in run.charts:
        assert chart["rendered"] == "true", chart
        assert chart["svg"] >= 1, f"{chart['id']} has no plotly SVG: {chart}"
        assert chart["traces"] >= 1, f"{chart['id']} drew no trace: {chart}"


def test_report_renders_cleanly_in_chromium(chromium, tmp_path):
    report = build_report(sample_results(), scenario=SCENARIO, checks=CHECKS, complete=True, faults=FAULTS)
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    run = load(chromium, page, ARTIFACTS / "report.png")
    assert_clean(run, {"chart-latency-distribution", "chart-latency-over-time", "chart-throughput",
                       "chart-connections"})
    assert "PASS" in run.text and "COMPLETE" in run.text
    assert "WARNING" not in run.text
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000


def test_degraded_report_shows_every_section_and_warning(chromium, tmp_path):
    report = build_report(degraded_results(), scenario={**SCENARIO, "name": "burst <b>bold</b>"},
                          checks=[*CHECKS, {**CHECKS[0], "name": "no loss", "verdict": "fail", "observed": 12}],
                          complete=False, incomplete_reason="interrupted (Ctrl-C)", faults=FAULTS)
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    run = load(chromium, page, ARTIFACTS / "report-degraded.png")
    assert_clean(run, {"chart-latency-distribution", "chart-latency-over-time", "chart-throughput",
                       "chart-connections", "chart-errors"})
    assert "the harness itself saturated — latency figures include harness queueing" in run.text
    assert "INCOMPLETE" in run.text and "FAIL" in run.text
    assert "burst <b>bold</b>" in run.text  # shown as text, not markup
    assert "<script>alert(1)</script>" in run.text


def test_empty_results_render_no_data_without_errors(chromium, tmp_path):
    results = sample_results()
    results.update(histograms={}, latency_us={}, timeline=[], counters={}, accounting=None,
                   health={"per_process": {}, "saturated": False, "reasons": []}, merge_check={})
    report = build_report(results, scenario=None, checks=[], complete=True)
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    run = load(chromium, page)
    assert_clean(run, set())
    # Only the checks and the harness health say there were none: sections with nothing to say are
    # left out, not shown empty (issue 24, point 4).
    assert run.no_data == 2
    assert "NO CHECKS" in run.text and "Throughput" not in run.text


def test_compare_renders_cleanly_in_chromium(chromium, tmp_path):
    a = build_report(sample_results(), scenario=SCENARIO, checks=CHECKS, complete=True)
    b = build_report(degraded_results(), scenario=SCENARIO,
                     checks=[{**CHECKS[0], "verdict": "fail", "observed": 412.0}], complete=True, faults=FAULTS)
    page = tmp_path / "compare.html"
    page.write_text(render_compare_html(a, b), encoding="utf-8")
    run = load(chromium, page, ARTIFACTS / "compare.png")
    assert_clean(run, {"chart-compare-distribution", "chart-compare-latency-over-time"})
    assert "Δ" in run.text
