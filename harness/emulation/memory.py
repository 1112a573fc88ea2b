"""Bounded memories of the past, for every emulator: what a long soak must not grow without end.

An emulator remembers things after they stop being live — a used token (so a reuse is "reused",
not "invalid"), a deleted stage (so a late join hears STAGE_DELETED), a participant that was
disconnected (so its token stays refused). Each of these only matters while the token that could
come back is still valid, so each is kept until a time and then forgotten:

- `Expiring`: keys (with a value) kept until their own time. Expired keys are swept whenever the
  table has doubled since the last sweep — O(1) per key, amortised — so it never holds more than
  about twice the keys still live (or `floor`). A key past its time reads as absent at once.
- `Recent`: the last `limit` items, the oldest forgotten first (for what has no time of its own,
  such as the counters of ended meetings that `/metrics` still shows).

Loop thread only, like the data planes that own them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

FLOOR = 1024  # entries below which `Expiring` never sweeps


class Expiring:
    """A mapping whose keys are forgotten at their own time (`clock()` units: seconds by default)."""

    def __init__(self, clock: Callable[[], float] = time.time, floor: int | None = None) -> None:
        self.clock = clock
        self.floor = FLOOR if floor is None else floor
        self._entries: dict[Hashable, tuple[float, Any]] = {}  # key → (until, value)
        self._sweep_at = self.floor

    def put(self, key: Hashable, until: float, value: Any = True) -> None:
        self._entries[key] = (until, value)
        if len(self._entries) >= self._sweep_at:
            self.sweep()

    def get(self, key: Hashable, default: Any = None, *, now: float | None = None) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return default
        if (self.clock() if now is None else now) >= entry[0]:
            del self._entries[key]
            return default
        return entry[1]

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT

    def pop(self, key: Hashable, default: Any = None) -> Any:
        entry = self._entries.pop(key, None)
        return default if entry is None else entry[1]

    def sweep(self, now: float | None = None) -> int:
        """Forget every key past its time; returns how many. The next sweep comes when the table has
        doubled from what is left."""
        now = self.clock() if now is None else now
        gone = [key for key, (until, _) in self._entries.items() if now >= until]
        for key in gone:
            del self._entries[key]
        self._sweep_at = max(self.floor, 2 * len(self._entries))
        return len(gone)

    def __len__(self) -> int:
        return len(self._entries)


_ABSENT = object()


class Recent:
    """The last `limit` items put, in the order put; older ones are forgotten."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, key: Hashable, default: Any = None) -> Any:
        return self._items.get(key, default)

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        return iter(self._items.items())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
