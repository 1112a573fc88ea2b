"""The delivery ledger's loop side: what each send, answer and receipt tells, recorded as it happens.

`DeliveryLedger` runs on the thread that owns the sockets and is called for every delivery to every
receiver (`received_on` is the hot path: a few dict lookups and integer comparisons, `__slots__`
objects, attributes bound to locals). It records facts; what they add up to (expected, lost,
unconfirmed, missed while away) is judged after the run, over every process's export, by
`ledger_judge`, whose docstring states the accounting rules. The export between the two is
described once, in `ledger_format`.

Facts are integer nanoseconds on the shared wall clock; the caller passes them, nothing here reads a
clock. Every measured message carries its sender id and a per-sender sequence number in the service's
own payload, and the server accepts it at an *accept time* that each service's protocol reads from
its own frames (the client's send time stands in for a presumed-accepted message). A message is
identified by (sender, seq).

What is decided here, as receipts arrive (the rest waits for the judge):

- a receiver's connection intervals: [connected, disconnected), a new connection closing any still
  open one of the same receiver at its own start (a receiver's intervals never overlap);
- *duplicates* (a (sender, seq) the receiver already had, on any of its connections) and *out of
  order* (a first receipt whose seq is below the highest already received from that sender on that
  connection);
- for a new message outside its connection's interval: the receiver's other interval in that room
  that contains its accept time (`foreign`, judged with that interval), else *replayed* (inside the
  connection's replay window), else *during handshake* (accepted while the connection was opening),
  else *unexpected*.

Memory. A message's accept time is stored once per room (two int64 arrays per (room, sender): 16 bytes
per accepted message), never per receiver. Per (receiver, sender) the set of seqs received is [lo, hi]
minus a list of missing ranges ("holes", int64 arrays): in-order delivery only moves `hi` (O(1)
memory); each gap in the sequence a receiver sees (a loss, a rejection, a reconnect) costs one range
until filled. Per (connection, sender): the highest seq and the number received in the interval.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict

from .ledger_format import FORMAT
from .ledger_judge import AccountingResult, merge_exports

_OPEN = 1 << 62  # `end` of a connection still open: beyond any accept time
_NOTHING = -(1 << 62)  # `last` of a connection that has received nothing in its interval


class _AcceptedLog:
    """Accepted messages of one sender in one room: seqs ascending with their accept times."""

    __slots__ = ("seqs", "times", "hi")

    def __init__(self, seq: int, accepted_ns: int) -> None:
        self.seqs = array("q", (seq,))
        self.times = array("q", (accepted_ns,))
        self.hi = seq

    def add(self, seq: int, accepted_ns: int) -> None:
        if seq == self.hi:
            return
        if seq > self.hi:
            self.seqs.append(seq)
            self.times.append(accepted_ns)
            self.hi = seq
            return
        i = bisect_left(self.seqs, seq)
        if i < len(self.seqs) and self.seqs[i] == seq:
            return
        self.seqs.insert(i, seq)
        self.times.insert(i, accepted_ns)


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
    __slots__ = ("membership_id", "receiver", "room", "start", "opening", "end", "last", "by_sender", "foreign",
                 "room_logs", "seen", "replay", "replayed")

    def __init__(self, membership_id: int, receiver: _Receiver, room: str, start: int,
                 room_logs: dict[str, _AcceptedLog], opening: int | None = None,
                 replay: tuple[int, int] | None = None) -> None:
        self.membership_id = membership_id
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

    def acked(self, sender_id: str, seq: int, room: str, accepted_ns: int) -> None:
        self._pending.pop((sender_id, seq), None)
        self._accept(room, sender_id, seq, accepted_ns)

    def presumed_accepted(self, sender_id: str, seq: int, room: str, sent_ns: int) -> None:
        """No echo and no error while the sender stayed connected (`ledger_judge`: presumed accepted)."""
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
    def connected(self, receiver_id: str, membership_id: int, room: str, at_ns: int,
                  opening_ns: int | None = None, replay: tuple[int, int] | None = None) -> _Connection:
        """A receiving connection's interval starts at `at_ns`; the attempt that opened it began at
        `opening_ns` (messages accepted in between arrive legitimately: `during_handshake`). Returns the
        connection, for `received_on`."""
        key = (receiver_id, membership_id)
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
        connection = _Connection(membership_id, receiver, room, at_ns, room_logs, opening_ns, replay)
        receiver.connections.append(connection)
        self._connections[key] = connection
        return connection

    def disconnected(self, receiver_id: str, membership_id: int, at_ns: int) -> None:
        connection = self._connections.get((receiver_id, membership_id))
        if connection is not None and connection.end == _OPEN:
            connection.end = max(at_ns, connection.start)

    def received(self, receiver_id: str, membership_id: int, room: str, sender_id: str, seq: int,
                 accepted_ns: int) -> None:
        conn = self._connections.get((receiver_id, membership_id))
        if conn is None or room != conn.room:
            self._received_odd(receiver_id, membership_id, room, sender_id, seq, accepted_ns)
            return
        self.received_on(conn, sender_id, seq, accepted_ns)

    def received_on(self, conn: _Connection, sender_id: str, seq: int, accepted_ns: int) -> None:
        """`received` on the connection `connected` returned, in its own room: the hot path, a few dict
        lookups and integer comparisons (a session holds its connection, so no (id, id) lookup)."""
        # The server accepted it: remember its accept time once per room.
        log = conn.room_logs.get(sender_id)
        if log is None:
            conn.room_logs[sender_id] = _AcceptedLog(seq, accepted_ns)
        elif seq != log.hi:
            log.add(seq, accepted_ns)
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
        if conn.start <= accepted_ns < conn.end:
            mine[1] += 1
            if accepted_ns > conn.last:
                conn.last = accepted_ns
        else:
            self._credit_elsewhere(conn.receiver, conn, conn.room, sender_id, accepted_ns)

    # --- export -----------------------------------------------------------------------------------------
    def export(self, end_ns: int) -> dict:
        """Everything this process knows, JSON-serialisable (`ledger_format`). Pure: may be
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
    def _accept(self, room: str, sender_id: str, seq: int, accepted_ns: int) -> None:
        logs = self._rooms.get(room)
        if logs is None:
            logs = self._rooms[room] = {}
        log = logs.get(sender_id)
        if log is None:
            logs[sender_id] = _AcceptedLog(seq, accepted_ns)
        else:
            log.add(seq, accepted_ns)

    def _received_odd(self, receiver_id: str, membership_id: int, room: str, sender_id: str, seq: int,
                      accepted_ns: int) -> None:
        """A receipt on a connection never `connected`, or of another room than its connection's."""
        self._accept(room, sender_id, seq, accepted_ns)
        receiver = self._receivers.get(receiver_id)
        if receiver is None:
            receiver = self._receivers[receiver_id] = _Receiver()
        seen = receiver.seen.get(sender_id)
        if seen is None:
            receiver.seen[sender_id] = seen = _Seen(seq)
        elif not seen.take(seq):
            receiver.duplicates += 1
            return
        conn = self._connections.get((receiver_id, membership_id))
        if conn is not None:
            mine = conn.by_sender.get(sender_id)
            if mine is None:
                conn.by_sender[sender_id] = [seq, 0, seen]
            elif seq > mine[0]:
                mine[0] = seq
            else:
                receiver.out_of_order += 1
        self._credit_elsewhere(receiver, conn, room, sender_id, accepted_ns)

    @staticmethod
    def _credit_elsewhere(receiver: _Receiver, conn: _Connection | None, room: str, sender_id: str,
                          accepted_ns: int) -> None:
        """A new message outside the interval of the connection it arrived on: it counts for the
        receiver's interval that contains its accept time, if any; accepted while the connection it
        arrived on was opening, it is `during_handshake`; otherwise it is unexpected."""
        for other in receiver.connections:
            if other is not conn and other.room == room and other.start <= accepted_ns < other.end:
                if other.foreign is None:
                    other.foreign = []
                other.foreign.append((accepted_ns, sender_id))
                return
        if conn is not None and conn.replay is not None and conn.start - conn.replay[0] <= accepted_ns < conn.start:
            conn.replayed += 1
            return
        if conn is not None and conn.opening <= accepted_ns < conn.start:
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
        "id": conn.membership_id,
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

