"""The Locust web UI with chatload's Chat tab: Locust's own HTTP API, and the tab in headless Chromium
with its live charts drawn while the test runs."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from .browser import browser_page, console_errors, evaluate
from .locust_run import BASIC, ROOT

pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _poll(fn, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def web_ui(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(BASIC), "--web-host", "127.0.0.1",
                             "--web-port", str(port), "--chat-report-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        page = _poll(lambda: requests.get(base + "/", timeout=2).text, "the web UI")
        yield base, page, tmp_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _chat_rows(base: str) -> dict | None:
    stats = requests.get(base + "/stats/requests", timeout=2).json()
    rows = {row["measure"]: row for row in stats["extendedStats"][0]["data"]}
    p50 = rows["delivery latency (intended send → each other member) p50"]
    return rows if isinstance(p50["value"], float) else None


def test_chat_tab_table_says_what_each_cell_is(web_ui):
    base, page, tmp_path = web_ui
    assert '"extendedTabs": [{"key": "chat", "title": "Chat"}]' in page
    # Each cell has one meaning: the columns are Measure, Value and Unit (never two quantities under one).
    assert '{"key": "measure", "title": "Measure"}, {"key": "value", "title": "Value"}, ' \
           '{"key": "unit", "title": "Unit"}' in page
    assert '"host": "ws://127.0.0.1:' in page, "the target shows as the host: no 'no host set' hint"
    swarm = requests.post(base + "/swarm", data={"user_count": 6, "spawn_rate": 6, "host": ""}, timeout=5)
    assert swarm.json()["success"]
    rows = _poll(lambda: _chat_rows(base), "delivery percentiles in the Chat tab")
    p50 = rows["delivery latency (intended send → each other member) p50"]
    top = rows["delivery latency (intended send → each other member) max"]
    assert p50["unit"] == top["unit"] == "ms" and 0 < p50["value"] <= top["value"]
    assert rows["messages sent"]["value"] >= 1 and rows["messages sent"]["unit"] == "messages"
    requests.post(base + "/stop", timeout=30)
    _poll(lambda: list(tmp_path.glob("*/*/results.json")), "results written when the test is stopped")


CHARTS = """JSON.stringify(Array.from(document.querySelectorAll('#chatload-charts [data-chart]')).map(el => ({
  id: el.id, points: Number(el.getAttribute('data-points') || 0), svg: el.querySelectorAll('.main-svg').length,
  traces: el.querySelectorAll('g.trace').length,
  title: (el.querySelector('.gtitle') || {}).textContent || ''})))"""
TEXT = "document.body.innerText"


def test_chat_tab_draws_live_charts_in_chromium(web_ui, chromium):
    base, _page, _ = web_ui
    assert requests.post(base + "/swarm", data={"user_count": 6, "spawn_rate": 6, "host": ""},
                         timeout=5).json()["success"]
    _poll(lambda: _chat_rows(base), "the first deliveries")

    async def look() -> tuple[list, list, str, list, list]:
        async with browser_page(chromium) as (cdp, session):
            await cdp.send("Page.navigate", {"url": base + "/?tab=chat"}, session=session)
            await cdp.wait_event("Page.loadEventFired", timeout=60)
            first: list = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                first = json.loads(await evaluate(cdp, session, CHARTS) or "[]")
                if len(first) == 4 and all(c["svg"] and c["traces"] and c["points"] >= 2 for c in first):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(2.5)  # two more polls: the charts must grow while the test runs
            later = json.loads(await evaluate(cdp, session, CHARTS) or "[]")
            text = await evaluate(cdp, session, TEXT)
            requests_seen = [e["params"]["request"]["url"] for e in cdp.events
                             if e["method"] == "Network.requestWillBeSent"]
            return first, later, text, console_errors(cdp), requests_seen

    first, later, text, errors, seen = asyncio.run(look())
    assert [c["title"] for c in first] == ["Delivery and ack latency (ms)", "Deliveries per second",
                                           "Connections open and held",
                                           "Errors and rejections per second, by category"], first
    assert all(c["svg"] and c["traces"] for c in first), first
    assert all(b["points"] > a["points"] for a, b in zip(first, later, strict=True)), (first, later)
    assert "Measure" in text and "Value" in text and "Unit" in text
    assert not errors, errors
    assert all(url.startswith(base) or url.startswith("data:") for url in seen), "the UI works offline"
