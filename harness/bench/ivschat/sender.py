"""What the benchmarks' senders share: numbered RequestIds, and reading the replies back.

A sender is open-loop: each message has an intended send time fixed in advance, whatever the server
does, so a slow server shows up as latency instead of slowing the load down. Every reply (the echo
of our own message, or an ERROR) is matched to the message by the sequence number in its RequestId.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson

from ..common import Progress
from ..counting_connection import CountingListener

RID_PREFIX = "00000000-0000-4000-8000-"


def request_id(seq: int) -> str:
    """A uuid4-shaped RequestId whose last group carries the sequence number."""
    return f"{RID_PREFIX}{seq:012x}"


def seq_of(rid: str) -> int | None:
    try:
        return int(rid[-12:], 16) if rid.startswith(RID_PREFIX) else None
    except ValueError:
        return None


class OpenLoopSender:
    """The bookkeeping of an open-loop sender; subclasses decide when and what to send (`run`)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.interval = 1.0 / rate
        self.intended: list[float] = []
        self.lateness: list[float] = []
        self.echo_latency: dict[int, float] = {}
        self.duplicates = 0
        self.rejected: Counter[int] = Counter()
        self.other_frames = 0
        self.echo_frame_bytes = 0
        self.echo_times: list[float] = []  # arrival of each reply: the server's progress through the stream
        self.client: CountingListener | None = None

    @property
    def replies(self) -> int:
        return len(self.echo_latency) + sum(self.rejected.values())

    def on_frame(self, payload: bytes) -> None:
        now = time.time()
        try:
            frame = orjson.loads(payload)
            seq = seq_of(frame.get("RequestId") or "")
        except (orjson.JSONDecodeError, AttributeError):
            self.other_frames += 1
            return
        self.echo_times.append(now)
        if frame.get("Type") == "ERROR":
            self.rejected[int(frame.get("ErrorCode") or 0)] += 1
        elif seq is None or seq >= len(self.intended):
            self.other_frames += 1
        elif seq in self.echo_latency:
            self.duplicates += 1
        else:  # the emulator's MESSAGE, or the bare server's verbatim copy of our SEND_MESSAGE
            self.echo_latency[seq] = now - self.intended[seq]
            if not self.echo_frame_bytes:
                self.echo_frame_bytes = len(payload) + (2 if len(payload) < 126 else 4)

    def send(self, intended: float, payload: str) -> float:
        """Send one message meant for `intended`; returns when it went out."""
        self.intended.append(intended)
        self.client.send_text(payload)
        now = time.time()
        self.lateness.append(now - intended)
        return now

    def show_sending(self, progress: Progress, label: str, start: float, stop: float, now: float) -> None:
        progress.update(f"{label}: sending {now - start:4.1f}/{stop - start:.1f} s, "
                        f"{self.replies}/{len(self.intended)} echoed")

    async def wait_for_replies(self, timeout: float, progress: Progress, label: str) -> bool:
        deadline = time.monotonic() + timeout
        while self.replies < len(self.intended):
            if time.monotonic() >= deadline:
                return False
            progress.update(f"{label}: server catching up, {self.replies}/{len(self.intended)} messages echoed")
            await asyncio.sleep(0.05)
        return True
