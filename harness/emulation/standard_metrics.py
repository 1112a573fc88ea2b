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


def _label(value: object) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(metrics: StandardMetrics) -> str:
    service = _label(metrics.service)
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, rows: list[tuple[str, float]]) -> None:
        out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        out.extend(f'{name}{{service="{service}"{labels}}} {value}' for labels, value in rows)

    rooms = sorted(metrics.rooms.items())
    family("chatload_emulator_connections", "gauge", "Open connections per room.",
           [(f',room="{_label(r)}"', f.connections) for r, f in rooms])
    family("chatload_emulator_messages_accepted_total", "counter", "Messages the emulator accepted.",
           [(f',room="{_label(r)}"', f.accepted) for r, f in rooms])
    family("chatload_emulator_deliveries_total", "counter", "Frames written to members.",
           [(f',room="{_label(r)}"', f.deliveries) for r, f in rooms])
    family("chatload_emulator_rejections_total", "counter", "Requests refused, by the service's own code.",
           [(f',room="{_label(r)}",code="{_label(c)}"', n) for r, f in rooms for c, n in sorted(f.rejections.items())])
    family("chatload_emulator_handshakes_rejected_total", "counter", "Handshakes refused, by HTTP status.",
           [(f',status="{status}"', n) for status, n in sorted(metrics.handshakes_rejected.items())])
    return "\n".join(out) + "\n"
