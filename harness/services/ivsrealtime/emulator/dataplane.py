"""The events WebSocket: joins, the roster (STAGE_STATE), PING, kicks, caps and injected faults.

A join is decided during the handshake (`_admit`), so a burst of joins cannot overshoot a cap: the
slot is reserved before the 101 goes out and released exactly once, when the TCP connection is gone
(`connection_lost`). With `error_over_ws=1` in the query (what the SDK sends) a refused join is
still upgraded and then answered with `aws:ivs:JOIN_ERROR` and a close; without it the handshake is
refused with an HTTP status (emulator choice: 401 token problems, 403 not allowed or at capacity,
404 unknown or deleted stage, 409 token in use, 400 bad query).

Every roster change (a join, a leave, a kick, a publisher's SET_STATE) takes the stage's next
sequence number and goes to every joined participant through the stage's `DeliveryLine`, so the
shared delay/jitter/pause faults apply to roster propagation as they do to IVS Chat messages.

Publishing is decided where the web broadcast SDK meets it (SDK 1.41.0, measured): on its publish
request — the WHIP `POST <whip_url>/publish/<participant id>` (what the SDK sent here), or the same
offer over this socket (`aws:ivs:SDP_OFFER`, which the SDK also knows) — not at join; a PUBLISH
token joins a full stage. The 13th publisher's offer is answered 403 with the service's code 2005
(`StageErrorCode.STAGE_AT_CAPACITY` to the SDK, a PUBLISH_ERROR), a subscribe-only token's with 403
and 2003 (the SDK stops that one itself, TOKEN_NOT_ALLOWED, before sending anything). An accepted
offer takes a publisher slot until the participant leaves and shows `isPublishing: true`; its answer
is 501, as media is not emulated (`publish`).

Emulator choices, where the service is silent (see also the package docstring):
- Every joined participant counts as a subscriber (cap 10,000 by default) until its publish is
  accepted; a participant with a socket and no media counts toward these caps (unverified).
- The roster lists every joined participant (`roster="all"`) or only publishers
  (`roster="publishers"`; a subscriber's join then answers it alone with the current state).
- Token reuse (`token_reuse`): "replace" (default, what the SDK documents for TOKEN_REUSED: the
  earlier connection gets `aws:ivs:DISCONNECT TOKEN_REUSED` and the new one joins), "refuse" (a
  token in use gets JOIN_ERROR TOKEN_REUSED) or "single-use" (a token that ever joined gets it).
- Token expiry is checked at join only, as the SDK checks it only before joining, publishing or
  subscribing; the shared `expire` fault sends JOIN_ERROR TOKEN_EXPIRED to joined participants,
  which SDK 1.41.0 reports as StageEvents.ERROR TOKEN_EXPIRED, then STAGE_LEFT with reason "unknown"
  (tests/test_ivsrealtime_web_sdk.py).
- Unreadable or unknown client frames are ignored and counted (`protocol_errors`); the connection
  stays. SDP_OFFER is answered with SDP_ANSWER status 501 and EXCHANGE_TOKEN with an error: no media.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ....emulation.delivery import DeliveryLine
from ....emulation.fanout import write_to_all
from ....emulation.faults import LineFaults
from ....emulation.frames import text_frame, write_framed
from ....emulation.websocket_plane import EndReportingConnection, WebSocketPlane, offered_subprotocols
from .. import codec
from ..tokens import PUBLISH, ParticipantClaims, TokenError, unverified_claims
from .metrics import Metrics, StageCounters
from .state import MAX_PUBLISHERS, MAX_SUBSCRIBERS, RealtimeState, Stage

FRAME_LIMIT = 64 * 1024  # client frames above this close the socket with 1009 (emulator choice)
KICKED_KEPT = 50  # `disconnected` entries a STAGE_STATE carries (the most recent kicks)
TOKEN_REUSE_MODES = ("replace", "refuse", "single-use")
ROSTER_MODES = ("all", "publishers")
HTTP_STATUS = {
    codec.TOKEN_MISSING: 401, codec.TOKEN_INVALID: 401, codec.TOKEN_INVALID_SIGNATURE: 401,
    codec.TOKEN_EXPIRED: 401, codec.PARTICIPANT_DISCONNECTED: 403, codec.INSUFFICIENT_CAPABILITIES: 403,
    codec.STAGE_AT_CAPACITY: 403, codec.STAGE_DELETED: 404, codec.TOKEN_REUSED: 409, codec.BAD_REQUEST: 400,
}
UNKNOWN_STAGE = "stage not found"


@dataclass
class Refusal:
    """A join the events socket refuses, and what the participant's event log should say."""

    error: codec.JoinError
    stage: Stage | None = None
    participant_id: str | None = None
    event_error_code: str | None = None  # the model's EventErrorCode for the JOIN_ERROR event


