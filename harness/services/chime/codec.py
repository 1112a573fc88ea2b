"""Amazon Chime SDK meeting signaling frames, sans-I/O, for both ends (emulator and load client).

A signaling WebSocket message is one binary frame: a one-byte frame type, `0x05` (the SDK's
FRAME_TYPE_RTC; `0x02` is accepted inbound, as the SDK itself does), then a proto2 `SdkSignalFrame`
(`signaling.proto`, field numbers from amazon-chime-sdk-js 3.32.0). `decode` turns those bytes into
one of the small frame classes below, `encode` turns a frame back into bytes. No sockets, no
clocks: every frame's `timestamp_ms` (the sender's wall clock, required on the wire) is set by the
caller. `decode` raises nothing but `FrameError`, whatever a peer sends.

What a load client needs:
- connect to `signaling_url(Meeting.MediaPlacement.SignalingUrl)` with `subprotocols(join_token)`;
- send `encode(Join(), timestamp_ms=…)`; the server answers `JoinAck` then `Index` (then, for a
  meeting with live messages, replayed `DataMessages`);
- send `encode(DataMessages((DataMessage(topic, data, lifetime_ms),)), timestamp_ms=…)`;
- receive `DataMessages` from the other attendees: each `DataMessage` carries the server's
  `ingest_time_ns` and the sender's `sender_attendee_id`/`sender_external_user_id`. A message the
  server throttled comes back to its own sender with `ingest_time_ns == 0` (`.throttled`), which
  is the only acknowledgement the service gives: an accepted message is not echoed to its sender.
- `Ping(ping_id)` → `Pong(ping_id)`; `Leave()` → `LeaveAck()`;
- `ErrorFrame(status, description)`: 403 join token rejected, 400 bad frame, 429 hard rate limit.
  The close that may follow uses 4000 + an HTTP-like status (4410 meeting ended, 45xx server error).
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass
from urllib.parse import urlencode, urlsplit

from google.protobuf.message import DecodeError

from . import signaling_pb2 as pb

FRAME_TYPE_RTC = 0x05  # what the SDK sends and what the emulator sends
INBOUND_FRAME_TYPES = frozenset({0x05, 0x02})  # the SDK also accepts 0x02 from the server
SUBPROTOCOL = "_aws_wt_session"  # first subprotocol; the join token is the second
PROTOCOL_VERSION = 2  # SdkJoinFrame.protocol_version
CONTROL_PROTOCOL_VERSION = "3"  # the X-Chime-Control-Protocol-Version query parameter
MAX_DATA_BYTES = 2048  # SDK-side check on a data message's `data`
TOPIC_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,36}")  # SDK-side check on a topic (whole string)
HAS_STREAM_UPDATE = pb.HAS_STREAM_UPDATE  # the join flag the SDK sets

Type = pb.SdkSignalFrame.Type


class FrameError(ValueError):
    """Bytes that are not a signaling frame this codec can read (the only exception `decode` raises)."""


# -- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataMessage:
    """One `SdkDataMessagePayload`. `ingest_time_ns` is None when absent (what a client sends), the
    server's ingest time (wall clock, ns) on a delivered message, and 0 on a throttled one."""

    topic: str
    data: bytes
    lifetime_ms: int = 0
    sender_attendee_id: str = ""
    sender_external_user_id: str = ""
    ingest_time_ns: int | None = None

    @property
    def throttled(self) -> bool:
        return self.ingest_time_ns == 0

    def problem(self) -> str | None:
        """Why the SDK itself would refuse to send this message, or None."""
        if not TOPIC_PATTERN.fullmatch(self.topic):
            return "topic must match ^[a-zA-Z0-9_-]{1,36}$"
        if len(self.data) > MAX_DATA_BYTES:
            return f"data must be at most {MAX_DATA_BYTES} bytes"
        return None


@dataclass(frozen=True, slots=True)
class Join:
    protocol_version: int = PROTOCOL_VERSION
    flags: int = HAS_STREAM_UPDATE
    client_source: str = ""
    chime_sdk_version: str = ""
    audio_session_id: int = 0
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class JoinAck:
    turn_username: str = ""
    turn_password: str = ""
    turn_ttl: int = 0
    turn_uris: tuple[str, ...] = ()
    _: KW_ONLY
    timestamp_ms: int = 0

    def __repr__(self) -> str:  # TURN credentials are secrets: never in logs
        return f"JoinAck(turn_username=…, turn_ttl={self.turn_ttl}, turn_uris={self.turn_uris!r})"


