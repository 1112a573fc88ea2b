"""Per-operation request quotas of the control plane (transactions per second).

The real service answers 429 ThrottlingException past its published quotas, and a load test of a
reconnect storm (N clients asking CreateChatToken at once) must see the same thing from the emulator.

Each operation has its own token bucket holding at most one second's worth of requests and refilling
continuously at the quota rate: a burst of `quota` requests passes at once, after that requests pass
at the quota rate. The service's own algorithm is unpublished, so the bucket is an emulator choice.

The clock is passed in by the caller (`time.monotonic()` in the server, a plain float in tests), so
the arithmetic is unit-testable without sleeping. Not thread-safe: the emulator calls it from its
event loop only.
"""

from __future__ import annotations

from collections.abc import Mapping

ROOM_OPERATIONS_TPS = 5
TAG_OPERATIONS_TPS = 10  # emulator choice: the service publishes no quota for the tag operations

# The published IVS Chat quotas (per account and region), keyed by operation name.
DEFAULT_TPS: dict[str, float] = {
    "CreateChatToken": 200,
    "SendEvent": 100,
    "DeleteMessage": 100,
    "DisconnectUser": 100,
    **dict.fromkeys(["CreateRoom", "GetRoom", "UpdateRoom", "DeleteRoom", "ListRooms"], ROOM_OPERATIONS_TPS),
    **dict.fromkeys(["TagResource", "UntagResource", "ListTagsForResource"], TAG_OPERATIONS_TPS),
}


class _Bucket:
    __slots__ = ("rate", "capacity", "tokens", "updated")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        # One second's worth, but at least one request, or a quota below 1 TPS would never pass.
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity  # start full: the first second's burst is allowed
        self.updated: float | None = None


class OperationThrottle:
    """Token buckets, one per operation. Operations without a quota are never throttled.

    `limits` replaces the defaults entirely; to change one quota pass `{**DEFAULT_TPS, "GetRoom": 1}`.
    """

    def __init__(self, limits: Mapping[str, float] | None = None) -> None:
        limits = DEFAULT_TPS if limits is None else limits
        for operation, tps in limits.items():
            if tps <= 0:
                raise ValueError(f"quota for {operation} must be positive, got {tps}")
        self._buckets = {operation: _Bucket(float(tps)) for operation, tps in limits.items()}

    def limit(self, operation: str) -> float | None:
        """The operation's quota in requests per second, or None when it is not throttled."""
        bucket = self._buckets.get(operation)
        return bucket.rate if bucket else None

    def allow(self, operation: str, now: float) -> bool:
        """Take one request's worth from the operation's bucket; False means answer 429.

        `now` is a monotonic clock in seconds; a clock that steps backwards refills nothing.
        """
        bucket = self._buckets.get(operation)
        if bucket is None:
            return True
        if bucket.updated is None:
            bucket.updated = now
        elif now > bucket.updated:
            bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False
