"""The baseline receiver: what a typical Python chat client does, nothing more.

One `websockets.asyncio.client.connect` per connection and one task per connection running

    async for message in ws:
        orjson.loads(message)

(websockets' defaults: its reader task and queue, UTF-8 decoding to `str`, keepalive pings; no
proxy lookup, it is loopback). It runs on uvloop like chatload's own loop thread, so the comparison
is about the receive path, not the event loop. With `stamp` it also times each message the way a
careful bare client would: `time.time_ns()` as soon as `recv` hands the message over, minus the
intended send time the sender put in `Attributes["cl.t"]`.

Same stdin/stdout protocol as `chatload_client` (see `rig.ClientChild`): a config line, then
`connect`, `rss`, `window`, `reset`, `drain`, `close` commands, one JSON event line per answer.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time

import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ...net.tls import build_context
from ..child_protocol import apply_config, emit, open_stdin, run_on_uvloop, wait_for_frames, watched_processes
from ..connect_phase import ConnectPhase, LoopStallProbe
from ..counting_connection import abort_with_reset
from ..window_sampler import WindowSampler

LAG_TICK_S = 0.02


class BareReceivers:
    """What every bare baseline shares: connecting N clients with single-use tokens, counting and
    (with `stamp`) timing frames, the window's snapshots, drain, RSS. A subclass opens one
    connection (`open`) and drops one (`abort`); its frames go to `received`/`count_frame`."""

    def __init__(self, config: dict) -> None:
        self.endpoint = config["endpoint"]
        self.tokens = list(config.get("tokens") or [])
        self.concurrency = int(config.get("concurrency", 200))
        self.connect_timeout = float(config.get("connect_timeout", 15.0))
        self.stamp = bool(config.get("stamp"))
        # wss://: one context for every connection, built here (before any connect), trusting the
        # emulator's CA — what a competent bare client does, so the comparison is like for like.
        self.ssl_context = build_context(config.get("ca_file") or "") if self.endpoint.startswith("wss://") else None
        self.connections: list = []
        self.frames = 0
        self.lost = 0
        self.closing = False
        self.latencies_us: list[int] = []
        self.unreadable = 0
        self.failed = 0
        self.errors: list[str] = []
        self.watched = watched_processes(config.get("pids") or {})
        self.sampler = WindowSampler(lambda: self.frames, self.watched)
        self.max_lag_s = 0.0
        self._lag_on = False

    # -- what a subclass provides --------------------------------------------------------------------

    async def open(self, token: str):
        """Open one connection (subprotocol `token`) and start receiving on it; return it."""
        raise NotImplementedError

    def abort(self, connection) -> None:
        raise NotImplementedError

    # -- receiving ----------------------------------------------------------------------------------

    def timed(self, frame: dict, arrival_us: int) -> None:
        """One parsed frame, timed from the intended send time the sender put in `cl.t`."""
        self.frames += 1
        try:
            self.latencies_us.append(arrival_us - int(frame["Attributes"]["cl.t"]))
        except (KeyError, TypeError, ValueError):
            self.unreadable += 1

    def connection_lost(self) -> None:
        if not self.closing:
            self.lost += 1

    # -- connecting ---------------------------------------------------------------------------------

    async def connect_more(self, count: int) -> None:
        phase, probe = ConnectPhase(), LoopStallProbe()
        phase.begin()
        probe.start()
        started = time.monotonic()
        first = len(self.connections) + self.failed  # tokens are single-use: never reuse one
        indexes = iter(range(first, min(first + count, len(self.tokens))))

        async def worker() -> None:
            for i in indexes:
                try:
                    connection = await self.open(self.tokens[i])
                except Exception as exc:  # OSError, TimeoutError, a refused handshake …
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.connections.append(connection)

        async def progress() -> None:
            while True:
                await asyncio.sleep(0.5)
                emit({"event": "progress", "connected": len(self.connections), "failed": self.failed,
                      "of": first + count})

        reporter = asyncio.ensure_future(progress())
        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(self.concurrency, count)))))
        finally:
            reporter.cancel()
        seconds = time.monotonic() - started
        emit({"event": "connected", "connected": len(self.connections), "failed": self.failed,
              "errors": self.errors, "seconds": round(seconds, 3), **phase.figures(probe.stop())})

    # -- measuring ----------------------------------------------------------------------------------

    def schedule_window(self, start: float, end: float) -> None:
        self.sampler.schedule(start, end)
        self.max_lag_s = 0.0
        self._lag_on = True

    @property
    def snapshots(self) -> dict:
        snapshots = self.sampler.snapshots
        if "end" in snapshots:
            snapshots["end"]["max_loop_lag_s"] = self.max_lag_s
        return snapshots

    async def watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            if self._lag_on:
                self.max_lag_s = max(self.max_lag_s, loop.time() - due)
                if not self.sampler.pending:
                    self._lag_on = False

    async def drain(self, expected: int, timeout: float, stall: float, window: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while window and self.sampler.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reason = await wait_for_frames(lambda: self.frames, expected, max(0.0, deadline - time.monotonic()),
                                       stall, asyncio.sleep)
        return {"frames": self.frames, "expected": expected, "drain": reason, "open": len(self.connections) - self.lost,
                "connections_lost": self.lost, "unreadable": self.unreadable}

    def rss(self) -> dict:
        gc.collect()
        info = psutil.Process().memory_full_info()
        return {"rss": info.rss, "uss": info.uss, "connections": len(self.connections) - self.lost}

    def close(self) -> None:
        self.closing = True
        for connection in self.connections:
            self.abort(connection)


class WebsocketsReceivers(BareReceivers):
    """websockets' asyncio client: one `connect` and one `async for` task per connection."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.tasks: list[asyncio.Task] = []

    async def open(self, token: str) -> ClientConnection:
        ws = await connect(self.endpoint, subprotocols=[token], open_timeout=self.connect_timeout, proxy=None,
                           ssl=self.ssl_context)
        self.tasks.append(asyncio.ensure_future(self.receive(ws)))
        return ws

    def abort(self, ws: ClientConnection) -> None:
        abort_with_reset(ws.transport)

    async def receive(self, ws: ClientConnection) -> None:
        try:
            if self.stamp:
                async for message in ws:
                    arrival_us = time.time_ns() // 1000
                    self.timed(orjson.loads(message), arrival_us)
            else:
                async for message in ws:
                    orjson.loads(message)
                    self.frames += 1
        except ConnectionClosed:
            pass
        self.connection_lost()


