"""The Hotsock emulator's counters, as Prometheus text at `GET /metrics` (names prefixed `hotsock_`).

Plain integers bumped on the hot path; the text is built only when someone scrapes. Per-channel
families carry a `room` label (the harness's word for a fan-out scope; here a channel). Channel
names may hold `"` and `\\`, so label values are escaped. Tokens, keys, uids and connection secrets
never become labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ....emulation.prometheus_text import Exposition, RoomRows, by, by_operation_and_status, label_value


@dataclass(slots=True)
class ChannelCounters:
    subscriptions: int = 0  # successful subscribes
    client_messages: int = 0  # client messages accepted
    server_messages: int = 0  # POST /publish messages accepted
    frames_delivered: int = 0  # message and presence frames written to subscribers
    dropped_paused: int = 0
    slow_consumers_dropped: int = 0
    rejected: Counter = field(default_factory=Counter)  # hotsock.error codes answered about this channel


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
        rows = RoomRows(channels)
        text = Exposition("hotsock_")
        text.family("open_connections", "gauge", "Open WebSocket connections.", [("", open_connections)])
        text.family("connections_opened_total", "counter", "Successful handshakes.", [("", self.connections_opened)])
        text.family("connections", "gauge", "Connections subscribed to each channel.", rows.open())
        text.family("subscriptions_total", "counter", "Successful subscribes per channel.",
                    rows.value("subscriptions"))
        text.family("messages_accepted_total", "counter", "Messages accepted per channel, by source.",
                    [(f'{{room="{label_value(name)}",source="client"}}', c.client_messages) for name, (_, c) in rows]
                    + [(f'{{room="{label_value(name)}",source="server"}}', c.server_messages) for name, (_, c) in rows])
        text.family("messages_rejected_total", "counter", "hotsock.error answers about a channel, by code.",
                    rows.by("rejected", "code"))
        text.family("frames_delivered_total", "counter", "Message and presence frames written to subscribers.",
                    rows.value("frames_delivered"))
        text.family("messages_dropped_paused_total", "counter",
                    "Frames dropped because delivery in the channel was paused (fault injection).",
                    rows.value("dropped_paused"))
        text.family("slow_consumers_dropped_total", "counter",
                    "Connections aborted because their unsent backlog passed the cap.",
                    rows.value("slow_consumers_dropped"))
        text.family("errors_total", "counter", "hotsock.error frames sent, by code.", by(self.errors, "code"))
        text.family("handshakes_rejected_total", "counter", "WebSocket handshakes refused, by HTTP status.",
                    by(self.handshakes_rejected, "status"))
        text.family("protocol_errors_total", "counter", "Client frames that could not be read or acted on.",
                    [("", self.protocol_errors)])
        text.family("server_closes_total", "counter", "Connections the server closed, by cause.",
                    by(self.server_closes, "cause"))
        text.family("control_requests_total", "counter", "HTTP API requests, by operation and status.",
                    by_operation_and_status(self.control_requests))
        return text.text()
