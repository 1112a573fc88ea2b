"""Counters the emulator keeps, rendered as Prometheus text at `GET /metrics` (names `ivsrealtime_…`).

Plain integers bumped where things happen; label strings are built only when someone scrapes. The
`room` label is the stage id (no tokens, user ids or attributes ever become labels).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ....emulation.prometheus_text import Exposition, RoomRows, by, by_operation_and_status, label_value

UNATTRIBUTED = ""  # the room label of joins refused before a stage could be named (forged tokens)


@dataclass(slots=True)
class StageCounters:
    joins_accepted: int = 0
    joins_rejected: Counter = field(default_factory=Counter)  # by JOIN_ERROR code
    roster_changes: int = 0  # STAGE_STATE sequence numbers handed out
    frames_delivered: int = 0  # STAGE_STATE frames written to members
    slow_consumers_dropped: int = 0  # members aborted for an unsent backlog (`emulation.fanout`)
    frames_dropped_paused: int = 0  # roster changes not delivered because the stage was paused
    disconnects: Counter = field(default_factory=Counter)  # aws:ivs:DISCONNECT by code
    protocol_errors: int = 0
    pings: int = 0
    publishes_accepted: int = 0  # SDP_OFFERs to publish that took a publisher slot
    publishes_rejected: Counter = field(default_factory=Counter)  # refused publish offers, by SDK error name


class Metrics:
    def __init__(self) -> None:
        self.handshakes_rejected: Counter = Counter()  # by HTTP status (clients without error_over_ws)
        self.unattributed_rejections: Counter = Counter()  # JOIN_ERROR code, stage unknown
        self.control_requests: Counter = Counter()  # by (operation, status)
        self.whip_requests: Counter = Counter()  # by method

    def control_request(self, operation: str, status: int) -> None:
        self.control_requests[(operation, status)] += 1

    def render(self, stages: dict[str, tuple[int, StageCounters]]) -> str:
        """`stages` maps stage id → (open connections, counters)."""
        rows = RoomRows(stages)
        text = Exposition("ivsrealtime_")
        unattributed = [(f'{{room="{UNATTRIBUTED}",code="{label_value(code)}"}}', n)
                        for code, n in sorted(self.unattributed_rejections.items())]
        text.family("connections", "gauge", "Joined participants (open events sockets) per stage.", rows.open())
        text.family("joins_accepted_total", "counter", "Joins answered with a first STAGE_STATE.",
                    rows.value("joins_accepted"))
        text.family("joins_rejected_total", "counter",
                    "Joins refused with aws:ivs:JOIN_ERROR (or an HTTP status), by code.",
                    rows.by("joins_rejected", "code") + unattributed)
        text.family("roster_changes_total", "counter", "STAGE_STATE sequence numbers issued.",
                    rows.value("roster_changes"))
        text.family("frames_delivered_total", "counter", "STAGE_STATE frames written to participants.",
                    rows.value("frames_delivered"))
        text.family("slow_consumers_dropped_total", "counter",
                    "Connections aborted because their unsent backlog passed the cap.",
                    rows.value("slow_consumers_dropped"))
        text.family("frames_dropped_paused_total", "counter",
                    "Roster changes not delivered because the stage was paused (fault injection).",
                    rows.value("frames_dropped_paused"))
        text.family("disconnects_total", "counter", "aws:ivs:DISCONNECT frames sent, by code.",
                    rows.by("disconnects", "code"))
        text.family("protocol_errors_total", "counter", "Client frames that could not be read or acted on.",
                    rows.value("protocol_errors"))
        text.family("pings_total", "counter", "PING frames answered with PONG.", rows.value("pings"))
        text.family("publishes_accepted_total", "counter", "Publish offers (SDP_OFFER) that took a publisher slot.",
                    rows.value("publishes_accepted"))
        text.family("publishes_rejected_total", "counter", "Publish offers refused (SDP_ANSWER 403), by code.",
                    rows.by("publishes_rejected", "code"))
        text.family("handshakes_rejected_total", "counter", "WebSocket handshakes refused, by HTTP status.",
                    by(self.handshakes_rejected, "status"))
        text.family("whip_requests_total", "counter", "WHIP requests (all answered 501: media is not emulated).",
                    by(self.whip_requests, "method"))
        text.family("control_requests_total", "counter", "Control-plane requests, by operation and status.",
                    by_operation_and_status(self.control_requests))
        return text.text()
