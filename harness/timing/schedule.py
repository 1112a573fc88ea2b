"""Send schedules, kept apart from Locust so they can be used (and tested) without gevent's patching."""

from __future__ import annotations

import time


class OpenLoopSchedule:
    """Fixed-rate send slots for one user: slot k is at start + k / rate, whatever happened before.

    A late greenlet sends at once but the message keeps its slot's *intended* time, so latency is
    measured from when it should have been sent (no coordinated omission) and no slot is skipped.
    """

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("open_loop rate must be positive")
        self.interval_ns = int(1e9 / per_second)
        self.start_ns: int | None = None
        self.slot = 0

    def current_ns(self) -> int:
        if self.start_ns is None:
            self.start_ns = time.time_ns()
        return self.start_ns + self.slot * self.interval_ns

    def wait_after_task(self) -> float:
        self.current_ns()
        self.slot += 1
        return max(0.0, (self.start_ns + self.slot * self.interval_ns - time.time_ns()) / 1e9)
