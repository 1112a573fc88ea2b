"""What the session does with the contract's hooks and events, against a real WebSocket server and a
minimal protocol (no Locust, no gevent: the session lives on an asyncio loop, as on the loop thread).

The runtime here is a stand-in holding only what a session touches; the server answers each
connection with the frames a test scripts."""

from __future__ import annotations

import asyncio
import itertools
import time

from websockets.asyncio.server import serve

from harness.metrics.histograms import Recorder
from harness.metrics.ledger_record import DeliveryLedger
from harness.metrics.propagation import PropagationLog
from harness.net.reconnect import ReconnectPolicy
from harness.net.transport import DEFAULT_TRANSPORT, ConnectParams
from harness.runtime.handle import SessionHandle
from harness.services.base import (
    READY,
    Category,
    ChatService,
    ClientProtocol,
    Refused,
    RoomSettings,
    Target,
    UserSpec,
)
from harness.session.chat_session import ChatSession


class ScriptedProtocol(ClientProtocol):
    """Ready on a "ready" frame; remembers the times it was given."""

    ready_on_open = False
    ready_timeout_s = 2.0

    def __init__(self, user: UserSpec) -> None:
        super().__init__(user)
        self.times: dict[str, int] = {}

    def connecting(self, at_ns: int) -> None:
        self.times["connecting"] = at_ns

    def opened(self, at_ns: int) -> None:
        self.times["opened"] = at_ns

    def receive(self, payload, is_text, at_ns):
        return READY if payload == b"ready" else None

    def send_message(self, request, content, extra):  # pragma: no cover - nothing sends here
        raise AssertionError("not used")


class ScriptedService(ChatService):
    name = "scripted"
    title = "scripted test service"
    real_kind = "scripted"
    protocol_class = ScriptedProtocol

    def __init__(self) -> None:
        self.protocols: list[ClientProtocol] = []

    def read_target(self, table, kind):  # pragma: no cover
        raise AssertionError

    def read_rooms(self, table):  # pragma: no cover
        return RoomSettings()

    def provision(self, target, rooms, name):  # pragma: no cover
        return target

    def token_provider(self, target):  # pragma: no cover
        raise AssertionError

    def connect_params(self, target, token, user):
        return ConnectParams(target.endpoint)

    def client_protocol(self, user):
        protocol = self.protocol_class(user)
        self.protocols.append(protocol)
        return protocol


class StandInRuntime:
    """Only what a ChatSession reads or calls."""

    def __init__(self, service: ChatService, endpoint: str) -> None:
        self.service = service
        self.target = Target("scripted", "running-emulator", endpoint, endpoint, rooms=("room",))
        self.recorder = Recorder()
        self.ledger = DeliveryLedger()
        self.propagation = PropagationLog()
        self.spread = None
        self.replay = None
        self.clock_offset_ns = 0
        self.connect_timeout = 5.0
        self.transport = DEFAULT_TRANSPORT
        self.ssl_context = None
        self.connect_outcomes: list[str | None] = []
        self.gave_up: list[str] = []
        self._ids = itertools.count(1)

    def post_state(self, handle, state: str) -> None:
        handle.state = state

    async def fetch_token(self, session) -> str:
        return "token"

    def report_connect(self, session, started_ns, cause, message, **_kwargs) -> None:
        self.connect_outcomes.append(cause)

    def report_closed(self, *_args) -> None:
        pass

    def report_gave_up(self, session, cause: str) -> None:
        self.gave_up.append(cause)

    def next_membership_id(self) -> int:
        return next(self._ids)

    def note_protocol_error(self, message: str) -> None:
        pass

    def report_ack(self, *_args) -> None:
        pass

    def report_not_sent(self, *_args) -> None:
        pass

    def resolve(self, waiter, value) -> None:
        pass


class Never(ReconnectPolicy):
    def after_failure(self, attempt):
        return None

    def after_drop(self):
        return 0.0


