"""One chat user's connection, living on the loop thread: token, connect, receive, send, reconnect.

Everything here runs on the loop thread and touches only loop-owned state (the process recorder
and ledger); whatever Locust must see goes through `ChatRuntime.report_*`, which posts it across
the boundary. The receive path — `on_text` — stamps nothing itself: the arrival time comes from
`WebSocketClient.data_received`, taken before parsing.

Message identity: every message we send carries in `Attributes`
`cl.s` (sender id), `cl.n` (per-sender sequence number) and `cl.t` (intended send time, µs since
the epoch on the corrected clock). Latency is measured from that intended time (open-loop: a late
sender does not hide latency).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass

from ..protocols import ivschat as codec
from .reconnect import ReconnectPolicy
from .websocket import HandshakeFailed, WebSocketClient, open_websocket

log = logging.getLogger(__name__)

SENDER, SEQ, INTENDED = "cl.s", "cl.n", "cl.t"


@dataclass(slots=True)
class PendingRequest:
    kind: str  # "send", "delete", "disconnect"
    seq: int
    intended_ns: int
    sent_ns: int
    waiter: object | None  # a gevent AsyncResult on the other side of the boundary, or None


class RequestFailed(Exception):
    def __init__(self, code: int | str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ChatSession:
    """States: new → connecting → open → (closed → connecting …) → stopped."""

    def __init__(self, runtime, *, sender_id: str, user_id: str, room_arn: str, capabilities: tuple[str, ...],
                 policy: ReconnectPolicy, attributes: dict[str, str] | None = None,
                 session_minutes: int | None = None) -> None:
        self.runtime = runtime
        self.recorder = runtime.recorder
        self.ledger = runtime.ledger
        self.sender_id = sender_id
        self.user_id = user_id
        self.room = room_arn
        self.capabilities = capabilities
        self.policy = policy
        self.attributes = attributes
        self.session_minutes = session_minutes
        self.state = "new"
        self.ws: WebSocketClient | None = None
        self.connection_id = 0
        self.seq = 0
        self.pending: dict[str, PendingRequest] = {}
        self.kicked = False
        self.was_kicked = False
        self.end_reason = ""
        self.expired = False
        self.stopping = False
        self._closed: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self.connected_waiters: list = []
        # Ids of the last messages received, for a moderator's deletes; nobody else pays for them.
        self.recent_ids: collections.deque[str] | None = (
            collections.deque(maxlen=32) if codec.DELETE_MESSAGE in capabilities else None)
        self.offset_ns = runtime.clock_offset_ns

    # -- lifecycle (loop thread) ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        attempt = 0  # failed tries in the current outage (or before the first connect)
        dropped_at_ns: int | None = None
        self.end_reason = "stopped"
        try:
            while not self.stopping:
                self.state = "connecting"
                outcome = await self._connect_once(dropped_at_ns)
                if outcome is None:  # connected and later closed
                    if dropped_at_ns is not None:
                        # Tries this outage took, the successful one included (1: back at once).
                        self.recorder.record("reconnect_attempts", attempt + 1)
                    attempt = 0
                    if self.stopping:
                        break
                    if self.kicked:
                        self.was_kicked = True
                        self.recorder.count("kicked")
                    if not self._should_reconnect():
                        self.end_reason = "kicked" if self.kicked else "closed_by_server"
                        break
                    dropped_at_ns = self._dropped_at_ns
                    delay = self.policy.after_drop()
                else:  # failed to connect
                    attempt += 1
                    delay = self.policy.after_failure(attempt)
                    if delay is None:
                        self.runtime.report_gave_up(self, outcome)
                        self.end_reason = "gave_up"
                        break
                if delay:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            pass
        finally:
            self.state = "stopped"
            self._fail_pending("session stopped")

    async def _connect_once(self, dropped_at_ns: int | None) -> str | None:
        """Fetch a token and connect; None once the connection opened and then closed, else the failure."""
        token = await self.runtime.fetch_token(self)
        if token is None:
            return "token"
        started_ns = time.time_ns()
        self._closed = asyncio.get_running_loop().create_future()
        try:
            ws = await open_websocket(self.runtime.endpoint, token, self, timeout=self.runtime.connect_timeout)
        except HandshakeFailed as exc:
            cause = f"HTTP {exc.status}" if exc.status else "bad handshake"
            self.runtime.report_connect(self, started_ns, cause, str(exc), reconnect=dropped_at_ns is not None)
            return cause
        except (OSError, TimeoutError) as exc:
            cause = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            self.runtime.report_connect(self, started_ns, cause, str(exc) or cause, reconnect=dropped_at_ns is not None)
            return cause
        self.ws = ws
        self.connection_id = self.runtime.next_connection_id()
        if self.was_kicked:
            self.recorder.count("kicked_rejoined")  # must stay 0: a kicked user stays out
        self.kicked = self.expired = False
        self.state = "open"
        open_ns = ws.open_ns
        self.ledger.connected(self.sender_id, self.connection_id, self.room, open_ns)
        self.runtime.report_connect(self, started_ns, None, None, reconnect=dropped_at_ns is not None,
                                    open_ns=open_ns, dropped_at_ns=dropped_at_ns)
        for waiter in self.connected_waiters:
            self.runtime.resolve(waiter, True)
        self.connected_waiters.clear()
        await self._closed
        return None

    def _should_reconnect(self) -> bool:
        if self.kicked:
            return False  # a moderator's kick: the SDK stays out, so do we
        if self.expired:
            return True  # ERROR 401: the SDK reconnects with a fresh token
        return self.policy.reconnect_after(self._close_code, self._close_clean)

    def stop(self, close: bool = True) -> None:
        """Stop sending and reconnecting; close the socket unless `close` is False (draining)."""
        self.stopping = True
        if not close:
            return
        if self.state == "open":
            self.ws.close(1000, "load test finished")  # _run ends once the close completes
        elif self._task is not None:
            self._task.cancel()  # fetching a token, connecting or waiting to reconnect

    # -- WebSocketClient listener -----------------------------------------------------------------

    def on_text(self, payload: bytes, arrival_ns: int) -> None:
        try:
            event = codec.parse_server_frame(payload)
        except codec.ProtocolViolation as exc:
            self.recorder.count("protocol_errors")
            self.runtime.note_protocol_error(str(exc))
            return
        arrival_ns += self.offset_ns
        kind = event.__class__
        if kind is codec.ChatMessage:
            self._on_message(event, arrival_ns)
        elif kind is codec.ChatError:
            self._on_error(event, arrival_ns)
        else:
            self._on_event(event, arrival_ns)

    def on_binary(self, payload: bytes, arrival_ns: int) -> None:
        self.recorder.count("protocol_errors")
        self.runtime.note_protocol_error("binary frame from server")

    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None:
        self.state = "closed"
        self._close_code, self._close_clean = code, clean
        self._dropped_at_ns = at_ns + self.offset_ns
        self.ledger.disconnected(self.sender_id, self.connection_id, self._dropped_at_ns)
        self.runtime.report_closed(self, code, reason, clean)
        self._fail_pending(f"connection closed ({code})")
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(code)

    # -- receive path -----------------------------------------------------------------------------

    def _on_message(self, message: codec.ChatMessage, arrival_ns: int) -> None:
        if self.recent_ids is not None:
            self.recent_ids.append(message.id)
        attributes = message.attributes
        if not attributes or SENDER not in attributes:
            self.recorder.count("foreign_messages")  # traffic from other clients: delivered, not ours to judge
            return
        try:
            sender = attributes[SENDER]
            seq = int(attributes[SEQ])
            intended_us = int(attributes[INTENDED])
            send_time_ns = codec.parse_send_time(message.send_time)
        except (KeyError, ValueError):
            self.recorder.count("protocol_errors")
            self.runtime.note_protocol_error("chatload message with unreadable cl.* attributes or SendTime")
            return
        latency_us = arrival_ns // 1000 - intended_us
        # The server's SendTime splits each delivery in two: intended → accepted, accepted → here.
        self.recorder.from_server.record((arrival_ns - send_time_ns) // 1000)
        self.ledger.received(self.sender_id, self.connection_id, self.room, sender, seq, send_time_ns)
        pending = self.pending.pop(message.request_id, None) if sender == self.sender_id else None
        if pending is not None:
            self.recorder.ack.record(latency_us)
            self.recorder.to_server.record(send_time_ns // 1000 - intended_us)
            self.ledger.acked(sender, seq, self.room, send_time_ns)
            self.recorder.count("accepted")
            self.runtime.report_ack(self, pending, latency_us, None)
        else:
            self.recorder.delivery.record(latency_us)

    def _on_error(self, error: codec.ChatError, arrival_ns: int) -> None:
        code = error.code
        self.recorder.count(f"errors.{code}")
        if code == 401:
            self.expired = True  # the server closes next; we reconnect with a fresh token
        pending = self.pending.pop(error.request_id, None) if error.request_id else None
        if pending is None:
            return
        if pending.kind == "send":
            self.ledger.rejected(self.sender_id, pending.seq, code, arrival_ns)
            self.recorder.count(f"rejected.{code}")
        self.runtime.report_ack(self, pending, (arrival_ns - pending.intended_ns) // 1000,
                                RequestFailed(code, error.message))

    def _on_event(self, event: codec.ChatEvent, arrival_ns: int) -> None:
        name = event.event_name
        self.recorder.count(f"events.{name}")
        if name == codec.EVENT_DISCONNECT_USER and event.attributes and event.attributes.get("UserId") == self.user_id:
            self.kicked = True
        pending = self.pending.pop(event.request_id, None) if event.request_id else None
        if pending is not None:
            self.runtime.report_ack(self, pending, (arrival_ns - pending.intended_ns) // 1000, None)

    # -- requests (called on the loop by the client API) ------------------------------------------

    def send_message(self, content: str, intended_ns: int, extra: dict[str, str] | None, waiter) -> None:
        if not self._can_send(waiter, "send"):
            return
        self.seq += 1
        seq = self.seq
        request_id = f"{self.sender_id}.{seq}"
        attributes = {SENDER: self.sender_id, SEQ: str(seq), INTENDED: str(intended_ns // 1000)}
        if extra:
            attributes.update(extra)
        self._send("send", request_id, seq, intended_ns, waiter, codec.encode_send_message(request_id, content, attributes))
        # How late the harness itself sent against the schedule: part of every latency it reports.
        self.recorder.record("send_lag", (time.time_ns() + self.offset_ns - intended_ns) // 1000)
        self.ledger.sent(self.sender_id, seq, self.room, intended_ns)
        self.recorder.count("sent")

    def delete_message(self, message_id: str, reason: str | None, waiter) -> None:
        if self._can_send(waiter, "delete"):
            self.seq += 1
            request_id = f"{self.sender_id}.d{self.seq}"
            self._send("delete", request_id, 0, time.time_ns() + self.offset_ns, waiter,
                       codec.encode_delete_message(request_id, message_id, reason))

    def disconnect_user(self, user_id: str, reason: str | None, waiter) -> None:
        if self._can_send(waiter, "disconnect"):
            self.seq += 1
            request_id = f"{self.sender_id}.k{self.seq}"
            self._send("disconnect", request_id, 0, time.time_ns() + self.offset_ns, waiter,
                       codec.encode_disconnect_user(request_id, user_id, reason))

    def _can_send(self, waiter, kind: str) -> bool:
        if self.stopping:
            self.recorder.count("not_sent.stopping")
            if waiter is not None:
                self.runtime.resolve(waiter, RequestFailed("stopping", "load test is stopping"))
            return False
        if self.ws is None or not self.ws.is_open:
            self.recorder.count("not_sent.disconnected")
            self.runtime.report_not_sent(self, kind, waiter)
            return False
        return True

    def _send(self, kind: str, request_id: str, seq: int, intended_ns: int, waiter, frame: bytes) -> None:
        self.pending[request_id] = PendingRequest(kind, seq, intended_ns, time.time_ns(), waiter)
        self.ws.send_text(frame)

    def expire_pending(self, older_than_ns: int) -> None:
        """Requests never answered (the SDK would wait forever; a load client must not).

        The connection is still open, so the server chose silence: a send was accepted and
        delivered to no one, not even its sender (see the ledger's "presumed accepted")."""
        for request_id, pending in list(self.pending.items()):
            if pending.sent_ns < older_than_ns:
                del self.pending[request_id]
                self.recorder.count(f"timeouts.{pending.kind}")
                if pending.kind == "send":
                    self.ledger.presumed_accepted(self.sender_id, pending.seq, self.room,
                                                  pending.sent_ns + self.offset_ns)
                self.runtime.report_ack(self, pending, None, RequestFailed("timeout", "no answer from the server"))

    def _fail_pending(self, why: str) -> None:
        """The connection is gone: no answer can come on it any more. (Whether a send was accepted
        is still learnt from other receivers; the ledger counts it then.)"""
        pending, self.pending = self.pending, {}
        for request in pending.values():
            self.recorder.count(f"unanswered_at_close.{request.kind}")
            self.runtime.report_ack(self, request, None, RequestFailed("closed", why))
        for waiter in self.connected_waiters:
            self.runtime.resolve(waiter, False)
        self.connected_waiters.clear()
