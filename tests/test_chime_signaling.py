"""The Chime emulator's signaling WebSocket: handshake, JOIN/PING/LEAVE, data-message fan-out,
throttles, replay, meeting and attendee deletion, and the shared faults — real websockets clients
against an emulator child process, meetings made with real boto3."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.emulation.throttle import Rate, TokenBucket
from harness.services.chime import codec
from harness.services.chime.emulator import EmulatorProcess
from harness.services.chime.emulator.limits import ReplayBuffer

from .chime import (
    assert_next_is_sentinel,
    attendee_id,
    client,
    frames_until_closed,
    join,
    meeting,
    next_frame,
    next_messages,
    open_socket,
    send,
    token,
    wait_closed,
)

SOFT, HARD = "5/20", "5/40"  # small limits, so throttling is cheap to reach


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess("--data-soft-limit", SOFT, "--data-hard-limit", HARD, service="chime") as process:
        yield process


@pytest.fixture(scope="module")
def chime(emulator):
    return client(emulator)


def run(coro):
    return uvloop.run(coro)


# -- handshake ---------------------------------------------------------------------------------------


def test_handshake_selects_the_session_marker(chime):
    made = meeting(chime)

    async def scenario():
        ws = await open_socket(made, "alice")
        assert ws.subprotocol == "_aws_wt_session"
        assert token(made, "alice") not in str(ws.response.headers)  # the token is not echoed
        await ws.close()

    run(scenario())


@pytest.mark.parametrize("path, protocols, status", [
    ("/elsewhere/{m}?X-Chime-Control-Protocol-Version=3", ["_aws_wt_session", "{t}"], 404),
    ("/control/{m}", ["_aws_wt_session", "{t}"], 400),  # no protocol version
    ("/control/{m}?X-Chime-Control-Protocol-Version=2", ["_aws_wt_session", "{t}"], 400),
    ("/control/{m}?X-Chime-Control-Protocol-Version=3", ["{t}"], 400),  # token alone
    ("/control/{m}?X-Chime-Control-Protocol-Version=3", ["_aws_wt_session"], 400),  # no token
    ("/control/{m}?X-Chime-Control-Protocol-Version=3", ["{t}", "_aws_wt_session"], 400),  # wrong order
])
def test_handshakes_that_are_not_the_sdks_are_refused(emulator, chime, path, protocols, status):
    made = meeting(chime)
    url = emulator.messaging_endpoint + path.format(m=made.meeting_id)
    offered = [p.format(t=token(made, "alice")) for p in protocols]

    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, subprotocols=offered, open_timeout=5)
        assert refused.value.response.status_code == status

    run(scenario())
    assert re.search(rf'chime_handshakes_rejected_total\{{status="{status}"\}} [1-9]', emulator.admin.metrics_text())


# -- join, ping, fan-out -----------------------------------------------------------------------------


def test_join_ping_and_fan_out_to_the_other_attendees(chime):
    made = meeting(chime, "alice", "bob", "carol")

    async def scenario():
        alice = await join(made, "alice")
        bob = await join(made, "bob")
        carol = await open_socket(made, "carol")
        await carol.send(codec.encode(codec.Join(), 1))
        assert isinstance(await next_frame(carol), codec.JoinAck)
        assert (await next_frame(carol)).num_participants == 3
        await alice.send(codec.encode(codec.Ping(41), 1))
        pong = await next_frame(alice)
        assert isinstance(pong, codec.Pong) and pong.ping_id == 41 and pong.timestamp_ms > 0
        before = time.time_ns()
        data = await send(alice, b"\x00binary \xff payload", lifetime_ms=0, topic="T-1_x")
        second = await send(alice, "second")
        for ws in (bob, carol):
            first, = await next_messages(ws)
            assert (first.topic, first.data, first.lifetime_ms) == ("T-1_x", data, 0)
            assert first.sender_attendee_id == attendee_id(made, "alice")
            assert first.sender_external_user_id == "alice"
            assert before <= first.ingest_time_ns <= time.time_ns() and not first.throttled
            following, = await next_messages(ws)
            assert following.data == second and following.ingest_time_ns > first.ingest_time_ns
        # The sender gets nothing back: the next thing alice sees is bob's sentinel.
        await assert_next_is_sentinel(bob, alice, carol)
        for ws in (alice, bob, carol):
            await ws.close()

    run(scenario())


def test_leave_acks_and_stops_delivery(chime):
    made = meeting(chime, "alice", "bob", "carol")

    async def scenario():
        alice, bob, carol = [await join(made, u) for u in ("alice", "bob", "carol")]
        await alice.send(codec.encode(codec.Leave(), 1))
        assert isinstance(await next_frame(alice), codec.LeaveAck)
        await assert_next_is_sentinel(bob, carol)
        await alice.send(codec.encode(codec.Ping(5), 1))
        pong = await next_frame(alice)  # nothing reached alice after she left: the PONG comes first
        assert isinstance(pong, codec.Pong) and pong.ping_id == 5

    run(scenario())


# -- throttling --------------------------------------------------------------------------------------


async def burst(ws, count: int, prefix: str) -> list[codec.Frame]:
    """Send `count` messages back to back, then a PING: what comes back before the PONG answers the burst."""
    for i in range(count):
        await send(ws, f"{prefix}-{i}")
    await ws.send(codec.encode(codec.Ping(99), 1))
    frames = []
    while not isinstance(frame := await next_frame(ws), codec.Pong):
        frames.append(frame)
    return frames


def test_soft_limit_returns_messages_to_the_sender_throttled(chime):
    made = meeting(chime, "alice", "bob", "carol")

    async def scenario():
        alice, bob, carol = [await join(made, u) for u in ("alice", "bob", "carol")]
        answers = await burst(alice, 30, "b")
        throttled = [m for frame in answers for m in frame.messages]
        assert all(isinstance(f, codec.DataMessages) for f in answers)
        assert all(m.throttled and m.ingest_time_ns == 0 for m in throttled)
        assert all(m.sender_attendee_id == attendee_id(made, "alice") and m.sender_external_user_id == "alice"
                   for m in throttled)
        assert 5 <= len(throttled) <= 30 - 20  # burst 20 passes; a little refills at 5/s
        delivered = [(await next_messages(bob))[0].data for _ in range(30 - len(throttled))]
        assert sorted(delivered + [m.data for m in throttled]) == sorted(f"b-{i}".encode() for i in range(30))
        assert not set(delivered) & {m.data for m in throttled}
        await assert_next_is_sentinel(carol, bob, alice)

    run(scenario())


def test_hard_limit_closes_the_connection(emulator, chime):
    made = meeting(chime, "alice", "bob", "carol")

    async def scenario():
        alice, bob, carol = [await join(made, u) for u in ("alice", "bob", "carol")]
        for i in range(60):
            await send(alice, f"h-{i}")
        frames = await frames_until_closed(alice)
        assert alice.close_code == 4429
        errors = [f for f in frames if isinstance(f, codec.ErrorFrame)]
        assert [e.status for e in errors] == [429]
        assert isinstance(frames[-1], codec.ErrorFrame)
        received = 0
        while received < 20:  # the soft burst reached bob; then the connection was gone
            received += len(await next_messages(bob))
        await assert_next_is_sentinel(carol, bob)

    run(scenario())
    assert re.search(rf'chime_closed_total\{{room="{made.meeting_id}",code="4429"\}} 1', emulator.admin.metrics_text())


# -- replay ------------------------------------------------------------------------------------------


def test_messages_with_a_lifetime_are_replayed_to_late_joiners_and_comebacks(chime):
    made = meeting(chime, "alice", "bob", "carol")

    async def scenario():
        alice, bob = await join(made, "alice"), await join(made, "bob")
        await send(alice, "kept-1", lifetime_ms=60_000)
        await send(alice, "not-kept")
        originals = [(await next_messages(bob))[0], (await next_messages(bob))[0]]
        # bob sends only once alice's two are in: from two sockets, the emulator could otherwise take them
        # in either order, and the replay's order is the emulator's.
        await send(bob, "kept-2", lifetime_ms=60_000)
        originals.append((await next_messages(alice))[0])
        carol = await join(made, "carol")
        replayed = [(await next_messages(carol))[0] for _ in range(2)]
        assert [m.data for m in replayed] == [b"kept-1", b"kept-2"]
        assert replayed[0] == originals[0] and replayed[1] == originals[2]  # original ingest times and senders
        await assert_next_is_sentinel(alice, carol, bob)
        # bob comes back: only what was sent while he was away is replayed, never his own.
        await bob.close()
        await send(alice, "while-away", lifetime_ms=60_000)
        assert (await next_messages(carol))[0].data == b"while-away"
        bob = await join(made, "bob")
        assert [m.data for m in await next_messages(bob)] == [b"while-away"]
        await assert_next_is_sentinel(carol, bob, alice)

    run(scenario())


def test_replay_ends_with_the_lifetime(chime):
    made = meeting(chime, "alice", "bob")

    async def scenario():
        alice = await join(made, "alice")
        await send(alice, "short", lifetime_ms=200)
        await alice.send(codec.encode(codec.Ping(1), 1))
        assert isinstance(await next_frame(alice), codec.Pong)  # accepted by now
        await asyncio.sleep(0.3)  # a deadline, not a guess: the lifetime is over after 200 ms
        bob = await join(made, "bob")
        await assert_next_is_sentinel(alice, bob)

    run(scenario())


def test_replay_buffer_keeps_1024_messages_for_at_most_its_age():
    buffer = ReplayBuffer(capacity=3, max_age_s=10)
    for i in range(5):
        buffer.keep(ingest_ns=i * 1_000_000_000, lifetime_ms=60_000, sender_attendee_id=f"s{i % 2}", frame=bytes([i]))
    buffer.keep(ingest_ns=5_000_000_000, lifetime_ms=0, sender_attendee_id="s0", frame=b"none")  # no lifetime
    assert [r.frame for r in buffer.live(now_ns=0)] == [b"\x02", b"\x03", b"\x04"]  # the oldest went first
    assert [r.frame for r in buffer.live(now_ns=0, excluding="s0")] == [b"\x03"]
    assert [r.frame for r in buffer.live(now_ns=0, after_ns=2_000_000_000, until_ns=3_000_000_000)] == [b"\x03"]
    assert [r.frame for r in buffer.live(now_ns=12_500_000_000)] == [b"\x03", b"\x04"]  # 10 s cap, not 60 s
    assert ReplayBuffer().capacity == 1024 and ReplayBuffer().max_age_ns == 300 * 10**9


def test_token_bucket_rate_and_burst():
    bucket = TokenBucket(Rate(100, 200))
    assert sum(bucket.allow(0.0) for _ in range(250)) == 200
    assert sum(bucket.allow(0.5) for _ in range(100)) == 50  # 0.5 s refills 50
    assert not bucket.allow(0.4)  # a clock stepping back refills nothing
    with pytest.raises(ValueError):
        Rate(0, 10)


# -- invalid input on a live connection -------------------------------------------------------------


def test_invalid_messages_get_error_400_and_the_connection_stays(emulator, chime):
    made = meeting(chime, "alice", "bob")

    async def scenario():
        alice = await open_socket(made, "alice")
        await send(alice, "too early")
        assert (await next_frame(alice)).status == 400
        await alice.send(codec.encode(codec.Join(), 1))
        await next_frame(alice), await next_frame(alice)
        bob = await join(made, "bob")
        for bad in (codec.DataMessages((codec.DataMessage("bad topic!", b"x"),)),
                    codec.DataMessages((codec.DataMessage("t", b"x" * 2049),)),
                    codec.DataMessages(()),
                    codec.DataMessages((codec.DataMessage("ok", b"x"), codec.DataMessage("", b"y"))),
                    codec.Join(), codec.Index(3), codec.ErrorFrame(500, "from a client")):
            await alice.send(codec.encode(bad, 1))
            answer = await next_frame(alice)
            assert isinstance(answer, codec.ErrorFrame) and answer.status == 400, (bad, answer)
        await alice.send(codec.encode(codec.OtherFrame(codec.Type.CLIENT_METRIC), 1))  # ignored, no answer
        await assert_next_is_sentinel(bob, alice)
        await assert_next_is_sentinel(alice, bob)

    run(scenario())
    assert re.search(rf'chime_rejected_total\{{room="{made.meeting_id}",code="400"\}} 8', emulator.admin.metrics_text())


def test_an_unreadable_frame_closes_4400_when_the_client_asked(chime):
    made = meeting(chime, "alice", "bob")

    async def scenario():
        alice, bob = await join(made, "alice"), await join(made, "bob")
        await alice.send(b"\x05\xff\xff")
        frames = await frames_until_closed(alice)
        assert [f.status for f in frames] == [400] and alice.close_code == 4400
        await assert_next_is_sentinel(bob)  # bob is fine (and alice is gone)

    run(scenario())


# -- tokens, deletions -------------------------------------------------------------------------------


def test_forged_and_misplaced_tokens_are_rejected_with_403_then_4403(emulator, chime):
    made, other = meeting(chime), meeting(chime)

    async def scenario():
        for join_token, target in (("Zm9yZ2Vk", made), (token(other, "alice"), made)):
            ws = await open_socket(target, "alice", join_token=join_token)
            frames = await frames_until_closed(ws)
            assert [(type(f), f.status) for f in frames] == [(codec.ErrorFrame, 403)]
            assert ws.close_code == 4403

    run(scenario())
    assert re.search(r'chime_sessions_rejected_total\{code="4403"\} [2-9]', emulator.admin.metrics_text())


def test_delete_meeting_ends_every_connection_with_4410(chime):
    made = meeting(chime, "alice", "bob")

    async def scenario():
        alice, bob = await join(made, "alice"), await open_socket(made, "bob")  # bob has not joined: closed too
        await asyncio.to_thread(chime.delete_meeting, MeetingId=made.meeting_id)
        for ws in (alice, bob):
            frames = await frames_until_closed(ws)
            assert frames == [codec.AudioStatus(410, timestamp_ms=frames[0].timestamp_ms)]
            assert ws.close_code == 4410
        again = await open_socket(made, "alice")
        assert await frames_until_closed(again) == [] and again.close_code == 4410

    run(scenario())


def test_delete_attendee_ends_that_attendee_only(chime):
    made = meeting(chime, "alice", "bob", "carol")

    async def scenario():
        alice, bob, carol = [await join(made, u) for u in ("alice", "bob", "carol")]
        await asyncio.to_thread(chime.delete_attendee, MeetingId=made.meeting_id, AttendeeId=attendee_id(made, "alice"))
        frames = await frames_until_closed(alice)
        assert [f.status for f in frames] == [411] and isinstance(frames[0], codec.AudioStatus)
        assert alice.close_code == 4410
        await assert_next_is_sentinel(bob, carol)
        again = await open_socket(made, "alice")
        assert [f.status for f in await frames_until_closed(again)] == [403] and again.close_code == 4403

    run(scenario())


# -- faults ------------------------------------------------------------------------------------------


def test_fault_drop_and_expire(emulator, chime):
    made = meeting(chime, "alice", "bob", "carol")
    admin = emulator.admin

    async def scenario():
        alice, bob, carol = [await join(made, u) for u in ("alice", "bob", "carol")]
        listed = await asyncio.to_thread(admin.connections, made.meeting_id)
        assert {(c["user_id"], c["joined"]) for c in listed} == {("alice", True), ("bob", True), ("carol", True)}
        dropped = await asyncio.to_thread(admin.drop, room=made.meeting_id, users=["alice"])
        assert [d["user_id"] for d in dropped] == ["alice"]
        assert (await wait_closed(alice))[0] == 1006
        await asyncio.to_thread(admin.drop, room=made.meeting_id, users=["bob"], mode="clean", code=4500)
        assert (await wait_closed(bob))[0] == 4500
        expired = await asyncio.to_thread(admin.expire, room=made.meeting_id, users=["carol"])
        assert len(expired) == 1
        frames = await frames_until_closed(carol)
        assert [f.status for f in frames] == [401] and carol.close_code == 4401
        # The join token outlives an expired session.
        carol = await join(made, "carol")
        await carol.close()

    run(scenario())


def test_fault_delay_and_pause(emulator, chime):
    made = meeting(chime, "alice", "bob")
    admin = emulator.admin

    async def scenario():
        alice, bob = await join(made, "alice"), await join(made, "bob")
        await asyncio.to_thread(admin.delay, 300, 0, made.meeting_id)
        started = time.monotonic()
        await send(alice, "one")
        await send(alice, "two")
        assert [(await next_messages(bob))[0].data for _ in range(2)] == [b"one", b"two"]
        assert time.monotonic() - started >= 0.25
        await asyncio.to_thread(admin.delay, 0, 0, made.meeting_id)
        await asyncio.to_thread(admin.pause, made.meeting_id, "hold")
        await send(alice, "held")
        await alice.send(codec.encode(codec.Ping(1), 1))
        assert isinstance(await next_frame(alice), codec.Pong)
        assert await asyncio.to_thread(admin.resume, made.meeting_id) == 1
        assert (await next_messages(bob))[0].data == b"held"
        await asyncio.to_thread(admin.pause, made.meeting_id, "drop")
        await send(alice, "lost")
        await alice.send(codec.encode(codec.Ping(2), 1))
        assert isinstance(await next_frame(alice), codec.Pong)
        await asyncio.to_thread(admin.resume, made.meeting_id)
        await assert_next_is_sentinel(alice, bob)

    run(scenario())
    text = emulator.admin.metrics_text()
    assert re.search(rf'chime_messages_dropped_paused_total\{{room="{made.meeting_id}"\}} 1', text)


def test_fault_restart_keeps_meetings(chime):
    with EmulatorProcess(service="chime") as own:
        own_chime = client(own)
        made = meeting(own_chime, "alice", "bob")

        async def scenario():
            alice = await join(made, "alice")
            assert await asyncio.to_thread(own.admin.restart, 100) == 1
            assert (await wait_closed(alice))[0] == 1006
            alice, bob = await join(made, "alice"), await join(made, "bob")
            await assert_next_is_sentinel(alice, bob)

        run(scenario())


def test_metrics_are_per_meeting_and_carry_no_secrets(emulator, chime):
    made = meeting(chime, "alice", "bob")

    async def scenario():
        alice, bob = await join(made, "alice"), await join(made, "bob")
        await assert_next_is_sentinel(alice, bob)

    run(scenario())
    text = emulator.admin.metrics_text()
    room = f'room="{made.meeting_id}"'
    for name, value in (("connections_opened_total", 2), ("joins_total", 2), ("messages_accepted_total", 1),
                        ("frames_delivered_total", 1)):
        assert f"chime_{name}{{{room}}} {value}" in text, name
    assert all(a.join_token not in text for a in made.attendees)
    assert "alice" not in text
    for line in text.splitlines():  # its own families and the ones every emulator shares, nothing else
        assert line.startswith(("# ", "chime_", "chatload_emulator_")), line


def test_cli_rejects_bad_options_and_lists_its_own():
    bad = subprocess.run([sys.executable, "-m", "harness.emulation", "--service", "chime", "--data-soft-limit", "x/1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "RATE/BURST" in bad.stderr
    negative = subprocess.run([sys.executable, "-m", "harness.emulation", "--service", "chime", "--replay-seconds",
                               "-1"], capture_output=True, text=True, timeout=60)
    assert negative.returncode == 2 and "--replay-messages" in negative.stderr
    usage = subprocess.run([sys.executable, "-m", "harness.emulation", "--service", "chime", "--help"],
                           capture_output=True, text=True, timeout=60)
    assert "--data-hard-limit" in usage.stdout and "--throttle" in usage.stdout
