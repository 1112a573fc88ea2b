"""The fan-out every emulator shares (harness/emulation/fanout.py): who gets a frame, slow consumers
dropped and counted, the counts — the same for every service, with or without an artificial
delivery cost. Members here are stand-ins with a recording transport; no sockets.

Two of these failed before the fan-out was shared: IVS Chat's path with a delivery cost wrote to
slow consumers forever, and IVS Real-Time aborted them without counting.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.emulation.fanout import SLOW_CONSUMER_BYTES, FanoutCounts, write_to_all
from harness.emulation.frames import OPEN


class Transport:
    def __init__(self, backlog: int = 0, closing: bool = False) -> None:
        self.backlog, self.closing = backlog, closing
        self.written: list[bytes] = []
        self.aborted = False

    def is_closing(self) -> bool:
        return self.closing or self.aborted

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def write(self, frame: bytes) -> None:
        self.written.append(frame)

    def abort(self) -> None:
        self.aborted = True


def member(member_id: int, backlog: int = 0, closing: bool = False, **fields) -> SimpleNamespace:
    transport = Transport(backlog, closing)
    return SimpleNamespace(id=member_id, transport=transport, connection=SimpleNamespace(
        protocol=SimpleNamespace(state=OPEN), transport=transport), **fields)


def slow(member_id: int, **fields) -> SimpleNamespace:
    return member(member_id, SLOW_CONSUMER_BYTES + 1, **fields)


@pytest.mark.parametrize("cost_s", [0.0, 1e-6])
def test_every_open_recipient_gets_the_same_bytes_and_slow_ones_are_dropped_and_counted(cost_s):
    fast, skipped, closing, behind = member(1), member(2), member(3, closing=True), slow(4)
    counts = FanoutCounts()
    missed = write_to_all(b"frame", [fast, skipped, closing, behind], counts, skip=skipped, cost_s=cost_s)
    assert fast.transport.written == [b"frame"]
    assert skipped.transport.written == closing.transport.written == behind.transport.written == []
    assert behind.transport.aborted and not fast.transport.aborted and not closing.transport.aborted
    assert (counts.frames_delivered, counts.slow_consumers_dropped) == (1, 1)
    assert missed == [closing, behind]


def test_a_fan_out_that_reaches_everyone_reports_nobody_missed():
    counts = FanoutCounts()
    assert write_to_all(b"x", [member(1), member(2)], counts) is None
    assert counts.frames_delivered == 2


def test_ivschat_drops_slow_consumers_also_with_a_delivery_cost():
    from harness.services.ivschat.emulator.dataplane import DataPlane
    from harness.services.ivschat.emulator.metrics import Metrics
    from harness.services.ivschat.emulator.review import ReviewHandlers
    from harness.services.ivschat.emulator.state import IvsChatRooms

    rooms = IvsChatRooms()
    plane = DataPlane(rooms, Metrics(), ReviewHandlers())
    plane.delivery_cost_s = 1e-6
    runtime = plane.runtime(rooms.create_room())
    fast, behind = member(1), slow(2)
    runtime.members.update({1: fast, 2: behind})
    runtime.line.deliver(b"frame")
    assert fast.transport.written == [b"frame"] and behind.transport.written == []
    assert behind.transport.aborted
    assert (runtime.counters.frames_delivered, runtime.counters.slow_consumers_dropped) == (1, 1)


def test_ivsrealtime_counts_the_slow_consumers_it_drops_and_shows_them_in_metrics():
    from harness.services.ivsrealtime.emulator.dataplane import DataPlane
    from harness.services.ivsrealtime.emulator.metrics import Metrics
    from harness.services.ivsrealtime.emulator.state import RealtimeState

    state = RealtimeState()
    plane = DataPlane(state, Metrics())
    stage = state.create_stage("fan-out")
    runtime = plane.runtime(stage)
    fast, behind = member(1), slow(2)
    runtime.members.update({1: fast, 2: behind})
    runtime.line.deliver(b"state")
    assert behind.transport.aborted and fast.transport.written == [b"state"]
    assert runtime.counters.slow_consumers_dropped == 1
    text = plane.metrics.render(plane.stage_metrics())
    assert f'ivsrealtime_slow_consumers_dropped_total{{room="{stage.id}"}} 1' in text


def test_chime_leaves_a_slow_receiver_out_of_the_meeting_until_it_comes_back():
    """A receiver dropped as slow stops being joined before the message counts as seen: it is replayed
    to that attendee when it joins again."""
    from harness.services.chime.emulator.metrics import Metrics
    from harness.services.chime.emulator.signaling import Outgoing, SignalingPlane
    from harness.services.chime.emulator.state import MeetingState

    state = MeetingState()
    plane = SignalingPlane(state, Metrics())
    meeting = state.create_meeting(client_request_token="fan-out", media_region="us-east-1",
                                   external_meeting_id="fan-out", signaling_base="ws://127.0.0.1:1/control")
    runtime = plane.runtime(meeting)
    sender = member(1, joined=True, attendee_id="a-sender")
    fast = member(2, joined=True, attendee_id="a-fast")
    behind = slow(3, joined=True, attendee_id="a-slow")
    waiting = member(4, joined=False, attendee_id="a-waiting")
    runtime.members.update({1: sender, 2: fast, 3: behind, 4: waiting})
    runtime.line.deliver(Outgoing(b"data", "a-sender", 42))
    assert fast.transport.written == [b"data"]
    assert sender.transport.written == behind.transport.written == waiting.transport.written == []
    assert behind.transport.aborted and not behind.joined
    assert (runtime.counters.frames_delivered, runtime.counters.slow_consumers_dropped) == (1, 1)
    assert runtime.limits["a-slow"].seen_until_ns < 42 == runtime.last_fanned_ns

