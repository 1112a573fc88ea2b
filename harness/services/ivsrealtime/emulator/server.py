"""The IVS Real-Time emulator as one object: state, events socket, control plane, WHIP, admin, metrics.

`Emulator` runs inside any asyncio loop (tests may embed it); `chatload emulator --service
ivsrealtime` and `EmulatorProcess` run it as its own process on uvloop. The events WebSocket is the
data plane (`messaging_endpoint`); the HTTP app on the control port serves the `ivs-realtime` API,
the WHIP stub under /whip/, and the shared fault and metrics routes (`harness.emulation.admin`).
"""

from __future__ import annotations

from aiohttp import web

from ....emulation.request_body import header_text
from ....emulation.two_ports import TwoPortEmulator
from ...untrusted import Refused
from .controlplane import DEFAULT_TPS, add_control_plane_routes
from .dataplane import DataPlane
from .metrics import Metrics
from .state import MAX_PUBLISHERS, MAX_STAGES, MAX_SUBSCRIBERS, RealtimeState, Stage

WHIP_PATH = "/whip"


class Emulator(TwoPortEmulator):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, control_port: int = 0, region: str = "us-east-1",
                 account_id: str = "123456789012", minute_s: float = 60.0, max_stages: int = MAX_STAGES,
                 max_publishers: int = MAX_PUBLISHERS, max_subscribers: int = MAX_SUBSCRIBERS,
                 token_reuse: str = "replace", roster: str = "all", throttle: bool | dict[str, float] = False,
                 ping_interval: float | None = 20.0) -> None:
        self.host = host
        self.control_port = control_port
        self.state = RealtimeState(region, account_id, minute_s=minute_s, max_stages=max_stages)
        self.metrics = Metrics()
        self.dataplane = DataPlane(self.state, self.metrics, host=host, port=port, max_publishers=max_publishers,
                                   max_subscribers=max_subscribers, token_reuse=token_reuse, roster=roster,
                                   ping_interval=ping_interval)
        if throttle:
            from ...ivschat.emulator.throttle import OperationThrottle

            # True: the service's quotas; a dict: those quotas with some operations' TPS replaced.
            self.throttle = OperationThrottle({**DEFAULT_TPS, **throttle} if isinstance(throttle, dict) else DEFAULT_TPS)
        else:
            self.throttle = None

    client_max_size = 256 * 1024

    def add_routes(self, app: web.Application) -> None:
        add_control_plane_routes(app, self)
        app.router.add_route("*", WHIP_PATH + "{tail:.*}", self._whip)

    async def _whip(self, request: web.Request) -> web.Response:
        """WHIP: a publish (`POST …/publish/<participant id>`, the token as bearer) takes a publisher
        slot or is refused 403 with the service's `{"code": …}` (the data plane decides); everything
        else — media — is 501 (CORS-open, so a page's SDK can read it)."""
        self.metrics.whip_requests[request.method] += 1
        cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*",
                "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS", "Access-Control-Expose-Headers": "*"}
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=cors)
        head, _, participant_id = request.match_info["tail"].rpartition("/")
        try:
            bearer = header_text(request, "Authorization")
        except Refused as refused:
            return web.Response(status=refused.status, text=refused.reason + "\n", headers=cors)
        if request.method == "POST" and head.endswith("/publish") and bearer.startswith("Bearer "):
            status, code, message = self.dataplane.whip_publish(bearer[len("Bearer "):], participant_id)
            if code is not None:
                return web.json_response({"code": code, "message": message}, status=status, headers=cors)
            return web.Response(status=status, text=message + "\n", headers=cors)
        return web.Response(status=501, text="media (WHIP/WebRTC) is not emulated by chatload\n", headers=cors)

    def find_room(self, identifier: str) -> Stage | None:
        return self.state.find_stage(identifier)

    def metrics_text(self) -> str:
        return self.metrics.render(self.dataplane.stage_metrics())

    def standard_metrics(self):
        from ....emulation.standard_metrics import RoomFigures, StandardMetrics

        # A stage carries no chat messages: what it fans out is roster changes (STAGE_STATE), so
        # "accepted" counts those and "deliveries" the frames written; refusals are JOIN_ERRORs.
        rooms = {sid: RoomFigures(n, c.roster_changes, c.frames_delivered, dict(c.joins_rejected))
                 for sid, (n, c) in self.dataplane.stage_metrics().items()}
        return StandardMetrics("ivsrealtime", rooms, dict(self.metrics.handshakes_rejected))

    def endpoints(self) -> dict[str, str]:
        """The `endpoints` of every stage and the URLs in its tokens: all point at this emulator."""
        return {"events": self.messaging_endpoint, "whip": self.control_endpoint + WHIP_PATH,
                "rtmp": f"rtmp://{self.host}:1935/app/", "rtmps": f"rtmps://{self.host}:443/app/"}

    def describe(self) -> dict:
        return {"messaging_endpoint": self.messaging_endpoint, "control_endpoint": self.control_endpoint,
                "whip_endpoint": self.endpoints()["whip"], "region": self.state.region,
                "account_id": self.state.account_id, "minute_s": self.state.minute_s,
                "stages": [{"arn": s.arn, "name": s.name} for s in self.state.stages.values()]}

    def create_stage(self, name: str = "") -> Stage:
        """Convenience for embedding code and tests; the control plane is the validating path."""
        return self.state.create_stage(name)
