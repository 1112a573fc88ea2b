"""The harness's own health, measured where it happens: hub stalls and the collector's pauses.
(The loop's lag is measured by the loop side's ticker.)"""

from __future__ import annotations

import collections
import gc
import time

import gevent

from ..threads.marks import runs_in_greenlet


class HubStallProbe:
    """A greenlet that sleeps 10 ms and measures how late it wakes: the longest gevent hub stall.
    Gevent hub's thread only: its greenlet writes, the hub side's interval reads."""

    PERIOD_S = 0.01

    def __init__(self) -> None:
        self.max_stall_s = 0.0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            started = time.perf_counter()
            gevent.sleep(self.PERIOD_S)
            self.max_stall_s = max(self.max_stall_s, time.perf_counter() - started - self.PERIOD_S)

    @runs_in_greenlet
    def take_max(self) -> float:
        value, self.max_stall_s = self.max_stall_s, 0.0
        return value

    def stop(self) -> None:
        self._greenlet.kill(block=False)


class GcPauseProbe:
    """Stop-the-world time of CPython's cyclic collector: it pauses the loop thread and the hub alike,
    so a long collection is harness latency, and the report should say so.

    The collector calls back in whichever thread collects, the loop's or the hub's; the hub side
    reads. So the callback only appends each pause to a deque (appends and pops are atomic: the
    boundary's inbox crosses the same way) and `take`, on the hub, drains it: no number is written
    by both threads. `_started` is the collecting thread's alone: collections never overlap."""

    def __init__(self) -> None:
        self._pauses: collections.deque[int] = collections.deque()
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pauses.append(int((time.perf_counter() - self._started) * 1e6))

    @runs_in_greenlet
    def take(self) -> tuple[int, int]:
        """(longest, total) pause in µs since the last take."""
        longest = total = 0
        pauses = self._pauses
        while pauses:
            pause = pauses.popleft()
            longest = max(longest, pause)
            total += pause
        return longest, total

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
