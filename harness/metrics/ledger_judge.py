"""The delivery ledger's judgement: every process's export merged, and the accounting rules applied.

Runs once, after the run, in the process that owns it (`harness/results/run_results.py`), over the exports of
`ledger_format` that each process's `DeliveryLedger` (`ledger_record`) wrote. Times are integer
nanoseconds on the shared wall clock; *accept time* is the server's own time of accepting a message
(the client's send time for a presumed-accepted one). A message is identified by (sender, seq).

Rules, as implemented:

- *Accepted*: the sender got its echo (`acked`) or any receiver `received` it, in any process. Its room
  and accept time are then known. `rejected(sender, seq, code, at_ns, category)` counts it in
  `rejected_by_code` (the service's own code) and `rejected_by_category` (the neutral category of
  `harness.services.base.Category`); a rejected message is never lost, never expected. A `sent`
  message neither accepted anywhere nor rejected is an `unconfirmed_send`.
- *Presumed accepted*: the service answers every request on an open connection, with the echo or an
  error. A send that got neither while its connection stayed open for the caller's answer timeout was
  accepted and delivered to no one (a paused or broken fan-out): `presumed_accepted(sender, seq, room,
  sent_ns)` records it with the client's send time standing in for the accept time. At merge a real
  accept time from any process wins; the rest count in `presumed_accepted` and are expected like any
  other.
- *Connection interval* of a receiver connection: the half-open interval [connected_ns, end), where
  `connected_ns` is the client time its membership of the room began (the server had already made it
  a member) and `end` is the client time it noticed the close or drop (`disconnected`), or `end_ns`
  given to `export` for connections still open (after the drain period). If a receiver connects again
  while one of its connections is still open, that one is closed at the new `connected_ns`: a
  receiver's intervals never overlap. If a connection received a message accepted at or after its
  `end` (clock uncertainty), its end is moved just past that accept time.
- *Expected* at a receiver: accepted messages of the connection's room whose accept time lies in one of
  its connection intervals (the sender is a receiver of its own messages too: call `received` for the
  echo if the sender's connection is a receiver).
- *Delivered*: distinct expected messages the receiver received, on any of its connections.
- Rooms fan out in FIFO order, so let L be the highest accept time a connection received within its
  interval. Expected messages of that interval accepted at or before L that are missing are *lost*.
  Missing ones accepted after L cannot be judged if the connection closed (the server may have dropped
  the member before fanning them out): *unconfirmed_at_disconnect*, not lost. For a connection still
  open at `export(end_ns)`, every missing expected message of its interval is lost. A connection that
  received nothing has L = -inf (all its missing messages are unconfirmed if it closed, lost if open).
  Invariant, per receiver: delivered + lost + unconfirmed_at_disconnect == expected.
- *Missed while away*: accepted messages of the room whose accept time lies between two consecutive
  intervals of a receiver in that room ([end of one, start of the next)). Counted whether or not some
  of them were nevertheless received (those are also `unexpected`).
- *Duplicates*: receipts of a (sender, seq) the receiver already had (across all its connections).
- *Out of order*: first receipts of a (sender, seq) whose seq is lower than the highest seq already
  received from that sender on that connection (a duplicate is counted as a duplicate only).
- *During handshake*: distinct received messages accepted after the connection attempt began
  (`opening_ns` given to `connected`) but before its interval starts: the server had made the
  receiver a member before its handshake response arrived. Legitimate, not expected, not errors.
- *Replayed* (services that replay recent messages to members who join late or come back, e.g.
  Chime's message lifetimes): with a replay window (window_ns, max) given to `connected`, a
  message accepted in [start − window, start) that arrives on the connection is `replayed`. What
  should have been replayed: the messages of the room accepted in that window and after the
  receiver's previous membership of the room ended (what it already had is not sent again), the
  last `max` of them: `replay_expected`; `replay_missed` = replay_expected − replayed.
- *Unexpected*: any other distinct received message not expected at that receiver (accepted before
  a connection began and delivered late, or while it was away); reported, not errors.

Duplicates, out of order, during handshake, replayed and unexpected are decided by the recorder as
receipts arrive (so a receiver's connections must all be in one process); the rest is judged here:
`merge_exports` unions the accepted messages of all exports (a message acked in process A and
received in process B is one message), then evaluates the rules per connection with bisect on each
room's sorted accept times.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields

from .ledger_format import FORMAT


@dataclass
class ReceiverCounts:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    unconfirmed_at_disconnect: int = 0
    missed_while_away: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    unexpected: int = 0
    during_handshake: int = 0
    replay_expected: int = 0
    replayed: int = 0
    replay_missed: int = 0
    connections: int = 0

    def add(self, other: ReceiverCounts) -> None:
        for f in fields(ReceiverCounts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class AccountingTotals(ReceiverCounts):
    accepted: int = 0
    sent: int = 0
    rejected_by_code: dict[int | str, int] = field(default_factory=dict)
    rejected_by_category: dict[str, int] = field(default_factory=dict)
    unconfirmed_sends: int = 0
    presumed_accepted: int = 0
    receivers: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_code.values())


@dataclass(frozen=True)
class LostPair:
    receiver: str
    sender: str
    lost: int


@dataclass
class AccountingResult:
    totals: AccountingTotals
    per_receiver: dict[str, ReceiverCounts]
    worst_pairs: list[LostPair]  # (receiver, sender) pairs with the most lost messages, lost > 0

    def to_dict(self) -> dict:
        totals = asdict(self.totals)
        totals["rejected_by_code"] = {str(code): n for code, n in sorted(
            self.totals.rejected_by_code.items(), key=lambda item: str(item[0]))}
        totals["rejected"] = self.totals.rejected
        return {
            "totals": totals,
            "per_receiver": {rid: asdict(counts) for rid, counts in sorted(self.per_receiver.items())},
            "worst_pairs": [asdict(pair) for pair in self.worst_pairs],
        }


def merge_exports(exports: Iterable[Mapping], worst_n: int = 20) -> AccountingResult:
    """Evaluate the accounting rules over the union of several processes' exports."""
    exports = list(exports)
    for export in exports:
        if export.get("format") != FORMAT:
            raise ValueError(f"not a delivery ledger export ({FORMAT}): format={export.get('format')!r}")

    # Accepted messages: union over all exports, one accept time per (sender, seq).
    accepted: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for export in exports:
        for room, columns in export["rooms"].items():
            senders = columns["senders"]
            by_sender = accepted[room]
            for t, s, q in zip(columns["t"], columns["s"], columns["q"], strict=True):
                by_sender[senders[s]].setdefault(q, t)
    presumed = 0
    for export in exports:  # after every real accept time is in: a real one always wins
        for room, sender, seq, sent_ns in export.get("presumed", ()):
            seqs = accepted[room][sender]
            if seq not in seqs:
                seqs[seq] = sent_ns
                presumed += 1
    room_times: dict[str, list[int]] = {}
    room_sender_times: dict[str, dict[str, list[int]]] = {}
    accepted_by_sender: dict[str, set[int]] = defaultdict(set)
    for room, by_sender in accepted.items():
        room_sender_times[room] = {s: sorted(seqs.values()) for s, seqs in by_sender.items()}
        room_times[room] = sorted(t for times in room_sender_times[room].values() for t in times)
        for s, seqs in by_sender.items():
            accepted_by_sender[s].update(seqs)

    totals = AccountingTotals()
    totals.accepted = sum(len(seqs) for seqs in accepted_by_sender.values())
    totals.presumed_accepted = presumed
    rejected: Counter[int | str] = Counter()
    categories: Counter[str] = Counter()
    pending: set[tuple[str, int]] = set()
    for export in exports:
        totals.sent += export["sent"]
        for code, n in export["rejected"].items():
            rejected[int(code) if code.lstrip("-").isdigit() else code] += n
        categories.update(export.get("rejected_categories", {}))
        for sender, seqs in export["pending"].items():
            pending.update((sender, seq) for seq in seqs)
    totals.rejected_by_code = dict(rejected)
    totals.rejected_by_category = dict(sorted(categories.items()))
    totals.unconfirmed_sends = sum(1 for s, q in pending if q not in accepted_by_sender.get(s, ()))

    # Receivers: a receiver's connections may (exceptionally) come from several exports.
    merged: dict[str, dict] = {}
    for export in exports:
        for rid, facts in export["receivers"].items():
            into = merged.setdefault(rid, {"duplicates": 0, "out_of_order": 0, "unexpected": 0,
                                           "during_handshake": 0, "connections": []})
            for key in ("duplicates", "out_of_order", "unexpected", "during_handshake"):
                into[key] += facts.get(key, 0)
            into["connections"].extend(facts["connections"])

    per_receiver: dict[str, ReceiverCounts] = {}
    pairs: Counter[tuple[str, str]] = Counter()
    for rid, facts in merged.items():
        counts = ReceiverCounts(duplicates=facts["duplicates"], out_of_order=facts["out_of_order"],
                                unexpected=facts["unexpected"], during_handshake=facts["during_handshake"])
        connections = sorted(facts["connections"], key=lambda c: (c["start"], c["end"]))
        counts.connections = len(connections)
        previous_in_room: dict[str, Mapping] = {}
        for conn in connections:
            room = conn["room"]
            times = room_times.get(room, [])
            previous = previous_in_room.get(room)
            _judge_connection(rid, conn, times, room_sender_times.get(room, {}), counts, pairs)
            if conn.get("replay"):
                _judge_replay(conn, times, previous["end"] if previous is not None else None, counts)
            if previous is not None and conn["start"] > previous["end"]:
                counts.missed_while_away += bisect_left(times, conn["start"]) - bisect_left(times, previous["end"])
            previous_in_room[room] = conn
        per_receiver[rid] = counts
        totals.add(counts)
    totals.receivers = len(per_receiver)

    worst = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    worst_pairs = [LostPair(r, s, n) for (r, s), n in worst if n > 0][:worst_n]
    return AccountingResult(totals=totals, per_receiver=per_receiver, worst_pairs=worst_pairs)


