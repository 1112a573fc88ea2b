"""IVS Real-Time's client protocol: the events socket's frames → neutral events, sans-I/O.

A stage carries no chat messages: a participant measures its own join, the roster as others change
it, its pings and its removal. What each server frame becomes (`receive`):

- the first `STAGE_STATE` (or `aws:ivs:STAGE_STATE`): `READY`, `Measured("join", open → this frame)`
  and, when the roster lists this participant (a publishers-only roster may not),
  `Origin("roster", own user id, when the connection attempt began)` — the join travels in the
  handshake (the token is the subprotocol), so it began before anyone could see it;
- a later `STAGE_STATE` with a higher `sequenceNumber`: `Observed("roster", userId)` for every
  participant id it lists that the previous one did not (a participant who comes back has a new
  participant id, so its return is seen again). The first roster is the baseline: whoever is in it
  was there before this participant joined and is owed to nobody. A `STAGE_STATE` whose sequence
  number is not above the last one is stale and ignored, as the SDK does (`events.STAGE_STATE.stale`);
- `PONG`: the answer to the oldest pending `ping` request (`Acked`, `Measured("ping", round trip)`);
- `aws:ivs:JOIN_ERROR` before the first roster: `Refused(category, code, message, final=fatal)` —
  the SDK gives up on a fatal join error; after it (the emulator's `expire` fault, TOKEN_EXPIRED, or
  any other code) an event only: SDK 1.41.0 reports ERROR TOKEN_EXPIRED and leaves the stage
  (STAGE_LEFT "unknown") without rejoining, and the close that follows is clean, which no policy
  comes back from;
- `aws:ivs:DISCONNECT`: `events.disconnect.<code>`, and `Kicked` for PARTICIPANT_DISCONNECTED
  (DisconnectParticipant): the SDK leaves and does not come back;
- `aws:ivs:SDP_ANSWER` to this participant's publish (a publisher on an emulator publishes on joining,
  as the SDK does: an SDP_OFFER to the token's `whip_url` + `/publish/<participant id>`, with a stub
  SDP, since media is out of scope): status 403 with the service's code is the publish refused —
  `Rejected(publish, category, STAGE_AT_CAPACITY | INSUFFICIENT_CAPABILITIES)` and
  `events.publish_error.<code>`, the participant staying joined as the SDK does; any other 4xx is
  refused too, by its status (`HTTP_<status>`, its category); 501 (the emulator holds the slot, no
  media) is `Acked(publish)` and `events.published`, and for a participant its first roster did not
  list (a publishers-only roster) `Origin("roster", own user id, the publish's time)`: publishing puts
  it on the others' rosters; an answer without an integer status is a
  `ProtocolError` and the publish `Rejected(…, SDP_ANSWER_UNREADABLE)`;
- any other type (SUBSCRIBER_COUNT, …): `events.<type>`; binary or unreadable frames:
  `ProtocolError`. Nothing a server sends raises.

The roster is the hot path (every join sends every member the whole roster): one `orjson.loads`
and one pass over the listed ids against the previous frame's set; no objects per participant.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from ..base import (
    READY,
    Acked,
    Category,
    ClientProtocol,
    Kicked,
    Measured,
    Observed,
    Origin,
    ProtocolError,
    Refused,
    Rejected,
    Request,
    ServiceEvent,
    UserSpec,
    category_of_http_status,
)
from . import codec

ROSTER = "roster"  # the propagation stream: A joins → each other participant's roster first listing A
JOIN = "join"  # histogram: socket open → first STAGE_STATE
PING = "ping"  # histogram and request: PING → PONG
PUBLISH_REQUEST = "publish"  # the publish offer's request id and pending key (one per connection)
# The service's SDP_ANSWER codes with a 400–403 status, by the names chatload counts them under.
PUBLISH_ERRORS = {codec.PUBLISH_STAGE_AT_CAPACITY: codec.STAGE_AT_CAPACITY,
                  codec.PUBLISH_NO_PERMISSIONS: codec.INSUFFICIENT_CAPABILITIES}
# A publish offer's SDP: media is out of scope, so a stub (the emulator never reads it).
STUB_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=chatload\r\nt=0 0\r\n"

_STATE_TYPES = (codec.STAGE_STATE, codec.STAGE_STATE_NAMESPACED)

# JOIN_ERROR codes → neutral categories (the emulator's HTTP statuses for the same refusals agree).
JOIN_ERROR_CATEGORIES = {
    codec.TOKEN_EXPIRED: Category.UNAUTHORIZED,
    codec.TOKEN_INVALID: Category.UNAUTHORIZED,
    codec.TOKEN_INVALID_SIGNATURE: Category.UNAUTHORIZED,
    codec.TOKEN_MISSING: Category.UNAUTHORIZED,
    codec.STAGE_AT_CAPACITY: Category.FORBIDDEN,
    codec.PARTICIPANT_DISCONNECTED: Category.FORBIDDEN,
    codec.INSUFFICIENT_CAPABILITIES: Category.FORBIDDEN,
    codec.TOKEN_REUSED: Category.INVALID,
    codec.STAGE_DELETED: Category.NOT_FOUND,
    codec.BAD_REQUEST: Category.INVALID,
    "INTERNAL": Category.SERVER_ERROR,
}
# Codes the SDK does not name fall back on the JOIN_ERROR's `type`.
JOIN_ERROR_TYPE_CATEGORIES = {
    codec.NOT_AUTHORIZED: Category.UNAUTHORIZED,
    codec.BAD_REQUEST: Category.INVALID,
    codec.INTERNAL_SERVER_ERROR: Category.SERVER_ERROR,
}


def join_error_category(error: codec.JoinError) -> Category:
    return JOIN_ERROR_CATEGORIES.get(error.code) or JOIN_ERROR_TYPE_CATEGORIES.get(error.type, Category.FORBIDDEN)


class StageProtocol(ClientProtocol):
    text_frames = True
    ready_on_open = False  # joined once the first STAGE_STATE arrives
    ready_timeout_s = 10.0
    acks_sends = False  # nothing is sent as a measured message on a stage
    keepalive_s = None  # the users' own ping task sends the SDK's PINGs, timed (`request("ping")`)

    def __init__(self, user: UserSpec, publish_urls: Mapping[str, str] | None = None) -> None:
        super().__init__(user)
        # Where this participant publishes, by sender id: filled by the service from the token as it
        # connects (after this protocol is made), read when the join is answered.
        self._publish_urls = publish_urls if publish_urls is not None else {}
        self._attempt_ns = 0  # when the connection attempt began (the join's start)
        self._opened_ns = 0
        self._sequence: int | None = None  # the last STAGE_STATE's sequence number (None: not joined)
        self._present: set[str] = set()  # participant ids of the last roster
        self._listed = True  # on its own first roster (False: a publishers-only roster, before publishing)
        self._pings = 0

    # -- times we are given ------------------------------------------------------------------------------

    def connecting(self, at_ns: int) -> None:
        self._attempt_ns = at_ns

    def opened(self, at_ns: int) -> None:
        self._opened_ns = at_ns

    # -- frames in ---------------------------------------------------------------------------------------

    def receive(self, payload: bytes, is_text: bool, at_ns: int):
        if not is_text:
            return ProtocolError("binary frame from the events socket")
        try:
            raw = orjson.loads(payload)
            kind = raw["type"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return ProtocolError("not a JSON object with a type")
        if kind in _STATE_TYPES:
            try:
                return self._stage_state(raw["payload"], at_ns)
            except (TypeError, KeyError, AttributeError):
                return self._unreadable(payload)
        if kind == codec.PONG:
            return self._pong(at_ns)
        if kind == codec.SDP_ANSWER and PUBLISH_REQUEST in self.pending:
            return self._publish_answer(raw.get("payload"), at_ns)
        try:
            frame = codec.parse_server_frame(payload)
        except codec.FrameError as exc:
            return ProtocolError(f"{str(kind)[:40]}: {exc}")
        if isinstance(frame, codec.JoinError):
            return self._join_error(frame)
        if isinstance(frame, codec.Disconnect):
            event = ServiceEvent(f"disconnect.{frame.code[:40]}")
            return (event, Kicked(frame.reason)) if frame.code == codec.PARTICIPANT_DISCONNECTED else event
        return ServiceEvent(str(kind)[:60])

    def _stage_state(self, state: dict, at_ns: int):
        """READY and the join's facts; an observation per participant new to the roster; or None when
        nobody is new. Raises TypeError, KeyError or AttributeError when the roster cannot be read."""
        sequence = state["sequenceNumber"]
        participants = state["participants"]
        if sequence.__class__ is not int or participants.__class__ is not list:
            raise TypeError("sequenceNumber and participants")
        if self._sequence is None:
            return self._joined(sequence, participants, at_ns)
        if sequence <= self._sequence:
            return ServiceEvent("STAGE_STATE.stale")
        present = self._present
        arrived = [p for p in participants if p["id"] not in present]
        own = self.user.user_id
        seen = [Observed(ROSTER, p["userId"]) for p in arrived if p["userId"] != own]
        if any(o.subject.__class__ is not str for o in seen):
            raise TypeError("userId")
        self._sequence = sequence
        if len(participants) == len(present) + len(arrived):  # nobody left: the set only grows
            present.update(p["id"] for p in arrived)
        else:
            self._present = {p["id"] for p in participants}
        if not seen:
            return None
        return seen[0] if len(seen) == 1 else tuple(seen)

    def _joined(self, sequence: int, participants: list, at_ns: int):
        present = {p["id"] for p in participants}
        listed = self._listed = any(p.get("userId") == self.user.user_id for p in participants)
        self._sequence, self._present = sequence, present
        # In the same socket read as the 101 it is 0: recorded as 1 µs, the resolution of a read's stamp.
        joined = Measured(JOIN, max(1, (at_ns - self._opened_ns) // 1000))
        url = self._publish_urls.get(self.user.sender_id)
        if url:  # the SDK publishes as soon as it has joined
            self.pending[PUBLISH_REQUEST] = Request(PUBLISH_REQUEST, 0, at_ns, at_ns)
            self.outbox.append(codec.encode_sdp_offer(PUBLISH_REQUEST, "chatload", url, STUB_SDP))
        if not listed:  # not on the roster (a publishers-only roster): nobody is owed our join
            return READY, joined
        return READY, joined, Origin(ROSTER, self.user.user_id, self._attempt_ns or self._opened_ns)

    def _unreadable(self, payload: bytes) -> ProtocolError:
        try:
            codec.parse_server_frame(payload)
        except codec.FrameError as exc:
            return ProtocolError(f"STAGE_STATE: {exc}")
        return ProtocolError("STAGE_STATE: a participant without a readable id or userId")

    def _pong(self, at_ns: int):
        oldest = next((key for key in self.pending if key.__class__ is int), None)  # pings are numbered
        if oldest is None:
            return ServiceEvent("PONG.unsolicited")
        request = self.pending.pop(oldest)  # PONGs answer PINGs in order
        return Acked(request), Measured(PING, max(1, (at_ns - request.intended_ns) // 1000))

    def _publish_answer(self, payload, at_ns: int):
        request = self.pending.pop(PUBLISH_REQUEST)
        status = payload.get("httpStatusCode") if payload.__class__ is dict else None
        if status.__class__ is not int:  # no status to read: neither held nor refused for sure
            return Rejected(request, Category.SERVER_ERROR, "SDP_ANSWER_UNREADABLE", "no integer httpStatusCode"), \
                ProtocolError("SDP_ANSWER without an integer httpStatusCode")
        if not 400 <= status < 500:  # 501 from the emulator: the slot is held, media is not emulated
            if self._listed:
                return Acked(request), ServiceEvent("published")
            # Not on the roster it joined (publishers only): publishing puts it there, so the others'
            # rosters owe this arrival from the publish on.
            return Acked(request), ServiceEvent("published"), Origin(ROSTER, self.user.user_id, request.intended_ns)
        message = str(payload.get("message", ""))[:200]
        code = PUBLISH_ERRORS.get(payload.get("errorCode"))
        if code is None:  # a refusal the SDK has no name for: counted by its status
            return Rejected(request, category_of_http_status(status), f"HTTP_{status}", message), \
                ServiceEvent(f"publish_error.HTTP_{status}")
        return Rejected(request, JOIN_ERROR_CATEGORIES[code], code, message), ServiceEvent(f"publish_error.{code}")

    def _join_error(self, error: codec.JoinError):
        if self._sequence is None:  # the join itself was refused
            return Refused(join_error_category(error), error.code[:60] or error.type[:60], error.message[:200],
                           final=error.fatal)
        event = ServiceEvent(f"join_error.{error.code[:40]}")
        return event

    # -- requests out ------------------------------------------------------------------------------------

    def send_message(self, request: Request, content: str, extra: Mapping[str, str] | None) -> bytes:
        raise ValueError("an IVS Real-Time stage carries no chat messages: its populations do not send")

    def encode_request(self, name: str, request: Request, *args) -> bytes:
        if name == PING:
            self._pings += 1
            self.pending[self._pings] = request
            return codec.encode_ping()
        return super().encode_request(name, request, *args)
