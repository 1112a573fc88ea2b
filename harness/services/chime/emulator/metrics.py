"""Counters the Chime emulator keeps, rendered as Prometheus text at `GET /metrics` (names `chime_…`).

Plain integers bumped on the hot path; labels are resolved only when someone scrapes. A "room" is a
meeting (its MeetingId). No label ever carries a join token, an ExternalUserId or a message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ....emulation.prometheus_text import Exposition, RoomRows, by, by_operation_and_status


@dataclass(slots=True)
class MeetingCounters:
    connections_opened: int = 0
    joins: int = 0
    messages_accepted: int = 0
    messages_throttled: int = 0  # returned to the sender with ingest_time_ns = 0
    messages_replayed: int = 0
    frames_delivered: int = 0
    messages_dropped_paused: int = 0
    slow_consumers_dropped: int = 0
    rejected: Counter = field(default_factory=Counter)  # ERROR frames sent, by status
    closed: Counter = field(default_factory=Counter)  # connections the server closed, by close code


class Metrics:
    def __init__(self) -> None:
        self.handshakes_rejected: Counter = Counter()  # HTTP status of refused upgrades
        self.sessions_rejected: Counter = Counter()  # close code after the upgrade: 4403 bad token, 4410 ended
        self.control_requests: Counter = Counter()  # by (operation, status)
        self.protocol_errors = 0  # frames the signaling plane could not read

    def control_request(self, operation: str, status: int) -> None:
        self.control_requests[(operation, status)] += 1

    def render(self, meetings: dict[str, tuple[int, MeetingCounters]]) -> str:
        """`meetings` maps MeetingId → (open connections, counters)."""
        rows = RoomRows(meetings)
        text = Exposition("chime_")
        text.family("connections", "gauge", "Open signaling connections per meeting.", rows.open())
        text.family("connections_opened_total", "counter", "Signaling connections accepted per meeting.",
                    rows.value("connections_opened"))
        text.family("joins_total", "counter", "JOIN frames answered with JOIN_ACK and INDEX.", rows.value("joins"))
        text.family("messages_accepted_total", "counter", "Data messages accepted and fanned out.",
                    rows.value("messages_accepted"))
        text.family("messages_throttled_total", "counter",
                    "Data messages returned to their sender throttled (ingest_time_ns = 0).",
                    rows.value("messages_throttled"))
        text.family("messages_replayed_total", "counter", "Retained data messages replayed to joining attendees.",
                    rows.value("messages_replayed"))
        text.family("frames_delivered_total", "counter", "DATA_MESSAGE frames written to receivers (replays included).",
                    rows.value("frames_delivered"))
        text.family("messages_dropped_paused_total", "counter",
                    "Accepted messages dropped because delivery in the meeting was paused (fault injection).",
                    rows.value("messages_dropped_paused"))
        text.family("slow_consumers_dropped_total", "counter",
                    "Connections aborted because their unsent backlog passed the cap.",
                    rows.value("slow_consumers_dropped"))
        text.family("rejected_total", "counter", "ERROR frames sent, by status.", rows.by("rejected", "code"))
        text.family("closed_total", "counter", "Connections closed by the server, by close code.",
                    rows.by("closed", "code"))
        text.family("handshakes_rejected_total", "counter", "WebSocket upgrades refused, by HTTP status.",
                    by(self.handshakes_rejected, "status"))
        text.family("sessions_rejected_total", "counter",
                    "Connections closed right after the upgrade because of their join token, by close code.",
                    by(self.sessions_rejected, "code"))
        text.family("protocol_errors_total", "counter", "Client frames that could not be read.",
                    [("", self.protocol_errors)])
        text.family("control_requests_total", "counter", "Control-plane requests, by operation and status.",
                    by_operation_and_status(self.control_requests))
        return text.text()
