"""Propagation and fan-out spread: latencies that need facts from more than one process.

**Propagation.** Something happens to a subject (user A subscribes to a presence channel, joins a
stage) at `origin` time; other members see it (B's `memberAdded` for A, B's roster first listing A).
A's process records the origin, B's process the observation; neither alone knows the latency. At the
end every process exports its log and the process that owns the run matches them (`merge`):

- an observation of (stream, room, subject) at t belongs to the subject's latest origin at or before
  t; latency = t − origin, into an exact HDR histogram named after the stream;
- *expected*: an origin at t is owed to every other member of the room whose membership (the
  delivery ledger's connection intervals, from all processes) contains t. Like the delivery
  ledger's FIFO rule: a member that observed a later origin of the same stream and room must have
  seen this one, so a missing observation is *missed*; a member still in the room at the end
  missed it too; one whose membership ended with nothing later observed is *unconfirmed* (the
  service may have dropped it before telling);
- *extra*: observed by a member that was not yet in the room at the origin (it joined while the
  origin was under way): legitimate, not judged. *Duplicates*: a second observation of one origin
  by one observer. *Unmatched*: an observation with no origin at or before it.
  Invariant: observed + missed + unconfirmed = expected.

**Spread.** Per measured message, the first and last arrival over all its recipients, in every
process: spread = last − first (a message with one recipient has none).

Both logs are loop-owned (written by sessions) and exported once at the end.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping

from .histograms import LatencyHistogram

FORMAT = "chatload.propagation/1"


class PropagationLog:
    """One process's origins and observations. Loop thread only."""

    def __init__(self) -> None:
        self._origins: list[tuple[str, str, str, int]] = []  # stream, room, subject, at_ns
        self._observed: list[tuple[str, str, str, str, int]] = []  # stream, room, subject, observer, at_ns

    def origin(self, stream: str, room: str, subject: str, at_ns: int) -> None:
        self._origins.append((stream, room, subject, at_ns))

    def observed(self, stream: str, room: str, subject: str, observer: str, at_ns: int) -> None:
        self._observed.append((stream, room, subject, observer, at_ns))

    def export(self) -> dict:
        return {"format": FORMAT, "origins": [list(o) for o in self._origins],
                "observed": [list(o) for o in self._observed]}


class SpreadLog:
    """First and last arrival of each measured message at this process's receivers. Loop thread only."""

    __slots__ = ("_messages",)

    def __init__(self) -> None:
        self._messages: dict[tuple[str, int], list[int]] = {}

    def observe(self, sender: str, seq: int, arrival_ns: int) -> None:
        span = self._messages.get((sender, seq))
        if span is None:
            self._messages[(sender, seq)] = [arrival_ns, arrival_ns, 1]
        else:
            if arrival_ns < span[0]:
                span[0] = arrival_ns
            elif arrival_ns > span[1]:
                span[1] = arrival_ns
            span[2] += 1

    def export(self) -> list[list]:
        return [[sender, seq, first, last, n] for (sender, seq), (first, last, n) in self._messages.items()]


def merge_spread(exports: Iterable[list[list]]) -> LatencyHistogram:
    """The spread histogram (µs) over every message that reached two recipients or more."""
    spans: dict[tuple[str, int], list[int]] = {}
    for export in exports:
        for sender, seq, first, last, n in export:
            span = spans.get((sender, seq))
            if span is None:
                spans[(sender, seq)] = [first, last, n]
            else:
                span[0], span[1], span[2] = min(span[0], first), max(span[1], last), span[2] + n
    histogram = LatencyHistogram()
    for first, last, n in spans.values():
        if n > 1:
            histogram.record(max(1, (last - first) // 1000))
    return histogram


def merge(exports: Iterable[Mapping], ledger_exports: Iterable[Mapping], users: Mapping[str, str]
          ) -> dict[str, dict]:
    """Per stream: the latency histogram and the accounting (see the module docstring).

    `users` maps each user id (what observers see) to its sender id (the ledger's receiver id), so
    that a subject is never owed its own origin."""
    origins: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    observed: list[tuple[str, str, str, str, int]] = []
    for export in exports:
        for stream, room, subject, at in export.get("origins", ()):
            origins[(stream, room, subject)].append(at)
        observed += [tuple(o) for o in export.get("observed", ())]
    for times in origins.values():
        times.sort()
    # Memberships: (room) → [(receiver, start, end, open)], from every process's ledger (`ledger_format`).
    members: dict[str, list[tuple[str, int, int, bool]]] = defaultdict(list)
    for export in ledger_exports:
        for receiver, facts in export.get("receivers", {}).items():
            for conn in facts["connections"]:
                members[conn["room"]].append((receiver, conn["start"], conn["end"], conn["open"]))
    streams = {key[0] for key in origins} | {o[0] for o in observed}
    out: dict[str, dict] = {}
    for stream in sorted(streams):
        histogram = LatencyHistogram()
        seen: dict[tuple[str, str, int, str], int] = {}  # (room, subject, origin, observer) → observations
        unmatched = 0
        seen_origins: dict[tuple[str, str], list[int]] = defaultdict(list)  # (room, observer) → origins it saw
        for o_stream, room, subject, observer, at in observed:
            if o_stream != stream:
                continue
            times = origins.get((stream, room, subject), [])
            i = bisect_right(times, at) - 1
            if i < 0:
                unmatched += 1
                continue
            key = (room, subject, times[i], users.get(observer, observer))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 1:
                histogram.record(max(1, (at - times[i]) // 1000))
                seen_origins[(room, key[3])].append(times[i])
        counts = {"expected": 0, "observed": 0, "missed": 0, "unconfirmed": 0, "extra": 0,
                  "duplicates": sum(n - 1 for n in seen.values()), "unmatched": unmatched}
        for times in seen_origins.values():
            times.sort()
        owed: set[tuple[str, str, int, str]] = set()
        for (o_stream, room, subject), times in origins.items():
            if o_stream != stream:
                continue
            own = users.get(subject, subject)
            for at in times:
                for receiver, start, end, is_open in members.get(room, ()):
                    if receiver == own or not start <= at < end:
                        continue
                    key = (room, subject, at, receiver)
                    owed.add(key)
                    counts["expected"] += 1
                    if key in seen:
                        counts["observed"] += 1
                    elif is_open or _saw_later(seen_origins.get((room, receiver), ()), at, end):
                        counts["missed"] += 1
                    else:
                        counts["unconfirmed"] += 1
        counts["extra"] = sum(1 for key in seen if key not in owed)
        out[stream] = {"histogram": histogram, **counts}
    return out


def _saw_later(origins_seen: list[int], at: int, end: int) -> bool:
    """Whether the member saw an origin later than `at` within the same membership (before `end`):
    then, in order, it must have seen this one too."""
    i = bisect_right(origins_seen, at)
    return i < len(origins_seen) and origins_seen[i] < end
