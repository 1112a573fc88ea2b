"""The neutral trace: one event a line, time, room, sender, size and kind; never content.

A trace says *when* and *how much*, never *what*: message text is dropped at import and user ids are
hashed (`hash_user`), so a trace carries no text or identity into a run or its report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

FORMAT = "chatload.trace/1"
MESSAGE, JOIN, LEAVE, KICK, PRESENCE = "message", "join", "leave", "kick", "presence"
KINDS = (MESSAGE, JOIN, LEAVE, KICK, PRESENCE)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    t: float  # seconds from the trace's start
    room: str
    sender: str  # a hashed user id (for join/leave/kick/presence: the user it is about)
    size: int  # message: characters of content; 0 for other kinds
    kind: str = MESSAGE

    def to_json(self) -> dict:
        out = {"t": round(self.t, 6), "room": self.room, "sender": self.sender, "kind": self.kind}
        if self.kind == MESSAGE:
            out["size"] = self.size
        return out


@dataclass
class Trace:
    events: list[TraceEvent]  # sorted by time (stable: equal times keep the file's order)
    header: dict = field(default_factory=dict)  # the optional first line: format, source, start
    skipped: list[str] = field(default_factory=list)  # "line N: why", one per malformed line
    reordered: int = 0  # events that came before an earlier time in the file (sorted here)

    @property
    def messages(self) -> list[TraceEvent]:
        return [e for e in self.events if e.kind == MESSAGE]

    @property
    def duration_s(self) -> float:
        return self.events[-1].t if self.events else 0.0

    def rooms(self) -> list[str]:
        """Rooms by their message count, busiest first (ties in order of first appearance)."""
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.room] = counts.get(event.room, 0) + (event.kind == MESSAGE)
        return sorted(counts, key=lambda room: -counts[room])


def hash_user(user_id: str, salt: str) -> str:
    """A user id as a trace keeps it: 12 hex digits of SHA-256 over salt and id. With a salt of the
    importer's choosing the same user is the same hash across one import, and not linkable to the id."""
    return "u" + hashlib.sha256(f"{salt}\0{user_id}".encode()).hexdigest()[:12]