@dataclass(frozen=True, slots=True)
class Index:
    num_participants: int = 0
    at_capacity: bool = False
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Leave:
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class LeaveAck:
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Pong:
    ping_id: int
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class DataMessages:
    messages: tuple[DataMessage, ...]
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class AudioStatus:
    """The SDK maps 410 to MeetingEnded and 411 to AudioAttendeeRemoved."""

    status: int
    _: KW_ONLY
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """An `SdkErrorFrame`. It travels in an SdkSignalFrame of type AUDIO_STATUS when we send it
    (the one type whose only SDK consumer reads `error` first); any frame carrying an error decodes
    to this class, whatever its type."""

    status: int
    description: str = ""
    _: KW_ONLY
    frame_type: int = Type.AUDIO_STATUS
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class OtherFrame:
    """A well-formed frame of a type this codec does not model (SUBSCRIBE, CLIENT_METRIC, …)."""

    frame_type: int
    _: KW_ONLY
    timestamp_ms: int = 0

    @property
    def type_name(self) -> str:
        return Type.Name(self.frame_type)


Frame = (Join | JoinAck | Index | Leave | LeaveAck | Ping | Pong | DataMessages | AudioStatus | ErrorFrame
         | OtherFrame)


# -- connecting -----------------------------------------------------------------------------------


def signaling_url(base: str, sdk_version: str = "chatload", user_agent: str = "chatload") -> str:
    """The URL the SDK opens: the SignalingUrl plus the query parameters it always adds."""
    query = urlencode({
        "X-Chime-Control-Protocol-Version": CONTROL_PROTOCOL_VERSION,
        "X-Amzn-Chime-Send-Close-On-Error": "1",
        "X-Amzn-Version": sdk_version,
        "X-Amzn-User-Agent": user_agent,
    })
    return f"{base}{'&' if urlsplit(base).query else '?'}{query}"


def subprotocols(join_token: str) -> list[str]:
    """What the SDK offers: the session marker, then the join token. The server selects the marker."""
    return [SUBPROTOCOL, join_token]


# -- encoding -------------------------------------------------------------------------------------


def _payload(message: DataMessage, out: pb.SdkDataMessagePayload) -> None:
    out.topic = message.topic
    out.data = message.data
    if message.lifetime_ms:
        out.lifetime_ms = message.lifetime_ms
    if message.sender_attendee_id:
        out.sender_attendee_id = message.sender_attendee_id
    if message.sender_external_user_id:
        out.sender_external_user_id = message.sender_external_user_id
    if message.ingest_time_ns is not None:
        out.ingest_time_ns = message.ingest_time_ns  # 0 is sent explicitly: it means "throttled"


def to_proto(frame: Frame) -> pb.SdkSignalFrame:
    """The `SdkSignalFrame` for a frame (for tests and tools; `encode` is what goes on the wire)."""
    signal = pb.SdkSignalFrame(timestamp_ms=frame.timestamp_ms)
    match frame:
        case DataMessages(messages=messages):
            signal.type = Type.DATA_MESSAGE
            signal.data_message.SetInParent()  # present even when empty
            for message in messages:
                _payload(message, signal.data_message.messages.add())
        case Join():
            signal.type = Type.JOIN
            signal.join.protocol_version = frame.protocol_version
            signal.join.flags = frame.flags
            if frame.client_source or frame.chime_sdk_version:
                signal.join.client_details.client_source = frame.client_source
                signal.join.client_details.chime_sdk_version = frame.chime_sdk_version
            if frame.audio_session_id:
                signal.join.audio_session_id = frame.audio_session_id
        case JoinAck():
            signal.type = Type.JOIN_ACK
            turn = signal.joinack.turn_credentials
            turn.username, turn.password, turn.ttl = frame.turn_username, frame.turn_password, frame.turn_ttl
            turn.uris.extend(frame.turn_uris)
        case Index():
            signal.type = Type.INDEX
            signal.index.num_participants = frame.num_participants
            signal.index.at_capacity = frame.at_capacity
        case Leave():
            signal.type = Type.LEAVE
            signal.leave.SetInParent()
        case LeaveAck():
            signal.type = Type.LEAVE_ACK
            signal.leave_ack.SetInParent()
        case Ping(ping_id=ping_id) | Pong(ping_id=ping_id):
            signal.type = Type.PING_PONG
            signal.ping_pong.type = pb.PING if isinstance(frame, Ping) else pb.PONG
            signal.ping_pong.ping_id = ping_id
        case AudioStatus(status=status):
            signal.type = Type.AUDIO_STATUS
            signal.audio_status.audio_status = status
        case ErrorFrame():
            signal.type = frame.frame_type
            signal.error.status = frame.status
            signal.error.description = frame.description
        case OtherFrame():
            signal.type = frame.frame_type
        case _:
            raise TypeError(f"not a signaling frame: {frame!r}")
    return signal


