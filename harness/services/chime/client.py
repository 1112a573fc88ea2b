"""The Chime SDK meetings client protocol: signaling frames ⇄ neutral events, sans-I/O.

- Opening: the socket opens, JOIN goes out (`opened`), the server answers JOIN_ACK then INDEX: the
  session is usable at INDEX (`READY`), and `join` times open → INDEX.
- Message identity travels at the head of each data message's `data`:
  `cl:<sender id>:<seq>:<intended µs>:` then the content (`identity_data`). Each receiver reports
  `Delivered(sender, seq, intended_us, ingest_time_ns)`; `ingest` times intended send → the
  server's ingest (the sender → server half; the session times the server → receiver half as
  `from_server`).
- Messages the meeting ingested before it answered our JOIN (INDEX's `timestamp_ms`, the server's
  clock like `ingest_time_ns`) were sent because we joined — late, or coming back — from what it
  keeps for messages with a lifetime: `Replayed`, timed as `replay` (their age), not as delivery
  latency. The ledger judges every arrival by its own rule (accepted within the replay window
  before the membership began), so this only decides which histogram times it; the INDEX time is
  whole milliseconds, so a message ingested in JOIN's own millisecond counts as live.
- A topic is received only if this attendee subscribed to it (the SDK calls back per topic and
  drops the rest): `UserSpec.attributes["subscribe"]`, comma-separated. A sender that subscribes to
  nothing is not a receiver (`ChimeSendOnlyProtocol`), so the ledger owes it nothing — the service
  does not send an attendee its own messages.
- Nothing acknowledges an accepted message. A throttled one comes back to its sender with
  `ingest_time_ns == 0`: `Rejected(rate_limited, "THROTTLED")`, tied to its request by the
  identity in its data (the protocol keeps its recent sends for that, not as pending requests:
  silence is acceptance, not something to time out).
- ERROR frames match no request (the service gives none an id): 403 join token rejected
  (unauthorized), others by HTTP-like status; 401 is the emulator's session expiry, counted as
  `events.session_expired`: the SDK reads any 4xx ERROR as a terminal SignalingBadRequest and does
  not come back, and neither does chatload (close 4401 follows; no policy reconnects after it);
  429 is the hard limit, a hang-up (close 4429) rather than the refusal of one message: counted
  as `events.hard_limit`.
- AUDIO_STATUS 411 (DeleteAttendee) is a kick: `Kicked`; 410 is the meeting ending (close 4410,
  which no policy comes back from).
- Keepalive: PING every 10 s (the SDK's period); PONG is answered by nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..base import (
    FOREIGN,
    READY,
    Category,
    ClientProtocol,
    Delivered,
    Kicked,
    Measured,
    ProtocolError,
    Rejected,
    Replayed,
    Request,
    ServiceEvent,
    UserSpec,
    category_of_http_status,
)
from . import codec
from . import signaling_pb2 as pb

PREFIX = b"cl:"
DEFAULT_TOPIC = "chat"
THROTTLED = "THROTTLED"  # the code of a throttled message (the wire says only ingest_time_ns = 0)
HARD_LIMIT_STATUS = 429
SENDS_REMEMBERED = 16_384  # recent sends a throttled message can be tied back to (it returns within an RTT)
SDK_NAME = "chatload"
ATTENDEE_REMOVED, MEETING_ENDED = 411, 410
DATA_MESSAGE = codec.Type.DATA_MESSAGE


def identity_data(sender: str, seq: int, intended_us: int, content: bytes) -> bytes:
    """The `data` of a measured message: its identity, then the content."""
    return b"%s%s:%d:%d:%s" % (PREFIX, sender.encode(), seq, intended_us, content)


def read_identity(data: bytes) -> tuple[str, int, int] | None:
    """(sender, seq, intended µs) of a measured message; None for someone else's; ValueError if garbled."""
    if not data.startswith(PREFIX):
        return None
    _, sender, seq, intended, _content = data.split(b":", 4)
    return sender.decode(), int(seq), int(intended)


def topics_of(user: UserSpec) -> frozenset[str]:
    subscribed = (user.attributes or {}).get("subscribe", "")
    return frozenset(topic for topic in subscribed.split(",") if topic)