@dataclass
class Admission:
    claims: ParticipantClaims
    stage: Stage
    publishing: bool
    released: bool = False


def refusal(code: str, message: str, kind: str = codec.NOT_AUTHORIZED, **fields) -> Refusal:
    return Refusal(codec.JoinError(code, message, kind), **fields)


class Member:
    """One joined participant's connection."""

    __slots__ = ("id", "connection", "transport", "claims", "stage_id", "publishing", "audio_muted",
                 "video_stopped", "connected_ns", "left", "closing")

    def __init__(self, member_id: int, connection: ServerConnection, admission: Admission) -> None:
        self.id = member_id
        self.connection = connection
        self.transport = connection.transport
        self.claims = admission.claims
        self.stage_id = admission.stage.id
        self.publishing = admission.publishing
        self.audio_muted = False
        self.video_stopped = False
        self.connected_ns = time.time_ns()
        self.left = False
        self.closing = False  # the server is closing it (a drop fault): its frames are heard no more

    @property
    def room_id(self) -> str:
        return self.stage_id

    @property
    def user_id(self) -> str:
        return self.claims.user_id

    @property
    def participant_id(self) -> str:
        return self.claims.participant_id

    def roster_entry(self) -> codec.Participant:
        return codec.Participant(self.participant_id, self.user_id, self.claims.attributes, self.publishing,
                                 self.audio_muted, self.video_stopped)

    def describe(self) -> dict:
        return {"connection_id": self.id, "room_id": self.stage_id, "user_id": self.user_id,
                "participant_id": self.participant_id, "publishing": self.publishing,
                "connected_at_ns": self.connected_ns}


class StageRuntime:
    """The live side of a stage: joined members, reserved slots, the sequence, counters, faults."""

    def __init__(self, stage: Stage, fanout: Callable[[StageRuntime, bytes], None]) -> None:
        self.stage = stage
        self.members: dict[int, Member] = {}  # joined, by connection id
        # participant id → its joined connection. Recorded only once the handshake succeeded (in
        # `_join`): a failed handshake for the same token must not displace a connection still joined.
        self.holders: dict[str, EventsConnection] = {}
        self.joining: dict[str, EventsConnection] = {}  # participant id → its admitted handshake in flight
        self.publishers = 0  # reserved slots, joined or about to join
        self.subscribers = 0
        self.sequence = 1  # an empty stage's state; the first join makes it 2 (the SDK wants > 0)
        self.kicked: deque[codec.DisconnectedParticipant] = deque(maxlen=KICKED_KEPT)
        self.counters = StageCounters()
        self.line = DeliveryLine(partial(fanout, self))

    def member_of(self, participant_id: str) -> Member | None:
        holder = self.holders.get(participant_id)
        member = holder.member if holder is not None else None
        return member if member is not None and not member.left else None

    def current(self, participant_id: str) -> EventsConnection | None:
        """The participant's latest live connection: a handshake in flight, else the joined one."""
        for table in (self.joining, self.holders):
            connection = table.get(participant_id)
            if connection is not None and not connection.verdict.released:
                return connection
        return None

    def forget(self, participant_id: str, connection: EventsConnection) -> None:
        """`connection` no longer holds or awaits the participant's place (another may)."""
        for table in (self.joining, self.holders):
            if table.get(participant_id) is connection:
                del table[participant_id]


class EventsConnection(EndReportingConnection):
    """A websockets server connection carrying its join verdict (its slot is released at its end)."""

    verdict: Admission | Refusal | None = None
    member: Member | None = None


