"""Exact delivery accounting: which accepted messages each receiver should have got, and what happened.

Facts (all integer nanoseconds on the shared wall clock; the caller passes them, nothing here reads a
clock). Every chat message carries its sender id and a per-sender sequence number in `Attributes`; the
server stamps `SendTime` when it accepts it. A message is identified by (sender, seq).

Rules, as implemented:

- *Accepted*: the sender got its echo (`acked`) or any receiver `received` it, in any process. Its room
  and SendTime are then known. `rejected(sender, seq, code, at_ns, category)` counts it in
  `rejected_by_code` (the service's own code) and `rejected_by_category` (the neutral category of
  `harness.services.base.Category`); a rejected message is never lost, never expected. A `sent` message neither accepted anywhere nor rejected is an `unconfirmed_send`.
- *Presumed accepted*: the service answers every request on an open connection, with the echo or an
  ERROR. A send that got neither while its connection stayed open for the caller's answer timeout was
  accepted and delivered to no one (a paused or broken fan-out): `presumed_accepted(sender, seq, room,
  sent_ns)` records it with the client's send time standing in for SendTime. At merge a real SendTime
  from any process wins; the rest count in `presumed_accepted` and are expected like any other.
- *Connection interval* of a receiver connection: the half-open interval [connected_ns, end), where
  `connected_ns` is the client time the 101 response arrived (the server had already made it a member)
  and `end` is the client time it noticed the close or drop (`disconnected`), or `end_ns` given to
  `export` for connections still open (after the drain period). If a receiver connects again while one of
  its connections is still open, that one is closed at the new `connected_ns`: a receiver's intervals
  never overlap. If a connection received a message stamped at or after its `end` (clock uncertainty),
  its end is moved just past that SendTime.
- *Expected* at a receiver: accepted messages of the connection's room whose SendTime lies in one of its
  connection intervals (the sender is a receiver of its own messages too: call `received` for the echo
  if the sender's connection is a receiver).
- *Delivered*: distinct expected messages the receiver received, on any of its connections.
- Rooms fan out in FIFO order, so let L be the highest SendTime a connection received within its
  interval. Expected messages of that interval with SendTime <= L that are missing are *lost*. Missing
  ones with SendTime > L cannot be judged if the connection closed (the server may have dropped the
  member before fanning them out): *unconfirmed_at_disconnect*, not lost. For a connection still open at
  `export(end_ns)`, every missing expected message of its interval is lost. A connection that received
  nothing has L = -inf (all its missing messages are unconfirmed if it closed, lost if open).
  Invariant, per receiver: delivered + lost + unconfirmed_at_disconnect == expected.
- *Missed while away*: accepted messages of the room whose SendTime lies between two consecutive
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

Memory. A message's SendTime is stored once per room (two int64 arrays per (room, sender): 16 bytes per
accepted message), never per receiver. Per (receiver, sender) the set of seqs received is [lo, hi] minus
a list of missing ranges ("holes", int64 arrays): in-order delivery only moves `hi` (O(1) memory); each
gap in the sequence a receiver sees (a loss, a rejection, a reconnect) costs one range until filled.
Per (connection, sender): the highest seq and the number received in the interval.

Across processes `export(end_ns)` returns a JSON-serialisable dict (format `FORMAT`):

    {"format": FORMAT, "end_ns": int, "sent": int, "rejected": {"<code>": n}, "rejected_categories": {"<c>": n},
     "pending": {sender: [seq, ...]},            # sent here, neither acked nor rejected here
     "rooms": {room: {"senders": [sender, ...],  # accepted messages known here, sorted by SendTime
                      "t": [send_time_ns, ...], "s": [sender index, ...], "q": [seq, ...]}},
     "receivers": {receiver: {"duplicates": n, "out_of_order": n, "unexpected": n, "during_handshake": n,
                   "connections": [{"id": connection_id, "room": room, "start": ns, "end": ns,
                                    "open": bool,        # still open at end_ns
                                    "last": ns | None,   # L: highest SendTime received in the interval
                                    "own": {sender: n},  # distinct received on it, in its interval
                                    "foreign": [[send_time_ns, sender], ...]}]}}}
                                    # ^ distinct messages of this interval that arrived on another
                                    #   connection of the same receiver (judged against L at merge)

`merge_exports` unions the accepted messages of all exports (a message acked in process A and received
in process B is one message), then evaluates the rules per connection with bisect on each room's sorted
SendTimes. A receiver's connections must all be in one process (duplicates are detected per process).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields

FORMAT = "chatload.delivery-ledger/1"

_OPEN = 1 << 62  # `end` of a connection still open: beyond any SendTime
_NOTHING = -(1 << 62)  # `last` of a connection that has received nothing in its interval


class _AcceptedLog:
    """Accepted messages of one sender in one room: seqs ascending with their SendTimes."""

    __slots__ = ("seqs", "times", "hi")

    def __init__(self, seq: int, send_time_ns: int) -> None:
        self.seqs = array("q", (seq,))
        self.times = array("q", (send_time_ns,))
        self.hi = seq

    def add(self, seq: int, send_time_ns: int) -> None:
        if seq == self.hi:
            return
        if seq > self.hi:
            self.seqs.append(seq)
            self.times.append(send_time_ns)
            self.hi = seq
            return
        i = bisect_left(self.seqs, seq)
        if i < len(self.seqs) and self.seqs[i] == seq:
            return
        self.seqs.insert(i, seq)
        self.times.insert(i, send_time_ns)


class _Seen:
    """The seqs one receiver has received from one sender: [lo, hi] minus inclusive ranges `holes`."""

    __slots__ = ("lo", "hi", "hole_lo", "hole_hi")

    def __init__(self, seq: int) -> None:
        self.lo = self.hi = seq
        self.hole_lo: array | None = None
        self.hole_hi: array | None = None

    def take(self, seq: int) -> bool:
        """`seq` arrived: True if it is new (and now seen), False if a duplicate."""
        if seq == self.hi + 1:
            self.hi = seq
            return True
        if seq > self.hi:
            self.skip_to(seq)
            return True
        return self.add_old(seq)

    def skip_to(self, seq: int) -> None:
        """`seq` > hi + 1 arrived: hi+1 … seq-1 are missing (for now)."""
        if self.hole_lo is None:
            self.hole_lo, self.hole_hi = array("q"), array("q")
        self.hole_lo.append(self.hi + 1)
        self.hole_hi.append(seq - 1)
        self.hi = seq

    def add_old(self, seq: int) -> bool:
        """`seq` <= hi arrived: True if it is new (below lo, or fills a hole), False if a duplicate."""
        if seq < self.lo:
            if seq < self.lo - 1:
                if self.hole_lo is None:
                    self.hole_lo, self.hole_hi = array("q"), array("q")
                self.hole_lo.insert(0, seq + 1)
                self.hole_hi.insert(0, self.lo - 1)
            self.lo = seq
            return True
        hole_lo, hole_hi = self.hole_lo, self.hole_hi
        if hole_lo is None:
            return False
        i = bisect_right(hole_lo, seq) - 1
        if i < 0 or hole_hi[i] < seq:
            return False
        a, b = hole_lo[i], hole_hi[i]
        if a == b:
            del hole_lo[i], hole_hi[i]
        elif seq == a:
            hole_lo[i] = a + 1
        elif seq == b:
            hole_hi[i] = b - 1
        else:
            hole_hi[i] = seq - 1
            hole_lo.insert(i + 1, seq + 1)
            hole_hi.insert(i + 1, b)
        return True

    def holes(self) -> int:
        return 0 if self.hole_lo is None else len(self.hole_lo)


class _Receiver:
    __slots__ = ("connections", "seen", "duplicates", "out_of_order", "unexpected", "during_handshake")

    def __init__(self) -> None:
        self.connections: list[_Connection] = []
        self.seen: dict[str, _Seen] = {}
        self.duplicates = 0
        self.out_of_order = 0
        self.unexpected = 0
        self.during_handshake = 0


class _Connection:
    __slots__ = ("connection_id", "receiver", "room", "start", "opening", "end", "last", "by_sender", "foreign",
                 "room_logs", "seen", "replay", "replayed")

    def __init__(self, connection_id: int, receiver: _Receiver, room: str, start: int,
                 room_logs: dict[str, _AcceptedLog], opening: int | None = None,
                 replay: tuple[int, int] | None = None) -> None:
        self.connection_id = connection_id
        self.receiver = receiver
        self.room = room
        self.start = start
        self.opening = start if opening is None else min(opening, start)
        self.replay = replay  # (window_ns, max messages) when the service replays to late joiners
        self.replayed = 0
        self.end = _OPEN
        self.last = _NOTHING
        # sender -> [highest seq received on this connection, distinct received in the interval,
        #            the receiver's `_Seen` of that sender (one lookup for both on the hot path)]
        self.by_sender: dict[str, list] = {}
        self.foreign: list[tuple[int, str]] | None = None
        # Shortcuts for the hot path.
        self.room_logs = room_logs
        self.seen = receiver.seen


class DeliveryLedger:
    """One process's delivery facts. Not thread-safe: call it from the thread that owns the sockets."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, _AcceptedLog]] = {}
        self._pending: dict[tuple[str, int], str] = {}
        self._sent = 0
        self._rejected: Counter[str] = Counter()
        self._rejected_categories: Counter[str] = Counter()
        self._receivers: dict[str, _Receiver] = {}
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._presumed: dict[tuple[str, int], tuple[str, int]] = {}  # (sender, seq) -> (room, sent_ns)
        self._offered: dict[str, Counter[int]] = defaultdict(Counter)  # room -> {second: sends}
        self._rejected_per_second: dict[str, Counter[tuple[int, str]]] = defaultdict(Counter)

    # --- senders ----------------------------------------------------------------------------------------
    def sent(self, sender_id: str, seq: int, room: str, at_ns: int | None = None) -> None:
        self._sent += 1
        self._pending[(sender_id, seq)] = room
        if at_ns is not None:  # offered load per room and second (rate-limit verdicts)
            self._offered[room][at_ns // 1_000_000_000] += 1

    def acked(self, sender_id: str, seq: int, room: str, send_time_ns: int) -> None:
        self._pending.pop((sender_id, seq), None)
        self._accept(room, sender_id, seq, send_time_ns)

    def presumed_accepted(self, sender_id: str, seq: int, room: str, sent_ns: int) -> None:
        """No echo and no ERROR while the sender stayed connected: see the module docstring."""
        if self._pending.pop((sender_id, seq), None) is not None:
            self._presumed[(sender_id, seq)] = (room, sent_ns)

    def rejected(self, sender_id: str, seq: int, code: int | str, at_ns: int | None = None,
                 category: str = "") -> None:
        room = self._pending.pop((sender_id, seq), None)
        code = str(code)
        self._rejected[code] += 1
        if category:
            self._rejected_categories[str(category)] += 1
        if room is not None and at_ns is not None:
            self._rejected_per_second[room][(at_ns // 1_000_000_000, code)] += 1

    # --- receivers --------------------------------------------------------------------------------------
    def connected(self, receiver_id: str, connection_id: int, room: str, at_ns: int,
                  opening_ns: int | None = None, replay: tuple[int, int] | None = None) -> _Connection:
        """A receiving connection's interval starts at `at_ns`; the attempt that opened it began at
        `opening_ns` (messages accepted in between arrive legitimately: `during_handshake`). Returns the
        connection, for `received_on`."""
        key = (receiver_id, connection_id)
        if key in self._connections:
            return self._connections[key]
        receiver = self._receivers.get(receiver_id)
        if receiver is None:
            receiver = self._receivers[receiver_id] = _Receiver()
        for other in receiver.connections:
            if other.end == _OPEN and other.start <= at_ns:
                other.end = at_ns  # superseded: a receiver's intervals never overlap
        room_logs = self._rooms.get(room)
        if room_logs is None:
            room_logs = self._rooms[room] = {}
        connection = _Connection(connection_id, receiver, room, at_ns, room_logs, opening_ns, replay)
        receiver.connections.append(connection)
        self._connections[key] = connection
        return connection

    def disconnected(self, receiver_id: str, connection_id: int, at_ns: int) -> None:
        connection = self._connections.get((receiver_id, connection_id))
        if connection is not None and connection.end == _OPEN:
            connection.end = max(at_ns, connection.start)

    def received(self, receiver_id: str, connection_id: int, room: str, sender_id: str, seq: int,
                 send_time_ns: int) -> None:
        conn = self._connections.get((receiver_id, connection_id))
        if conn is None or room != conn.room:
            self._received_odd(receiver_id, connection_id, room, sender_id, seq, send_time_ns)
            return
        self.received_on(conn, sender_id, seq, send_time_ns)

    def received_on(self, conn: _Connection, sender_id: str, seq: int, send_time_ns: int) -> None:
        """`received` on the connection `connected` returned, in its own room: the hot path, a few dict
        lookups and integer comparisons (a session holds its connection, so no (id, id) lookup)."""
        # The server accepted it: remember its SendTime once per room.
        log = conn.room_logs.get(sender_id)
        if log is None:
            conn.room_logs[sender_id] = _AcceptedLog(seq, send_time_ns)
        elif seq != log.hi:
            log.add(seq, send_time_ns)
        # Has this receiver had it before, on any of its connections? Then order on this connection.
        mine = conn.by_sender.get(sender_id)
        if mine is not None:
            seen = mine[2]
            if seq == seen.hi + 1:
                seen.hi = seq
            elif not seen.take(seq):
                conn.receiver.duplicates += 1
                return
            if seq > mine[0]:
                mine[0] = seq
            else:
                conn.receiver.out_of_order += 1
        else:  # the first from this sender on this connection
            seen = conn.seen.get(sender_id)
            if seen is None:
                conn.seen[sender_id] = seen = _Seen(seq)
            elif not seen.take(seq):
                conn.receiver.duplicates += 1
                return
            conn.by_sender[sender_id] = mine = [seq, 0, seen]
        # The interval it counts for.
        if conn.start <= send_time_ns < conn.end:
            mine[1] += 1
            if send_time_ns > conn.last:
                conn.last = send_time_ns
        else:
            self._credit_elsewhere(conn.receiver, conn, conn.room, sender_id, send_time_ns)

    # --- export -----------------------------------------------------------------------------------------
    def export(self, end_ns: int) -> dict:
        """Everything this process knows, JSON-serialisable (see the module docstring). Pure: may be
        called again later; connections still open are judged as open until `end_ns`."""
        rooms = {}
        for room, logs in self._rooms.items():
            senders = sorted(logs)
            entries = []
            for index, sender in enumerate(senders):
                log = logs[sender]
                entries.extend(zip(log.times, [index] * len(log.seqs), log.seqs, strict=True))
            if not entries:
                continue
            entries.sort()
            times, sender_index, seqs = (list(column) for column in zip(*entries, strict=True))
            rooms[room] = {"senders": senders, "t": times, "s": sender_index, "q": seqs}
        pending: dict[str, list[int]] = defaultdict(list)
        for sender, seq in self._pending:
            pending[sender].append(seq)
        receivers = {}
        for receiver_id, receiver in self._receivers.items():
            receivers[receiver_id] = {
                "duplicates": receiver.duplicates,
                "out_of_order": receiver.out_of_order,
                "unexpected": receiver.unexpected,
                "during_handshake": receiver.during_handshake,
                "connections": [_export_connection(conn, end_ns) for conn in receiver.connections],
            }
        return {
            "format": FORMAT,
            "end_ns": end_ns,
            "sent": self._sent,
            "rejected": dict(self._rejected),
            "rejected_categories": dict(self._rejected_categories),
            "pending": {sender: sorted(seqs) for sender, seqs in pending.items()},
            "presumed": [[room, sender, seq, sent_ns] for (sender, seq), (room, sent_ns) in self._presumed.items()],
            "offered": {room: {str(second): n for second, n in seconds.items()} for room, seconds in self._offered.items()},
            "rejected_per_second": {room: [[second, code, n] for (second, code), n in seconds.items()]
                                    for room, seconds in self._rejected_per_second.items()},
            "rooms": rooms,
            "receivers": receivers,
        }

    def result(self, end_ns: int, worst_n: int = 20) -> AccountingResult:
        """Single-process shortcut for `merge_exports([self.export(end_ns)])`."""
        return merge_exports([self.export(end_ns)], worst_n=worst_n)

    def memory_units(self) -> dict[str, int]:
        """Sizes of the growing structures (for health reporting and the memory tests)."""
        return {
            "accepted": sum(len(log.seqs) for logs in self._rooms.values() for log in logs.values()),
            "pending": len(self._pending),
            "seen_pairs": sum(len(r.seen) for r in self._receivers.values()),
            "holes": sum(s.holes() for r in self._receivers.values() for s in r.seen.values()),
            "foreign": sum(len(c.foreign or ()) for c in self._connections.values()),
        }

    # --- slow paths -------------------------------------------------------------------------------------
    def _accept(self, room: str, sender_id: str, seq: int, send_time_ns: int) -> None:
        logs = self._rooms.get(room)
        if logs is None:
            logs = self._rooms[room] = {}
        log = logs.get(sender_id)
        if log is None:
            logs[sender_id] = _AcceptedLog(seq, send_time_ns)
        else:
            log.add(seq, send_time_ns)

    def _received_odd(self, receiver_id: str, connection_id: int, room: str, sender_id: str, seq: int,
                      send_time_ns: int) -> None:
        """A receipt on a connection never `connected`, or of another room than its connection's."""
        self._accept(room, sender_id, seq, send_time_ns)
        receiver = self._receivers.get(receiver_id)
        if receiver is None:
            receiver = self._receivers[receiver_id] = _Receiver()
        seen = receiver.seen.get(sender_id)
        if seen is None:
            receiver.seen[sender_id] = seen = _Seen(seq)
        elif not seen.take(seq):
            receiver.duplicates += 1
            return
        conn = self._connections.get((receiver_id, connection_id))
        if conn is not None:
            mine = conn.by_sender.get(sender_id)
            if mine is None:
                conn.by_sender[sender_id] = [seq, 0, seen]
            elif seq > mine[0]:
                mine[0] = seq
            else:
                receiver.out_of_order += 1
        self._credit_elsewhere(receiver, conn, room, sender_id, send_time_ns)

    @staticmethod
    def _credit_elsewhere(receiver: _Receiver, conn: _Connection | None, room: str, sender_id: str,
                          send_time_ns: int) -> None:
        """A new message outside the interval of the connection it arrived on: it counts for the
        receiver's interval that contains its SendTime, if any; accepted while the connection it
        arrived on was opening, it is `during_handshake`; otherwise it is unexpected."""
        for other in receiver.connections:
            if other is not conn and other.room == room and other.start <= send_time_ns < other.end:
                if other.foreign is None:
                    other.foreign = []
                other.foreign.append((send_time_ns, sender_id))
                return
        if conn is not None and conn.replay is not None and conn.start - conn.replay[0] <= send_time_ns < conn.start:
            conn.replayed += 1
            return
        if conn is not None and conn.opening <= send_time_ns < conn.start:
            receiver.during_handshake += 1
            return
        receiver.unexpected += 1


def _export_connection(conn: _Connection, end_ns: int) -> dict:
    is_open = conn.end == _OPEN
    end = max(end_ns, conn.start) if is_open else conn.end
    last = None if conn.last == _NOTHING else conn.last
    if last is not None and last >= end:
        end = last + 1  # clock uncertainty: what it received lies in its interval
    return {
        "id": conn.connection_id,
        "room": conn.room,
        "start": conn.start,
        "end": end,
        "open": is_open,
        "last": last,
        "own": {sender: mine[1] for sender, mine in conn.by_sender.items() if mine[1]},
        "foreign": [[t, sender] for t, sender in conn.foreign or ()],
        "replay": list(conn.replay) if conn.replay is not None else None,
        "replayed": conn.replayed,
    }


# --- results --------------------------------------------------------------------------------------------
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

    # Accepted messages: union over all exports, one SendTime per (sender, seq).
    accepted: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for export in exports:
        for room, columns in export["rooms"].items():
            senders = columns["senders"]
            by_sender = accepted[room]
            for t, s, q in zip(columns["t"], columns["s"], columns["q"], strict=True):
                by_sender[senders[s]].setdefault(q, t)
    presumed = 0
    for export in exports:  # after every real SendTime is in: a real one always wins
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
    """Per room and wall-clock second: offered (client send time), accepted (server SendTime, so the
    seconds are the server's own rate window on one machine) and rejected by code (client time of the
    ERROR). Accepted messages are the union over exports, each counted once."""
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
    judged = lo if last is None else bisect_right(times, last, lo, hi)  # SendTime <= L
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
    # Which senders' messages: the same rule per sender, on that sender's SendTimes in this room.
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
