"""One chat user's connection, living on the loop thread: token, connect, receive, send, reconnect.

Service-neutral. The service's `ClientProtocol` (sans-I/O) turns frames into neutral events and
requests into frames; this module turns the events into measurements (the process recorder and
ledger, both loop-owned) and decides when to come back. Whatever Locust must see goes through
`LoopSide.report_*` (harness/runtime/loop_side.py), which posts it across the boundary. The receive path — `on_frame` — stamps
nothing itself: the arrival time comes from the transport, taken before parsing.

Latency is measured from the intended send time that every measured message carries (open-loop: a
late sender does not hide latency); the protocol decides where in the service's frames it travels.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time

from ..net.reconnect import ReconnectPolicy
from ..net.tls import TlsPhase, certificate_failure
from ..net.transport import HandshakeFailed, Transport, connect
from ..services.base import (
    FOREIGN,
    READY,
    Acked,
    ClientProtocol,
    Delivered,
    Joined,
    Kicked,
    Left,
    Measured,
    MustReconnect,
    Observed,
    Origin,
    ProtocolError,
    Refused,
    Rejected,
    Replayed,
    Request,
    ServiceEvent,
    TokenWanted,
    UserSpec,
)
from ..threads.marks import runs_on_loop
from . import send_accounting

log = logging.getLogger(__name__)
UNREADY = ("closed before ready", "not ready in time")  # failures after the WebSocket opened
_TOKEN_TASKS: set[asyncio.Task] = set()  # loop thread only: fetches a protocol asked for, in flight


class SessionState(enum.StrEnum):
    """Where a session is: new → connecting → open → (closed → connecting …) → stopped. A str, so a
    state posted to the gevent side or written into JSON reads as its word."""

    NEW = "new"
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"  # dropped or closed; the session decides whether to come back
    STOPPED = "stopped"  # for good: stopped, kicked, refused or gave up (`end_reason` says which)


class RequestFailed(Exception):
    def __init__(self, code: int | str, message: str, category: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.category = category


class ChatSession:
    """One connection's life, through `SessionState`s. Loop thread only: every method that others call
    is marked `@runs_on_loop` (checked in `CHATLOAD_CHECK_THREADS` mode)."""

    # One per connection: slots keep it ~1.2 KiB smaller than its instance dict grew to (measured,
    # `chatload bench memory`), and make the receive path's attribute reads cheaper.
    __slots__ = ("runtime", "handle", "recorder", "ledger", "service", "user", "sender_id", "room", "policy",
                 "state", "ws", "protocol", "membership_id", "receiving", "memberships", "seq", "kicked",
                 "was_kicked", "must_reconnect", "refused", "end_reason", "stopping", "_closed", "_ready",
                 "_ready_at_ns", "_attempt", "_task", "_keepalive", "connected_waiters", "offset_ns",
                 "ever_connected", "kick_requested_ns", "_close_code", "_close_clean", "_dropped_at_ns", "_tls_offer")

    def __init__(self, runtime, handle, user: UserSpec, policy: ReconnectPolicy) -> None:
        self.runtime = runtime
        self.handle = handle  # the gevent side's view, updated by posts
        self.recorder = runtime.recorder
        self.ledger = runtime.ledger
        self.service = runtime.service
        self.user = user
        self.sender_id = user.sender_id
        self.room = user.room
        self.policy = policy
        self.state = SessionState.NEW
        self.ws: Transport | None = None
        self.protocol: ClientProtocol | None = None
        self.membership_id = 0  # the ledger's id of this user's membership of its room (0: none now)
        self.receiving = None  # the ledger's connection for that membership (None: none now)
        self.memberships: dict[str, int] = {}  # room → ledger id, while a member
        self.seq = 0
        self.kicked = False
        self.was_kicked = False
        self.must_reconnect = False
        self.refused = False  # the service refused the session for good (a final Refused): no retry
        self.end_reason = ""
        self.stopping = False
        self._closed: asyncio.Future | None = None
        self._ready: asyncio.Future | None = None
        self._ready_at_ns = 0  # corrected clock: when the session became usable (joins are timed from it)
        self._attempt: tuple[int, bool, int | None] = (0, False, None)  # started_ns, reconnect, dropped_at_ns
        self._task: asyncio.Task | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self.connected_waiters: list = []
        self.offset_ns = runtime.clock_offset_ns
        self.ever_connected = False
        self.kick_requested_ns: int | None = None  # set by a kick through the control plane (kick latency)
        self._close_code, self._close_clean, self._dropped_at_ns = 0, False, 0  # the last close (on_closed)
        self._tls_offer = None  # wss://: the TLS session of the user's last connection that did TLS

    # -- lifecycle (loop thread) ------------------------------------------------------------------

    @runs_on_loop
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def _set_state(self, state: SessionState) -> None:
        self.state = state
        self.runtime.post_state(self.handle, state)

    async def _run(self) -> None:
        attempt = 0  # failed tries in the current outage (or before the first connect)
        dropped_at_ns: int | None = None
        self.end_reason = "stopped"
        try:
            while not self.stopping:
                self._set_state(SessionState.CONNECTING)
                outcome = await self._connect_once(dropped_at_ns, attempt + 1)
                if outcome is None:  # connected and later closed
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
                    unready = outcome in UNREADY  # the WebSocket opened, the service never confirmed
                    delay = (None if self.refused else self.policy.after_unready(attempt) if unready
                             else self.policy.after_failure(attempt))
                    if delay is None:  # the vendor's client would stop here too
                        self.runtime.report_gave_up(self, "refused" if self.refused else outcome)
                        self.end_reason = "refused" if self.refused else "gave_up"
                        break
                    # The policy's wait before the next try: whether a client backs off or hammers.
                    self.recorder.record("retry_wait", max(1, round(delay * 1e6)))
                if delay:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            pass
        finally:
            self._set_state(SessionState.STOPPED)
            self._fail_pending("session stopped")
            self._resolve_connected_waiters(False)

    async def _connect_once(self, dropped_at_ns: int | None, tries: int = 1) -> str | None:
        """Fetch a token and connect (try number `tries` of this outage); None once the connection
        opened and then closed, else the failure."""
        reconnect = dropped_at_ns is not None
        self.membership_id, self.receiving = 0, None  # until this connection is ready
        token = await self.runtime.fetch_token(self)
        if token is None:
            return "token"
        runtime = self.runtime
        if self.ws is not None and self.ws.tls_ns:
            # wss://: the replaced connection's TLS session, offered on every try until another connection
            # does TLS (read now, not at every connect: costly; a failed try leaves self.ws None).
            self._tls_offer = self.ws.tls_session or self._tls_offer
        self.ws = None  # not the last connection's: frames queued while connecting wait for this one
        params = self.service.connect_params(runtime.target, token, self.user)
        phase = None
        if params.url.startswith("wss://"):
            phase = TlsPhase(offer=self._tls_offer)
            # A place among the loop's handshakes in flight, before the connect's clock and timeout start.
            self.recorder.record("connect.tls_wait", await phase.begin() // 1000)
        started_ns = time.time_ns()
        self._attempt = (started_ns, reconnect, dropped_at_ns)
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._ready = loop.create_future()
        try:
            self.protocol = self.service.client_protocol(self.user)
            # Tokens beyond the connect's the run's source serves (a runtime without any need not say).
            self.protocol.token_purposes = getattr(runtime, "token_purposes", frozenset())
            self.protocol.connecting(started_ns + self.offset_ns)
        except BaseException:
            if phase is not None:
                phase.end()  # connect, which ends it, is not reached
            raise
        try:
            # The next local address of the run's rotation (a runtime without one connects from the
            # system's choice): past ~28k connections to one endpoint one address runs out of ports.
            next_source = getattr(runtime, "next_source", None)
            ws = await connect(params, self, timeout=runtime.connect_timeout, transport=runtime.transport,
                               ssl_context=runtime.ssl_context, tls=phase,
                               source=next_source() if next_source is not None else None)
        except HandshakeFailed as exc:
            cause = f"HTTP {exc.status}" if exc.status else "bad handshake"
            runtime.report_connect(self, started_ns, cause, str(exc), reconnect=reconnect)
            return cause
        except (OSError, TimeoutError) as exc:
            cause = certificate_failure(exc)
            if cause is not None:  # the server's certificate is not trusted: no retry makes it so
                self.refused = True
                self.recorder.count("refused.tls")
            else:
                cause = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            runtime.report_connect(self, started_ns, cause, str(exc) or cause, reconnect=reconnect)
            return cause
        if ws.tls_ns:
            self.recorder.record("connect.tls", ws.tls_ns // 1000)
            if ws.tls_resumed:
                self.recorder.count("tls_resumed")
        # on_open ran when the handshake completed, before any frame; READY may have come too.
        if await self._wait_ready(self.protocol.ready_timeout_s) is None:  # closed, or never confirmed
            cause = UNREADY[0] if self._closed.done() else UNREADY[1]
            runtime.report_connect(self, started_ns, cause, cause, reconnect=reconnect)
            if not self._closed.done():
                self.ws.abort()
                await self._closed
            return cause
        if reconnect:  # tries this outage took, counted when it ends (a connection may stay up to the end)
            self.recorder.record("reconnect_attempts", tries)
        await self._closed
        return None

    @runs_on_loop
    def on_open(self, ws: Transport) -> None:
        """The handshake completed (the transport calls this before handing over any frame)."""
        self.ws = ws
        self.kicked = self.must_reconnect = False
        if self.protocol.ready_on_open:
            self._become_ready(ws.open_ns)
        else:
            self.protocol.opened(ws.open_ns + self.offset_ns)
            self._flush()

    def _become_ready(self, ready_ns: int) -> None:
        """Usable (local clock `ready_ns`): a member of its room, counted, waiters told. Synchronous, so
        that no frame can be handled before the connection is registered."""
        if self._ready.done():
            return
        started_ns, reconnect, dropped_at_ns = self._attempt
        self._ready_at_ns = ready_ns + self.offset_ns
        if self.was_kicked:
            self.recorder.count("kicked_rejoined")  # must stay 0: a kicked user stays out
        self._set_state(SessionState.OPEN)
        if not self.ever_connected:  # per population: did this user ever get in? (harness.results.measured)
            self.ever_connected = True
            self.recorder.count(f"users_connected.{self.handle.population}")
        if not self.protocol.joins_rooms:  # a member of its room from now on
            self._joined(self.room, self._ready_at_ns, opening_ns=started_ns + self.offset_ns)
        self.runtime.report_connect(self, started_ns, None, None, reconnect=reconnect, open_ns=ready_ns,
                                    dropped_at_ns=dropped_at_ns)
        self._resolve_connected_waiters(True)
        if self.protocol.keepalive_s:
            self._keepalive = asyncio.get_running_loop().call_later(self.protocol.keepalive_s, self._send_keepalive)
        self._ready.set_result(ready_ns)

    async def _wait_ready(self, timeout: float) -> int | None:
        if self._ready.done():
            return self._ready.result()
        done, _ = await asyncio.wait((self._ready, self._closed), timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._ready in done:
            return self._ready.result()
        return None

    def _want_token(self, wanted: TokenWanted) -> None:
        task = asyncio.ensure_future(self._fetch_wanted(wanted))
        _TOKEN_TASKS.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(_TOKEN_TASKS.discard)

    async def _fetch_wanted(self, wanted: TokenWanted) -> None:
        """A token the open connection's protocol asked for; handed over only if that connection is
        still the current one."""
        protocol = self.protocol
        token = await self.runtime.fetch_token(self, wanted)
        if self.protocol is protocol and self.state is SessionState.OPEN:
            protocol.token_arrived(wanted, token)
            self._flush()

    def _should_reconnect(self) -> bool:
        if self.kicked:
            return False  # a moderator's kick: the vendor's client stays out, so do we
        if self.must_reconnect:
            return True  # e.g. an expired session: the vendor's client comes back with a fresh token
        return self.policy.reconnect_after(self._close_code, self._close_clean)

    @runs_on_loop
    def stop(self, close: bool = True) -> None:
        """Stop sending and reconnecting; close the socket unless `close` is False (draining)."""
        self.stopping = True
        if not close:
            return
        if self.state is SessionState.OPEN:
            self.ws.close(1000, "load test finished")  # _run ends once the close completes
        elif self._task is not None:
            self._task.cancel()  # fetching a token, connecting or waiting to reconnect

    def _resolve_connected_waiters(self, value: bool) -> None:
        for waiter in self.connected_waiters:
            self.runtime.resolve(waiter, value)
        self.connected_waiters.clear()

    # -- transport listener -----------------------------------------------------------------------

    @runs_on_loop
    def on_frame(self, payload: bytes, is_text: bool, arrival_ns: int) -> None:
        protocol = self.protocol
        arrival_ns += self.offset_ns
        event = protocol.receive(payload, is_text, arrival_ns)
        if event is not None:
            if event.__class__ is Delivered:  # the hot path first
                self._on_delivered(event, arrival_ns)
            elif event.__class__ is tuple:
                for each in event:
                    self._dispatch(each, arrival_ns)
            else:
                self._dispatch(event, arrival_ns)
        if protocol.outbox:
            self._flush()

    @runs_on_loop
    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None:
        self._set_state(SessionState.CLOSED)
        self._close_code, self._close_clean = code, clean
        self._dropped_at_ns = at_ns + self.offset_ns
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        for room in list(self.memberships):
            self._left(room, self._dropped_at_ns)
        self.runtime.report_closed(self, code, reason, clean)
        if self.protocol is not None:  # what the close means in this service (e.g. come back at once)
            meaning = self.protocol.closed(code, reason, clean)
            for event in meaning if meaning.__class__ is tuple else (meaning,) if meaning is not None else ():
                self._dispatch(event, self._dropped_at_ns)
        self._fail_pending(f"connection closed ({code})")
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(code)

    # -- events → measurements --------------------------------------------------------------------

    def _joined(self, room: str, at_ns: int, opening_ns: int | None = None) -> None:
        membership = self.runtime.next_membership_id()
        self.memberships[room] = membership
        connection = self.ledger.connected(self.sender_id, membership, room, at_ns, opening_ns=opening_ns,
                                           replay=self.runtime.replay)
        if room == self.room:
            self.membership_id, self.receiving = membership, connection

    def _left(self, room: str, at_ns: int) -> None:
        membership = self.memberships.pop(room, None)
        if membership is not None:
            self.ledger.disconnected(self.sender_id, membership, at_ns)
        if room == self.room:
            self.membership_id, self.receiving = 0, None

    def _on_delivered(self, message: Delivered, arrival_ns: int) -> None:
        # The hot path: once per delivery. Each attribute is read once; the ledger connection is held.
        recorder = self.recorder
        if self.runtime.spread is not None:
            self.runtime.spread.observe(message.sender, message.seq, arrival_ns)
        server_ns = message.server_ns
        if server_ns is not None:
            # The server's time splits each delivery in two: intended → accepted, accepted → here.
            recorder.from_server.record((arrival_ns - server_ns) // 1000)
        else:
            server_ns = arrival_ns
        receiving = self.receiving
        if receiving is not None:
            self.ledger.received_on(receiving, message.sender, message.seq, server_ns)
        else:  # not a member of its room now (a frame before a join, after a leave): the ledger sorts it
            self.ledger.received(self.sender_id, self.membership_id, self.room, message.sender, message.seq, server_ns)
        recorder.delivery.record(arrival_ns // 1000 - message.intended_us)

    def _on_replayed(self, message: Replayed, arrival_ns: int) -> None:
        server_ns = message.server_ns
        self.ledger.received(self.sender_id, self.membership_id, self.room, message.sender, message.seq,
                             server_ns if server_ns is not None else arrival_ns)
        self.recorder.record("replay", arrival_ns // 1000 - message.intended_us)

    def _dispatch(self, event, arrival_ns: int) -> None:
        kind = event.__class__
        if kind is Delivered:
            self._on_delivered(event, arrival_ns)
        elif kind is Replayed:
            self._on_replayed(event, arrival_ns)
        elif kind is Acked:
            self._on_acked(event, arrival_ns)
        elif kind is Rejected:
            self._on_rejected(event, arrival_ns)
        elif kind is ServiceEvent:
            self.recorder.count(f"events.{event.name}")
        elif kind is Measured:
            self.recorder.record(event.histogram, event.us)
        elif kind is Joined:
            # The join was asked for when the session became usable: what arrived since is legitimate.
            self._joined(event.room, arrival_ns, opening_ns=self._ready_at_ns)
        elif kind is Left:
            self._left(event.room, arrival_ns)
        elif kind is Origin:
            self.runtime.propagation.origin(event.stream, event.room or self.room, event.subject, event.at_ns)
        elif kind is Observed:
            self.runtime.propagation.observed(event.stream, event.room or self.room, event.subject,
                                              self.user.user_id, arrival_ns)
        elif kind is Kicked:
            self.kicked = True
            if self.kick_requested_ns is not None:  # the control-plane call → this user's own notice
                self.recorder.record("kick", (arrival_ns - self.kick_requested_ns) // 1000)
                self.kick_requested_ns = None
        elif kind is MustReconnect:
            self.must_reconnect = True
        elif kind is Refused:
            self.recorder.count(f"refused.{event.category}")
            self.recorder.count(f"errors.{event.code}")
            if event.final:
                self.refused = True
        elif kind is ProtocolError:
            self.recorder.count("protocol_errors")
            self.runtime.note_protocol_error(event.message)
        elif kind is TokenWanted:
            self._want_token(event)
        elif event is FOREIGN:
            self.recorder.count("foreign_messages")  # other clients' traffic: delivered, not ours to judge
        elif event is READY:
            if self._ready is not None and not self._ready.done():
                self._become_ready(arrival_ns - self.offset_ns)
        else:  # pragma: no cover - a protocol returned something that is not an event
            raise TypeError(f"{type(self.protocol).__name__} returned {event!r}, not an event")

    def _on_acked(self, ack: Acked, arrival_ns: int) -> None:
        request = ack.request
        latency_us = (arrival_ns - request.intended_ns) // 1000
        echo = ack.echo
        if echo is not None:  # our own message came back: we are one of its receivers
            if self.runtime.spread is not None:
                self.runtime.spread.observe(echo.sender, echo.seq, arrival_ns)
            server_ns = ack.server_ns if ack.server_ns is not None else arrival_ns
            if ack.server_ns is not None:
                self.recorder.from_server.record((arrival_ns - server_ns) // 1000)
            self.ledger.received(self.sender_id, self.membership_id, self.room, echo.sender, echo.seq, server_ns)
        if request.kind == "send":
            send_accounting.accepted(self.recorder, self.ledger, self.sender_id, request.seq, self.room,
                                     request.intended_ns, arrival_ns, ack.server_ns, request.sent_ns + self.offset_ns)
        self.runtime.report_ack(self, request, latency_us, None)

    def _on_rejected(self, rejection: Rejected, arrival_ns: int) -> None:
        self.recorder.count(f"errors.{rejection.code}")
        request = rejection.request
        if request is None:  # every rejection should answer a request; this one answered none
            self.recorder.count(f"untied_rejections.{rejection.category}")
            return
        if request.kind == "send":
            send_accounting.rejected(self.recorder, self.ledger, self.sender_id, request.seq, rejection.code,
                                     arrival_ns, rejection.category)
        self.runtime.report_ack(self, request, (arrival_ns - request.intended_ns) // 1000,
                                RequestFailed(rejection.code, rejection.message, rejection.category))

    # -- requests (called on the loop by the client API) ------------------------------------------

    @runs_on_loop
    def send_message(self, content: str, intended_ns: int, extra: dict[str, str] | None, waiter) -> None:
        if not self._can_send(waiter, "send"):
            return
        self.seq += 1
        request = Request("send", self.seq, intended_ns, time.time_ns(), waiter)
        self._write(self.protocol.send_message(request, content, extra), request)
        send_accounting.sent(self.recorder, self.ledger, self.sender_id, request.seq, self.room, intended_ns,
                             time.time_ns() + self.offset_ns)

    @runs_on_loop
    def request(self, name: str, args: tuple, waiter) -> None:
        """A service-specific request (a moderator's delete, a subscribe): the protocol encodes it."""
        if not self._can_send(waiter, name):
            return
        request = Request(name, 0, time.time_ns() + self.offset_ns, time.time_ns(), waiter)
        try:
            frame = self.protocol.encode_request(name, request, *args)
        except ValueError as exc:
            self.runtime.report_ack(self, request, 0, RequestFailed("invalid", str(exc)))
            return
        if isinstance(frame, TokenWanted):  # it goes out once its token came (Hotsock's re-subscribe)
            self._want_token(frame)
            return
        self._write(frame, request)

    def _can_send(self, waiter, kind: str) -> bool:
        if self.stopping:
            self.recorder.count("not_sent.stopping")
            if waiter is not None:
                self.runtime.resolve(waiter, RequestFailed("stopping", "load test is stopping"))
            return False
        if self.state is not SessionState.OPEN or not self.ws.is_open:
            self.recorder.count("not_sent.disconnected")
            self.runtime.report_not_sent(self, kind, waiter)
            return False
        return True

    def _write(self, frame: bytes, request: Request) -> None:
        self.ws.send(frame, self.protocol.text_frames)
        if not self.protocol.acks_sends and request.kind == "send" and request.waiter is not None:
            # Nothing will answer: a waiting user learns only that it went out.
            self.runtime.resolve(request.waiter, 0)

    def _flush(self) -> None:
        protocol, ws = self.protocol, self.ws
        if ws is None:
            return  # still connecting: kept until the socket is ours
        frames, protocol.outbox = protocol.outbox, []
        for frame in frames:
            ws.send(frame, protocol.text_frames)

    def _send_keepalive(self) -> None:
        self._keepalive = None
        if self.state is not SessionState.OPEN or self.ws is None or not self.ws.is_open:
            return
        frame = self.protocol.keepalive()
        if frame is not None:
            self.ws.send(frame, self.protocol.text_frames)
        self._keepalive = asyncio.get_running_loop().call_later(self.protocol.keepalive_s, self._send_keepalive)

    @runs_on_loop
    def expire_pending(self, older_than_ns: int) -> None:
        """Requests never answered (vendor SDKs may wait forever; a load client must not).

        The connection is still open, so the server chose silence: a send was accepted and
        delivered to no one, not even its sender (see the ledger's "presumed accepted")."""
        if self.protocol is None or not self.protocol.pending:
            return
        for request in self.protocol.expire(older_than_ns):
            self.recorder.count(f"timeouts.{request.kind}")
            if request.kind == "send":
                self.ledger.presumed_accepted(self.sender_id, request.seq, self.room, request.sent_ns + self.offset_ns)
            self.runtime.report_ack(self, request, None, RequestFailed("timeout", "no answer from the server"))

    @runs_on_loop
    def awaiting_send_answers(self) -> bool:
        return self.protocol is not None and self.protocol.awaiting_send_answers()

    def _fail_pending(self, why: str) -> None:
        """The connection is gone: no answer can come on it any more. (Whether a send was accepted
        is still learnt from other receivers; the ledger counts it then.)"""
        if self.protocol is None:
            return
        for request in self.protocol.unanswered():
            self.recorder.count(f"unanswered_at_close.{request.kind}")
            self.runtime.report_ack(self, request, None, RequestFailed("closed", why))
