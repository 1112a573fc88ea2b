"""The Chime signaling codec: frames round-trip, unreadable bytes raise only FrameError, and the
committed signaling_pb2.py is what protoc makes of signaling.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from hypothesis import given
from hypothesis import strategies as st

from harness.services.chime import codec
from harness.services.chime import signaling_pb2 as pb

PACKAGE = Path(codec.__file__).parent

FRAMES = [
    codec.Join(timestamp_ms=1),
    codec.Join(2, codec.HAS_STREAM_UPDATE, "amazon-chime-sdk-js", "3.32.0", 12345, timestamp_ms=5),
    codec.JoinAck("user", "secret", 300, ("turn:a", "turn:b"), timestamp_ms=2),
    codec.Index(7, True, timestamp_ms=3),
    codec.Leave(timestamp_ms=4),
    codec.LeaveAck(timestamp_ms=4),
    codec.Ping(9, timestamp_ms=5),
    codec.Pong(9, timestamp_ms=5),
    codec.AudioStatus(410, timestamp_ms=6),
    codec.ErrorFrame(403, "Join token rejected", timestamp_ms=7),
    codec.OtherFrame(codec.Type.SUBSCRIBE, timestamp_ms=8),
    codec.DataMessages((codec.DataMessage("chat", b"\x00hi", 1000, "a-id", "alice", 1_700_000_000_123_456_789),
                        codec.DataMessage("t", b"", 0, "a-id", "alice", 0)), timestamp_ms=9),
    codec.DataMessages((codec.DataMessage("chat", b"client side"),), timestamp_ms=10),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_every_frame_round_trips(frame):
    wire = codec.encode(frame)
    assert wire[0] == codec.FRAME_TYPE_RTC
    assert codec.decode(wire) == frame


def test_encode_takes_the_timestamp_from_the_caller():
    assert codec.decode(codec.encode(codec.Ping(1), timestamp_ms=42)).timestamp_ms == 42


def test_a_throttled_message_carries_ingest_time_zero_on_the_wire():
    """The SDK reads `ingestTimeNs === 0` as throttled: 0 must be sent, not left out."""
    wire = codec.encode(codec.DataMessages((codec.DataMessage("t", b"x", ingest_time_ns=0),)), 1)
    payload = pb.SdkSignalFrame.FromString(wire[1:]).data_message.messages[0]
    assert payload.HasField("ingest_time_ns") and payload.ingest_time_ns == 0
    message = codec.decode(wire).messages[0]
    assert message.throttled
    assert not codec.decode(codec.encode(codec.DataMessages((codec.DataMessage("t", b"x"),)), 1)).messages[0].throttled


def test_server_prefix_0x02_is_accepted_inbound():
    wire = codec.encode(codec.Pong(3), 1)
    assert codec.decode(b"\x02" + wire[1:]) == codec.Pong(3, timestamp_ms=1)


def _signal(**fields) -> bytes:
    return b"\x05" + pb.SdkSignalFrame(**fields).SerializeToString(deterministic=True)


@pytest.mark.parametrize("payload, reason", [
    ("text", "text frames"),
    (b"", "empty"),
    (b"\x01" + codec.encode(codec.Leave(), 1)[1:], "0x01"),
    (b"\x05\xff\xff\xff", "not an SdkSignalFrame"),
    (b"\x05" + b"\x08\x01", "frame type"),  # timestamp only
    (b"\x05" + b"\x08\x01\x10\x63", "frame type"),  # type 99 is not in the schema
    (b"\x05" + b"\x10\x16", "timestamp_ms"),  # DATA_MESSAGE without a timestamp
    (_signal(timestamp_ms=1, type=codec.Type.DATA_MESSAGE), "without data_message"),
    (_signal(timestamp_ms=1, type=codec.Type.PING_PONG), "ping_id"),
])
def test_unreadable_frames_raise_frame_error(payload, reason):
    with pytest.raises(codec.FrameError, match=reason):
        codec.decode(payload)


def test_a_string_field_that_is_not_utf8_is_a_frame_error():
    body = pb.SdkDataMessagePayload(data=b"x").SerializeToString() + b"\x0a\x02\xff\xfe"  # topic = ff fe
    frame = pb.SdkDataMessageFrame.FromString(b"\x0a" + bytes([len(body)]) + body)
    assert frame.messages[0].data == b"x"  # protobuf itself accepts it (proto2 skips the UTF-8 check)
    wire = _signal(timestamp_ms=1, type=codec.Type.DATA_MESSAGE) + b"\xba\x01" + bytes([len(body) + 2]) + b"\x0a" \
        + bytes([len(body)]) + body
    with pytest.raises(codec.FrameError, match="UTF-8"):
        codec.decode(wire)


@given(st.binary(max_size=300))
def test_decode_raises_nothing_but_frame_error(payload):
    for candidate in (payload, b"\x05" + payload):
        try:
            codec.decode(candidate)
        except codec.FrameError:
            pass


TOPICS = st.from_regex(r"[a-zA-Z0-9_-]{1,36}", fullmatch=True)
MESSAGES = st.builds(codec.DataMessage, TOPICS, st.binary(max_size=2048), st.integers(0, 2**32 - 1),
                     st.text(max_size=40), st.text(max_size=64), st.none() | st.integers(0, 2**63 - 1))


@given(st.lists(MESSAGES, min_size=1, max_size=4), st.integers(0, 2**64 - 1))
def test_data_messages_round_trip(messages, timestamp_ms):
    frame = codec.DataMessages(tuple(messages), timestamp_ms=timestamp_ms)
    assert codec.decode(codec.encode(frame)) == frame
    assert all(m.problem() is None for m in messages)


@pytest.mark.parametrize("message, problem", [
    (codec.DataMessage("", b""), "topic"),
    (codec.DataMessage("x" * 37, b""), "topic"),
    (codec.DataMessage("bad topic", b""), "topic"),
    (codec.DataMessage("t\n", b""), "topic"),
    (codec.DataMessage("t", b"x" * 2049), "2048"),
])
def test_the_sdk_side_checks(message, problem):
    assert problem in message.problem()
    assert codec.DataMessage("t", b"x" * 2048).problem() is None


def test_connect_parameters_are_the_sdks():
    url = codec.signaling_url("ws://127.0.0.1:1/control/abc")
    assert url.startswith("ws://127.0.0.1:1/control/abc?X-Chime-Control-Protocol-Version=3&"
                          "X-Amzn-Chime-Send-Close-On-Error=1&X-Amzn-Version=")
    assert codec.subprotocols("TOKEN") == ["_aws_wt_session", "TOKEN"]


def test_turn_credentials_stay_out_of_reprs():
    assert "secret" not in repr(codec.JoinAck("user", "secret", 300, ("turn:a",)))


def test_generated_module_matches_the_proto(tmp_path):
    """signaling_pb2.py is committed; protoc (grpcio-tools) must still make the same schema of signaling.proto."""
    grpc_tools = pytest.importorskip("grpc_tools", reason="grpcio-tools (a test extra) regenerates signaling_pb2.py")
    assert grpc_tools
    out = tmp_path / "set.pb"
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PACKAGE}", f"--descriptor_set_out={out}",
                           str(PACKAGE / "signaling.proto")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    regenerated = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(regenerated.message_type)  # a descriptor set carries them; generated code leaves them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert regenerated == committed, "signaling_pb2.py is stale: regenerate it (command in signaling.proto)"


def _drop_json_names(messages) -> None:
    for message in messages:
        for each in message.field:
            each.ClearField("json_name")
        _drop_json_names(message.nested_type)
