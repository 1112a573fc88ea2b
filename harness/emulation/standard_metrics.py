"""The families every emulator adds to its own `/metrics`, named like the harness's live metrics
(`harness/export/live.py`) so one dashboard puts client-side and server-side counts side by side:

    chatload_emulator_connections{service, room}                    gauge
    chatload_emulator_messages_accepted_total{service, room}        counter
    chatload_emulator_deliveries_total{service, room}               counter (frames written to members)
    chatload_emulator_rejections_total{service, room, code}         counter (the service's own code)
    chatload_emulator_handshakes_rejected_total{service, status}    counter

An emulator offers `standard_metrics() -> StandardMetrics`; the shared `/metrics` route renders it
after the emulator's own families (which keep their service-specific names)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .prometheus_text import Exposition, label_value


@dataclass
class RoomFigures:
    connections: int = 0
    accepted: int = 0
    deliveries: int = 0
    rejections: dict[str, int] = field(default_factory=dict)  # code → n


@dataclass
class StandardMetrics:
    service: str
    rooms: dict[str, RoomFigures] = field(default_factory=dict)
    handshakes_rejected: dict[int, int] = field(default_factory=dict)  # HTTP status → n


def render(metrics: StandardMetrics) -> str:
    service = label_value(metrics.service)
    rooms = sorted(metrics.rooms.items())

    def per_room(value) -> list[tuple[str, int]]:
        return [(f'{{service="{service}",room="{label_value(r)}"}}', value(f)) for r, f in rooms]

    text = Exposition()
    text.family("chatload_emulator_connections", "gauge", "Open connections per room.",
                per_room(lambda f: f.connections))
    text.family("chatload_emulator_messages_accepted_total", "counter", "Messages the emulator accepted.",
                per_room(lambda f: f.accepted))
    text.family("chatload_emulator_deliveries_total", "counter", "Frames written to members.",
                per_room(lambda f: f.deliveries))
    text.family("chatload_emulator_rejections_total", "counter", "Requests refused, by the service's own code.",
                [(f'{{service="{service}",room="{label_value(r)}",code="{label_value(c)}"}}', n)
                 for r, f in rooms for c, n in sorted(f.rejections.items())])
    text.family("chatload_emulator_handshakes_rejected_total", "counter", "Handshakes refused, by HTTP status.",
                [(f'{{service="{service}",status="{status}"}}', n)
                 for status, n in sorted(metrics.handshakes_rejected.items())])
    return text.text()
