"""The Chime client protocol as a unit: signaling frames in → exact neutral events out, requests in →
frames out. Frames are made with the emulator's own codec, so both ends agree on the wire."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.services.base import (
    FOREIGN,
    READY,
    Category,
    Delivered,
    Kicked,
    Measured,
    ProtocolError,
    Rejected,
    Replayed,
    Request,
    ServiceEvent,
    UserSpec,
)
from harness.services.chime import codec
from harness.services.chime import signaling_pb2 as pb
from harness.services.chime.client import (
    SENDS_REMEMBERED,
    ChimeProtocol,
    ChimeSendOnlyProtocol,
    identity_data,
    protocol_for,
    read_identity,
)

MS = 1_000_000
OPENED_NS = 1_700_000_000_000 * MS
JOINED_MS = 1_700_000_000_005  # the server's INDEX time: 5 ms after the socket opened
LISTENER = UserSpec("me1", "attendee-me1", "meeting-1", attributes={"subscribe": "chat"})
SENDER = UserSpec("snd1", "sender-snd1", "meeting-1", attributes={"topic": "chat", "lifetime_ms": "5000"})


def data_frame(*messages: codec.DataMessage, timestamp_ms: int = JOINED_MS + 1) -> bytes:
    return codec.encode(codec.DataMessages(tuple(messages)), timestamp_ms)


def message(sender: str = "other7", seq: int = 3, intended_us: int = 1_700_000_000_010_000,
            ingest_ns: int | None = 1_700_000_000_012 * MS, topic: str = "chat", content: bytes = b"hello",
            data: bytes | None = None) -> codec.DataMessage:
    payload = identity_data(sender, seq, intended_us, content) if data is None else data
    return codec.DataMessage(topic, payload, 0, "attendee-guid", f"sender-{sender}", ingest_ns)


def joined(user: UserSpec = LISTENER) -> ChimeProtocol:
    protocol = protocol_for(user)
    protocol.opened(OPENED_NS)
    assert protocol.receive(codec.encode(codec.JoinAck(), JOINED_MS), False, OPENED_NS + 4 * MS) is None
    events = protocol.receive(codec.encode(codec.Index(num_participants=2), JOINED_MS), False, OPENED_NS + 6 * MS)
    assert events == (READY, Measured("join", 6_000))
    return protocol


def request(seq: int, intended_ns: int = OPENED_NS + 10 * MS) -> Request:
    return Request("send", seq, intended_ns, intended_ns + 1000)


# -- opening ------------------------------------------------------------------------------------------


def test_opening_sends_join_and_ready_comes_with_index_timed_from_the_open():
    protocol = protocol_for(LISTENER)
    assert type(protocol) is ChimeProtocol and not protocol.joins_rooms and not protocol.ready_on_open
    protocol.opened(OPENED_NS)
    (frame,) = protocol.outbox
    join = codec.decode(frame)
    assert isinstance(join, codec.Join) and join.protocol_version == codec.PROTOCOL_VERSION
    assert join.timestamp_ms == OPENED_NS // MS
    joined_protocol = joined()  # READY and the join time, asserted inside
    assert joined_protocol.receive(codec.encode(codec.Index(), JOINED_MS), False, OPENED_NS) == ServiceEvent("index")


def test_an_attendee_that_subscribes_to_nothing_is_no_receiver():
    protocol = protocol_for(SENDER)
    assert type(protocol) is ChimeSendOnlyProtocol and protocol.joins_rooms
    assert joined(SENDER).receive(data_frame(message()), False, OPENED_NS + 20 * MS) == ServiceEvent("not_subscribed")


# -- data messages -----------------------------------------------------------------------------------


def test_a_delivered_data_message_is_one_delivered_with_its_sender_to_server_time():
    events = joined().receive(data_frame(message()), False, OPENED_NS + 20 * MS)
    assert events == (Delivered("other7", 3, 1_700_000_000_010_000, 1_700_000_000_012 * MS),
                      Measured("ingest", 2_000))


def test_a_message_ingested_before_the_server_answered_our_join_is_a_replay():
    old = message(seq=1, intended_us=1_699_999_990_000_000, ingest_ns=1_699_999_990_001 * MS)
    assert joined().receive(data_frame(old), False, OPENED_NS + 7 * MS) == Replayed(
        "other7", 1, 1_699_999_990_000_000, 1_699_999_990_001 * MS)


def test_several_messages_in_one_frame_give_their_events_in_order():
    frame = data_frame(message(seq=1), message(topic="other"), message(seq=2, data=b"no identity"))
    events = joined().receive(frame, False, OPENED_NS + 20 * MS)
    assert events == (Delivered("other7", 1, 1_700_000_000_010_000, 1_700_000_000_012 * MS), Measured("ingest", 2_000),
                      ServiceEvent("not_subscribed"), FOREIGN)


@pytest.mark.parametrize(("bad", "expected"), [
    (message(data=b"cl:x:notanumber:5:"), ProtocolError("data message with an unreadable chatload identity")),
    (message(data=b"cl:x:1"), ProtocolError("data message with an unreadable chatload identity")),
    (message(ingest_ns=None), ProtocolError("delivered data message without ingest_time_ns")),
    (message(data=b"someone else's traffic"), FOREIGN),
    (message(topic="elsewhere"), ServiceEvent("not_subscribed")),
])
def test_data_messages_that_are_not_ours_to_measure(bad, expected):
    assert joined().receive(data_frame(bad), False, OPENED_NS + 20 * MS) == expected


def test_sending_writes_the_identity_and_a_throttled_message_is_tied_back_to_its_request():
    protocol = joined(SENDER)
    first, second = request(1), request(2)
    frame = codec.decode(protocol.send_message(first, "abc", None))
    assert isinstance(frame, codec.DataMessages)
    (sent,) = frame.messages
    assert (sent.topic, sent.lifetime_ms, sent.ingest_time_ns) == ("chat", 5000, None)
    assert read_identity(sent.data) == ("snd1", 1, first.intended_ns // 1000) and sent.data.endswith(b":abc")
    protocol.send_message(second, "def", None)
    back = codec.DataMessage("chat", identity_data("snd1", 2, second.intended_ns // 1000, b"def"), 5000,
                             "attendee-guid", "sender-snd1", 0)
    (event,) = [protocol.receive(data_frame(back), False, OPENED_NS + 30 * MS)]
    assert isinstance(event, Rejected) and event.request is second
    assert (event.category, event.code) == (Category.RATE_LIMITED, "THROTTLED")
    assert list(protocol.sent) == [1], "the answered request is forgotten; the accepted one waits for nothing"
    assert not protocol.pending and not protocol.awaiting_send_answers(), "silence is acceptance: no timeouts"
    again = protocol.receive(data_frame(back), False, OPENED_NS + 31 * MS)
    assert isinstance(again, Rejected) and again.request is None, "a second copy ties to nothing"


def test_remembered_sends_are_bounded():
    protocol = joined(SENDER)
    for seq in range(1, SENDS_REMEMBERED + 11):
        protocol.send_message(request(seq), "x", None)
    assert len(protocol.sent) == SENDS_REMEMBERED and min(protocol.sent) == 11


def test_our_own_message_coming_back_unthrottled_is_counted_not_measured():
    protocol = joined(UserSpec("me1", "attendee-me1", "m", attributes={"subscribe": "chat"}))
    protocol.send_message(request(4), "x", None)
    own = message(sender="me1", seq=4)
    assert protocol.receive(data_frame(own), False, OPENED_NS + 20 * MS) == ServiceEvent("own_message_returned")
    assert not protocol.sent


# -- errors, closes and the rest ------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "expected"), [
    (codec.ErrorFrame(403, "Join token rejected"), Rejected(None, Category.UNAUTHORIZED, "403", "Join token rejected")),
    (codec.ErrorFrame(400, "bad topic"), Rejected(None, Category.INVALID, "400", "bad topic")),
    (codec.ErrorFrame(503, "busy"), Rejected(None, Category.SERVER_ERROR, "503", "busy")),
    (codec.ErrorFrame(401, "Session expired"), ServiceEvent("session_expired")),  # terminal, as to the SDK
    (codec.ErrorFrame(429, "Data message rate above the hard limit"), ServiceEvent("hard_limit")),
    (codec.AudioStatus(411), (ServiceEvent("attendee_removed"), Kicked("removed from the meeting (DeleteAttendee)"))),
    (codec.AudioStatus(410), ServiceEvent("meeting_ended")),
    (codec.AudioStatus(200), ServiceEvent("audio_status.200")),
    (codec.Pong(1), None),
    (codec.LeaveAck(), ServiceEvent("leave_ack")),
    (codec.OtherFrame(codec.Type.SUBSCRIBE_ACK), ServiceEvent("frame.subscribe_ack")),
    (codec.Join(), ProtocolError("Join is a client frame; the server sent it")),
    (codec.Leave(), ProtocolError("Leave is a client frame; the server sent it")),
])
def test_every_other_frame(frame, expected):
    assert joined().receive(codec.encode(frame, JOINED_MS + 9), False, OPENED_NS + 20 * MS) == expected


def test_a_server_ping_is_answered_and_keepalive_pings():
    protocol = joined()
    assert protocol.receive(codec.encode(codec.Ping(77), JOINED_MS), False, OPENED_NS + 20 * MS) is None
    assert codec.decode(protocol.outbox[-1]) == codec.Pong(77, timestamp_ms=(OPENED_NS + 20 * MS) // MS)
    assert codec.decode(protocol.keepalive()) == codec.Ping(1, timestamp_ms=(OPENED_NS + 20 * MS) // MS)


@pytest.mark.parametrize(("payload", "is_text", "why"), [
    (b"\x05\x08\x01", True, "text frame from the server: signaling frames are binary"),
    (b"", False, "empty frame"),
    (b"\x07" + codec.encode(codec.Ping(1), 1)[1:], False, "frame type byte 0x07 is not 0x05"),
    (b"\x05\xff\xff\xff", False, None),  # not protobuf
    (b"\x05" + pb.SdkSignalFrame(type=pb.SdkSignalFrame.DATA_MESSAGE).SerializePartialToString(), False,
     "missing timestamp_ms"),
    (b"\x05" + pb.SdkSignalFrame(timestamp_ms=1, type=pb.SdkSignalFrame.DATA_MESSAGE).SerializePartialToString(), False,
     "DATA_MESSAGE frame without data_message"),
])
def test_unreadable_frames_are_protocol_errors_never_exceptions(payload, is_text, why):
    event = joined().receive(payload, is_text, OPENED_NS + 20 * MS)
    assert isinstance(event, ProtocolError)
    if why is not None:
        assert event.message == why


def test_a_string_field_that_is_not_utf8_is_a_protocol_error_on_the_fast_path_too():
    signal = pb.SdkSignalFrame(timestamp_ms=1, type=pb.SdkSignalFrame.DATA_MESSAGE)
    # data_message (field 23) { messages (1) { topic (1): four bytes that are not UTF-8 } }
    raw = b"\x05" + signal.SerializePartialToString() + bytes((0xBA, 0x01, 8, 0x0A, 6, 0x0A, 4)) + b"\xff\xfe\xfd\xfc"
    assert joined().receive(raw, False, OPENED_NS + 20 * MS) == ProtocolError("a string field is not UTF-8")


# -- the fast path reads exactly what codec.decode reads ---------------------------------------------------

texts = st.text(max_size=12)
messages = st.builds(codec.DataMessage, topic=st.sampled_from(["chat", "other", ""]),
                     data=st.one_of(st.binary(max_size=40),
                                    st.builds(identity_data, st.sampled_from(["a1", "me1"]),
                                              st.integers(0, 10**6), st.integers(0, 2**62), st.binary(max_size=8))),
                     lifetime_ms=st.integers(0, 10**6), sender_attendee_id=texts, sender_external_user_id=texts,
                     ingest_time_ns=st.one_of(st.none(), st.just(0), st.integers(0, 2**63 - 1)))


class _SlowPath(ChimeProtocol):
    def _one_data_message(self, payload):
        return None


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=0, max_size=3), st.integers(0, 2**40), st.booleans())
def test_the_fast_path_gives_the_same_events_as_the_codec(batch, timestamp_ms, with_timestamp):
    frame = codec.to_proto(codec.DataMessages(tuple(batch), timestamp_ms=timestamp_ms))
    if not with_timestamp:
        frame.ClearField("timestamp_ms")
    payload = b"\x05" + frame.SerializePartialToString()
    fast, slow = joined(), _SlowPath(LISTENER)
    slow.opened(OPENED_NS)
    slow.receive(codec.encode(codec.Index(), JOINED_MS), False, OPENED_NS + 6 * MS)
    assert fast.receive(payload, False, OPENED_NS + 9 * MS) == slow.receive(payload, False, OPENED_NS + 9 * MS)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(payload):
    event = joined().receive(b"\x05" + payload, False, OPENED_NS + 9 * MS)
    assert event is None or isinstance(event, tuple | ServiceEvent | ProtocolError | Rejected | Delivered) \
        or event is FOREIGN
