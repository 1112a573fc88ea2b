"""Propagation (origin in one process, observers in others) and fan-out spread, merged exactly."""

from __future__ import annotations

from harness.metrics.ledger_record import DeliveryLedger
from harness.metrics.propagation import PropagationLog, SpreadLog, merge, merge_spread

MS = 1_000_000
ROOM = "presence.lobby"


def _members(*intervals) -> dict:
    """A ledger export with each (receiver, start_ms, end_ms | None) as one membership of ROOM."""
    ledger = DeliveryLedger()
    for index, (receiver, start, end) in enumerate(intervals, start=1):
        ledger.connected(receiver, index, ROOM, start * MS)
        if end is not None:
            ledger.disconnected(receiver, index, end * MS)
    return ledger.export(1000 * MS)


USERS = {"user-a": "a", "user-b": "b", "user-c": "c", "user-d": "d"}


def test_every_member_present_owes_an_observation_and_latency_is_exact():
    a, b = PropagationLog(), PropagationLog()  # two processes: A's and the observers'
    a.origin("presence", ROOM, "user-a", 100 * MS)
    b.observed("presence", ROOM, "user-a", "user-b", 103 * MS)
    b.observed("presence", ROOM, "user-a", "user-c", 108 * MS)
    members = _members(("a", 100, None), ("b", 10, None), ("c", 50, None), ("d", 200, None))
    facts = merge([a.export(), b.export()], [members], USERS)["presence"]
    histogram = facts.pop("histogram")
    # a is the subject (never owed its own origin); d joined after it: not owed.
    assert facts == {"expected": 2, "observed": 2, "missed": 0, "unconfirmed": 0, "extra": 0, "duplicates": 0,
                     "unmatched": 0}
    assert histogram.count == 2 and histogram.min == 3000 and 7990 <= histogram.max <= 8010


def test_missed_unconfirmed_extra_duplicates_and_unmatched():
    log = PropagationLog()
    log.origin("presence", ROOM, "user-a", 100 * MS)
    log.origin("presence", ROOM, "user-a", 300 * MS)  # a comes back later
    # b saw the second but not the first, in one membership: in order, it missed the first.
    log.observed("presence", ROOM, "user-a", "user-b", 305 * MS)
    # c left at 150 having seen nothing later: the first one's fate is unknown.
    # d joined at 99 ms... no: d joined at 120, after the first origin, yet saw it (joined meanwhile).
    log.observed("presence", ROOM, "user-a", "user-d", 121 * MS)
    log.observed("presence", ROOM, "user-a", "user-d", 122 * MS)  # the same one again
    log.observed("presence", ROOM, "user-z", "user-b", 130 * MS)  # nobody recorded z's origin
    members = _members(("b", 10, None), ("c", 50, 150), ("d", 120, 250))
    facts = merge([log.export()], [members], USERS)["presence"]
    facts.pop("histogram")
    assert facts == {"expected": 3, "observed": 1, "missed": 1, "unconfirmed": 1, "extra": 1, "duplicates": 1,
                     "unmatched": 1}
    assert facts["observed"] + facts["missed"] + facts["unconfirmed"] == facts["expected"]


def test_spread_is_last_recipient_minus_first_across_processes():
    one, two = SpreadLog(), SpreadLog()
    one.observe("s", 1, 100 * MS)
    one.observe("s", 1, 103 * MS)
    two.observe("s", 1, 101 * MS)
    two.observe("s", 1, 109 * MS)  # the last recipient is in another process
    two.observe("s", 2, 200 * MS)  # one recipient: no spread
    histogram = merge_spread([one.export(), two.export()])
    assert histogram.count == 1 and 8990 <= histogram.max <= 9010
