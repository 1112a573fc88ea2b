"""The messaging WebSocket of the emulator: handshakes, requests, fan-out and injected faults.

Fan-out is the hot path. A MESSAGE is serialised once, framed once and written straight to each
member's transport by the fan-out every emulator shares (`harness.emulation.fanout`: slow consumers
dropped and counted, the artificial delivery cost, the counts).

Delivery goes through one ordered line per room (`harness.emulation.delivery`, shared by every
emulator), so injected delay, jitter and pauses never reorder a room's frames (emulator choice: the
service's ordering is unpublished but observed FIFO).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from functools import partial

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ....emulation.delivery import DeliveryLine
from ....emulation.fanout import write_to_all
from ....emulation.faults import LineFaults
from ....emulation.frames import text_frame, write_framed
from ....emulation.websocket_plane import EndReportingConnection, WebSocketPlane
from .. import codec as ivschat
from .ids import FrameIdGenerator
from .limits import make_limiter
from .metrics import Metrics, RoomCounters
from .review import ReviewHandlers
from .state import IvsChatRooms, Room, TokenGrant, TokenRejected

FRAME_LIMIT = 10 * 1024  # bytes; larger frames get ERROR 413 (emulator choice)
HARD_FRAME_LIMIT = 1024 * 1024  # websockets closes with 1009 above this: protects the emulator itself
ATTRIBUTES_LIMIT = 1024  # bytes of keys and values in a SEND_MESSAGE's Attributes (emulator choice)


def _map_size(attributes: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())


class Member:
    """One open connection in a room."""

    __slots__ = ("id", "connection", "transport", "grant", "runtime", "connected_ns", "expiry", "remote", "ended")

    def __init__(self, member_id: int, connection: ServerConnection, grant: TokenGrant) -> None:
        self.id = member_id
        self.connection = connection
        self.transport = connection.transport
        self.grant = grant
        self.runtime: RoomRuntime | None = None
        self.connected_ns = time.time_ns()
        self.expiry: asyncio.TimerHandle | None = None
        self.remote = connection.remote_address[0] if connection.remote_address else ""
        # Kicked, expired or its room deleted: from that moment it is heard no more. Its close takes
        # a round trip, and frames it sends meanwhile were once accepted and fanned out.
        self.ended = False

    @property
    def room_id(self) -> str:
        return self.grant.room_id

    @property
    def user_id(self) -> str:
        return self.grant.user_id

    def describe(self) -> dict:
        return {
            "connection_id": self.id,
            "room_id": self.grant.room_id,
            "user_id": self.grant.user_id,
            "connected_at_ns": self.connected_ns,
            "capabilities": sorted(self.grant.capabilities),
        }


class RoomRuntime:
    """The live side of a room: members, its limiter, counters and fault settings."""

    def __init__(self, room: Room, algorithm: str, fanout: Callable[[RoomRuntime, bytes], None]) -> None:
        self.room = room
        self.members: dict[int, Member] = {}
        self.limiter = make_limiter(algorithm, room.maximum_message_rate_per_second)
        self.counters = RoomCounters()
        self.line = DeliveryLine(partial(fanout, self))

    def members_of(self, user_id: str) -> list[Member]:
        return [m for m in self.members.values() if m.grant.user_id == user_id]


class ChatConnection(EndReportingConnection):
    """A websockets server connection that knows its chat member. The quota count drops exactly
    once per counted handshake, including handshakes that fail after we accepted the token."""

    chat_member: Member | None = None


class DataPlane(WebSocketPlane, LineFaults):
    def __init__(
        self,
        state: IvsChatRooms,
        metrics: Metrics,
        review: ReviewHandlers,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_algorithm: str = "fixed-window",
        max_connections: int = 50_000,
        ping_interval: float | None = 20.0,
    ) -> None:
        make_limiter(rate_algorithm, 1)  # fail now, not at the first message, on a bad name
        self.state = state
        self.metrics = metrics
        self.review = review
        self.host = host
        self.port = port
        self.rate_algorithm = rate_algorithm
        self.max_connections = max_connections
        self.ping_interval = ping_interval
        self.rooms: dict[str, RoomRuntime] = {}
        self.frame_ids = FrameIdGenerator()
        self._member_ids = iter(range(1, 1 << 62))
        self._connection_count = 0
        self.default_delay = (0.0, 0.0)  # (delay_s, jitter_s) for rooms not set one by one
        self.delivery_cost_s = 0.0  # artificial CPU cost per frame written (capacity tests; `fanout.py`)

    # -- lifecycle --------------------------------------------------------------------------------

    def serve_options(self) -> dict:
        return dict(
            select_subprotocol=self._select_subprotocol,
            process_response=self._process_response,
            compression=None,  # one framing for all members; see the module docstring
            max_size=HARD_FRAME_LIMIT,
            ping_interval=self.ping_interval,
            server_header="chatload-ivschat-emulator",
            create_connection=ChatConnection,
        )

    def runtime(self, room: Room) -> RoomRuntime:
        runtime = self.rooms.get(room.id)
        if runtime is None or runtime.room is not room:
            runtime = self.rooms[room.id] = RoomRuntime(room, self.rate_algorithm, self._fanout)
            runtime.line.set_delay(*self.default_delay)
        return runtime

    # -- handshake --------------------------------------------------------------------------------

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered) -> str | None:
        # The token is the only subprotocol and must be echoed, or browsers, ws and undici fail.
        return offered[0] if offered else None

    def _process_response(self, connection: ChatConnection, request, response):
        if response.status_code != 101:
            return None
        token = response.headers.get("Sec-WebSocket-Protocol")
        try:
            if self._connection_count >= self.max_connections:
                raise TokenRejected(429, "concurrent connection quota exceeded")
            grant = self.state.redeem_token(token)
        except TokenRejected as rejected:
            self.metrics.handshakes_rejected[rejected.status] += 1
            return connection.respond(rejected.status, rejected.reason + "\n")
        connection.chat_member = Member(next(self._member_ids), connection, grant)
        # Counted at the handshake, not in the handler, so a burst of handshakes cannot overshoot.
        self._connection_count += 1
        connection.on_lost = self._connection_lost
        return None

    def _connection_lost(self, connection: ChatConnection) -> None:
        self._connection_count -= 1
        member = connection.chat_member
        if member.expiry is not None:
            member.expiry.cancel()
        if member.runtime is not None:
            member.runtime.members.pop(member.id, None)

    async def _handler(self, connection: ChatConnection) -> None:
        member: Member = connection.chat_member
        try:
            room = self.state.rooms.get(member.grant.room_id)
            if room is None:  # deleted between the handshake and now
                write_framed(member, self._error_frame("", 404, "Room not found"))
                await connection.close(1000, "Room deleted")
                return
            runtime = member.runtime = self.runtime(room)
            runtime.members[member.id] = member
            runtime.counters.connections_opened += 1
            remaining_s = (member.grant.session_expiration_ns - time.time_ns()) / 1e9
            member.expiry = self._loop.call_later(max(0.0, remaining_s), self._expire, member)
            async for data in connection:
                if member.ended:
                    continue
                if isinstance(data, bytes):
                    self.metrics.protocol_errors += 1
                    self._reject(member, "", 400, "Binary frames are not supported")
                elif len(data) > FRAME_LIMIT // 4 and len(data.encode()) > FRAME_LIMIT:
                    self.metrics.protocol_errors += 1
                    self._reject(member, "", 413, f"Frame exceeds {FRAME_LIMIT} bytes")
                else:
                    pending = self._on_request(member, ivschat.parse_client_frame(data))
                    if pending is not None:  # only the review handler makes us wait
                        await pending
        except ConnectionClosed:
            pass
        # Leaving the room happens in _connection_lost: a member stays a recipient until its TCP
        # connection is gone, exactly as long as frames could still reach it.

    # -- requests ---------------------------------------------------------------------------------

    def _on_request(self, member: Member, request):
        if isinstance(request, ivschat.SendMessageRequest):
            return self._send_message(member, request)
        if isinstance(request, ivschat.RequestError):
            self.metrics.protocol_errors += 1
            self._reject(member, request.request_id, request.code, request.message)
        elif isinstance(request, ivschat.DeleteMessageRequest):
            self._delete_message(member, request)
        elif isinstance(request, ivschat.DisconnectUserRequest):
            self._disconnect_user(member, request)
        return None

    def _send_message(self, member: Member, request: ivschat.SendMessageRequest):
        runtime = member.runtime
        room = runtime.room
        if ivschat.SEND_MESSAGE not in member.grant.capabilities:
            return self._reject(member, request.request_id, 403, "Token lacks the SEND_MESSAGE capability")
        if not request.content:
            return self._reject(member, request.request_id, 400, "Content must not be empty")
        if len(request.content) > room.maximum_message_length:
            return self._reject(member, request.request_id, 400,
                                f"Content exceeds maximumMessageLength ({room.maximum_message_length})")
        if request.attributes and _map_size(request.attributes) > ATTRIBUTES_LIMIT:
            return self._reject(member, request.request_id, 413, f"Attributes exceed {ATTRIBUTES_LIMIT} bytes")
        # One clock reading for the limit and the SendTime: read twice, a message let through in the
        # last microseconds of a second was stamped in the next one, whose count then read limit + 1.
        now_ns = time.time_ns()
        if not runtime.limiter.allow(now_ns / 1e9):
            return self._reject(member, request.request_id, 429, "Message rate limit exceeded")
        if room.message_review_handler and room.message_review_handler.get("uri"):
            return self._review_then_accept(member, request)
        self._accept(member, request.request_id, request.content, request.attributes, accepted_ns=now_ns)
        return None

    async def _review_then_accept(self, member: Member, request: ivschat.SendMessageRequest) -> None:
        runtime = member.runtime
        message_id = self.frame_ids()
        verdict = await self.review.review(
            runtime.room.message_review_handler,
            {
                "Content": request.content,
                "MessageId": message_id,
                "RoomArn": runtime.room.arn,
                "Attributes": request.attributes or {},
                "Sender": {"UserId": member.grant.user_id, "Attributes": member.grant.attributes or {},
                           "Ip": member.remote},
            },
        )
        if not verdict.allow:
            self._reject(member, request.request_id, 406, verdict.reason or "Message denied by the review handler")
            return
        self._accept(member, request.request_id, verdict.content, verdict.attributes, message_id)

    def _accept(self, member: Member, request_id: str, content: str, attributes, message_id: str | None = None,
                accepted_ns: int | None = None):
        runtime = member.runtime
        runtime.counters.messages_accepted += 1
        payload = ivschat.encode_message(
            message_id or self.frame_ids(), request_id, content, attributes, accepted_ns or time.time_ns(),
            member.grant.user_id, member.grant.attributes,
        )
        self._deliver(runtime, text_frame(payload))

    def _delete_message(self, member: Member, request: ivschat.DeleteMessageRequest) -> None:
        if ivschat.DELETE_MESSAGE not in member.grant.capabilities:
            self._reject(member, request.request_id, 403, "Token lacks the DELETE_MESSAGE capability")
        elif len(request.message_id) != 12 or not request.message_id.isalnum():
            self._reject(member, request.request_id, 400, "Id must be a 12-character message Id")
        else:
            self.delete_message(member.runtime.room, request.message_id, request.reason, request.request_id)

    def _disconnect_user(self, member: Member, request: ivschat.DisconnectUserRequest) -> None:
        if ivschat.DISCONNECT_USER not in member.grant.capabilities:
            self._reject(member, request.request_id, 403, "Token lacks the DISCONNECT_USER capability")
        else:
            self.disconnect_user(member.runtime.room, request.user_id, request.reason, request.request_id)

    # -- sending ----------------------------------------------------------------------------------

    def _error_frame(self, request_id: str, code: int, message: str) -> bytes:
        return text_frame(ivschat.encode_error(self.frame_ids(), request_id, code, message))

    def _reject(self, member: Member, request_id: str, code: int, message: str) -> None:
        if member.runtime is not None:
            member.runtime.counters.rejected[code] += 1
        write_framed(member, self._error_frame(request_id, code, message))

    def _deliver(self, runtime: RoomRuntime, frame: bytes, after: Callable[[], None] | None = None) -> None:
        """Fan a frame out to the room now, or through the room's delivery line when faults are set."""
        runtime.line.deliver(frame, after)

    def _fanout(self, runtime: RoomRuntime, frame: bytes) -> None:
        write_to_all(frame, runtime.members.values(), runtime.counters, cost_s=self.delivery_cost_s,
                     room_id=runtime.room.id)

    def _expire(self, member: Member) -> None:
        """Session expiry: ERROR 401, then a clean close (emulator choice, see the spec)."""
        member.ended = True
        write_framed(member, self._error_frame("", 401, "Session expired"))
        self.close_soon(member, 1000, "Session expired")

    # -- operations shared with the control plane -------------------------------------------------

    def send_event(self, room: Room, event_name: str, attributes: dict | None, request_id: str = "") -> str:
        event_id = self.frame_ids()
        runtime = self.runtime(room)
        runtime.counters.events += 1
        payload = ivschat.encode_event(event_id, request_id, event_name, attributes, time.time_ns())
        self._deliver(runtime, text_frame(payload))
        return event_id

    def delete_message(self, room: Room, message_id: str, reason: str, request_id: str = "") -> None:
        # Both spellings: SDK 1.1.1 reads only the deprecated MessageID.
        attributes = {"MessageID": message_id, "MessageId": message_id}
        if reason:
            attributes["Reason"] = reason
        self.send_event(room, ivschat.EVENT_DELETE_MESSAGE, attributes, request_id)

    def disconnect_user(self, room: Room, user_id: str, reason: str, request_id: str = "") -> None:
        runtime = self.runtime(room)
        runtime.counters.events += 1
        payload = ivschat.encode_event(
            self.frame_ids(), request_id, ivschat.EVENT_DISCONNECT_USER,
            {"UserId": user_id, "Reason": reason}, time.time_ns(),
        )

        for member in runtime.members_of(user_id):  # no word of theirs counts from now on
            member.ended = True

        def close_targets() -> None:
            # After the event has gone out, so the kicked user sees why before the close frame.
            for member in runtime.members_of(user_id):
                member.ended = True
                self.close_soon(member, 1000, reason or "Disconnected by moderator")

        self._deliver(runtime, text_frame(payload), after=close_targets)

    def room_updated(self, room: Room) -> None:
        runtime = self.rooms.get(room.id)
        if runtime is not None and runtime.limiter.rate != room.maximum_message_rate_per_second:
            runtime.limiter = make_limiter(self.rate_algorithm, room.maximum_message_rate_per_second)

    def room_deleted(self, room: Room) -> None:
        runtime = self.rooms.pop(room.id, None)
        if runtime is None:
            return
        runtime.line.close()
        for member in list(runtime.members.values()):
            member.ended = True
            write_framed(member, self._error_frame("", 404, "Room deleted"))
            self.close_soon(member, 1000, "Room deleted")

    # -- faults (loopback admin endpoints and tests) ----------------------------------------------

    def runtimes(self) -> Iterable[RoomRuntime]:
        return self.rooms.values()

    def expire_sessions(self, members: list[Member]) -> list[dict]:
        for member in members:
            if member.expiry is not None:
                member.expiry.cancel()
            self._expire(member)
        return [m.describe() for m in members]

    # The rest of the shared faults (select, drop, delay, pause, resume, restart) come from LineFaults,
    # its hooks (all_members, line_of, lines) from `runtimes()` and `runtime(room)`.

    def close_member(self, member: Member, code: int, reason: str) -> None:
        member.ended = True
        self.close_soon(member, code, reason)

    def connection_count(self) -> int:
        return self._connection_count

    def room_metrics(self) -> dict[str, tuple[int, RoomCounters]]:
        for runtime in self.rooms.values():
            runtime.counters.messages_dropped_paused = runtime.line.dropped_paused
        return {rid: (len(rt.members), rt.counters) for rid, rt in self.rooms.items()}
