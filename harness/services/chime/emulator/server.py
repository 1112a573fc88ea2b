"""The Chime SDK meetings emulator as one object: state, signaling plane, control plane, admin, metrics.

`ChimeEmulator` runs inside any asyncio loop (tests may embed it); `chatload emulator --service
chime` and `EmulatorProcess` run it as its own process on uvloop. The fault and metrics routes are
the shared ones (`harness.emulation.admin`): a "room" there is a meeting (MeetingId or ARN), a
"user" an attendee's ExternalUserId. One route is the emulator's own: `GET /_emulator/chime/settings`
(loopback only, like every `/_emulator/` route) says which limits and replay window it enforces —
its options may time-scale them — so the harness judges a run by what this emulator really did.
"""

from __future__ import annotations

from aiohttp import web

from ....emulation.admin import json_response
from ....emulation.throttle import OperationThrottle, Rate
from ....emulation.two_ports import TwoPortEmulator
from .limits import API_RATE, DATA_HARD, DATA_SOFT
from .metrics import Metrics
from .signaling import SignalingPlane
from .state import MAX_ACTIVE_MEETINGS, Meeting, MeetingState


class ChimeEmulator(TwoPortEmulator):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        throttle: bool | Rate = False,
        soft_limit: Rate = DATA_SOFT,
        hard_limit: Rate = DATA_HARD,
        replay_messages: int = 1024,
        replay_seconds: float = 300.0,
        max_meetings: int = MAX_ACTIVE_MEETINGS,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.host = host
        self.control_port = control_port
        self.state = MeetingState(region, account_id, max_meetings)
        self.metrics = Metrics()
        self.signaling = SignalingPlane(
            self.state, self.metrics, host=host, port=port, soft_limit=soft_limit, hard_limit=hard_limit,
            replay_messages=replay_messages, replay_seconds=replay_seconds, ping_interval=ping_interval,
        )
        self.dataplane = self.signaling  # what the shared fault routes call it
        # True: the published quota (10/s, burst 20 per operation); a Rate: that one instead.
        self.throttle = OperationThrottle(every=throttle if isinstance(throttle, Rate) else API_RATE) if throttle else None

    def add_routes(self, app: web.Application) -> None:
        from .controlplane import add_control_plane_routes

        add_control_plane_routes(app, self)
        app.router.add_get("/_emulator/chime/settings", self._settings_route)

    def settings(self) -> dict:
        """The limits and replay window this emulator enforces, as [per second, burst] pairs and numbers."""
        signaling = self.signaling
        return {
            "soft_limit": [signaling.soft_limit.per_second, signaling.soft_limit.burst],
            "hard_limit": [signaling.hard_limit.per_second, signaling.hard_limit.burst],
            "replay_messages": signaling.replay_messages,
            "replay_seconds": signaling.replay_seconds,
            "api_limit": [self.throttle.every.per_second, self.throttle.every.burst] if self.throttle else None,
        }

    async def _settings_route(self, request: web.Request) -> web.Response:
        return json_response(self.settings())

    def find_room(self, identifier: str) -> Meeting | None:
        return self.state.find_meeting(identifier)

    def metrics_text(self) -> str:
        return self.metrics.render(self.signaling.meeting_metrics())

    def standard_metrics(self):
        from ....emulation.standard_metrics import RoomFigures, StandardMetrics

        rooms = {mid: RoomFigures(n, c.messages_accepted, c.frames_delivered, {str(k): v for k, v in c.rejected.items()})
                 for mid, (n, c) in self.signaling.meeting_metrics().items()}
        return StandardMetrics("chime", rooms, dict(self.metrics.handshakes_rejected))

    def describe(self) -> dict:
        return {
            "messaging_endpoint": self.messaging_endpoint,
            "signaling_base": self.signaling.signaling_base,
            "control_endpoint": self.control_endpoint,
            "region": self.state.region,
        }