async def main_async(kind: type[BareReceivers] = WebsocketsReceivers) -> int:
    reader = await open_stdin()
    line = await reader.readline()
    if not line:
        return 2
    receivers = kind(apply_config(line))
    lag_task = asyncio.ensure_future(receivers.watch_lag())
    emit({"event": "ready", "pid": os.getpid(), **receivers.rss()})
    try:
        while line := await reader.readline():
            command = orjson.loads(line)
            cmd = command["cmd"]
            if cmd == "connect":
                await receivers.connect_more(int(command["count"]))
            elif cmd == "rss":
                emit({"event": "rss", **receivers.rss()})
            elif cmd == "window":
                receivers.schedule_window(command["start"], command["end"])
            elif cmd == "reset":
                receivers.latencies_us.clear()
                receivers.unreadable = 0
                emit({"event": "reset", "frames": receivers.frames})
            elif cmd == "drain":
                totals = await receivers.drain(int(command["expected"]), float(command["timeout"]),
                                               float(command.get("stall", 3.0)), bool(command.get("window", True)))
                emit({"event": "result", "window": receivers.snapshots, "totals": totals,
                      "latency_us": receivers.latencies_us if receivers.stamp else None})
            elif cmd == "close":
                break
    finally:
        lag_task.cancel()
        receivers.close()
        await asyncio.sleep(0)  # let the resets go out before the process ends
    return 0


def main() -> int:
    return run_on_uvloop(main_async)


if __name__ == "__main__":
    sys.exit(main())
