"""Property: whatever a client sends on the signaling socket, it alone gets the answer, and the meeting
goes on.

The fuzzing attendee has joined, connected without close-on-error (X-Amzn-Chime-Send-Close-On-Error=0),
so every bad frame — garbage, a wrong type byte, text, protobuf with the wrong fields, unknown frame
types, invalid or oversize data messages, server-only frames — must earn exactly one ERROR 400 and
the connection must survive; a frame of a type the emulator ignores earns nothing. The observer in
the same meeting must see nothing but the sentinel that follows. With close-on-error (what the SDK
asks for), an unreadable frame earns ERROR 400 and then close 4400.

Beside a bystander pair (a sender and a listener in one meeting): forged join tokens and tokens of
another meeting, removed and expired attendees that keep sending, hostile control-plane and
fault-route calls and frames never reach the listener, never lose or reorder the sender's data
messages, and never put a traceback in the emulator's log. (Chime's join tokens carry no times:
there is no expired or not-yet-valid token to forge.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from harness.services.chime import codec, provision
from harness.services.chime import signaling_pb2 as pb
from harness.services.chime.emulator import EmulatorProcess

from . import hostile
from .chat import run
from .chime import (
    assert_next_is_sentinel,
    client,
    frames_until_closed,
    join,
    meeting,
    next_frame,
    next_messages,
    open_socket,
    send,
)


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess(service="chime") as process:
        yield process


@pytest.fixture(scope="module")
def chime(emulator):
    return client(emulator)


BAD_TOPICS = st.one_of(st.just(""), st.text(min_size=37, max_size=40, alphabet="ab"),
                       st.text(min_size=1, max_size=10).filter(lambda t: not codec.TOPIC_PATTERN.fullmatch(t)))
BAD_MESSAGES = st.one_of(
    st.builds(codec.DataMessage, BAD_TOPICS, st.binary(max_size=10)),
    st.builds(codec.DataMessage, st.just("ok"), st.binary(min_size=2049, max_size=2100)),
)
BAD_DATA_FRAMES = st.lists(BAD_MESSAGES, min_size=1, max_size=3).map(
    lambda ms: codec.encode(codec.DataMessages(tuple(ms)), 1)) | st.just(codec.encode(codec.DataMessages(()), 1))
SERVER_FRAMES = st.sampled_from([codec.JoinAck(), codec.Index(1), codec.LeaveAck(), codec.AudioStatus(200),
                                 codec.ErrorFrame(500, "x"), codec.Join()]).map(lambda f: codec.encode(f, 1))
SIGNAL_FIELDS = st.fixed_dictionaries({}, optional={
    "timestamp_ms": st.integers(0, 2**64 - 1),
    "type": st.sampled_from([t for t in pb.SdkSignalFrame.Type.values() if t != codec.Type.PING_PONG]),
})
RAW_PROTOBUF = SIGNAL_FIELDS.map(lambda f: b"\x05" + pb.SdkSignalFrame(**f).SerializePartialToString())
GARBAGE = st.one_of(
    st.binary(max_size=120).map(lambda b: b"\x05" + b),  # right type byte, whatever follows
    st.binary(min_size=1, max_size=60).filter(lambda b: b[0] not in (0x05, 0x02)),  # wrong type byte
    st.text(max_size=60),  # text frames
    st.just(b""),
    st.just(b"\x05" + b"\x08\x01\x10\x63"),  # frame type 99
)


def _decodes(frame) -> codec.Frame | None:
    try:
        return codec.decode(frame)
    except codec.FrameError:
        return None


def _accepted_data(frame) -> bool:
    """A well-formed, valid data message would be fanned out: not bad input (random bytes can make one)."""
    decoded = _decodes(frame)
    return isinstance(decoded, codec.DataMessages) and bool(decoded.messages) and all(
        m.problem() is None for m in decoded.messages)


FRAMES = st.one_of(GARBAGE, RAW_PROTOBUF, BAD_DATA_FRAMES, SERVER_FRAMES).filter(lambda f: not _accepted_data(f))


async def expect_answer(ws, frame, joined: bool) -> bool:
    """Check the fuzzer's answer to one frame; return whether it is joined afterwards."""
    decoded = _decodes(frame)
    match decoded:
        case codec.Ping(ping_id=ping_id):
            pong = await next_frame(ws)
            assert isinstance(pong, codec.Pong) and pong.ping_id == ping_id
        case codec.Leave():
            assert isinstance(await next_frame(ws), codec.LeaveAck)
            return False
        case codec.Join() if not joined:
            assert isinstance(await next_frame(ws), codec.JoinAck)
            assert isinstance(await next_frame(ws), codec.Index)
            return True
        case codec.Pong() | codec.OtherFrame():
            pass  # ignored: no answer
        case _:  # unreadable, invalid data, data before JOIN, JOIN twice, server-only frames
            answer = await next_frame(ws)
            assert isinstance(answer, codec.ErrorFrame) and answer.status == 400, (frame[:40], answer)
    return joined


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=6))
def test_any_frame_gets_its_answer_and_disturbs_no_one(emulator, chime, frames):
    made = meeting(chime, "fuzzer", "observer")

    async def scenario():
        fuzzer = await join(made, "fuzzer", close_on_error=False)
        observer = await join(made, "observer")
        joined = True
        for frame in frames:
            await fuzzer.send(frame)
            joined = await expect_answer(fuzzer, frame, joined)
        # Nothing else came to the fuzzer, nothing at all to the observer, and both connections live.
        await fuzzer.send(codec.encode(codec.Ping(77), 1))
        pong = await next_frame(fuzzer)
        assert isinstance(pong, codec.Pong) and pong.ping_id == 77, pong
        await assert_next_is_sentinel(observer, *([fuzzer] if joined else []))
        await fuzzer.close()
        await observer.close()

    run(scenario())
    assert emulator.admin.health()["ok"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=GARBAGE.filter(lambda f: _decodes(f) is None))
