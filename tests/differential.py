"""chatload's own session beside a vendor's client, for differential reconnect tests: a real
`ChatSession` with a service's protocol and reconnect policy, on a loop thread of its own, against a
running emulator. Its runtime notes when tokens are fetched, connections close and the session is
back (usable again), in wall-clock seconds, as the vendor drivers stamp theirs."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import defaultdict

from harness.metrics.histograms import Recorder
from harness.metrics.ledger_record import DeliveryLedger
from harness.net.reconnect import ReconnectPolicy
from harness.net.transport import DEFAULT_TRANSPORT
from harness.services.base import ChatService, Target, UserSpec
from harness.session.chat_session import ChatSession


class _Handle:
    population = "differential"


class _Runtime:
    """What a `ChatSession` needs of its runtime, and the times the differential tests compare."""

    clock_offset_ns, connect_timeout, transport, replay, spread = 0, 5.0, DEFAULT_TRANSPORT, None, None
    ssl_context = None  # ws:// emulators

    def __init__(self, service: ChatService, target: Target, tokens) -> None:
        self.recorder, self.ledger, self.service, self.target = Recorder(), DeliveryLedger(), service, target
        self.tokens = tokens  # a TokenProvider (fetch(user) → token)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.ids = itertools.count(1)

    async def fetch_token(self, session, wanted=None) -> str:
        self.times["token"].append(time.time())
        return self.tokens.fetch(session.user)

    def report_connect(self, session, started_ns, cause, message, **kwargs) -> None:
        self.times["back" if cause is None else "failed"].append(time.time())

    def report_closed(self, session, code, reason, clean) -> None:
        self.times["closed"].append(time.time())

    def report_gave_up(self, session, cause) -> None:
        self.times["gave_up"].append(time.time())

    def next_membership_id(self) -> int:
        return next(self.ids)

    def post_state(self, handle, state) -> None:
        pass

    def report_ack(self, *args) -> None:
        pass

    def resolve(self, waiter, value) -> None:
        pass

    def note_protocol_error(self, message: str) -> None:
        raise AssertionError(message)


class ChatloadSession:
    """One chatload session with `policy`, on its own loop thread; `times` is what it went through."""

    def __init__(self, service: ChatService, target: Target, tokens, user: UserSpec, policy: ReconnectPolicy) -> None:
        self.runtime = _Runtime(service, target, tokens)
        self.times = self.runtime.times
        self.loop = asyncio.new_event_loop()
        self.session = ChatSession(self.runtime, _Handle(), user, policy)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.loop.call_soon_threadsafe(self.session.start)

    def since(self, start: float, what: str) -> list[float]:
        return [t for t in self.times[what] if t > start]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.session.stop)
        wait_until(lambda: self.session.state == "stopped", 5, "chatload's session did not stop")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)
