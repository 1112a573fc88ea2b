"""The fan-out every emulator shares: one ready frame, written to every recipient in a room.

A room's `DeliveryLine` (`delivery.py`) hands each frame, once its faults let it go, to the
service's own fan-out, which knows its protocol — who receives what: a sender without echo is left
out, a Chime attendee receives only once joined — and then calls `write_to_all`. That is where every
emulator does the same things the same way:

- the same bytes (framed once, `frames.py`) go straight to each recipient's transport; a connection
  that is closing or closed is passed over (bytes after websockets' close frame break the protocol);
- a slow consumer — unsent backlog above `SLOW_CONSUMER_BYTES` — gets nothing and is aborted (its
  client sees 1006) and counted: a reader that stopped reading must not grow the emulator's memory
  without end, with or without an artificial delivery cost;
- `cost_s` of CPU is burnt per frame written when a capacity test asks for it: the emulator runs on
  one thread, so a cost of C µs caps fan-out near 1e6 / C deliveries per second, a knee you can
  predict;
- the frames written are counted.

This is the hot path: one loop, no call per recipient beyond the transport's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .frames import OPEN

log = logging.getLogger(__name__)

SLOW_CONSUMER_BYTES = 4 * 1024 * 1024  # unsent backlog after which a recipient is aborted


class FanoutCounters(Protocol):
    frames_delivered: int
    slow_consumers_dropped: int


@dataclass(slots=True)
class FanoutCounts:
    """The two counts of `write_to_all`, for a room that keeps no counters of its own."""

    frames_delivered: int = 0
    slow_consumers_dropped: int = 0


def write_to_all(frame: bytes, recipients: Iterable, counters: FanoutCounters, *, skip: object = None,
                 cost_s: float = 0.0, kind: str = "room", room_id: str = "") -> list | None:
    """Write `frame` to each recipient (`.id`, `.connection`, `.transport`) but `skip`.

    Returns the recipients that got nothing — closing, closed, or aborted as slow consumers — or None
    when every one got the frame (Chime replays a message to an attendee that missed it and comes back).
    `kind` and `room_id` name the room in the slow-consumer warning.
    """
    delivered = 0
    missed = slow = None
    clock = time.perf_counter
    for member in recipients:
        if member is skip:
            continue
        transport = member.transport
        if member.connection.protocol.state is not OPEN or transport.is_closing():
            if missed is None:
                missed = []
            missed.append(member)
            continue
        if transport.get_write_buffer_size() > SLOW_CONSUMER_BYTES:
            if slow is None:
                slow = []
            slow.append(member)
            continue
        if cost_s:
            until = clock() + cost_s
            while clock() < until:  # burn CPU, as a slower server would
                pass
        transport.write(frame)
        delivered += 1
    counters.frames_delivered += delivered
    if slow is None:
        return missed
    for member in slow:
        counters.slow_consumers_dropped += 1
        log.warning("aborting slow consumer %s in %s %s", member.id, kind, room_id)
        member.transport.abort()  # its connection_lost runs later, on the loop: callers may still act on it
    return slow if missed is None else missed + slow
