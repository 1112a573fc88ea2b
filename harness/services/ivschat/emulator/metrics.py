"""Counters the emulator keeps, rendered as Prometheus text at `GET /metrics`.

Plain integers bumped on the hot path (no labels resolved per increment); the text is built only
when someone scrapes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value}" for labels, value in samples)

        def per_room(attr: str) -> list[tuple[str, int]]:
            return [(f'{{room="{rid}"}}', getattr(c, attr)) for rid, (_, c) in sorted(rooms.items())]

        family("ivschat_connections", "gauge", "Open WebSocket connections per room.",
               [(f'{{room="{rid}"}}', n) for rid, (n, _) in sorted(rooms.items())])
        family("ivschat_connections_opened_total", "counter", "Successful handshakes per room.",
               per_room("connections_opened"))
        family("ivschat_messages_accepted_total", "counter", "SEND_MESSAGE requests accepted.",
               per_room("messages_accepted"))
        family("ivschat_messages_rejected_total", "counter", "Requests answered with an ERROR frame, by code.",
               [(f'{{room="{rid}",code="{code}"}}', n)
                for rid, (_, c) in sorted(rooms.items()) for code, n in sorted(c.rejected.items())])
        family("ivschat_frames_delivered_total", "counter", "MESSAGE and EVENT frames written to connections.",
               per_room("frames_delivered"))
        family("ivschat_events_total", "counter", "EVENT frames fanned out (SendEvent and system events).",
               per_room("events"))
        family("ivschat_messages_dropped_paused_total", "counter",
               "Accepted messages dropped because delivery in the room was paused (fault injection).",
               per_room("messages_dropped_paused"))
        family("ivschat_slow_consumers_dropped_total", "counter",
               "Connections aborted because their unsent backlog passed the cap.", per_room("slow_consumers_dropped"))
        family("ivschat_handshakes_rejected_total", "counter", "WebSocket handshakes refused, by HTTP status.",
               [(f'{{status="{s}"}}', n) for s, n in sorted(self.handshakes_rejected.items())])
        family("ivschat_protocol_errors_total", "counter", "Client frames that could not be acted on.",
               [("", self.protocol_errors)])
        family("ivschat_control_requests_total", "counter", "Control-plane requests, by operation and status.",
               [(f'{{operation="{op}",status="{st}"}}', n) for (op, st), n in sorted(self.control_requests.items())])
        return "\n".join(out) + "\n"