def rate_series(exports: Iterable[Mapping]) -> dict[str, dict[int, dict]]:
    """Per room and wall-clock second: offered (client send time), accepted (the server's accept time,
    so the seconds are the server's own rate window on one machine) and rejected by code (client time
    of the rejection). Accepted messages are the union over exports, each counted once."""
    exports = list(exports)
    accepted: dict[str, dict[tuple[str, int], int]] = defaultdict(dict)
    for export in exports:
        for room, columns in export["rooms"].items():
            senders = columns["senders"]
            for t, s, q in zip(columns["t"], columns["s"], columns["q"], strict=True):
                accepted[room].setdefault((senders[s], q), t)
    series: dict[str, dict[int, dict]] = defaultdict(lambda: defaultdict(
        lambda: {"offered": 0, "accepted": 0, "rejected": Counter()}))
    for room, messages in accepted.items():
        for t in messages.values():
            series[room][t // 1_000_000_000]["accepted"] += 1
    for export in exports:
        for room, seconds in export.get("offered", {}).items():
            for second, n in seconds.items():
                series[room][int(second)]["offered"] += n
        for room, rows in export.get("rejected_per_second", {}).items():
            for second, code, n in rows:
                series[room][int(second)]["rejected"][str(code)] += n
    return {room: {second: {**row, "rejected": dict(row["rejected"])} for second, row in sorted(seconds.items())}
            for room, seconds in series.items()}


def _judge_replay(conn: Mapping, times: list[int], previous_end: int | None, counts: ReceiverCounts) -> None:
    window, cap = conn["replay"]
    since = conn["start"] - window if previous_end is None else max(conn["start"] - window, previous_end)
    expected = min(cap, max(0, bisect_left(times, conn["start"]) - bisect_left(times, since)))
    counts.replay_expected += expected
    counts.replayed += conn["replayed"]
    counts.replay_missed += max(0, expected - conn["replayed"])


def _judge_connection(rid: str, conn: Mapping, times: list[int], sender_times: Mapping[str, list[int]],
                      counts: ReceiverCounts, pairs: Counter[tuple[str, str]]) -> None:
    start, end, last, is_open = conn["start"], conn["end"], conn["last"], conn["open"]
    own: Mapping[str, int] = conn["own"]
    foreign = conn["foreign"]
    lo = bisect_left(times, start)
    hi = bisect_left(times, end)
    judged = lo if last is None else bisect_right(times, last, lo, hi)  # accepted at or before L
    foreign_le = 0 if last is None else sum(1 for t, _ in foreign if t <= last)
    foreign_gt = len(foreign) - foreign_le
    own_total = sum(own.values())
    lost = (judged - lo) - own_total - foreign_le
    tail = (hi - judged) - foreign_gt  # missing after L
    if is_open:
        lost += tail
        tail = 0
    counts.expected += hi - lo
    counts.delivered += own_total + len(foreign)
    counts.lost += lost
    counts.unconfirmed_at_disconnect += tail
    if lost <= 0:
        return
    # Which senders' messages: the same rule per sender, on that sender's accept times in this room.
    foreign_by_sender: Counter[tuple[str, bool]] = Counter(
        (sender, last is not None and t <= last) for t, sender in foreign)
    for sender, stimes in sender_times.items():
        a = bisect_left(stimes, start)
        b = bisect_left(stimes, end)
        j = a if last is None else bisect_right(stimes, last, a, b)
        lost_s = (j - a) - own.get(sender, 0) - foreign_by_sender[(sender, True)]
        if is_open:
            lost_s += (b - j) - foreign_by_sender[(sender, False)]
        if lost_s:
            pairs[(rid, sender)] += lost_s