class ChimeProtocol(ClientProtocol):
    text_frames = False  # signaling frames are binary
    ready_on_open = False  # usable at INDEX, after JOIN
    acks_sends = False  # an accepted data message is acknowledged by nothing
    keepalive_s = 10.0  # the SDK's PING_PONG period
    ready_timeout_s = 15.0  # the SDK's signaling connection timeout: JOIN has this long to be answered

    def __init__(self, user: UserSpec) -> None:
        super().__init__(user)
        attributes = user.attributes or {}
        self.topics = topics_of(user)
        self.topic = attributes.get("topic", DEFAULT_TOPIC)
        self.lifetime_ms = int(attributes.get("lifetime_ms", 0))
        self.sent: dict[int, Request] = {}  # seq → request, the last SENDS_REMEMBERED sends
        self.opened_ns: int | None = None
        self.ready = False
        self.joined_ns = 0  # the server's time of INDEX: what it ingested before were replays
        self.now_ms = 0  # the latest time this protocol was given, for the frames it writes unasked
        self.pings = 0
        self._signal = pb.SdkSignalFrame()  # reused by the data-message fast path

    # -- opening ----------------------------------------------------------------------------------

    def opened(self, at_ns: int) -> None:
        self.opened_ns = at_ns
        self.now_ms = at_ns // 1_000_000
        self.outbox.append(codec.encode(codec.Join(client_source=SDK_NAME, chime_sdk_version=SDK_NAME),
                                        self.now_ms))

    # -- frames in --------------------------------------------------------------------------------

    def receive(self, payload: bytes, is_text: bool, at_ns: int):
        if is_text:
            return ProtocolError("text frame from the server: signaling frames are binary")
        fast = self._one_data_message(payload)
        if fast is not None:  # the hot path: a frame of one data message
            return self._data(*fast)
        try:
            frame = codec.decode(payload)
        except codec.FrameError as exc:
            return ProtocolError(str(exc))
        self.now_ms = at_ns // 1_000_000
        kind = frame.__class__
        if kind is codec.DataMessages:
            return self._messages(frame.messages)
        if kind is codec.Index:
            if self.ready:
                return ServiceEvent("index")
            self.ready, self.joined_ns = True, frame.timestamp_ms * 1_000_000
            join_us = (at_ns - self.opened_ns) // 1000 if self.opened_ns is not None else 0
            return READY, Measured("join", join_us)
        if kind is codec.JoinAck or kind is codec.Pong:
            return None
        if kind is codec.ErrorFrame:
            return self._error(frame)
        if kind is codec.AudioStatus:
            if frame.status == ATTENDEE_REMOVED:
                return ServiceEvent("attendee_removed"), Kicked("removed from the meeting (DeleteAttendee)")
            if frame.status == MEETING_ENDED:
                return ServiceEvent("meeting_ended")
            return ServiceEvent(f"audio_status.{frame.status}")
        if kind is codec.Ping:
            self.outbox.append(codec.encode(codec.Pong(frame.ping_id), self.now_ms))
            return None
        if kind is codec.LeaveAck:
            return ServiceEvent("leave_ack")
        if kind is codec.OtherFrame:
            return ServiceEvent(f"frame.{frame.type_name.lower()}")
        return ProtocolError(f"{kind.__name__} is a client frame; the server sent it")

    def _one_data_message(self, payload: bytes) -> tuple[str, bytes, int | None] | None:
        """(topic, data, ingest_time_ns) of a well-formed DATA_MESSAGE frame holding one message, read
        with a third of `codec.decode`'s work; None for anything else (which `codec.decode` then
        reads, or refuses, as usual)."""
        if not payload or payload[0] not in codec.INBOUND_FRAME_TYPES:
            return None
        signal = self._signal
        try:
            signal.ParseFromString(payload[1:])
        except Exception:  # noqa: BLE001 - whatever upb raises, codec.decode names it
            return None
        if (signal.type != DATA_MESSAGE or not signal.HasField("timestamp_ms") or signal.HasField("error")
                or not signal.HasField("data_message")):
            return None
        messages = signal.data_message.messages
        if len(messages) != 1:
            return None
        m = messages[0]
        topic, attendee, external = m.topic, m.sender_attendee_id, m.sender_external_user_id
        if topic.__class__ is not str or attendee.__class__ is not str or external.__class__ is not str:
            return None  # not UTF-8: codec.decode says so
        return topic, m.data, m.ingest_time_ns if m.HasField("ingest_time_ns") else None

    def _data(self, topic: str, data: bytes, ingest_ns: int | None):
        """One data message: a delivery (and its sender → server time), our own throttled message, or
        something counted."""
        if ingest_ns == 0:
            return self._throttled(data)
        if topic not in self.topics:
            return ServiceEvent("not_subscribed")  # the SDK has no callback for it: dropped, counted
        try:
            identity = read_identity(data)
        except (ValueError, UnicodeDecodeError):
            return ProtocolError("data message with an unreadable chatload identity")
        if identity is None:
            return FOREIGN
        sender, seq, intended_us = identity
        if sender == self.user.sender_id:  # the service does not echo: say so if it ever does
            self.sent.pop(seq, None)
            return ServiceEvent("own_message_returned")
        if ingest_ns is None:
            return ProtocolError("delivered data message without ingest_time_ns")
        if ingest_ns < self.joined_ns:  # kept by the meeting, sent again because we joined (or came back)
            return Replayed(sender, seq, intended_us, ingest_ns)
        return Delivered(sender, seq, intended_us, ingest_ns), Measured("ingest", ingest_ns // 1000 - intended_us)

    def _messages(self, messages: tuple[codec.DataMessage, ...]):
        if len(messages) == 1:
            one = messages[0]
            return self._data(one.topic, one.data, one.ingest_time_ns)
        events: list = []
        for message in messages:
            event = self._data(message.topic, message.data, message.ingest_time_ns)
            if event.__class__ is tuple:
                events.extend(event)
            elif event is not None:
                events.append(event)
        return tuple(events) or None

    def _throttled(self, data: bytes):
        try:
            identity = read_identity(data)
        except (ValueError, UnicodeDecodeError):
            identity = None
        request = None
        if identity is not None and identity[0] == self.user.sender_id:
            request = self.sent.pop(identity[1], None)
        return Rejected(request, Category.RATE_LIMITED, THROTTLED,
                        "data message throttled (ingest_time_ns 0): above 100/s, burst 200 per attendee")

    def _error(self, error: codec.ErrorFrame):
        status = error.status
        if status == 401:  # the emulator's session expiry: terminal to the SDK (SignalingBadRequest)
            return ServiceEvent("session_expired")
        if status == HARD_LIMIT_STATUS:  # the hard limit: a hang-up (close 4429) follows
            return ServiceEvent("hard_limit")
        category = Category.UNAUTHORIZED if status == 403 else category_of_http_status(status)
        return Rejected(None, category, str(status), error.description[:200])

    # -- frames out -------------------------------------------------------------------------------

    def send_message(self, request: Request, content: str, extra: Mapping[str, str] | None) -> bytes:
        sent = self.sent
        sent[request.seq] = request
        if len(sent) > SENDS_REMEMBERED:
            del sent[next(iter(sent))]
        data = identity_data(self.user.sender_id, request.seq, request.intended_ns // 1000, content.encode())
        self.now_ms = request.sent_ns // 1_000_000
        return codec.encode_data_messages((codec.DataMessage(self.topic, data, self.lifetime_ms),), self.now_ms)

    def keepalive(self) -> bytes | None:
        self.pings += 1
        return codec.encode(codec.Ping(self.pings), self.now_ms)


class ChimeSendOnlyProtocol(ChimeProtocol):
    """An attendee that subscribes to no topic receives nothing, so it is no receiver at all: with
    `joins_rooms` and no `Joined` ever, the ledger owes it nothing (not even its own messages,
    which the service would not send it anyway)."""

    joins_rooms = True


def protocol_for(user: UserSpec) -> ChimeProtocol:
    return ChimeProtocol(user) if topics_of(user) else ChimeSendOnlyProtocol(user)
