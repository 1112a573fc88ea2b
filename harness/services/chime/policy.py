"""How amazon-chime-sdk-js 3.32.0 comes back after its signaling connection ends (`reconnect = "sdk"`).

Read in the SDK (`MeetingSessionConfiguration`, `DefaultReconnectController`, `FullJitterBackoff`,
`MonitorTask`):
- it retries with full-jitter backoff: before try k (k = 0 first) it waits
  uniform(0, min(long 5 s, short 1 s × 2^k)) — the first comeback waits up to 1 s, then 2, 4, 5, 5 s…;
- it stops trying 120 s after the outage began (`reconnectTimeoutMs`);
- after an established connection closes it comes back only for the "unexpected" close codes:
  1006 (abnormal closure) and 4500–4599 (server error). 4410 (meeting ended), 4403/4429 and every
  other code are terminal (SignalingBadRequest or MeetingEnded).
So 4401, the emulator's session expiry (ERROR 401 first, which the SDK reads as a terminal
SignalingBadRequest), does not come back either: the fault means what the SDK does with it.
`tests/test_chime_sdk.py` checks these answers against the SDK's own code.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from ...net.reconnect import ReconnectPolicy


@dataclass
class ChimeSdkPolicy(ReconnectPolicy):
    short_s: float = 1.0
    long_s: float = 5.0
    window_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    clock: object = field(default=time.monotonic, repr=False)
    name = "sdk"

    def __post_init__(self) -> None:
        self._outage_began: float | None = None

    def _wait(self, retry: int) -> float:
        return self.rng.random() * min(self.long_s, self.short_s * 2 ** retry)

    def after_drop(self) -> float:
        self._outage_began = self.clock()
        return self._wait(0)

    def after_failure(self, attempt: int) -> float | None:
        now = self.clock()
        if self._outage_began is None:  # failing to connect at all: the window starts with the first try
            self._outage_began = now
        if now - self._outage_began >= self.window_s:
            return None
        return self._wait(attempt)

    def reconnect_after(self, code: int, clean: bool) -> bool:
        return code == 1006 or 4500 <= code < 4600  # MonitorTask.isUnexpectedsignalingCloseCode
