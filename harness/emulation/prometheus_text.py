"""Prometheus text exposition for the emulators' `GET /metrics`, built only when someone scrapes.

Every emulator bumps plain integers on its hot path (no label resolved per increment) and turns
them into text here: per family one `# HELP`, one `# TYPE`, then its samples. The helpers below
write the label sets the emulators share — a per-room value, a per-room count by code, a count by
one label, control-plane requests by operation and status — with every label value escaped: a
room named by its clients may hold `"`, `\\` or a newline. Ids and codes the emulator makes itself
never do, so for them escaping writes the same bytes.

`RoomRows` takes what a data plane's `*_metrics()` returns: room id → (open connections, counters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Samples = Iterable[tuple[str, Any]]  # (label set with its braces, or ""; value)


def label_value(value: object) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """The text of one scrape, family by family; `prefix` starts every family name (`chime_`)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Samples) -> None:
        name = self.prefix + name
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class RoomRows:
    """The per-room samples of one scrape. `rooms` maps room id → (open connections, counters), as
    a data plane's `*_metrics()` returns it; rooms are written in id order."""

    def __init__(self, rooms: Mapping[str, tuple[int, Any]]) -> None:
        self.rows = sorted(rooms.items())

    def __iter__(self):
        return iter(self.rows)

    def open(self) -> list[tuple[str, int]]:
        """The open connections of each room."""
        return [(f'{{room="{label_value(room)}"}}', n) for room, (n, _) in self.rows]

    def value(self, attr: str) -> list[tuple[str, Any]]:
        """One field of each room's counters."""
        return [(f'{{room="{label_value(room)}"}}', getattr(counters, attr)) for room, (_, counters) in self.rows]

    def by(self, attr: str, label: str) -> list[tuple[str, int]]:
        """A `Counter` field of each room's counters: one sample per room and key (rejections by code)."""
        return [(f'{{room="{label_value(room)}",{label}="{label_value(key)}"}}', n)
                for room, (_, counters) in self.rows for key, n in sorted(getattr(counters, attr).items())]


def by(counter: Mapping, label: str) -> list[tuple[str, int]]:
    """One sample per key of an emulator-wide `Counter` (handshakes refused by status)."""
    return [(f'{{{label}="{label_value(key)}"}}', n) for key, n in sorted(counter.items())]


def by_operation_and_status(counter: Mapping[tuple[str, int], int]) -> list[tuple[str, int]]:
    """Control-plane requests, counted by (operation, HTTP status)."""
    return [(f'{{operation="{label_value(op)}",status="{status}"}}', n) for (op, status), n in sorted(counter.items())]
