"""What a connect ramp costs the process that makes it: CPU and the loop's longest stall.

Both benchmark children (chatload's and the bare picows baseline) wrap their `connect` command in a
`ConnectPhase`: process CPU (user + system, every thread) from just before the first connect to just
after the last one opened, and a probe on the loop that runs the connects, a callback due every
`PERIOD_S` whose lateness is the loop's stall. The loop's longest stall during a ramp is the
figure the issue sets a bound on (≤ 20 ms for 1,000 TLS connects): every receive that falls due
during a stall waits for it, and that wait would be reported as latency.
"""

from __future__ import annotations

import asyncio
import gc
import time

import psutil

PERIOD_S = 0.002


class LoopStallProbe:
    """Every PERIOD_S on one loop: how late the callback ran. Started and stopped on that loop."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.max_s, self._due = 0.0, loop.time() + PERIOD_S
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.max_s = max(self.max_s, now - self._due)
        self._due = now + PERIOD_S
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> float:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        return self.max_s


class ConnectPhase:
    """CPU, loop stall and collector pauses of one ramp: `begin()` before it, `figures()` after (in
    the event it emits). A collector pause stops every thread, so it shows whether a stall was the
    loop's own work or the garbage collector's."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self._cpu = 0.0
        self._gc_started = 0.0
        self.gc_pause_max_s = 0.0
        self.gc_pause_generation = None

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_started
            if pause > self.gc_pause_max_s:
                self.gc_pause_max_s, self.gc_pause_generation = pause, info["generation"]

    def _cpu_now(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def begin(self) -> None:
        self._cpu = self._cpu_now()
        gc.callbacks.append(self._on_gc)

    def figures(self, loop_stall_max_s: float) -> dict:
        cpu = self._cpu_now() - self._cpu
        gc.callbacks.remove(self._on_gc)
        return {"cpu_s": round(cpu, 6), "loop_stall_max_s": round(loop_stall_max_s, 6),
                "gc_pause_max_s": round(self.gc_pause_max_s, 6), "gc_pause_generation": self.gc_pause_generation}
