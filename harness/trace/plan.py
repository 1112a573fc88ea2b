"""What a replay does, worked out before it starts (pure): which target room each trace room lands in,
every message's due time (trace time ÷ speed), and each trace user's presence in its room (the
intervals between its joins and its leaves or kicks).

The target's rooms are numbered as the run provisions them. By default the trace's rooms, busiest
first, land on target rooms 0, 1, … in turn (folding round when the trace has more); a mapping
(`[traffic] rooms = {"trace-room" = 1}`) sends only the rooms it names, each where it says.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .model import JOIN, KICK, LEAVE, MESSAGE, Trace


@dataclass(frozen=True, slots=True)
class Send:
    due_s: float  # from the replay's start
    room: int  # target room index
    sender: int  # the trace sender's rank in its room (0: its busiest), which picks the harness user
    size: int


@dataclass
class Presence:
    """One trace user's time in a room: [join, leave) intervals, leave None for "to the end"."""

    room: int
    intervals: list[tuple[float, float | None]]


@dataclass
class ReplayPlan:
    speed: float
    sends: list[Send]
    presences: list[Presence]  # by first join time
    senders_per_room: dict[int, int]  # distinct trace senders in each target room
    excluded: int = 0  # messages of trace rooms the mapping leaves out
    unmatched_leaves: int = 0  # a leave with no join before it and not the user's first event
    trace_per_second: list[int] = field(default_factory=list)  # messages due in each second of the replay

    @property
    def duration_s(self) -> float:
        return self.sends[-1].due_s if self.sends else 0.0


def room_mapping(trace: Trace, room_count: int, mapping: dict[str, int] | None = None) -> dict[str, int]:
    """Trace room → target room index."""
    if mapping:
        return dict(mapping)
    return {room: index % room_count for index, room in enumerate(trace.rooms())}


def build_plan(trace: Trace, *, speed: float = 1.0, room_count: int = 1, mapping: dict[str, int] | None = None,
               audience: float = 1.0, seed: int = 1) -> ReplayPlan:
    if speed <= 0:
        raise ValueError("speed must be positive")
    rooms = room_mapping(trace, room_count, mapping)
    by_sender: dict[int, Counter] = defaultdict(Counter)
    for event in trace.events:
        if event.kind == MESSAGE and event.room in rooms:
            by_sender[rooms[event.room]][event.sender] += 1
    # Each room's senders ranked by how much they wrote: rank k goes to the room's k-th harness user
    # (mod their number), so the heaviest senders stay apart when there are enough users.
    rank = {(room, sender): index for room, counts in by_sender.items()
            for index, (sender, _) in enumerate(counts.most_common())}
    sends, excluded = [], 0
    presence: dict[tuple[int, str], list[tuple[float, float | None]]] = {}
    unmatched = 0
    for event in trace.events:
        if event.room not in rooms:
            excluded += event.kind == MESSAGE
            continue
        room, due = rooms[event.room], event.t / speed
        if event.kind == MESSAGE:
            sends.append(Send(due, room, rank[(room, event.sender)], event.size))
        elif event.kind == JOIN:
            intervals = presence.setdefault((room, event.sender), [])
            if not intervals or intervals[-1][1] is not None:
                intervals.append((due, None))
        elif event.kind in (LEAVE, KICK):
            intervals = presence.get((room, event.sender))
            if intervals is None:  # first seen leaving: it was there from the start
                presence[(room, event.sender)] = [(0.0, due)]
            elif intervals[-1][1] is None:
                intervals[-1] = (intervals[-1][0], due)
            else:
                unmatched += 1
    presences = [Presence(room, intervals) for (room, _), intervals in presence.items()]
    presences = _scale_audience(presences, audience, seed)
    presences.sort(key=lambda p: p.intervals[0][0])
    per_second = [0] * (math.floor(sends[-1].due_s) + 1 if sends else 0)
    for send in sends:
        per_second[math.floor(send.due_s)] += 1
    return ReplayPlan(speed, sends, presences, {room: len(c) for room, c in by_sender.items()}, excluded, unmatched,
                      per_second)


def _scale_audience(presences: list[Presence], audience: float, seed: int) -> list[Presence]:
    """Each trace user's presence `audience` times over (a fraction: that share of them once more,
    chosen by `seed`): the same waves of joins and leaves, a bigger crowd."""
    if audience == 1.0 or not presences:
        return presences
    if audience <= 0:
        raise ValueError("audience must be positive")
    whole, part = divmod(audience, 1.0)
    chosen = random.Random(seed).sample(range(len(presences)), round(part * len(presences)))
    out = [p for p in presences for _ in range(int(whole))]
    return out + [presences[i] for i in sorted(chosen)]