async def _scripted_server(frames_for):
    """A server that sends `frames_for(connection_index)` on each connection; then, unless it sent
    "ready", it closes the connection (a refusal), else it waits for the client to close. Returns the
    server, its URL and how many connections it has had."""
    seen = []

    async def handler(ws):
        seen.append(ws)
        frames = frames_for(len(seen) - 1)
        for frame in frames:
            await ws.send(frame)
        if b"ready" in frames:
            await ws.wait_closed()
        else:
            await ws.close()

    server = await serve(handler, "127.0.0.1", 0)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


def _session(service: ChatService, endpoint: str, policy: ReconnectPolicy) -> tuple[ChatSession, StandInRuntime]:
    runtime = StandInRuntime(service, endpoint)
    user = UserSpec("s1", "user-s1", "room")
    handle = SessionHandle(user, "Scripted0")
    session = ChatSession(runtime, handle, user, policy)
    handle.session = session
    return session, runtime


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def play(service: ChatService, frames_for, policy: ReconnectPolicy) -> tuple[ChatSession, StandInRuntime, int]:
    """One session against a server playing `frames_for`, until it is open (then stopped) or stops by
    itself. Returns the session, its runtime and how many connections the server had."""
    async def main():
        server, endpoint, seen = await _scripted_server(frames_for)
        session, runtime = _session(service, endpoint, policy)
        session.start()
        await _until(lambda: session.state in ("open", "stopped"))
        if session.state == "open":
            session.stop()
            await _until(lambda: session.state == "stopped")
        server.close()
        await server.wait_closed()
        return session, runtime, len(seen)

    return asyncio.run(main())


def test_the_protocol_learns_when_the_attempt_began_before_the_socket_opened():
    service = ScriptedService()
    before = time.time_ns()
    play(service, lambda index: [b"ready"], Never())
    times = service.protocols[0].times
    assert before <= times["connecting"] <= times["opened"], times


class RefusingProtocol(ScriptedProtocol):
    """A "refused" frame is a join error: final unless the frame says "refused-soft"."""

    def receive(self, payload, is_text, at_ns):
        if payload in (b"refused", b"refused-soft"):
            return Refused(Category.FORBIDDEN, "AT_CAPACITY", "full", final=payload == b"refused")
        return super().receive(payload, is_text, at_ns)


class Immediately(ReconnectPolicy):
    """Retries a failed connect at once, forever: only a final refusal can stop it."""

    def after_failure(self, attempt):
        return 0.0

    def after_drop(self):
        return 0.0


def _refusing_service() -> ScriptedService:
    service = ScriptedService()
    service.protocol_class = RefusingProtocol
    return service


def test_a_final_refusal_is_counted_by_category_and_never_retried():
    session, runtime, connections = play(_refusing_service(), lambda index: [b"refused"], Immediately())
    assert connections == 1, "a final refusal is not retried, whatever the policy"
    counters = runtime.recorder.summary()["counters"]
    assert counters["refused.forbidden"] == 1 and counters["errors.AT_CAPACITY"] == 1, counters
    assert runtime.gave_up == ["refused"] and session.end_reason == "refused"
    assert runtime.connect_outcomes == ["closed before ready"]


def _twice_refused_then_admitted(index: int) -> list[bytes]:
    return [b"refused-soft"] if index < 2 else [b"ready"]


def test_a_refusal_that_is_not_final_leaves_the_retry_to_the_policy():
    _, runtime, connections = play(_refusing_service(), _twice_refused_then_admitted, Immediately())
    assert runtime.recorder.summary()["counters"]["refused.forbidden"] == 2 and connections == 3
    assert runtime.connect_outcomes == ["closed before ready", "closed before ready", None]
    assert runtime.gave_up == []


class Fixed(ReconnectPolicy):
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s

    def after_failure(self, attempt):
        return self.wait_s

    def after_drop(self):
        return 0.0


def test_each_retry_after_a_failed_connect_records_the_wait_before_it():
    _, runtime, _ = play(_refusing_service(), _twice_refused_then_admitted, Fixed(0.05))
    waits = runtime.recorder.summary()["histograms"]["retry_wait"]
    assert waits["count"] == 2 and 49_900 <= waits["min"] <= waits["max"] <= 50_100, waits
