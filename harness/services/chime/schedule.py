"""The ramping sender's open-loop schedule, on its own: pure arithmetic on the wall clock, importable
without Locust (whose import gevent-patches the process)."""

from __future__ import annotations

import math
import time


class RampSchedule:
    """Open-loop send slots at a rate rising linearly from `start` to `end` per second over `over_s`,
    then steady: slot n is where the ramp's cumulative count reaches n (`harness.timing.schedule`'s
    contract: `current_ns` is the slot's intended time, `wait_after_task` the sleep to the next)."""

    def __init__(self, start: float, end: float, over_s: float) -> None:
        if start <= 0 or end <= 0 or over_s < 0:
            raise ValueError("a ramp needs positive rates and a duration of at least 0")
        self.start, self.end, self.over_s = start, end, over_s
        self.start_ns: int | None = None
        self.slot = 0

    def offset_s(self, n: int) -> float:
        """Seconds from the start to slot n."""
        a = (self.end - self.start) / (2 * self.over_s) if self.over_s else 0.0
        ramped = self.start * self.over_s + a * self.over_s ** 2  # slots within the ramp
        if n >= ramped:
            return self.over_s + (n - ramped) / self.end
        if a == 0:
            return n / self.start
        return (-self.start + math.sqrt(self.start ** 2 + 4 * a * n)) / (2 * a)

    def current_ns(self) -> int:
        if self.start_ns is None:
            self.start_ns = time.time_ns()
        return self.start_ns + int(self.offset_s(self.slot) * 1e9)

    def wait_after_task(self) -> float:
        self.current_ns()
        self.slot += 1
        return max(0.0, (self.start_ns + self.offset_s(self.slot) * 1e9 - time.time_ns()) / 1e9)
