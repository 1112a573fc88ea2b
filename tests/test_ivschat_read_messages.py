"""IVS Chat's client protocol reads each distinct MESSAGE once per process: every copy still means
the same to each receiver (its own echo stays an ack, a moderator still keeps the id)."""

from __future__ import annotations

from harness.services.base import FOREIGN, Acked, Delivered, ProtocolError, Request, UserSpec
from harness.services.ivschat import client, codec
from harness.services.ivschat.client import IvsChatProtocol, ReadMessages, identity_attributes

ROOM = "arn:aws:ivschat:us-east-1:000000000000:room/r"
SEND_NS = 1_669_969_280_754_555_595


def protocol(sender_id: str, capabilities: tuple[str, ...] = ()) -> IvsChatProtocol:
    return IvsChatProtocol(UserSpec(sender_id=sender_id, user_id=f"u-{sender_id}", room=ROOM,
                                    capabilities=capabilities))


def message(seq: int, sender: str = "s1", attributes: dict | None = None) -> bytes:
    attributes = identity_attributes(sender, seq, 1_000_000 + seq) if attributes is None else attributes
    return codec.encode_message(f"m{seq}", f"{sender}.{seq}", "hi", attributes, SEND_NS, f"u-{sender}", None)


def test_every_copy_of_a_message_is_a_delivery_with_the_same_identity():
    frame = message(7)
    first, second = protocol("a"), protocol("b")
    one = first.receive(bytes(bytearray(frame)), True, 0)
    other = second.receive(bytes(bytearray(frame)), True, 0)
    assert one.__class__ is Delivered and other.__class__ is Delivered
    assert (other.sender, other.seq, other.intended_us, other.server_ns) == ("s1", 7, 1_000_007, SEND_NS)
    assert one == other


def test_a_bytearray_copy_reads_like_bytes():  # the websockets transport hands over bytearrays
    frame = message(11)
    assert protocol("a").receive(bytearray(frame), True, 0) == protocol("b").receive(frame, True, 0)


def test_the_senders_own_copy_is_still_its_ack_and_a_moderator_still_keeps_the_id():
    frame = message(3, sender="s9")
    assert protocol("viewer").receive(frame, True, 0).__class__ is Delivered  # read (and remembered) first
    sender = protocol("s9")
    request = Request("send", 3, 0, 0, None)
    sender.pending["s9.3"] = request
    acked = sender.receive(bytes(bytearray(frame)), True, 0)
    assert isinstance(acked, Acked) and acked.request is request and acked.echo.seq == 3
    moderator = protocol("mod", (codec.DELETE_MESSAGE,))
    moderator.receive(bytes(bytearray(frame)), True, 0)
    assert moderator.recent_message_ids() == ["m3"]


def test_foreign_and_unreadable_messages_mean_the_same_on_every_copy():
    foreign = message(1, attributes={"colour": "red"})
    unreadable = message(2, attributes={"cl.s": "s1", "cl.n": "two", "cl.t": "1"})
    for reader in (protocol("a"), protocol("b")):
        assert reader.receive(foreign, True, 0) is FOREIGN
        assert isinstance(reader.receive(unreadable, True, 0), ProtocolError)


def test_what_is_remembered_is_bounded():
    read = ReadMessages(limit=3)
    for seq in range(10):
        payload = message(seq + 1)
        read.remember(payload, codec.parse_server_frame(payload))
        assert len(read) <= 3
    assert read.get(message(10)) is not None and read.get(message(1)) is None
    assert client.READ_MESSAGES_MAX >= 1024  # seconds of a busy room's copies
