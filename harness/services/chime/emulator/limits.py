"""Rate limits and the data-message replay buffer. The clock is always passed in, so tests need no sleeping.

Chime publishes its limits as "rate, burst" pairs: the control-plane API (10/s, burst 20) and data
messages per attendee (soft 100/s, burst 200; hard 500/s, burst 10000). Both are read as token
buckets that hold `burst` tokens and refill at `rate` per second (emulator choice: the algorithm
is unpublished; a token bucket is what "rate with burst" usually names).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, not {self.per_second}/{self.burst}")


API_RATE = Rate(10, 20)  # per control-plane operation
DATA_SOFT = Rate(100, 200)  # per attendee: beyond it, messages come back throttled
DATA_HARD = Rate(500, 10_000)  # per attendee: beyond it, the connection is closed


class TokenBucket:
    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)  # start full: the first burst passes
        self.updated: float | None = None

    def allow(self, now: float) -> bool:
        """Take one token; False when none is left. `now` is monotonic seconds (a step back refills nothing)."""
        if self.updated is None:
            self.updated = now
        elif now > self.updated:
            self.tokens = min(self.rate.burst, self.tokens + (now - self.updated) * self.rate.per_second)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class OperationThrottle:
    """One bucket per control-plane operation, created on first use."""

    def __init__(self, rate: Rate = API_RATE) -> None:
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, operation: str, now: float) -> bool:
        bucket = self._buckets.get(operation)
        if bucket is None:
            bucket = self._buckets[operation] = TokenBucket(self.rate)
        return bucket.allow(now)


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
