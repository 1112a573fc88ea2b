"""Rate limits and the data-message replay buffer. The clock is always passed in, so tests need no sleeping.

Chime publishes its limits as "rate, burst" pairs: the control-plane API (10/s, burst 20) and data
messages per attendee (soft 100/s, burst 200; hard 500/s, burst 10000). Both are read as token
buckets that hold `burst` tokens and refill at `rate` per second (emulator choice: the algorithm
is unpublished; a token bucket is what "rate with burst" usually names): `Rate` and `TokenBucket`
are the ones every emulator shares (`harness.emulation.throttle`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ....emulation.throttle import Rate

API_RATE = Rate(10, 20)  # per control-plane operation
DATA_SOFT = Rate(100, 200)  # per attendee: beyond it, messages come back throttled
DATA_HARD = Rate(500, 10_000)  # per attendee: beyond it, the connection is closed


@dataclass(frozen=True, slots=True)
class Retained:
    """An accepted message with a lifetime, kept for attendees who join later."""

    ingest_ns: int
    expires_ns: int
    sender_attendee_id: str
    frame: bytes  # the encoded DATA_MESSAGE frame, as first fanned out


class ReplayBuffer:
    """A meeting's messages with a lifetime: at most `capacity`, each for min(lifetime, max_age).

    Spec: "up to 1024 messages for at most 5 min". The oldest message goes first when full.
    """

    def __init__(self, capacity: int = 1024, max_age_s: float = 300.0) -> None:
        self.capacity = capacity
        self.max_age_ns = int(max_age_s * 1e9)
        self.items: deque[Retained] = deque(maxlen=capacity)

    def keep(self, ingest_ns: int, lifetime_ms: int, sender_attendee_id: str, frame: bytes) -> None:
        if lifetime_ms <= 0 or self.capacity <= 0 or self.max_age_ns <= 0:
            return
        expires_ns = ingest_ns + min(lifetime_ms * 1_000_000, self.max_age_ns)
        self.items.append(Retained(ingest_ns, expires_ns, sender_attendee_id, frame))

    def live(self, now_ns: int, *, after_ns: int = 0, until_ns: int | None = None,
             excluding: str | None = None) -> list[Retained]:
        """Unexpired messages ingested in (after_ns, until_ns], not sent by `excluding`, oldest first."""
        while self.items and self.items[0].expires_ns <= now_ns:  # lifetimes differ: later ones are filtered
            self.items.popleft()
        return [r for r in self.items
                if r.expires_ns > now_ns and r.ingest_ns > after_ns
                and (until_ns is None or r.ingest_ns <= until_ns) and r.sender_attendee_id != excluding]

    def __len__(self) -> int:
        return len(self.items)
