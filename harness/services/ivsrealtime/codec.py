"""Amazon IVS Real-Time events socket: a sans-I/O codec for both ends (`shared/spec/ivs-realtime.md` §3.3).

Frames are JSON text `{"type": ..., "payload": {...}}`. What each side sends and how the official web
broadcast SDK 1.41.0 reads it (read in its minified `StageSocket` and `StageConnection`):

Server → client (`parse_server_frame` on the client side; `encode_*` on the emulator side):
  `StageState`  STAGE_STATE (or aws:ivs:STAGE_STATE) with a rising `sequenceNumber`: the whole roster
                (`participants`: id, userId, attributes, isPublishing, audioMuted, videoStopped) and
                `disconnected` (participants removed by DisconnectParticipant, `status: "KICKED"`). The
                first one means "joined"; the SDK ignores any whose sequence number is not above the
                last it saw, and diffs rosters to raise participant joined/left/updated events.
  `Pong`        PONG, the answer to PING.
  `JoinError`   aws:ivs:JOIN_ERROR {code, message, type, fatal, nominal}: the join (or the session) is
                refused; the socket closes after it. The SDK maps `code` (TOKEN_EXPIRED, TOKEN_INVALID,
                TOKEN_INVALID_SIGNATURE, TOKEN_MISSING, STAGE_DELETED, PARTICIPANT_DISCONNECTED,
                INTERNAL, BAD_REQUEST) to its own errors; any other code becomes a generic join failure
                that keeps the payload's `message` and `fatal`.
  `Disconnect`  aws:ivs:DISCONNECT {code, reason}: the server removes a joined participant
                (PARTICIPANT_DISCONNECTED, STAGE_DELETED, TOKEN_REUSED); the socket closes after it.
  `OtherServerFrame`  any other type (SDP_ANSWER, SUBSCRIBER_COUNT, …): kept, never an error, as the
                SDK ignores types it does not handle.

Client → server (`encode_*` on the client side; `parse_client_frame` in the emulator):
  `Ping` {"type":"PING"}; `SetState` {"type":"SET_STATE", audioMuted, videoStopped, version};
  `SdpOffer` aws:ivs:SDP_OFFER; `ExchangeToken` aws:ivs:EXCHANGE_TOKEN; `OtherClientFrame` for types
  the emulator does not act on.

How a client joins: `events_url?error_over_ws=1&topic=<topic>/publishers&traceid=<id>` with the raw
participant token as the only WebSocket subprotocol (`join_query`). A participant publishes with an
`aws:ivs:SDP_OFFER` whose `whipUrl` is the token's `whip_url` + `/publish/<participant id>` (the SDK's
WHIP exchange over the socket); `aws:ivs:SDP_ANSWER` carries `httpStatusCode` and the service's
`errorCode` (2005: the stage is at capacity; 2003: no permission), which the SDK maps to its public
errors.

`serverTimeNs` in a STAGE_STATE payload is an emulator extension (when the roster change happened,
wall clock, ns); the real service sends no timestamp, so `StageState.server_ns` is None there.

Parsing raises only `FrameError`, on anything a peer sends that is not a readable frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import orjson

from .. import untrusted

STAGE_STATE = "STAGE_STATE"
STAGE_STATE_NAMESPACED = "aws:ivs:STAGE_STATE"
PONG = "PONG"
PING = "PING"
SET_STATE = "SET_STATE"
JOIN_ERROR = "aws:ivs:JOIN_ERROR"
DISCONNECT = "aws:ivs:DISCONNECT"
SDP_OFFER = "aws:ivs:SDP_OFFER"
SDP_ANSWER = "aws:ivs:SDP_ANSWER"
EXCHANGE_TOKEN = "aws:ivs:EXCHANGE_TOKEN"

# JOIN_ERROR `type`s (the SDK's multiplexed join response uses the same three words).
NOT_AUTHORIZED = "NOT_AUTHORIZED"
BAD_REQUEST = "BAD_REQUEST"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

# JOIN_ERROR `code`s the SDK knows, and the emulator's own for capacity, reuse and capabilities.
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_INVALID = "TOKEN_INVALID"
TOKEN_INVALID_SIGNATURE = "TOKEN_INVALID_SIGNATURE"
TOKEN_MISSING = "TOKEN_MISSING"
STAGE_DELETED = "STAGE_DELETED"
PARTICIPANT_DISCONNECTED = "PARTICIPANT_DISCONNECTED"
STAGE_AT_CAPACITY = "STAGE_AT_CAPACITY"
# The service's codes in an SDP_ANSWER, as SDK 1.41.0 names them (its enum: 2003 NoPermissions, 2005 StageAtCapacity).
PUBLISH_NO_PERMISSIONS, PUBLISH_STAGE_AT_CAPACITY = 2003, 2005
TOKEN_REUSED = "TOKEN_REUSED"
INSUFFICIENT_CAPABILITIES = "INSUFFICIENT_CAPABILITIES"

KICKED = "KICKED"


class FrameError(ValueError):
    """A frame a peer sent that cannot be read. The only exception the parsers raise."""


# -- frames ------------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Participant:
    id: str
    user_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    is_publishing: bool = False
    audio_muted: bool = False
    video_stopped: bool = False

    def to_json(self) -> dict:
        return {"id": self.id, "userId": self.user_id, "attributes": dict(self.attributes),
                "isPublishing": self.is_publishing, "audioMuted": self.audio_muted,
                "videoStopped": self.video_stopped}


@dataclass(slots=True, frozen=True)
class DisconnectedParticipant:
    id: str
    user_id: str
    status: str = KICKED


@dataclass(slots=True, frozen=True)
class StageState:
    sequence_number: int
    participants: tuple[Participant, ...]
    disconnected: tuple[DisconnectedParticipant, ...] = ()
    server_ns: int | None = None  # emulator extension; None from the real service

    def participant(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants if p.id == participant_id), None)


@dataclass(slots=True, frozen=True)
class Pong:
    pass


@dataclass(slots=True, frozen=True)
class JoinError:
    code: str
    message: str = ""
    type: str = NOT_AUTHORIZED
    fatal: bool = True


@dataclass(slots=True, frozen=True)
class Disconnect:
    code: str
    reason: str = ""


@dataclass(slots=True, frozen=True)
class OtherServerFrame:
    type: str
    payload: object


ServerFrame = StageState | Pong | JoinError | Disconnect | OtherServerFrame


@dataclass(slots=True, frozen=True)
class Ping:
    pass


@dataclass(slots=True, frozen=True)
class SetState:
    audio_muted: bool
    video_stopped: bool


@dataclass(slots=True, frozen=True)
class SdpOffer:
    request_id: str
    whip_url: str


@dataclass(slots=True, frozen=True)
class ExchangeToken:
    request_id: str
    trace_id: str


@dataclass(slots=True, frozen=True)
class OtherClientFrame:
    type: str


ClientFrame = Ping | SetState | SdpOffer | ExchangeToken | OtherClientFrame


# -- joining -----------------------------------------------------------------------------------------------


def join_query(topic: str, trace_id: str) -> str:
    """The query string the SDK appends to `events_url`."""
    query = {"error_over_ws": "1", "topic": f"{topic}/publishers", "traceid": trace_id}
    return urlencode(query, safe="/")


# -- encoding ----------------------------------------------------------------------------------------------


def _frame(kind: str, payload: dict | None = None) -> bytes:
    return orjson.dumps({"type": kind} if payload is None else {"type": kind, "payload": payload})


def encode_ping() -> bytes:
    return _frame(PING)


def encode_set_state(audio_muted: bool, video_stopped: bool) -> bytes:
    return orjson.dumps({"audioMuted": audio_muted, "type": SET_STATE, "version": "0", "videoStopped": video_stopped})


def encode_stage_state(state: StageState) -> bytes:
    payload: dict = {
        "sequenceNumber": state.sequence_number,
        "participants": [p.to_json() for p in state.participants],
        "disconnected": [{"id": d.id, "userId": d.user_id, "status": d.status} for d in state.disconnected],
        "serverFeatures": [],
    }
    if state.server_ns is not None:
        payload["serverTimeNs"] = state.server_ns
    return _frame(STAGE_STATE, payload)


def encode_pong() -> bytes:
    return _frame(PONG)


def encode_join_error(error: JoinError) -> bytes:
    return _frame(JOIN_ERROR, {"code": error.code, "message": error.message, "type": error.type,
                               "fatal": error.fatal, "nominal": True})


def encode_disconnect(disconnect: Disconnect) -> bytes:
    return _frame(DISCONNECT, {"code": disconnect.code, "reason": disconnect.reason})


def encode_sdp_answer(request_id: str, status: int, message: str, error_code: int | None = None) -> bytes:
    """The answer to an SDP_OFFER: an HTTP-like status and the service's error code, which SDK
    1.41.0 reads together (400–403 with 2005: STAGE_AT_CAPACITY; with 2003: TOKEN_PERMISSIONS_DENIED)."""
    return _frame(SDP_ANSWER, {"requestId": request_id, "httpStatusCode": status,
                               "errorCode": status if error_code is None else error_code,
                               "content": "", "message": message})


def encode_sdp_offer(request_id: str, trace_id: str, whip_url: str, sdp: str) -> bytes:
    """A publish or subscribe offer as the SDK sends it over the events socket (its WHIP exchange)."""
    return _frame(SDP_OFFER, {"whipUrl": whip_url, "platform": "web", "requestId": request_id, "traceId": trace_id,
                              "content": sdp, "contentType": "application/sdp"})


def encode_exchange_token_error(request_id: str, trace_id: str, message: str) -> bytes:
    return _frame(EXCHANGE_TOKEN, {"requestId": request_id, "traceId": trace_id, "error": {"message": message}})


# -- parsing -----------------------------------------------------------------------------------------------


def _load(data: str | bytes, limit: int | None = untrusted.MAX_JSON_DEPTH) -> tuple[str, object]:
    try:  # a depth limit on client frames: nothing deeper ever reaches a repr or an echo
        raw = untrusted.loads(data, limit)
    except untrusted.Refused as refused:
        raise FrameError(refused.reason) from None
    if not isinstance(raw, dict):
        raise FrameError("a frame is a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise FrameError("a frame has a string type")
    return kind, raw


def _text(value: object, name: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise FrameError(f"{name} must be a string")
    return value


def _flag(value: object, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FrameError(f"{name} must be a boolean")
    return value


def _string_map(value: object, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FrameError(f"{name} must be a map of strings")
    return value


def _participant(raw: object) -> Participant:
    if not isinstance(raw, dict):
        raise FrameError("a participant is an object")
    return Participant(_text(raw.get("id"), "participant id"), _text(raw.get("userId"), "userId", ""),
                       _string_map(raw.get("attributes"), "attributes"),
                       _flag(raw.get("isPublishing"), "isPublishing"), _flag(raw.get("audioMuted"), "audioMuted"),
                       _flag(raw.get("videoStopped"), "videoStopped"))


def _list(value: object, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FrameError(f"{name} must be a list")
    return value


def parse_server_frame(data: str | bytes) -> ServerFrame:
    """One frame from the events socket, client side. Raises `FrameError` for anything unreadable."""
    kind, raw = _load(data, limit=None)  # the client's receive path: no depth walk over a big roster
    payload = raw.get("payload")
    if kind in (PONG,):
        return Pong()
    if kind not in (STAGE_STATE, STAGE_STATE_NAMESPACED, JOIN_ERROR, DISCONNECT):
        return OtherServerFrame(kind, payload)
    if not isinstance(payload, dict):
        raise FrameError(f"{kind} needs a payload object")
    if kind == JOIN_ERROR:
        return JoinError(_text(payload.get("code"), "code", ""), _text(payload.get("message"), "message", ""),
                         _text(payload.get("type"), "type", ""), payload.get("fatal") is not False)
    if kind == DISCONNECT:
        return Disconnect(_text(payload.get("code"), "code", ""), _text(payload.get("reason"), "reason", ""))
    sequence = payload.get("sequenceNumber")
    if not isinstance(sequence, int) or isinstance(sequence, bool):
        raise FrameError("STAGE_STATE sequenceNumber must be an integer")
    server_ns = payload.get("serverTimeNs")
    if server_ns is not None and (not isinstance(server_ns, int) or isinstance(server_ns, bool)):
        raise FrameError("STAGE_STATE serverTimeNs must be an integer")
    disconnected = []
    for item in _list(payload.get("disconnected"), "disconnected"):
        if not isinstance(item, dict):
            raise FrameError("a disconnected participant is an object")
        disconnected.append(DisconnectedParticipant(_text(item.get("id"), "id"), _text(item.get("userId"), "userId", ""),
                                                    _text(item.get("status"), "status", "")))
    participants = tuple(_participant(p) for p in _list(payload.get("participants"), "participants"))
    return StageState(sequence, participants, tuple(disconnected), server_ns)


def parse_client_frame(data: str | bytes) -> ClientFrame:
    """One frame from a participant, emulator side. Raises `FrameError` for anything unreadable."""
    kind, raw = _load(data)
    if kind == PING:
        return Ping()
    if kind == SET_STATE:
        return SetState(_flag(raw.get("audioMuted"), "audioMuted"), _flag(raw.get("videoStopped"), "videoStopped"))
    if kind in (SDP_OFFER, EXCHANGE_TOKEN):
        payload = raw.get("payload")
        if not isinstance(payload, dict):
            raise FrameError(f"{kind} needs a payload object")
        request_id = _text(payload.get("requestId"), "requestId")
        if kind == SDP_OFFER:
            return SdpOffer(request_id, _text(payload.get("whipUrl"), "whipUrl", ""))
        return ExchangeToken(request_id, _text(payload.get("traceId"), "traceId", ""))
    return OtherClientFrame(kind[:64])
