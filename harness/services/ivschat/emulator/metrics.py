"""Counters the emulator keeps, rendered as Prometheus text at `GET /metrics`.

Plain integers bumped on the hot path (no labels resolved per increment); the text is built only
when someone scrapes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ....emulation.prometheus_text import Exposition, RoomRows, by, by_operation_and_status


@dataclass(slots=True)
class RoomCounters:
    messages_accepted: int = 0
    frames_delivered: int = 0
    events: int = 0
    connections_opened: int = 0
    messages_dropped_paused: int = 0
    slow_consumers_dropped: int = 0
    rejected: Counter = field(default_factory=Counter)  # by ERROR code


class Metrics:
    def __init__(self) -> None:
        self.handshakes_rejected: Counter = Counter()  # by HTTP status
        self.control_requests: Counter = Counter()  # by (operation, status)
        self.protocol_errors = 0  # frames the data plane could not act on (binary, oversize, bad JSON)

    def control_request(self, operation: str, status: int) -> None:
        self.control_requests[(operation, status)] += 1

    def render(self, rooms: dict[str, tuple[int, RoomCounters]]) -> str:
        """`rooms` maps room id → (open connections, counters)."""
        rows = RoomRows(rooms)
        text = Exposition("ivschat_")
        text.family("connections", "gauge", "Open WebSocket connections per room.", rows.open())
        text.family("connections_opened_total", "counter", "Successful handshakes per room.",
                    rows.value("connections_opened"))
        text.family("messages_accepted_total", "counter", "SEND_MESSAGE requests accepted.",
                    rows.value("messages_accepted"))
        text.family("messages_rejected_total", "counter", "Requests answered with an ERROR frame, by code.",
                    rows.by("rejected", "code"))
        text.family("frames_delivered_total", "counter", "MESSAGE and EVENT frames written to connections.",
                    rows.value("frames_delivered"))
        text.family("events_total", "counter", "EVENT frames fanned out (SendEvent and system events).",
                    rows.value("events"))
        text.family("messages_dropped_paused_total", "counter",
                    "Accepted messages dropped because delivery in the room was paused (fault injection).",
                    rows.value("messages_dropped_paused"))
        text.family("slow_consumers_dropped_total", "counter",
                    "Connections aborted because their unsent backlog passed the cap.",
                    rows.value("slow_consumers_dropped"))
        text.family("handshakes_rejected_total", "counter", "WebSocket handshakes refused, by HTTP status.",
                    by(self.handshakes_rejected, "status"))
        text.family("protocol_errors_total", "counter", "Client frames that could not be acted on.",
                    [("", self.protocol_errors)])
        text.family("control_requests_total", "counter", "Control-plane requests, by operation and status.",
                    by_operation_and_status(self.control_requests))
        return text.text()