def test_unreadable_frames_close_4400_when_the_client_asks(emulator, chime, frame):
    made = meeting(chime, "fuzzer", "observer")

    async def scenario():
        fuzzer = await join(made, "fuzzer")  # the SDK's query: X-Amzn-Chime-Send-Close-On-Error=1
        observer = await join(made, "observer")
        await fuzzer.send(frame)
        frames = await frames_until_closed(fuzzer)
        assert [(type(f), f.status) for f in frames] == [(codec.ErrorFrame, 400)]
        assert fuzzer.close_code == 4400
        await assert_next_is_sentinel(observer)
        await observer.close()

    run(scenario())


# -- hostile actors and callers beside a bystander pair --------------------------------------------------------

ACTORS = st.sampled_from(["forged", "other-meeting", "removed", "expired"])
PATHS = st.sampled_from(["/meetings", "/meetings?operation=create-attendees", "/meetings/{meeting}/attendees",
                         "/meetings/{meeting}/attendees?operation=batch-create", "/meetings/{other}/attendees"])
STEPS = st.one_of(
    st.tuples(st.just("actor"), ACTORS),
    st.tuples(st.just("control"), st.tuples(PATHS, hostile.BODIES, hostile.ODD_HEADERS)),
    st.tuples(st.just("admin"), hostile.ADMIN_CALLS),
    st.tuples(st.just("frame"), FRAMES),
)


async def _act(emulator, chime, made, kind: str, n: int) -> None:
    """One hostile actor tries to send into the bystanders' meeting; nothing it sends may arrive."""
    if kind in ("forged", "other-meeting"):
        token = ("x" * 64 if kind == "forged" else
                 meeting(chime, f"elsewhere-{n}").attendees[0].join_token)  # a real token, for another meeting
        ws = await open_socket(made, "sender", join_token=token)
        frames = await frames_until_closed(ws)
        assert [(type(f), f.status) for f in frames] == [(codec.ErrorFrame, 403)] and ws.close_code == 4403
        return
    actor = provision.add_attendees(chime, made.meeting_id, [f"actor-{n}"])[0]
    ws = await open_socket(made, "sender", join_token=actor.join_token)
    await ws.send(codec.encode(codec.Join(), 1))
    assert isinstance(await next_frame(ws), codec.JoinAck)
    if kind == "removed":
        chime.delete_attendee(MeetingId=made.meeting_id, AttendeeId=actor.attendee_id)
    else:
        emulator.admin.expire(connections=[c["connection_id"] for c in emulator.admin.connections()
                                           if c["user_id"] == f"actor-{n}"])
    with contextlib.suppress(ConnectionClosed):  # however fast it sends before its close, none is heard
        while True:
            await send(ws, "after the end")
            await asyncio.sleep(0.005)
    if kind == "removed":  # its token died with it
        again = await open_socket(made, "sender", join_token=actor.join_token)
        assert (await frames_until_closed(again))[0].status == 403


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEPS, min_size=1, max_size=5))
def test_hostile_steps_never_reach_or_disturb_a_bystander_pair(emulator, chime, steps):
    """Forged and foreign join tokens, removed and expired attendees that keep sending, hostile
    control-plane and fault-route calls and frames, each followed by a bystander's data message:
    the listener gets exactly the sender's messages, in order, and the emulator logs no traceback."""
    made = meeting(chime, "sender", "listener", "fuzzer")

    async def scenario():
        sender, listener = await join(made, "sender"), await join(made, "listener")
        fuzzer = await join(made, "fuzzer", close_on_error=False)
        for n, (kind, what) in enumerate(steps):
            if kind == "actor":
                await _act(emulator, chime, made, what, n)
            elif kind == "control":
                path, body, headers = what
                path = path.format(meeting=made.meeting_id, other=uuid.uuid4())
                hostile.control_call(emulator, path, body, headers=headers)
            elif kind == "admin":
                hostile.admin_call(emulator, *what)
            else:
                await fuzzer.send(what)
                await fuzzer.send(codec.encode(codec.Ping(1000 + n), 1))
                while not isinstance(pong := await next_frame(fuzzer), codec.Pong) or pong.ping_id != 1000 + n:
                    assert not isinstance(pong, codec.DataMessages) or pong.messages[0].data.startswith(b"bystander")
            await send(sender, f"bystander-{n}")
        received = []
        while len(received) < len(steps):
            received.extend(m.data for m in await next_messages(listener))
        assert received == [f"bystander-{n}".encode() for n in range(len(steps))]
        await assert_next_is_sentinel(sender, listener)
        for ws in (sender, listener, fuzzer):
            await ws.close()

    run(scenario())
    hostile.assert_no_traceback(emulator)
