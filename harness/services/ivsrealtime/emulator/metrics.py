"""Counters the emulator keeps, rendered as Prometheus text at `GET /metrics` (names `ivsrealtime_…`).

Plain integers bumped where things happen; label strings are built only when someone scrapes. The
`room` label is the stage id (no tokens, user ids or attributes ever become labels).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

UNATTRIBUTED = ""  # the room label of joins refused before a stage could be named (forged tokens)


@dataclass(slots=True)
class StageCounters:
    joins_accepted: int = 0
    joins_rejected: Counter = field(default_factory=Counter)  # by JOIN_ERROR code
    roster_changes: int = 0  # STAGE_STATE sequence numbers handed out
    frames_delivered: int = 0  # STAGE_STATE frames written to members
    frames_dropped_paused: int = 0  # roster changes not delivered because the stage was paused
    disconnects: Counter = field(default_factory=Counter)  # aws:ivs:DISCONNECT by code
    protocol_errors: int = 0
    pings: int = 0


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
        out: list[str] = []
        rows = sorted(stages.items())

        def family(name: str, kind: str, help_text: str, samples) -> None:
            out.append(f"# HELP ivsrealtime_{name} {help_text}")
            out.append(f"# TYPE ivsrealtime_{name} {kind}")
            out.extend(f"ivsrealtime_{name}{labels} {value}" for labels, value in samples)

        def per_stage(attr: str):
            return [(f'{{room="{sid}"}}', getattr(c, attr)) for sid, (_, c) in rows]

        def per_stage_code(attr: str, extra: Counter | None = None):
            samples = [(f'{{room="{sid}",code="{code}"}}', n)
                       for sid, (_, c) in rows for code, n in sorted(getattr(c, attr).items())]
            samples += [(f'{{room="{UNATTRIBUTED}",code="{code}"}}', n) for code, n in sorted((extra or {}).items())]
            return samples

        family("connections", "gauge", "Joined participants (open events sockets) per stage.",
               [(f'{{room="{sid}"}}', n) for sid, (n, _) in rows])
        family("joins_accepted_total", "counter", "Joins answered with a first STAGE_STATE.", per_stage("joins_accepted"))
        family("joins_rejected_total", "counter", "Joins refused with aws:ivs:JOIN_ERROR (or an HTTP status), by code.",
               per_stage_code("joins_rejected", self.unattributed_rejections))
        family("roster_changes_total", "counter", "STAGE_STATE sequence numbers issued.", per_stage("roster_changes"))
        family("frames_delivered_total", "counter", "STAGE_STATE frames written to participants.",
               per_stage("frames_delivered"))
        family("frames_dropped_paused_total", "counter",
               "Roster changes not delivered because the stage was paused (fault injection).",
               per_stage("frames_dropped_paused"))
        family("disconnects_total", "counter", "aws:ivs:DISCONNECT frames sent, by code.", per_stage_code("disconnects"))
        family("protocol_errors_total", "counter", "Client frames that could not be read or acted on.",
               per_stage("protocol_errors"))
        family("pings_total", "counter", "PING frames answered with PONG.", per_stage("pings"))
        family("handshakes_rejected_total", "counter", "WebSocket handshakes refused, by HTTP status.",
               [(f'{{status="{s}"}}', n) for s, n in sorted(self.handshakes_rejected.items())])
        family("whip_requests_total", "counter", "WHIP requests (all answered 501: media is not emulated).",
               [(f'{{method="{m}"}}', n) for m, n in sorted(self.whip_requests.items())])
        family("control_requests_total", "counter", "Control-plane requests, by operation and status.",
               [(f'{{operation="{op}",status="{st}"}}', n) for (op, st), n in sorted(self.control_requests.items())])
        return "\n".join(out) + "\n"
