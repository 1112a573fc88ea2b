"""The meeting signaling WebSocket: join tokens, JOIN/PING/LEAVE, data-message fan-out, throttles, replay.

One listener serves every meeting at `ws://host:port/control/<MeetingId>` (the meeting's
`MediaPlacement.SignalingUrl`). The handshake is the SDK's: subprotocols `_aws_wt_session` then the
join token; the server selects `_aws_wt_session` (the SDK never reads the selected protocol, but a
browser, `ws` or undici fail a handshake that selects nothing or something not offered, and
echoing the marker keeps the token out of response headers).

Fan-out is the hot path, as in every emulator: an accepted message is serialised once, framed once
(unmasked, no compression; `harness.emulation.frames`) and written straight to each receiver's
transport by the shared fan-out (`harness.emulation.fanout`, which also drops slow consumers). It goes
through the meeting's `DeliveryLine` (shared fault behaviour: delay, jitter, pause) as an
`Outgoing` record, which the line passes through untouched.

Emulator choices (the service publishes none of this; see the package docstring for the list):
close codes follow the service's own 4000 + HTTP-status pattern (4410 "gone" = meeting ended,
45xx = server error): 4400 unreadable frame (when the client asked for close-on-error), 4403
join token rejected, 4429 hard rate limit, 4401 session expired (fault injection).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ....emulation.delivery import DeliveryLine
from ....emulation.fanout import write_to_all
from ....emulation.faults import LineFaults
from ....emulation.frames import binary_frame, write_framed
from ....emulation.memory import Recent
from ....emulation.throttle import Rate, TokenBucket
from ....emulation.websocket_plane import EndReportingConnection, WebSocketPlane, offered_subprotocols
from .. import codec
from .limits import DATA_HARD, DATA_SOFT, ReplayBuffer
from .metrics import MeetingCounters, Metrics
from .state import PLACEHOLDER_HOST, Attendee, Meeting, MeetingState

PATH_PREFIX = "/control/"
HARD_FRAME_LIMIT = 1024 * 1024  # websockets closes with 1009 above this: protects the emulator itself
TURN_TTL_S = 300
# Server-only frames a client has no business sending: answered with ERROR 400, connection kept.
SERVER_ONLY = (codec.JoinAck, codec.Index, codec.LeaveAck, codec.AudioStatus, codec.ErrorFrame)

ENDED_KEPT = 1000  # ended meetings whose counters /metrics still shows (emulator choice)

CLOSE_BAD_FRAME = 4400
CLOSE_EXPIRED = 4401
CLOSE_TOKEN_REJECTED = 4403
CLOSE_MEETING_ENDED = 4410
CLOSE_HARD_LIMIT = 4429
AUDIO_STATUS_MEETING_ENDED = 410  # the SDK's MeetingEnded
AUDIO_STATUS_ATTENDEE_REMOVED = 411  # the SDK's AudioAttendeeRemoved


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Outgoing(NamedTuple):
    """One accepted data message on its way through a meeting's delivery line."""

    frame: bytes  # the framed DATA_MESSAGE, the same bytes for every receiver
    sender_attendee_id: str  # receivers are the meeting's other attendees
    ingest_ns: int


class Member:
    """One signaling connection. It receives data messages once it has joined (JOIN) and until it
    leaves (LEAVE) or closes."""

    __slots__ = ("id", "connection", "transport", "attendee", "meeting_id", "joined", "connected_ns",
                 "close_on_error", "closing")

    def __init__(self, member_id: int, connection: ServerConnection, attendee: Attendee, close_on_error: bool):
        self.id = member_id
        self.connection = connection
        self.transport = connection.transport
        self.attendee = attendee
        self.meeting_id = attendee.meeting_id
        self.joined = False
        self.connected_ns = time.time_ns()
        self.close_on_error = close_on_error
        self.closing = False  # the server decided to close: frames still queued from it are not read

    # What the shared fault selection reads: a "room" is a meeting, a "user" its ExternalUserId.
    @property
    def room_id(self) -> str:
        return self.meeting_id

    @property
    def user_id(self) -> str:
        return self.attendee.external_user_id

    @property
    def attendee_id(self) -> str:
        return self.attendee.attendee_id

    def describe(self) -> dict:
        return {"connection_id": self.id, "room_id": self.meeting_id, "user_id": self.user_id,
                "attendee_id": self.attendee_id, "joined": self.joined, "connected_at_ns": self.connected_ns}


