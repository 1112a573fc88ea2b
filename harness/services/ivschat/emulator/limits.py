"""Per-room message rate limits (`maximumMessageRatePerSecond`, counted across all clients of a room).

The service's algorithm is unpublished (spec: emulator choice). Two are offered:
- `FixedWindow` (default): at most `rate` accepted messages in each whole wall-clock second. A burst
  straddling a second boundary can get 2 × rate through in a short time, which is exactly the case a
  load test should be able to see.
- `TokenBucket`: `rate` tokens per second, bucket size `rate`; smooth, no boundary doubling. A
  clock that steps back (the wall clock, stepped by NTP) refills nothing and takes nothing.
Both take the clock as an argument so tests need no sleeping.
"""

from __future__ import annotations

import math

from ....emulation import throttle


class FixedWindow:
    name = "fixed-window"

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._window = -1
        self._used = 0

    def allow(self, now: float) -> bool:
        window = math.floor(now)
        if window != self._window:
            self._window, self._used = window, 0
        if self._used >= self.rate:
            return False
        self._used += 1
        return True


class TokenBucket:
    """The kit's token bucket (`harness.emulation.throttle`) holding one second's worth."""

    name = "token-bucket"

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.allow = throttle.TokenBucket(throttle.Rate.of(rate)).allow


class Unlimited:
    """Lets everything through: the misconfiguration a rate-limit check must be able to catch."""

    name = "off"

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def allow(self, now: float) -> bool:
        return True


ALGORITHMS = {cls.name: cls for cls in (FixedWindow, TokenBucket, Unlimited)}


def make_limiter(algorithm: str, rate: int):
    try:
        return ALGORITHMS[algorithm](rate)
    except KeyError:
        raise ValueError(f"unknown rate-limit algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)}") from None
