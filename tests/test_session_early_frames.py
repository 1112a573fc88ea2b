"""Frames that come in the same read as the handshake's 101 reach the session before `connect`
returns to it (the transport hands each frame over as it parses, right after `on_open`, as the
transport contract says). A protocol that waits for the server's confirmation (ready_on_open =
False) must still see it as READY, and what it queued in answer must still be written, on this
connection."""

from __future__ import annotations

import asyncio
import time

from harness.metrics.histograms import Recorder
from harness.metrics.ledger_record import DeliveryLedger
from harness.net.reconnect import SdkLike
from harness.net.transport import ConnectParams
from harness.services.base import READY, ClientProtocol, Target, UserSpec
from harness.session import chat_session as session_module
from harness.session.chat_session import ChatSession


class _ConfirmedByFirstFrame(ClientProtocol):
    ready_on_open = False

    def receive(self, payload, is_text, at_ns):
        if payload == b"welcome":
            self.outbox.append(b"thanks")
            return READY
        return None

    def send_message(self, request, content, extra):
        return b""


class _Service:
    def client_protocol(self, user):
        return _ConfirmedByFirstFrame(user)

    def connect_params(self, target, token, user):
        return ConnectParams("ws://stand-in/")  # the stand-in connect below goes nowhere


class _Handle:
    population = "users"


class _Runtime:
    clock_offset_ns = 0
    connect_timeout = 5.0
    transport = "fake"
    ssl_context = None
    replay = None
    spread = None

    def __init__(self) -> None:
        self.recorder, self.ledger, self.service = Recorder(), DeliveryLedger(), _Service()
        self.target = Target("fake", "emulator", rooms=("room",))
        self.connects: list = []
        self.ids = iter(range(1, 100))

    async def fetch_token(self, session):
        return "token"

    def next_membership_id(self):
        return next(self.ids)

    def post_state(self, handle, state):
        pass

    def report_connect(self, session, started_ns, cause, message, **kwargs):
        self.connects.append(cause)

    def report_closed(self, session, code, reason, clean):
        pass


class _Socket:
    open_ns = 0
    tls_ns = 0
    is_open = True

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload, text=True):
        self.sent.append(payload)
        return True

    def abort(self):
        pass


def test_a_confirmation_in_the_handshake_read_makes_the_session_ready_and_its_answer_is_sent(monkeypatch):
    socket = _Socket()

    async def connect(params, listener, **kwargs):
        socket.open_ns = time.time_ns()
        listener.on_open(socket)  # the contract: on_open first, then frames, all before `connect` returns
        listener.on_frame(b"welcome", True, socket.open_ns)
        return socket

    monkeypatch.setattr(session_module, "connect", connect)

    async def scenario():
        runtime = _Runtime()
        session = ChatSession(runtime, _Handle(), UserSpec("s1", "user-s1", "room"), SdkLike())
        attempt = asyncio.ensure_future(session._connect_once(None))
        for _ in range(100):
            if session.state == "open" or attempt.done():
                break
            await asyncio.sleep(0.01)
        assert session.state == "open", f"not ready: {runtime.connects}"
        assert runtime.connects == [None], "one successful connect, no 'not ready in time'"
        assert socket.sent == [b"thanks"], "the answer queued during the handshake read went out on this socket"
        session.on_closed(1000, "", True, time.time_ns())
        assert await asyncio.wait_for(attempt, 1) is None

    asyncio.run(scenario())
