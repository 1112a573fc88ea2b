"""`hotsock-js`: how the official client (v1.4.0, spec §1.6, `reconnectWithBackoff`) comes back.

- After an unrequested close — any close the client did not ask for, clean or not — it starts a
  reconnect loop whose first try is made **at once**. Only a failed try waits: 1 s before the
  second, then `delay = min(delay × 1.5 + rand(0–1 s), 20 s)` before each later one (waits 0, 1 s,
  1.5–2.5 s, …). It never gives up.
- A first connect that fails is such an unrequested close too: the loop starts, its first try at
  once, then 1 s, then growing.
- The loop ends when a WebSocket *opens*; `hotsock.connected` is not awaited. So a connection that
  opened and then closed without it (or without it within 5 s, when the client closes it itself:
  `HotsockProtocol.ready_timeout_s`) starts a new loop: at once again (`after_unready`).
- Each try loads a fresh token (the session fetches one per attempt). The new connection
  resubscribes every bound channel (the protocol does it). Nothing is replayed: what was published
  while away is the ledger's `missed_while_away`.
`tests/test_hotsock_js.py` runs the client itself against the emulator beside this policy and
compares their timings.
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
        self._wait: float | None = None  # the wait after the next failed try; None: no loop running

    def _new_loop(self) -> float:
        self._wait = FIRST_DELAY_S
        return 0.0  # the loop's first try is made at once

    def after_failure(self, attempt: int) -> float:
        if self._wait is None:  # the very first connect failed: that starts the loop
            return self._new_loop()
        wait = self._wait
        self._wait = min(wait * FACTOR + self.rng.uniform(0.0, JITTER_S), CAP_S)
        return wait

    def after_unready(self, attempt: int) -> float:
        return self._new_loop()  # it had opened: the old loop ended there, a new one starts at once

    def after_drop(self) -> float:
        return self._new_loop()

    def reconnect_after(self, code: int, clean: bool) -> bool:
        return True  # every close the client did not ask for
