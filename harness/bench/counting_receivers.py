"""The receiving side of a fan-out benchmark, run as its own process so it never shares a core's
time slice with the parent's sender or with the server under test's bookkeeping.

Protocol with the parent (one JSON document per line):

    parent → stdin   {"endpoint", "count", "tokens": [...] | null, "concurrency", "connect_timeout",
                      "pids": {"server": pid, "sender": pid}, "cpus": [cpu, …] | null}
    stdout → parent  {"event": "progress", "connected", "of"}            (while connecting)
                     {"event": "connected", "connected", "failed", "errors", "seconds"}
    parent → stdin   {"cmd": "window", "start": wall_s, "end": wall_s}    (snapshots at those instants)
    parent → stdin   {"cmd": "drain", "expected": frames, "timeout": s, "stall": s}
    stdout → parent  {"event": "result", "window": {...}, "totals": {...}}
    parent → stdin   {"cmd": "close"} or EOF: reset every connection and exit

A window snapshot reads the frame counter and, at the same instant, the CPU times of the server,
this process and the sender (and how long each waited for a CPU), so deliveries and CPU cover the
same interval even when this loop runs late. The loop's own lag is sampled too: a late loop means
the receivers, not the server, were the bottleneck. Each receiver is a `CountingListener` on
chatload's own transport (see `counting_connection`).
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from .child_protocol import apply_config, emit, open_stdin, run_on_uvloop, wait_for_frames, watched_processes
from .counting_connection import CountingListener, Tally, open_counting
from .window_sampler import take_snapshot

LAG_TICK_S = 0.02


class Receivers:
    def __init__(self, config: dict) -> None:
        self.endpoint = config["endpoint"]
        self.count = int(config["count"])
        self.tokens = config.get("tokens")
        self.concurrency = int(config.get("concurrency", 200))
        self.connect_timeout = float(config.get("connect_timeout", 15.0))
        self.tally = Tally()
        self.clients: list[CountingListener] = []
        self.errors: list[str] = []
        self.failed = 0
        self.watched = watched_processes(config.get("pids") or {})
        self.snapshots: dict[str, dict] = {}
        self.max_lag_s = 0.0
        self._lag_on = False

    # -- connecting ---------------------------------------------------------------------------------

    async def open_all(self) -> None:
        started = time.monotonic()
        indexes = iter(range(self.count))

        async def worker() -> None:
            for i in indexes:
                token = self.tokens[i] if self.tokens else None
                try:
                    client = await open_counting(self.endpoint, self.tally, token=token,
                                                 timeout=self.connect_timeout)
                except (TimeoutError, OSError) as exc:  # a refused handshake is a ConnectionError
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.clients.append(client)

        async def progress() -> None:
            while True:
                await asyncio.sleep(0.5)
                emit({"event": "progress", "connected": len(self.clients), "failed": self.failed, "of": self.count})

        reporter = asyncio.ensure_future(progress())
        try:
            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, self.count) or 1)))
        finally:
            reporter.cancel()
        emit({"event": "connected", "connected": len(self.clients), "failed": self.failed,
              "errors": self.errors, "seconds": round(time.monotonic() - started, 3)})

    # -- measuring ----------------------------------------------------------------------------------

    def snapshot(self, name: str) -> None:
        self.snapshots[name] = take_snapshot(self.tally.frames, self.watched, bytes=self.tally.bytes)
        if name == "start":
            self._lag_on = True
            self.max_lag_s = 0.0
        elif name == "end":
            self._lag_on = False

    def schedule_window(self, start: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, start - time.time()), self.snapshot, "start")
        loop.call_later(max(0.0, end - time.time()), self.snapshot, "end")

    async def watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            if self._lag_on:
                self.max_lag_s = max(self.max_lag_s, loop.time() - due)

    async def drain(self, expected: int, timeout: float, stall: float) -> dict:
        """Wait until `expected` frames arrived, nothing arrived for `stall` s, or `timeout` passed."""
        started = time.monotonic()
        reason = await wait_for_frames(lambda: self.tally.frames, expected, timeout, stall, asyncio.sleep)
        per_client = [c.frames for c in self.clients]
        return {
            "frames": self.tally.frames,
            "bytes": self.tally.bytes,
            "expected": expected,
            "drain": reason,
            "drain_seconds": round(time.monotonic() - started, 3),
            "per_receiver_min": min(per_client, default=0),
            "per_receiver_max": max(per_client, default=0),
            "connections_lost": self.tally.lost,
            "closed_by_server": self.tally.closed_by_server,
            "open": sum(1 for c in self.clients if c.is_open),
        }

    def close(self) -> None:
        for client in self.clients:
            client.abort()


async def main_async() -> int:
    reader = await open_stdin()
    line = await reader.readline()
    if not line:
        return 2
    receivers = Receivers(apply_config(line))
    lag_task = asyncio.ensure_future(receivers.watch_lag())
    try:
        await receivers.open_all()
        while line := await reader.readline():
            command = orjson.loads(line)
            if command["cmd"] == "window":
                receivers.schedule_window(command["start"], command["end"])
            elif command["cmd"] == "drain":
                totals = await receivers.drain(int(command["expected"]), float(command["timeout"]),
                                               float(command.get("stall", 3.0)))
                emit({"event": "result", "window": receivers.snapshots, "max_loop_lag_s": receivers.max_lag_s,
                      "totals": totals})
            elif command["cmd"] == "close":
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
