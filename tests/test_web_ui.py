"""The Locust web UI with chatload's Chat tab, driven through Locust's own HTTP API."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import requests

from .locust_run import BASIC, ROOT


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


def test_chat_tab_shows_live_delivery_percentiles(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(BASIC), "--web-host", "127.0.0.1",
                             "--web-port", str(port), "--chat-report-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        page = _poll(lambda: requests.get(base + "/", timeout=2).text, "the web UI")
        assert '"extendedTabs": [{"key": "chat", "title": "Chat"}]' in page
        swarm = requests.post(base + "/swarm", data={"user_count": 6, "spawn_rate": 6, "host": ""}, timeout=5)
        assert swarm.json()["success"]

        def chat_rows():
            stats = requests.get(base + "/stats/requests", timeout=2).json()
            rows = {row["metric"]: row for row in stats["extendedStats"][0]["data"]}
            return rows if isinstance(rows["latency p50 (ms)"]["delivery"], float) else None

        rows = _poll(chat_rows, "delivery percentiles in the Chat tab")
        assert 0 < rows["latency p50 (ms)"]["delivery"] <= rows["latency max (ms)"]["delivery"]
        assert rows["sent / accepted"]["delivery"] >= 1
        requests.post(base + "/stop", timeout=30)
        _poll(lambda: list(tmp_path.glob("*/*/results.json")), "results written when the test is stopped")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