def encode(frame: Frame, timestamp_ms: int | None = None) -> bytes:
    """`0x05` + the serialized `SdkSignalFrame`. `timestamp_ms`, when given, replaces the frame's."""
    signal = to_proto(frame)
    if timestamp_ms is not None:
        signal.timestamp_ms = timestamp_ms
    return bytes((FRAME_TYPE_RTC,)) + signal.SerializeToString()


def encode_data_messages(messages: tuple[DataMessage, ...] | list[DataMessage], timestamp_ms: int) -> bytes:
    """The hot path's shortcut for `encode(DataMessages(...), timestamp_ms)`."""
    return encode(DataMessages(tuple(messages)), timestamp_ms)


# -- decoding -------------------------------------------------------------------------------------


def decode(payload: bytes | bytearray | memoryview | str) -> Frame:
    """One frame from what a peer sent. Raises `FrameError` (and nothing else) on anything unreadable:
    a text frame, an empty one, a wrong frame-type byte, bytes that are not an SdkSignalFrame, a
    missing required field, a type value outside the schema, or a type without its body."""
    if isinstance(payload, str):
        raise FrameError("text frames are not signaling frames: send binary")
    if not payload:
        raise FrameError("empty frame")
    if payload[0] not in INBOUND_FRAME_TYPES:
        raise FrameError(f"frame type byte 0x{payload[0]:02x} is not 0x05")
    signal = pb.SdkSignalFrame()
    try:
        signal.ParseFromString(bytes(payload[1:]))
    except (DecodeError, ValueError, RuntimeError) as exc:  # upb raises DecodeError; be generous
        raise FrameError(f"not an SdkSignalFrame: {exc}") from None
    return _from_proto(signal)


def _from_proto(signal: pb.SdkSignalFrame) -> Frame:
    if not signal.HasField("type"):
        raise FrameError("missing or unknown frame type")  # a closed enum drops values it does not know
    if not signal.HasField("timestamp_ms"):
        raise FrameError("missing timestamp_ms")
    kind, ts = signal.type, signal.timestamp_ms
    if signal.HasField("error"):
        return ErrorFrame(signal.error.status, _text(signal.error.description), frame_type=kind, timestamp_ms=ts)
    if kind == Type.DATA_MESSAGE:
        if not signal.HasField("data_message"):
            raise FrameError("DATA_MESSAGE frame without data_message")
        return DataMessages(tuple(_data_message(p) for p in signal.data_message.messages), timestamp_ms=ts)
    if kind == Type.JOIN:
        join = signal.join
        details = join.client_details
        return Join(join.protocol_version, join.flags, _text(details.client_source), _text(details.chime_sdk_version),
                    join.audio_session_id, timestamp_ms=ts)
    if kind == Type.JOIN_ACK:
        turn = signal.joinack.turn_credentials
        return JoinAck(_text(turn.username), _text(turn.password), turn.ttl, tuple(_text(u) for u in turn.uris),
                       timestamp_ms=ts)
    if kind == Type.INDEX:
        return Index(signal.index.num_participants, signal.index.at_capacity, timestamp_ms=ts)
    if kind == Type.PING_PONG:
        ping_pong = signal.ping_pong
        if not (signal.HasField("ping_pong") and ping_pong.HasField("type") and ping_pong.HasField("ping_id")):
            raise FrameError("PING_PONG frame without its type and ping_id")
        cls = Ping if ping_pong.type == pb.PING else Pong
        return cls(ping_pong.ping_id, timestamp_ms=ts)
    if kind == Type.LEAVE:
        return Leave(timestamp_ms=ts)
    if kind == Type.LEAVE_ACK:
        return LeaveAck(timestamp_ms=ts)
    if kind == Type.AUDIO_STATUS:
        return AudioStatus(signal.audio_status.audio_status, timestamp_ms=ts)
    return OtherFrame(kind, timestamp_ms=ts)


def _text(value: str | bytes) -> str:
    """proto2 does not check UTF-8: upb hands back bytes for a string field that is not UTF-8."""
    if not isinstance(value, str):
        raise FrameError("a string field is not UTF-8")
    return value


def _data_message(payload: pb.SdkDataMessagePayload) -> DataMessage:
    return DataMessage(
        topic=_text(payload.topic),
        data=payload.data,
        lifetime_ms=payload.lifetime_ms,
        sender_attendee_id=_text(payload.sender_attendee_id),
        sender_external_user_id=_text(payload.sender_external_user_id),
        ingest_time_ns=payload.ingest_time_ns if payload.HasField("ingest_time_ns") else None,
    )
