"""The HTML report in a real headless Chromium, driven over the Chrome DevTools Protocol: no console
errors or exceptions, no network request, every chart rendered as a plotly SVG. Screenshots are kept
under reports/test-artifacts/ for a human to look at.

Chromium comes from the Debian package `chromium`; when /usr/bin/chromium is missing the test installs
it with apt-get (and skips only where there is no apt-get).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from harness.report.compare import render_compare_html
from harness.report.document import build_report
from harness.report.html import render_html
from tests.test_report import CHECKS, FAULTS, SCENARIO, degraded_results, sample_results

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0"]
WIDTH = 1366  # a laptop

pytestmark = pytest.mark.timeout(900)  # the first test may install Chromium


@pytest.fixture(scope="module")
def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium) and apt-get is unavailable to install the "
                    "Debian package `chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run([apt, "install", "-y", "chromium"], capture_output=True, text=True, env=env)
    if install.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run([apt, "update"], capture_output=True, text=True, env=env)
        install = subprocess.run([apt, "install", "-y", "chromium"], capture_output=True, text=True, env=env)
    if install.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"`apt-get install -y chromium` failed (exit {install.returncode}):\n"
                    f"{(install.stdout + install.stderr)[-3000:]}")
    return CHROMIUM


class PageRun:
    """What one page load showed: console errors, exceptions, requests, the charts' state."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.requests: list[str] = []
        self.charts: list[dict] = []
        self.no_data: int = 0
        self.text: str = ""


class Cdp:
    """A minimal CDP client: commands (optionally in a session) and the events seen so far."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)
            elif "method" in message:
                self.events.append(message)

    async def send(self, method: str, params: dict | None = None, session: str | None = None,
                   timeout: float = 30) -> dict:
        command_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[command_id] = future
        command = {"id": command_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        await self.ws.send(json.dumps(command))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise AssertionError(f"CDP {method}: {reply['error']}")
        return reply.get("result", {})

    async def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event["method"] == method:
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {method} within {timeout} s")


CHART_STATE = """JSON.stringify({
  charts: Array.from(document.querySelectorAll("[data-chart]")).map(function (el) { return {
    id: el.id, chart: el.getAttribute("data-chart"), rendered: el.getAttribute("data-rendered"),
    svg: el.querySelectorAll(".main-svg").length, traces: el.querySelectorAll("g.trace").length}; }),
  noData: document.querySelectorAll(".nodata").length,
  text: document.body.innerText})"""


@contextlib.asynccontextmanager
async def open_page(chromium: Path, *extra_flags: str):
    """A headless Chromium with one blank page attached (Runtime, Log, Page and Network enabled):
    yields (cdp, session). The browser and its process group end when the block does."""
    with tempfile.TemporaryDirectory(prefix="chatload-chromium-") as profile:
        process = subprocess.Popen([str(chromium), *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
                assert process.poll() is None, f"chromium exited with {process.returncode}"
                assert time.monotonic() < deadline, "chromium did not open its DevTools port in 30 s"
                await asyncio.sleep(0.05)
            port, path = port_file.read_text().split()[:2]
            async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, ping_interval=None) as ws:
                cdp = Cdp(ws)
                target = await cdp.send("Target.createTarget", {"url": "about:blank"})
                session = (await cdp.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                                    "flatten": True}))["sessionId"]
                for domain in ("Runtime", "Log", "Page", "Network"):
                    await cdp.send(f"{domain}.enable", session=session)
                try:
                    yield cdp, session
                finally:
                    try:
                        await cdp.send("Browser.close", timeout=5)
                    except (AssertionError, TimeoutError, ConnectionError):
                        pass
                    cdp.reader.cancel()
        finally:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group of the browser this test started
                process.wait(timeout=10)


async def _load(chromium: Path, page: Path, screenshot: Path | None) -> PageRun:
    run = PageRun()
    async with open_page(chromium) as (cdp, session):
        await cdp.send("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": 900,
                                                              "deviceScaleFactor": 1, "mobile": False},
                       session=session)
        cdp.events.clear()
        await cdp.send("Page.navigate", {"url": page.as_uri()}, session=session)
        await cdp.wait_event("Page.loadEventFired", timeout=60)
        state: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = await cdp.send("Runtime.evaluate", {"expression": CHART_STATE, "returnByValue": True},
                                    session=session)
            state = json.loads(result["result"]["value"])
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
        for event in cdp.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
                if params["type"] in ("error", "assert"):
                    run.errors.append(f"console.{params['type']}: {text}")
                elif params["type"] == "warning":
                    run.warnings.append(text)
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                run.errors.append("exception: " + details.get("exception", {}).get(
                    "description", details.get("text", "")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                run.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
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
    assert run.no_data >= 8
    assert "NO CHECKS" in run.text


def test_compare_renders_cleanly_in_chromium(chromium, tmp_path):
    a = build_report(sample_results(), scenario=SCENARIO, checks=CHECKS, complete=True)
    b = build_report(degraded_results(), scenario=SCENARIO,
                     checks=[{**CHECKS[0], "verdict": "fail", "observed": 412.0}], complete=True, faults=FAULTS)
    page = tmp_path / "compare.html"
    page.write_text(render_compare_html(a, b), encoding="utf-8")
    run = load(chromium, page, ARTIFACTS / "compare.png")
    assert_clean(run, {"chart-compare-distribution", "chart-compare-latency-over-time"})
    assert "Δ" in run.text
