"""Clock offset of a Locust worker against its master.

Latency is arrival time minus intended send time, often stamped in two different processes. On one
machine they share the wall clock: the offset is exactly 0 (detected by the kernel's boot id, not
guessed from a ping). Across machines the worker pings the master over Locust's own message
channel and keeps the sample with the smallest round trip (the least queueing):
offset = master_time − (sent + received) / 2, uncertain by ± round_trip / 2, which the results state.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gevent.event

PINGS = 9
REPLY_TIMEOUT_S = 5.0


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""  # not Linux: never claim a shared clock


@dataclass(frozen=True)
class ClockOffset:
    offset_ns: int
    uncertainty_ns: int
    method: str  # "local", "same-machine", "min-rtt-ping", "unmeasured"

    def to_dict(self) -> dict:
        return asdict(self)


LOCAL = ClockOffset(0, 0, "local")


def estimate(samples: list[tuple[int, int, int]]) -> ClockOffset:
    """From (sent_ns, master_ns, received_ns) samples: the minimum-round-trip estimate."""
    if not samples:
        return ClockOffset(0, 0, "unmeasured")
    sent, master, received = min(samples, key=lambda s: s[2] - s[0])
    return ClockOffset(master - (sent + received) // 2, (received - sent + 1) // 2, "min-rtt-ping")


def register_master(runner) -> None:
    def on_ping(environment, msg, **_kw) -> None:
        runner.send_message("chat_clock_reply", {"sent": msg.data["sent"], "master": time.time_ns(),
                                                 "boot_id": boot_id()}, client_id=msg.node_id)

    runner.register_message("chat_clock", on_ping)


class WorkerClock:
    """Measures once, on first use (the master must be connected by then: a user is spawning)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self._reply: gevent.event.AsyncResult | None = None
        runner.register_message("chat_clock_reply", self._on_reply)

    def _on_reply(self, environment, msg, **_kw) -> None:
        if self._reply is not None:
            self._reply.set((msg.data, time.time_ns()))

    def measure(self, force_ping: bool = False) -> ClockOffset:
        """The offset, by the boot-id shortcut on the master's machine (exact), else by pings;
        `force_ping` always pings (how a cross-machine run is proved on one machine)."""
        samples = []
        for _ in range(PINGS):
            self._reply = gevent.event.AsyncResult()
            self.runner.send_message("chat_clock", {"sent": time.time_ns()})
            try:
                data, received = self._reply.get(timeout=REPLY_TIMEOUT_S)
            except gevent.Timeout:
                break
            if not force_ping and data["boot_id"] and data["boot_id"] == boot_id():
                return ClockOffset(0, 0, "same-machine")
            samples.append((data["sent"], data["master"], received))
        return estimate(samples)
