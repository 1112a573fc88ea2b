"""`hotsock-js`: how the official client (v1.4.0, spec §1.6) comes back, as a reconnect policy.

- After an unrequested close — any close the client did not ask for, clean or not — it reconnects:
  the first retry waits 1 s, then each failed try waits `min(delay × 1.5 + rand(0–1 s), 20 s)`.
- It never gives up.
- Each try loads a fresh token (the session fetches one per attempt).
- A connection with no `hotsock.connected` within 5 s is closed and counts as a failed try
  (`HotsockProtocol.ready_timeout_s`).
- The new connection resubscribes every bound channel (the protocol does it).
- Nothing is replayed: what was published while away is the ledger's `missed_while_away`.
A first connect that fails is retried the same way (1 s, then growing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ...net.reconnect import ReconnectPolicy

FIRST_DELAY_S = 1.0
FACTOR = 1.5
JITTER_S = 1.0
CAP_S = 20.0


@dataclass
class HotsockJsPolicy(ReconnectPolicy):
    rng: random.Random = field(default_factory=random.Random, repr=False)
    name = "hotsock-js"

    def __post_init__(self) -> None:
        self._delay: float | None = None  # the last wait of the current outage

    def _next(self) -> float:
        if self._delay is None:
            self._delay = FIRST_DELAY_S
        else:
            self._delay = min(self._delay * FACTOR + self.rng.uniform(0.0, JITTER_S), CAP_S)
        return self._delay

    def after_failure(self, attempt: int) -> float:
        return self._next()

    def after_drop(self) -> float:
        self._delay = None  # a connection was up: a new outage starts from the first delay
        return self._next()

    def reconnect_after(self, code: int, clean: bool) -> bool:
        return True  # every close the client did not ask for
