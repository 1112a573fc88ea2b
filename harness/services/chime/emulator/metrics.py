"""Counters the Chime emulator keeps, rendered as Prometheus text at `GET /metrics` (names `chime_…`).

Plain integers bumped on the hot path; labels are resolved only when someone scrapes. A "room" is a
meeting (its MeetingId). No label ever carries a join token, an ExternalUserId or a message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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
        out: list[str] = []
        rows = sorted(meetings.items())

        def family(name: str, kind: str, help_text: str, samples) -> None:
            out.append(f"# HELP chime_{name} {help_text}")
            out.append(f"# TYPE chime_{name} {kind}")
            out.extend(f"chime_{name}{labels} {value}" for labels, value in samples)

        def per_room(attr: str):
            return [(f'{{room="{mid}"}}', getattr(c, attr)) for mid, (_, c) in rows]

        def per_room_by(attr: str, label: str):
            return [(f'{{room="{mid}",{label}="{key}"}}', n)
                    for mid, (_, c) in rows for key, n in sorted(getattr(c, attr).items())]

        family("connections", "gauge", "Open signaling connections per meeting.",
               [(f'{{room="{mid}"}}', n) for mid, (n, _) in rows])
        family("connections_opened_total", "counter", "Signaling connections accepted per meeting.",
               per_room("connections_opened"))
        family("joins_total", "counter", "JOIN frames answered with JOIN_ACK and INDEX.", per_room("joins"))
        family("messages_accepted_total", "counter", "Data messages accepted and fanned out.",
               per_room("messages_accepted"))
        family("messages_throttled_total", "counter",
               "Data messages returned to their sender throttled (ingest_time_ns = 0).", per_room("messages_throttled"))
        family("messages_replayed_total", "counter", "Retained data messages replayed to joining attendees.",
               per_room("messages_replayed"))
        family("frames_delivered_total", "counter", "DATA_MESSAGE frames written to receivers (replays included).",
               per_room("frames_delivered"))
        family("messages_dropped_paused_total", "counter",
               "Accepted messages dropped because delivery in the meeting was paused (fault injection).",
               per_room("messages_dropped_paused"))
        family("slow_consumers_dropped_total", "counter",
               "Connections aborted because their unsent backlog passed the cap.", per_room("slow_consumers_dropped"))
        family("rejected_total", "counter", "ERROR frames sent, by status.", per_room_by("rejected", "code"))
        family("closed_total", "counter", "Connections closed by the server, by close code.",
               per_room_by("closed", "code"))
        family("handshakes_rejected_total", "counter", "WebSocket upgrades refused, by HTTP status.",
               [(f'{{status="{s}"}}', n) for s, n in sorted(self.handshakes_rejected.items())])
        family("sessions_rejected_total", "counter",
               "Connections closed right after the upgrade because of their join token, by close code.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(self.sessions_rejected.items())])
        family("protocol_errors_total", "counter", "Client frames that could not be read.", [("", self.protocol_errors)])
        family("control_requests_total", "counter", "Control-plane requests, by operation and status.",
               [(f'{{operation="{op}",status="{st}"}}', n) for (op, st), n in sorted(self.control_requests.items())])
        return "\n".join(out) + "\n"
