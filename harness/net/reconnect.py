"""Reconnect policies, chosen per user class.

- `SdkLike`: what the official IVS Chat JS SDK does — a failed connect is retried at once, up to
  `max_attempts` (SDK `maxReconnectAttempts`, default 3) retries; an abrupt drop after open
  reconnects at once with the counter reset (so without limit: the reconnect-storm risk); a clean
  server close (kick, or any close frame) does not reconnect.
- `ExponentialBackoff`: full-jitter exponential backoff (AWS architecture blog's "full jitter"):
  delay = uniform(0, min(cap, base * 2**attempt)) between failed tries, up to `max_attempts`; the
  first reconnect after a drop waits uniform(0, drop_spread) so a mass drop does not become one
  second's worth of token fetches (with a 0.5 s spread the whole storm still fell in one second).
ERROR 401 (session expired) and moderator kicks are handled by the session, not here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


class ReconnectPolicy:
    name = "abstract"

    def after_failure(self, attempt: int) -> float | None:
        """Delay before retry number `attempt` (1, 2, …) after failing to connect; None: give up."""
        raise NotImplementedError

    def after_drop(self) -> float:
        """Delay before reconnecting after an established connection dropped."""
        raise NotImplementedError

    def after_unready(self, attempt: int) -> float | None:
        """Delay after a try whose WebSocket opened but never became usable (closed first, or not
        confirmed in time). Most clients count it a failed try; hotsock-js, whose loop ends at open,
        does not."""
        return self.after_failure(attempt)

    def reconnect_after(self, code: int, clean: bool) -> bool:
        """Whether to reconnect after the server closed an established connection."""
        return not clean


@dataclass
class SdkLike(ReconnectPolicy):
    max_attempts: int = 3
    name = "sdk"

    def after_failure(self, attempt: int) -> float | None:
        return 0.0 if attempt <= self.max_attempts else None

    def after_drop(self) -> float:
        return 0.0


@dataclass
class ExponentialBackoff(ReconnectPolicy):
    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 10
    drop_spread_s: float = 3.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    name = "backoff"

    def after_failure(self, attempt: int) -> float | None:
        if attempt > self.max_attempts:
            return None
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** attempt))

    def after_drop(self) -> float:
        return self.rng.uniform(0.0, self.drop_spread_s)


POLICIES = {"sdk": SdkLike, "backoff": ExponentialBackoff}


def make_policy(spec: str | ReconnectPolicy) -> ReconnectPolicy:
    if isinstance(spec, ReconnectPolicy):
        return spec
    try:
        return POLICIES[spec]()
    except KeyError:
        raise ValueError(f"unknown reconnect policy {spec!r}; choose one of {sorted(POLICIES)}") from None
