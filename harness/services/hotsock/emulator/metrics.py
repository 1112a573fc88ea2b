"""The Hotsock emulator's counters, as Prometheus text at `GET /metrics` (names prefixed `hotsock_`).

Plain integers bumped on the hot path; the text is built only when someone scrapes. Per-channel
families carry a `room` label (the harness's word for a fan-out scope; here a channel). Channel
names may hold `"` and `\\`, so label values are escaped. Tokens, keys, uids and connection secrets
never become labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class ChannelCounters:
    subscriptions: int = 0  # successful subscribes
    client_messages: int = 0  # client messages accepted
    server_messages: int = 0  # POST /publish messages accepted
    frames_delivered: int = 0  # message and presence frames written to subscribers
    dropped_paused: int = 0
    slow_consumers_dropped: int = 0
    rejected: Counter = field(default_factory=Counter)  # hotsock.error codes answered about this channel


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self.handshakes_rejected: Counter = Counter()  # by HTTP status
        self.errors: Counter = Counter()  # every hotsock.error frame sent, by code
        self.protocol_errors = 0  # frames that could not be parsed at all (INVALID_FRAME and the like)
        self.server_closes: Counter = Counter()  # by cause: max-duration, idle, heartbeat, expire, fault
        self.control_requests: Counter = Counter()  # by (operation, status)
        self.connections_opened = 0

    def control_request(self, operation: str, status: int) -> None:
        self.control_requests[(operation, status)] += 1

    def render(self, open_connections: int, channels: dict[str, tuple[int, ChannelCounters]]) -> str:
        """`channels` maps channel name → (subscribers, counters)."""
        out: list[str] = []
        rooms = sorted(channels.items())

        def family(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            out.append(f"# HELP hotsock_{name} {help_text}")
            out.append(f"# TYPE hotsock_{name} {kind}")
            out.extend(f"hotsock_{name}{labels} {value}" for labels, value in samples)

        def per_room(attr: str) -> list[tuple[str, int]]:
            return [(f'{{room="{label(name)}"}}', getattr(c, attr)) for name, (_, c) in rooms]

        family("open_connections", "gauge", "Open WebSocket connections.", [("", open_connections)])
        family("connections_opened_total", "counter", "Successful handshakes.", [("", self.connections_opened)])
        family("connections", "gauge", "Connections subscribed to each channel.",
               [(f'{{room="{label(name)}"}}', n) for name, (n, _) in rooms])
        family("subscriptions_total", "counter", "Successful subscribes per channel.", per_room("subscriptions"))
        family("messages_accepted_total", "counter", "Messages accepted per channel, by source.",
               [(f'{{room="{label(name)}",source="client"}}', c.client_messages) for name, (_, c) in rooms]
               + [(f'{{room="{label(name)}",source="server"}}', c.server_messages) for name, (_, c) in rooms])
        family("messages_rejected_total", "counter", "hotsock.error answers about a channel, by code.",
               [(f'{{room="{label(name)}",code="{code}"}}', n)
                for name, (_, c) in rooms for code, n in sorted(c.rejected.items())])
        family("frames_delivered_total", "counter", "Message and presence frames written to subscribers.",
               per_room("frames_delivered"))
        family("messages_dropped_paused_total", "counter",
               "Frames dropped because delivery in the channel was paused (fault injection).",
               per_room("dropped_paused"))
        family("slow_consumers_dropped_total", "counter",
               "Connections aborted because their unsent backlog passed the cap.", per_room("slow_consumers_dropped"))
        family("errors_total", "counter", "hotsock.error frames sent, by code.",
               [(f'{{code="{code}"}}', n) for code, n in sorted(self.errors.items())])
        family("handshakes_rejected_total", "counter", "WebSocket handshakes refused, by HTTP status.",
               [(f'{{status="{s}"}}', n) for s, n in sorted(self.handshakes_rejected.items())])
        family("protocol_errors_total", "counter", "Client frames that could not be read or acted on.",
               [("", self.protocol_errors)])
        family("server_closes_total", "counter", "Connections the server closed, by cause.",
               [(f'{{cause="{cause}"}}', n) for cause, n in sorted(self.server_closes.items())])
        family("control_requests_total", "counter", "HTTP API requests, by operation and status.",
               [(f'{{operation="{op}",status="{st}"}}', n) for (op, st), n in sorted(self.control_requests.items())])
        return "\n".join(out) + "\n"
