"""Rates with a burst, token buckets, and the per-operation throttle of an emulator's control plane.

The services publish their quotas as "N requests per second" (IVS Chat, IVS Real-Time) or "rate,
burst" pairs (Chime); past them the real service answers 429 ThrottlingException, and a load test
of a reconnect storm (N clients asking for tokens at once) must see the same from the emulator.
Every such quota here is a token bucket that holds `burst` requests and refills continuously at
`per_second`: a burst passes at once, then requests pass at the rate. The services' own algorithms
are unpublished, so the bucket is an emulator choice; a quota given as a bare number holds one
second's worth (at least one request, or a quota below 1 per second would never pass).

Clocks are passed in by the caller (`time.monotonic()` in a server, plain floats in tests), so the
arithmetic is testable without sleeping; a clock that steps back refills nothing. Not thread-safe:
an emulator calls these from its event loop only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, not {self.per_second}/{self.burst}")

    @classmethod
    def of(cls, quota: Rate | float) -> Rate:
        """A `Rate` as is; a bare number of requests per second, with a bucket of one second's worth."""
        if isinstance(quota, Rate):
            return quota
        if not quota > 0:
            raise ValueError(f"a quota must be positive, not {quota}")
        return cls(float(quota), max(1.0, float(quota)))


class TokenBucket:
    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)  # start full: the first burst passes
        self.updated: float | None = None

    def allow(self, now: float) -> bool:
        """Take one token; False when none is left. `now` is monotonic seconds."""
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
    """One token bucket per operation.

    `quotas` names operations and their quota (a `Rate`, or requests per second); `every` is the
    quota of each operation not named there (Chime: every operation alike). An operation neither
    gives is never throttled. The service's published quotas live with the service's emulator.
    """

    def __init__(self, quotas: Mapping[str, Rate | float] | None = None, *, every: Rate | None = None) -> None:
        self.every = every
        self._rates: dict[str, Rate] = {}
        for operation, quota in (quotas or {}).items():
            try:
                self._rates[operation] = Rate.of(quota)
            except ValueError as problem:
                raise ValueError(f"quota for {operation}: {problem}") from None
        self._buckets: dict[str, TokenBucket] = {}

    def rate(self, operation: str) -> Rate | None:
        return self._rates.get(operation, self.every)

    def limit(self, operation: str) -> float | None:
        """The operation's quota in requests per second, or None when it is not throttled."""
        rate = self.rate(operation)
        return rate.per_second if rate is not None else None

    def allow(self, operation: str, now: float) -> bool:
        """Take one request's worth from the operation's bucket; False means answer 429."""
        bucket = self._buckets.get(operation)
        if bucket is None:
            rate = self.rate(operation)
            if rate is None:
                return True
            bucket = self._buckets[operation] = TokenBucket(rate)
        return bucket.allow(now)