class AttendeeLimits:
    """Per-attendee data-message buckets, and how far its replay has been served."""

    __slots__ = ("soft", "hard", "seen_until_ns")

    def __init__(self, soft: Rate, hard: Rate) -> None:
        self.soft = TokenBucket(soft)
        self.hard = TokenBucket(hard)
        self.seen_until_ns = 0  # messages ingested up to here reached one of its joined connections


class MeetingRuntime:
    """The live side of a meeting: connections, buckets, replay buffer, counters, delivery line."""

    def __init__(self, meeting: Meeting, replay: ReplayBuffer, fanout: Callable[[MeetingRuntime, Outgoing], None]):
        self.meeting = meeting
        self.members: dict[int, Member] = {}
        self.limits: dict[str, AttendeeLimits] = {}
        self.replay = replay
        self.counters = MeetingCounters()
        self.line = DeliveryLine(partial(fanout, self))
        self.last_ingest_ns = 0
        self.last_fanned_ns = 0  # ingest time of the newest message that has left the delivery line

    def next_ingest_ns(self) -> int:
        """Wall-clock ns, strictly increasing within the meeting (the spec calls it monotonic)."""
        self.last_ingest_ns = max(time.time_ns(), self.last_ingest_ns + 1)
        return self.last_ingest_ns

    def joined_connections_of(self, attendee_id: str, besides: Member | None = None) -> list[Member]:
        return [m for m in self.members.values() if m.joined and m.attendee_id == attendee_id and m is not besides]


class SignalingConnection(EndReportingConnection):
    """A websockets connection that carries its join token through the handshake. Members leave
    their meeting at its end: a member stays a receiver exactly as long as frames could reach it."""

    join_token: str | None = None
    close_on_error = True
    member: Member | None = None


