"""What every emulator's fan-out shares: one ordered delivery line per room, with injected faults.

A room's frames go out through its `DeliveryLine`: at once when no fault is set, otherwise after an
injected delay (plus jitter) in order — jitter never reorders a room's frames — or not at all while
the room is paused ("drop": accepted but never delivered; "hold": kept, and sent in order on
resume). `fanout(frame)` is the service's own write to every member; `after()` runs once a frame
has gone out (IVS Chat closes kicked members only after their DISCONNECT_USER event).

And `select_members`, the selection every fault route uses: by room, users, connection ids, then
a seeded random fraction.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol


class Selectable(Protocol):
    id: int  # connection id
    room_id: str
    user_id: str


def select_members(members: Iterable[Selectable], *, room_id: str | None = None,
                   user_ids: Iterable[str] | None = None, connection_ids: Iterable[int] | None = None,
                   fraction: float | None = None, seed: int | None = None) -> list:
    """Members matching every filter given; `fraction` then samples that many (rounded)."""
    chosen = [m for m in members if room_id is None or m.room_id == room_id]
    if user_ids is not None:
        wanted = set(user_ids)
        chosen = [m for m in chosen if m.user_id in wanted]
    if connection_ids is not None:
        wanted_ids = set(connection_ids)
        chosen = [m for m in chosen if m.id in wanted_ids]
    if fraction is not None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        chosen = random.Random(seed).sample(chosen, round(len(chosen) * fraction))
    return chosen


class DeliveryLine:
    """One room's ordered delivery, with delay, jitter and pauses. Loop thread only."""

    def __init__(self, fanout: Callable[[bytes], None]) -> None:
        self.fanout = fanout
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.paused: str | None = None  # None, "drop" or "hold"
        self.dropped_paused = 0  # frames dropped while paused with mode "drop"
        self.held: list[tuple[bytes, Callable[[], None] | None]] = []
        self.pending: deque[tuple[float, bytes, Callable[[], None] | None]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def deliver(self, frame: bytes, after: Callable[[], None] | None = None) -> None:
        """Fan a frame out now, or through the line's queue when a fault is set."""
        if self.paused == "drop":
            self.dropped_paused += 1
        elif self.paused == "hold":
            self.held.append((frame, after))
            return
        elif self.delay_s or self.jitter_s or self.pending:
            loop = asyncio.get_running_loop()
            due = loop.time() + self.delay_s + random.uniform(0.0, self.jitter_s)
            if self.pending:
                due = max(due, self.pending[-1][0])  # jitter never reorders a room's frames
            self.pending.append((due, frame, after))
            if self.timer is None:
                self.timer = loop.call_at(due, self._flush_due)
            return
        else:
            self.fanout(frame)
        if after is not None:
            after()

    def _flush_due(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.pending and self.pending[0][0] <= now:
            _, frame, after = self.pending.popleft()
            self.fanout(frame)
            if after is not None:
                after()
        if self.pending:
            self.timer = loop.call_at(self.pending[0][0], self._flush_due)

    def set_delay(self, delay_s: float, jitter_s: float = 0.0) -> None:
        if delay_s < 0 or jitter_s < 0:
            raise ValueError("delay and jitter must not be negative")
        self.delay_s, self.jitter_s = delay_s, jitter_s

    def pause(self, mode: str = "drop") -> None:
        if mode not in ("drop", "hold"):
            raise ValueError("mode must be 'drop' or 'hold'")
        self.paused = mode

    def resume(self) -> int:
        """Deliver again; held frames go out in order. Returns how many were held."""
        self.paused = None
        held, self.held = self.held, []
        for frame, after in held:
            self.deliver(frame, after)
        return len(held)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
