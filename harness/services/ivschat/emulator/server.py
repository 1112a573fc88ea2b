"""The IVS Chat emulator as one object: state, data plane, control plane, admin and metrics on one loop.

`Emulator` runs inside any asyncio loop (tests may embed it); `chatload emulator` and
`EmulatorProcess` run it as its own process on uvloop. The fault and metrics routes are the shared
ones (`harness.emulation.admin`); the rate-limit algorithm switch is this service's own.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ....emulation.admin import choice, json_response, read_body
from ....emulation.two_ports import TwoPortEmulator
from .dataplane import DataPlane
from .limits import ALGORITHMS, make_limiter
from .metrics import Metrics
from .review import ReviewHandlers
from .state import DEFAULT_TOKEN_MINUTES, IvsChatRooms, Room

log = logging.getLogger(__name__)


class Emulator(TwoPortEmulator):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        rate_algorithm: str = "fixed-window",
        throttle: bool | dict[str, float] = False,
        max_connections: int = 50_000,
        token_minutes: float = DEFAULT_TOKEN_MINUTES,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.host = host
        self.control_port = control_port
        self.state = IvsChatRooms(region, account_id, token_minutes)
        self.metrics = Metrics()
        self.review = ReviewHandlers()
        self.dataplane = DataPlane(
            self.state, self.metrics, self.review, host=host, port=port, rate_algorithm=rate_algorithm,
            max_connections=max_connections, ping_interval=ping_interval,
        )
        if throttle:
            from ....emulation.throttle import OperationThrottle
            from .quotas import DEFAULT_TPS

            # True: the service's quotas; a dict: those quotas with some operations' TPS replaced.
            self.throttle = OperationThrottle({**DEFAULT_TPS, **throttle} if isinstance(throttle, dict) else DEFAULT_TPS)
        else:
            self.throttle = None

    def add_routes(self, app: web.Application) -> None:
        from .controlplane import add_control_plane_routes

        app.router.add_post("/_emulator/limits", self._set_rate_algorithm)
        add_control_plane_routes(app, self)

    async def stop(self) -> None:
        await super().stop()
        await self.review.close()

    async def _set_rate_algorithm(self, request: web.Request) -> web.Response:
        """POST /_emulator/limits {algorithm}: the room rate-limit algorithm for every room."""
        body = await read_body(request, {"algorithm"})
        algorithm = choice(body, "algorithm", tuple(ALGORITHMS))
        dataplane = self.dataplane
        dataplane.rate_algorithm = algorithm
        for runtime in dataplane.rooms.values():
            runtime.limiter = make_limiter(algorithm, runtime.room.maximum_message_rate_per_second)
        return json_response({"algorithm": algorithm})

    def find_room(self, identifier: str) -> Room | None:
        return self.state.find_room(identifier)

    def metrics_text(self) -> str:
        return self.metrics.render(self.dataplane.room_metrics())

    def standard_metrics(self):
        from ....emulation.standard_metrics import RoomFigures, StandardMetrics

        rooms = {rid: RoomFigures(n, c.messages_accepted, c.frames_delivered, {str(k): v for k, v in c.rejected.items()})
                 for rid, (n, c) in self.dataplane.room_metrics().items()}
        return StandardMetrics("ivschat", rooms, dict(self.metrics.handshakes_rejected))

    def describe(self) -> dict:
        return {
            "messaging_endpoint": self.messaging_endpoint,
            "control_endpoint": self.control_endpoint,
            "region": self.state.region,
            "rooms": [{"arn": r.arn, "name": r.name} for r in self.state.rooms.values()],
        }

    def create_room(self, **settings) -> Room:
        """Convenience for embedding code and tests; the control plane is the validating path."""
        return self.state.create_room(**settings)