class DataPlane(WebSocketPlane, LineFaults):
    def __init__(self, state: RealtimeState, metrics: Metrics, *, host: str = "127.0.0.1", port: int = 0,
                 max_publishers: int = MAX_PUBLISHERS, max_subscribers: int = MAX_SUBSCRIBERS,
                 token_reuse: str = "replace", roster: str = "all", ping_interval: float | None = 20.0) -> None:
        if token_reuse not in TOKEN_REUSE_MODES:
            raise ValueError(f"token_reuse must be one of {TOKEN_REUSE_MODES}")
        if roster not in ROSTER_MODES:
            raise ValueError(f"roster must be one of {ROSTER_MODES}")
        self.state = state
        self.metrics = metrics
        self.host = host
        self.port = port
        self.max_publishers = max_publishers
        self.max_subscribers = max_subscribers
        self.token_reuse = token_reuse
        self.roster = roster
        self.ping_interval = ping_interval
        self.stages: dict[str, StageRuntime] = {}
        self._member_ids = iter(range(1, 1 << 62))
        self._open = 0  # admitted connections whose TCP connection is not yet gone
        self.delivery_cost_s = 0.0  # artificial CPU cost per frame written (capacity tests)

    # -- lifecycle --------------------------------------------------------------------------------------------

    def serve_options(self) -> dict:
        return dict(process_request=self._process_request, select_subprotocol=self._select_subprotocol,
                    compression=None, max_size=FRAME_LIMIT, ping_interval=self.ping_interval,
                    server_header="chatload-ivsrealtime-emulator", create_connection=EventsConnection)

    def runtime(self, stage: Stage) -> StageRuntime:
        runtime = self.stages.get(stage.id)
        if runtime is None or runtime.stage is not stage:
            runtime = self.stages[stage.id] = StageRuntime(stage, self._fanout)
            runtime.line.set_delay(*self.default_delay)
        return runtime

    # -- handshake: the join verdict --------------------------------------------------------------------------

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered) -> str | None:
        # The token is the only subprotocol and must be echoed, or browsers fail the handshake.
        return offered[0] if offered else None

    def _process_request(self, connection: EventsConnection, request):
        query = parse_qs(urlsplit(request.path).query)
        offered = offered_subprotocols(request)
        verdict = self._admit(offered[0] if offered else "", query, connection)
        connection.verdict = verdict
        if isinstance(verdict, Refusal):
            if query.get("error_over_ws") != ["1"]:
                self.metrics.handshakes_rejected[HTTP_STATUS.get(verdict.error.code, 400)] += 1
                self._count_refusal(verdict)
                return connection.respond(HTTP_STATUS.get(verdict.error.code, 400), verdict.error.message + "\n")
            return None
        self._open += 1
        connection.on_lost = self._connection_lost
        return None

    def _admit(self, token: str, query: dict[str, list[str]], connection: EventsConnection) -> Admission | Refusal:
        now = time.time()
        try:
            claims = self.state.verify(token, now)
        except TokenError as error:
            known: dict = {}
            if error.code == codec.TOKEN_EXPIRED:  # the signature was good: we know whose token it is
                claims_seen = unverified_claims(token)
                known["stage"] = self.state.find_stage(str(claims_seen.get("resource", "")))
                known["participant_id"] = str(claims_seen.get("jti", ""))
            return refusal(error.code, str(error), **known)
        stage = self.state.find_stage(claims.stage_arn)
        pid = claims.participant_id
        if stage is None:
            if claims.stage_arn in self.state.deleted_stages:
                return refusal(codec.STAGE_DELETED, "the stage has been deleted")
            return refusal(codec.TOKEN_INVALID, UNKNOWN_STAGE)
        topic = query.get("topic", [f"{claims.topic}/publishers"])[-1]
        if topic != f"{claims.topic}/publishers":
            return refusal(codec.BAD_REQUEST, "topic does not match the token", codec.BAD_REQUEST, stage=stage,
                           participant_id=pid)
        if pid in self.state.blocked:
            return refusal(codec.PARTICIPANT_DISCONNECTED, "this participant was disconnected", stage=stage,
                           participant_id=pid)
        runtime = self.runtime(stage)
        current = runtime.current(pid)
        if (self.token_reuse == "refuse" and current is not None) or (
                self.token_reuse == "single-use" and (current is not None or pid in self.state.used)):
            return refusal(codec.TOKEN_REUSED, "the participant token is already in use", stage=stage,
                           participant_id=pid)
        leaving = current.verdict if current is not None else None  # replace mode: it makes room
        taken = runtime.subscribers - (1 if leaving and not leaving.publishing else 0)
        if taken >= self.max_subscribers:
            return refusal(codec.STAGE_AT_CAPACITY, f"the stage has {self.max_subscribers} subscribers",
                           stage=stage, participant_id=pid, event_error_code="QUOTA_EXCEEDED")
        runtime.subscribers += 1
        runtime.joining[pid] = connection  # the holder only once its handshake succeeds (`_join`)
        return Admission(claims, stage, False)

    def _count_refusal(self, verdict: Refusal) -> None:
        code = verdict.error.code
        if verdict.stage is not None and verdict.stage.id in self.state.stages:
            self.runtime(verdict.stage).counters.joins_rejected[code] += 1
            if verdict.participant_id:
                self.state.event(verdict.stage, verdict.participant_id, "JOIN_ERROR", time.time(),
                                 verdict.event_error_code)
        else:
            self.metrics.unattributed_rejections[code] += 1

    def _connection_lost(self, connection: EventsConnection) -> None:
        self._open -= 1
        admission: Admission = connection.verdict
        admission.released = True
        runtime = self.stages.get(admission.stage.id)
        if runtime is None or runtime.stage is not admission.stage:
            return  # the stage was deleted: its runtime (and its counts) went with it
        if admission.publishing:
            runtime.publishers -= 1
        else:
            runtime.subscribers -= 1
        runtime.forget(admission.claims.participant_id, connection)
        if connection.member is not None:
            self._leave(connection.member)

    # -- the connection ---------------------------------------------------------------------------------------

    async def _handler(self, connection: EventsConnection) -> None:
        verdict = connection.verdict
        try:
            if isinstance(verdict, Admission) and verdict.stage.id not in self.state.stages:
                verdict = refusal(codec.STAGE_DELETED, "the stage has been deleted")  # deleted meanwhile
            elif isinstance(verdict, Admission) and verdict.claims.participant_id in self.state.blocked:
                verdict = refusal(codec.PARTICIPANT_DISCONNECTED, "this participant was disconnected",  # meanwhile
                                  stage=verdict.stage, participant_id=verdict.claims.participant_id)
            if isinstance(verdict, Refusal):
                self._count_refusal(verdict)
                await connection.send(codec.encode_join_error(verdict.error).decode())
                await connection.close(1000, verdict.error.code)
                return
            member = self._join(connection, verdict)
            async for data in connection:
                self._on_frame(member, data)
        except ConnectionClosed:
            pass

    def _join(self, connection: EventsConnection, admission: Admission) -> Member:
        runtime = self.runtime(admission.stage)
        pid = admission.claims.participant_id
        # Whoever holds the participant's place now, not at admission: of two handshakes in flight
        # for one token, the later join displaces the earlier, so one connection is ever joined.
        previous = runtime.member_of(pid)
        if previous is not None:  # token reuse, "replace" mode (the other modes refused at admission)
            self._disconnect(previous, codec.TOKEN_REUSED, "the token was used by another connection")
        runtime.forget(pid, connection)
        member = connection.member = Member(next(self._member_ids), connection, admission)
        runtime.holders[pid] = connection
        runtime.members[member.id] = member
        runtime.counters.joins_accepted += 1
        self.state.joined(admission.stage, admission.claims, admission.publishing, time.time())
        if self.roster == "all" or member.publishing:
            self._roster_changed(runtime)
        else:  # a subscriber, invisible in a publishers-only roster: it alone learns the current state
            write_framed(member, self._state_frame(runtime))
        return member

    def _on_frame(self, member: Member, data: str | bytes) -> None:
        if member.closing:
            return
        runtime = self.stages.get(member.stage_id)
        counters = runtime.counters if runtime is not None else StageCounters()
        if isinstance(data, bytes):
            counters.protocol_errors += 1
            return
        try:
            frame = codec.parse_client_frame(data)
        except codec.FrameError:
            counters.protocol_errors += 1
            return
        if isinstance(frame, codec.Ping):
            counters.pings += 1
            write_framed(member, text_frame(codec.encode_pong()))
        elif isinstance(frame, codec.SetState):
            if member.publishing and (frame.audio_muted, frame.video_stopped) != (member.audio_muted,
                                                                                  member.video_stopped):
                member.audio_muted, member.video_stopped = frame.audio_muted, frame.video_stopped
                if runtime is not None and not member.left:
                    self._roster_changed(runtime)
        elif isinstance(frame, codec.SdpOffer):
            write_framed(member, text_frame(self._sdp_offer(member, runtime, frame)))
        elif isinstance(frame, codec.ExchangeToken):
            write_framed(member, text_frame(codec.encode_exchange_token_error(
                frame.request_id, frame.trace_id, "token exchange is not emulated")))
        else:
            counters.protocol_errors += 1

    def _sdp_offer(self, member: Member, runtime: StageRuntime | None, offer: codec.SdpOffer) -> bytes:
        """The socket's WHIP exchange: a publish is decided by `publish`; anything else (a subscribe)
        is answered 501, as media is not emulated."""
        if "/publish/" not in urlsplit(offer.whip_url).path or runtime is None:
            return codec.encode_sdp_answer(offer.request_id, 501, "media is not emulated")
        status, error_code, message = self.publish(member, runtime)
        return codec.encode_sdp_answer(offer.request_id, status, message, error_code)

    def publish(self, member: Member, runtime: StageRuntime) -> tuple[int, int | None, str]:
        """A joined participant's publish offer: (status, the service's error code, message). It takes
        a publisher slot (501: held, media is not emulated) or is refused with 403 as the service
        refuses it; a second offer while publishing is 501 again."""
        if member.publishing or member.left:
            return 501, None, "media is not emulated"
        refused = None
        if PUBLISH not in member.claims.capabilities:
            refused = (codec.PUBLISH_NO_PERMISSIONS, "INSUFFICIENT_CAPABILITIES", "the token does not allow publishing")
        elif runtime.publishers >= self.max_publishers:
            refused = (codec.PUBLISH_STAGE_AT_CAPACITY, "QUOTA_EXCEEDED", f"the stage has {self.max_publishers} publishers")
        if refused is not None:
            error_code, event_code, message = refused
            runtime.counters.publishes_rejected[event_code] += 1
            self.state.event(runtime.stage, member.participant_id, "PUBLISH_ERROR", time.time(), event_code)
            return 403, error_code, message
        runtime.publishers += 1
        runtime.subscribers -= 1
        member.publishing = member.connection.verdict.publishing = True  # its slot is released at its end
        runtime.counters.publishes_accepted += 1
        self.state.published(runtime.stage, member.participant_id, time.time())
        self._roster_changed(runtime)  # isPublishing: true
        return 501, None, "a publisher slot is held; media is not emulated"

    def whip_publish(self, token: str, participant_id: str) -> tuple[int, int | None, str]:
        """`POST <whip_url>/publish/<participant id>` with the token as bearer: `publish` for that
        participant when it is joined on the token's stage; 401 for a bad token, 404 when not joined."""
        try:
            claims = self.state.verify(token, time.time())
        except TokenError as error:
            return 401, None, str(error)
        stage = self.state.find_stage(claims.stage_arn)
        runtime = self.stages.get(stage.id) if stage is not None else None
        member = runtime.member_of(participant_id) if runtime is not None else None
        if member is None or participant_id != claims.participant_id:
            return 404, None, "no such participant on the stage"
        return self.publish(member, runtime)

    # -- the roster -------------------------------------------------------------------------------------------

    def _state_frame(self, runtime: StageRuntime) -> bytes:
        members = runtime.members.values()
        if self.roster == "publishers":
            members = [m for m in members if m.publishing]
        state = codec.StageState(runtime.sequence, tuple(m.roster_entry() for m in members), tuple(runtime.kicked),
                                 time.time_ns())
        return text_frame(codec.encode_stage_state(state))

    def _roster_changed(self, runtime: StageRuntime) -> None:
        runtime.sequence += 1
        runtime.counters.roster_changes += 1
        runtime.line.deliver(self._state_frame(runtime))

    def _leave(self, member: Member, kicked: bool = False) -> None:
        """The member is off the roster from now on (idempotent: a kick, then its connection's end)."""
        if member.left:
            return
        member.left = True
        runtime = self.stages.get(member.stage_id)
        if runtime is None:
            return
        runtime.members.pop(member.id, None)
        stage = runtime.stage
        self.state.left(stage, member.participant_id, member.publishing, time.time())
        if kicked:
            runtime.kicked.append(codec.DisconnectedParticipant(member.participant_id, member.user_id))
        if self.roster == "all" or member.publishing or kicked:
            self._roster_changed(runtime)

    def _fanout(self, runtime: StageRuntime, frame: bytes) -> None:
        write_to_all(frame, runtime.members.values(), runtime.counters, cost_s=self.delivery_cost_s,
                     kind="stage", room_id=runtime.stage.id)

    def _disconnect(self, member: Member, code: str, reason: str, kicked: bool = False) -> None:
        """aws:ivs:DISCONNECT to one member, then a clean close; it leaves the roster at once."""
        runtime = self.stages.get(member.stage_id)
        if runtime is not None:
            runtime.counters.disconnects[code] += 1
        write_framed(member, text_frame(codec.encode_disconnect(codec.Disconnect(code, reason))))
        self.close_soon(member, 1000, code)
        self._leave(member, kicked)

    # -- operations the control plane calls --------------------------------------------------------------------

    def disconnect_participant(self, stage: Stage, participant_id: str, reason: str) -> None:
        """The participant's token can no longer join; a joined participant is told and removed."""
        runtime = self.stages.get(stage.id)
        member = runtime.member_of(participant_id) if runtime is not None else None
        self.state.block(participant_id, member.claims.expires_at if member is not None else None)
        if member is not None:
            self._disconnect(member, codec.PARTICIPANT_DISCONNECTED, reason or "Disconnected by the control plane",
                             kicked=True)

    def stage_deleted(self, stage: Stage) -> None:
        runtime = self.stages.pop(stage.id, None)
        if runtime is None:
            return
        runtime.line.close()
        for member in list(runtime.members.values()):
            member.left = True
            write_framed(member, text_frame(codec.encode_disconnect(
                codec.Disconnect(codec.STAGE_DELETED, "the stage was deleted"))))
            self.close_soon(member, 1000, codec.STAGE_DELETED)
            self.state.left(stage, member.participant_id, member.publishing, time.time())

    # -- faults: the shared ones come from LineFaults; expiry is this service's own -------------------------

    def runtimes(self) -> Iterable[StageRuntime]:  # with runtime(stage): LineFaults' hooks
        return self.stages.values()

    def close_member(self, member: Member, code: int, reason: str) -> None:
        member.closing = True
        self.close_soon(member, code, reason)

    def expire_sessions(self, members: list[Member]) -> list[dict]:
        """JOIN_ERROR TOKEN_EXPIRED, then a close: the SDK's ERROR TOKEN_EXPIRED, then STAGE_LEFT "unknown"."""
        error = codec.JoinError(codec.TOKEN_EXPIRED, "the participant token has expired")
        for member in members:
            write_framed(member, text_frame(codec.encode_join_error(error)))
            self.close_soon(member, 1000, codec.TOKEN_EXPIRED)
            self._leave(member)
        return [m.describe() for m in members]

    def connection_count(self) -> int:
        return self._open

    def stage_metrics(self) -> dict[str, tuple[int, StageCounters]]:
        for runtime in self.stages.values():
            runtime.counters.frames_dropped_paused = runtime.line.dropped_paused
        return {sid: (len(rt.members), rt.counters) for sid, rt in self.stages.items()}
