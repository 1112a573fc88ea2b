"""A `Replayed` event (a message the service sent again to a member who joined late or came back) is
accounted like any arrival — the ledger calls it a replay — and timed apart from delivery latency."""

from __future__ import annotations

from types import SimpleNamespace

from harness.metrics.histograms import Recorder
from harness.metrics.ledger_record import DeliveryLedger
from harness.net.reconnect import SdkLike
from harness.services.base import Delivered, Replayed, UserSpec
from harness.session.chat_session import ChatSession

MS = 1_000_000
ROOM = "room-1"


class _Protocol:
    """Hands the session whatever event the test puts in the frame."""

    outbox: list = []

    def receive(self, payload, is_text, at_ns):
        return payload


def test_a_replay_is_accounted_as_replayed_and_timed_apart_from_delivery():
    recorder = Recorder()
    recorder.from_server = recorder.histogram("from_server")
    ids = iter(range(1, 10))
    runtime = SimpleNamespace(recorder=recorder, ledger=DeliveryLedger(), service=None, clock_offset_ns=0,
                              spread=None, replay=(60_000 * MS, 10), next_membership_id=lambda: next(ids))
    session = ChatSession(runtime, handle=None, user=UserSpec("late", "late-user", ROOM), policy=SdkLike())
    session.protocol = _Protocol()
    for seq, accepted_ms in ((1, 100), (2, 200)):  # sent before the late member joined, seen by another
        runtime.ledger.sent("s", seq, ROOM, accepted_ms * MS)
        runtime.ledger.acked("s", seq, ROOM, accepted_ms * MS)
    session._joined(ROOM, 1_000 * MS)
    session.on_frame(Replayed("s", 1, 100_000, 100 * MS), False, 1_001 * MS)
    session.on_frame(Replayed("s", 2, 200_000, 200 * MS), False, 1_002 * MS)
    runtime.ledger.sent("s", 3, ROOM, 1_100 * MS)
    session.on_frame(Delivered("s", 3, 1_100_000, 1_100 * MS), False, 1_103 * MS)

    counts = runtime.ledger.result(2_000 * MS).per_receiver["late"]
    assert (counts.replay_expected, counts.replayed, counts.replay_missed) == (2, 2, 0)
    assert (counts.expected, counts.delivered, counts.unexpected) == (1, 1, 0)
    totals = recorder.totals()["histograms"]
    assert set(totals) >= {"replay", "delivery"}
    summary = recorder.summary()["histograms"]
    assert summary["replay"]["count"] == 2 and summary["replay"]["min"] >= 800_000  # ages: 901 and 802 ms
    assert summary["delivery"]["count"] == 1 and summary["delivery"]["max"] < 10_000  # only the live one: 3 ms