class SignalingPlane(WebSocketPlane, LineFaults):
    def __init__(self, state: MeetingState, metrics: Metrics, *, host: str = "127.0.0.1", port: int = 0,
                 soft_limit: Rate = DATA_SOFT, hard_limit: Rate = DATA_HARD, replay_messages: int = 1024,
                 replay_seconds: float = 300.0, ping_interval: float | None = 20.0) -> None:
        self.state = state
        self.metrics = metrics
        self.host = host
        self.port = port
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        self.replay_messages = replay_messages
        self.replay_seconds = replay_seconds
        self.ping_interval = ping_interval
        self.meetings: dict[str, MeetingRuntime] = {}
        # Counters of deleted meetings, still scraped: the last ENDED_KEPT of them, so meeting churn
        # cannot grow memory and /metrics without end.
        self.ended = Recent(ENDED_KEPT)
        self.delivery_cost_s = 0.0  # artificial CPU cost per frame written (capacity tests)
        self._member_ids = itertools.count(1)
        self._connections: set[SignalingConnection] = set()

    # -- lifecycle --------------------------------------------------------------------------------

    def serve_options(self) -> dict:
        return dict(
            process_request=self._check_request,
            select_subprotocol=self._select_subprotocol,
            compression=None,  # one framing for every receiver; see the module docstring
            max_size=HARD_FRAME_LIMIT,
            ping_interval=self.ping_interval,
            server_header="chatload-chime-emulator",
            create_connection=SignalingConnection,
        )

    @property
    def signaling_base(self) -> str:
        """What a meeting's SignalingUrl starts with (its MeetingId follows)."""
        return f"{self.endpoint}{PATH_PREFIX.rstrip('/')}"

    def runtime(self, meeting: Meeting) -> MeetingRuntime:
        runtime = self.meetings.get(meeting.meeting_id)
        if runtime is None or runtime.meeting is not meeting:
            replay = ReplayBuffer(self.replay_messages, self.replay_seconds)
            runtime = self.meetings[meeting.meeting_id] = MeetingRuntime(meeting, replay, self._fanout)
            runtime.line.set_delay(*self.default_delay)
        return runtime

    # -- handshake --------------------------------------------------------------------------------

    def _check_request(self, connection: SignalingConnection, request):
        """Refuse at the HTTP level what is not a signaling handshake at all (counted by status)."""
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        offered = offered_subprotocols(request)
        if not url.path.startswith(PATH_PREFIX) or "/" in url.path[len(PATH_PREFIX):]:
            return self._refuse(connection, 404, "signaling path is /control/<MeetingId>")
        if query.get("X-Chime-Control-Protocol-Version") != [codec.CONTROL_PROTOCOL_VERSION]:
            return self._refuse(connection, 400, "X-Chime-Control-Protocol-Version=3 is required")
        if len(offered) != 2 or offered[0] != codec.SUBPROTOCOL:
            return self._refuse(connection, 400, "offer the subprotocols _aws_wt_session and the join token")
        connection.join_token = offered[1]
        connection.close_on_error = query.get("X-Amzn-Chime-Send-Close-On-Error") == ["1"]
        return None

    def _refuse(self, connection: ServerConnection, status: int, reason: str):
        self.metrics.handshakes_rejected[status] += 1
        return connection.respond(status, reason + "\n")

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered) -> str | None:
        return codec.SUBPROTOCOL if codec.SUBPROTOCOL in offered else None

    async def _handler(self, connection: SignalingConnection) -> None:
        token, connection.join_token = connection.join_token, None  # keep no copy of the secret
        lookup = self.state.lookup_token(token)
        path_meeting = urlsplit(connection.request.path).path[len(PATH_PREFIX):].lower()
        if lookup.problem == "ended":
            await self._reject_session(connection, None, CLOSE_MEETING_ENDED, "The meeting already ended")
            return
        if lookup.attendee is None or lookup.meeting.meeting_id != path_meeting:
            await self._reject_session(connection, codec.ErrorFrame(403, "Join token rejected"),
                                       CLOSE_TOKEN_REJECTED, "Authentication rejected")
            return
        runtime = self.runtime(lookup.meeting)
        member = connection.member = Member(next(self._member_ids), connection, lookup.attendee,
                                            connection.close_on_error)
        connection.on_lost = self._connection_lost
        self._connections.add(connection)
        runtime.members[member.id] = member
        runtime.counters.connections_opened += 1
        try:
            async for data in connection:
                self._on_frame(runtime, member, data)
        except ConnectionClosed:
            pass

    async def _reject_session(self, connection: ServerConnection, error: codec.ErrorFrame | None, code: int,
                              reason: str) -> None:
        self.metrics.sessions_rejected[code] += 1
        try:
            if error is not None:
                await connection.send(codec.encode(error, now_ms()))
            await connection.close(code, reason)
        except ConnectionClosed:
            pass

    def _connection_lost(self, connection: SignalingConnection) -> None:
        self._connections.discard(connection)
        member = connection.member
        runtime = self.meetings.get(member.meeting_id)
        if runtime is not None and runtime.members.pop(member.id, None) is not None and member.joined:
            self._leave(runtime, member)

    # -- frames from a client ---------------------------------------------------------------------

    def _on_frame(self, runtime: MeetingRuntime, member: Member, data: bytes | str) -> None:
        if member.closing:
            return
        try:
            frame = codec.decode(data)
        except codec.FrameError as exc:
            self.metrics.protocol_errors += 1
            self._reject(runtime, member, 400, str(exc))
            if member.close_on_error:
                self._close(runtime, member, CLOSE_BAD_FRAME, "Unreadable signaling frame")
            return
        match frame:
            case codec.DataMessages():
                self._data_messages(runtime, member, frame)
            case codec.Ping(ping_id=ping_id):
                self._send_one(member, codec.Pong(ping_id))
            case codec.Join():
                self._join(runtime, member)
            case codec.Leave():
                self._send_one(member, codec.LeaveAck())
                if member.joined:
                    self._leave(runtime, member)
            case _ if isinstance(frame, SERVER_ONLY):
                self._reject(runtime, member, 400, f"{type(frame).__name__} is a server frame")
            case _:
                pass  # Pong, SUBSCRIBE, CLIENT_METRIC, AUDIO_CONTROL…: a data-only emulator has nothing to do

    def _join(self, runtime: MeetingRuntime, member: Member) -> None:
        if member.joined:
            self._reject(runtime, member, 400, "Already joined")
            return
        limits = self._limits(runtime, member.attendee_id)
        # What this attendee has not been sent: everything, for a first join; since it last had a
        # joined connection, for a comeback; nothing new while another of its connections is joined.
        seen = runtime.last_fanned_ns if runtime.joined_connections_of(member.attendee_id) else limits.seen_until_ns
        member.joined = True
        runtime.counters.joins += 1
        self._send_one(member, codec.JoinAck(
            f"{int(time.time()) + TURN_TTL_S}:{member.attendee_id}", secrets.token_urlsafe(18), TURN_TTL_S,
            (f"turn:turn.{PLACEHOLDER_HOST}:3478?transport=udp",)))
        joined_attendees = {m.attendee_id for m in runtime.members.values() if m.joined}
        self._send_one(member, codec.Index(num_participants=len(joined_attendees)))
        retained = runtime.replay.live(time.time_ns(), after_ns=seen, until_ns=runtime.last_fanned_ns,
                                       excluding=member.attendee_id)
        for item in retained:
            write_framed(member, item.frame)
        runtime.counters.messages_replayed += len(retained)
        runtime.counters.frames_delivered += len(retained)

    def _leave(self, runtime: MeetingRuntime, member: Member) -> None:
        member.joined = False
        if not runtime.joined_connections_of(member.attendee_id, besides=member):
            self._limits(runtime, member.attendee_id).seen_until_ns = runtime.last_fanned_ns

    def _limits(self, runtime: MeetingRuntime, attendee_id: str) -> AttendeeLimits:
        limits = runtime.limits.get(attendee_id)
        if limits is None:
            limits = runtime.limits[attendee_id] = AttendeeLimits(self.soft_limit, self.hard_limit)
        return limits

    def _data_messages(self, runtime: MeetingRuntime, member: Member, frame: codec.DataMessages) -> None:
        if not member.joined:
            return self._reject(runtime, member, 400, "Send JOIN before data messages")
        if not frame.messages:
            return self._reject(runtime, member, 400, "DATA_MESSAGE frame without messages")
        for message in frame.messages:  # a frame is accepted or refused whole
            problem = message.problem()
            if problem is not None:
                return self._reject(runtime, member, 400, problem)
        limits = self._limits(runtime, member.attendee_id)
        clock = time.monotonic()
        attendee = member.attendee
        throttled = []
        timestamp_ms = now_ms()
        for message in frame.messages:
            if not limits.hard.allow(clock):
                self._reject(runtime, member, 429, "Data message rate above the hard limit")
                self._close(runtime, member, CLOSE_HARD_LIMIT, "Data message rate above the hard limit")
                break
            if not limits.soft.allow(clock):
                throttled.append(codec.DataMessage(message.topic, message.data, message.lifetime_ms,
                                                   attendee.attendee_id, attendee.external_user_id, 0))
                continue
            ingest_ns = runtime.next_ingest_ns()
            accepted = codec.DataMessage(message.topic, message.data, message.lifetime_ms, attendee.attendee_id,
                                         attendee.external_user_id, ingest_ns)
            wire = binary_frame(codec.encode_data_messages((accepted,), timestamp_ms))
            runtime.counters.messages_accepted += 1
            runtime.replay.keep(ingest_ns, message.lifetime_ms, attendee.attendee_id, wire)
            runtime.line.deliver(Outgoing(wire, attendee.attendee_id, ingest_ns))
        if throttled:
            runtime.counters.messages_throttled += len(throttled)
            self._send_one(member, codec.DataMessages(tuple(throttled)))
        return None

    # -- sending ----------------------------------------------------------------------------------

    def _send_one(self, member: Member, frame: codec.Frame) -> None:
        write_framed(member, binary_frame(codec.encode(frame, now_ms())))

    def _reject(self, runtime: MeetingRuntime, member: Member, status: int, description: str) -> None:
        runtime.counters.rejected[status] += 1
        self._send_one(member, codec.ErrorFrame(status, description))

    def _close(self, runtime: MeetingRuntime | None, member: Member, code: int, reason: str) -> None:
        if runtime is not None:
            runtime.counters.closed[code] += 1
        member.closing = True
        self.close_soon(member, code, reason)

    def _fanout(self, runtime: MeetingRuntime, out: Outgoing) -> None:
        sender = out.sender_attendee_id
        missed = write_to_all(out.frame, [m for m in runtime.members.values() if m.joined and m.attendee_id != sender],
                              runtime.counters, cost_s=self.delivery_cost_s, kind="meeting",
                              room_id=runtime.meeting.meeting_id)
        # Closing and aborted connections leave before this message counts as seen: a comeback replays it.
        for member in missed or ():
            self._leave(runtime, member)
        runtime.last_fanned_ns = max(runtime.last_fanned_ns, out.ingest_ns)

    # -- what the control plane tells us ----------------------------------------------------------

    def meeting_deleted(self, meeting: Meeting) -> None:
        """Every connection of the meeting hears AUDIO_STATUS 410 (MeetingEnded), then close 4410."""
        runtime = self.meetings.pop(meeting.meeting_id, None)
        if runtime is None:
            return
        runtime.line.close()
        self.ended[meeting.meeting_id] = runtime.counters
        for member in list(runtime.members.values()):
            self._send_one(member, codec.AudioStatus(AUDIO_STATUS_MEETING_ENDED))
            self._close(runtime, member, CLOSE_MEETING_ENDED, "The meeting ended")

    def attendee_deleted(self, meeting: Meeting, attendee: Attendee) -> None:
        """The attendee's connections hear AUDIO_STATUS 411 (AudioAttendeeRemoved), then close 4410:
        for that attendee the meeting is over (emulator choice)."""
        runtime = self.meetings.get(meeting.meeting_id)
        if runtime is None:
            return
        for member in [m for m in runtime.members.values() if m.attendee_id == attendee.attendee_id]:
            self._send_one(member, codec.AudioStatus(AUDIO_STATUS_ATTENDEE_REMOVED))
            self._close(runtime, member, CLOSE_MEETING_ENDED, "The attendee was removed from the meeting")
        runtime.limits.pop(attendee.attendee_id, None)

    # -- faults (the shared admin routes and tests; the rest comes from LineFaults) --------------

    def runtimes(self) -> Iterable[MeetingRuntime]:  # with runtime(meeting): LineFaults' hooks
        return self.meetings.values()

    def close_member(self, member: Member, code: int, reason: str) -> None:
        self._close(self.meetings.get(member.meeting_id), member, code, reason)

    def expire_sessions(self, members: list[Member]) -> list[dict]:
        """Chime publishes no session expiry: the emulator's is ERROR 401 then close 4401, which
        amazon-chime-sdk-js reads as a terminal SignalingBadRequest (no reconnect). The join token
        stays valid: an application that joins again may use it."""
        for member in members:
            runtime = self.meetings.get(member.meeting_id)
            if runtime is not None:
                self._reject(runtime, member, 401, "Session expired")
            self._close(runtime, member, CLOSE_EXPIRED, "Session expired")
        return [m.describe() for m in members]

    def connection_count(self) -> int:
        return len(self._connections)

    def meeting_metrics(self) -> dict[str, tuple[int, MeetingCounters]]:
        for runtime in self.meetings.values():
            runtime.counters.messages_dropped_paused = runtime.line.dropped_paused
        live = {mid: (len(rt.members), rt.counters) for mid, rt in self.meetings.items()}
        return {**{mid: (0, counters) for mid, counters in self.ended.items()}, **live}
