"""Headless Chromium for tests (Debian's `chromium`, installed with apt-get when missing), driven
over the Chrome DevTools Protocol: the report pages and the Locust web UI's Chat tab use it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from .debian import debian_program

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0"]


@pytest.fixture(scope="module")
def chromium() -> Path:
    return debian_program(CHROMIUM, "chromium")


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




@contextlib.asynccontextmanager
async def browser_page(chromium: Path, *extra_flags: str, width: int = 1366, height: int = 900):
    """A fresh Chromium with one page: yields (cdp, session) with Runtime, Log, Page and Network on.
    The browser and its process group end when the block does."""
    with tempfile.TemporaryDirectory(prefix="chatload-chromium-") as profile:
        process = subprocess.Popen([str(chromium), *FLAGS, *extra_flags, f"--user-data-dir={profile}",
                                    "about:blank"],
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
                await cdp.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                      "deviceScaleFactor": 1, "mobile": False},
                               session=session)
                cdp.events.clear()
                try:
                    yield cdp, session
                finally:
                    with contextlib.suppress(AssertionError, TimeoutError, ConnectionError):
                        await cdp.send("Browser.close", timeout=5)
                    cdp.reader.cancel()
        finally:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group of the browser this test started
                process.wait(timeout=10)


async def evaluate(cdp: Cdp, session: str, expression: str):
    """The value of a JavaScript expression in the page (JSON-serialisable results)."""
    result = await cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
    return result["result"].get("value")


def console_errors(cdp: Cdp) -> list[str]:
    """Console errors, exceptions and error log entries seen so far."""
    errors = []
    for event in cdp.events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
    return errors
