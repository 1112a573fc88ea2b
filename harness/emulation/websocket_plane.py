"""The listening half every emulator's WebSocket data plane shares.

A data plane subclasses `WebSocketPlane` and supplies

    _handler(connection)        one connection's life, from the open to the end
    serve_options() -> dict     the `websockets.asyncio.server.serve` keywords that make it this
                                service: handshake hooks, frame limit, pings, server header and
                                connection class
    lines()                     every room's `DeliveryLine`: `faults.LineFaults` gives it from
                                the service's `runtimes()` (no default here, so that one comes first)

and gets `start` (listen; port 0 picks a free one, which is then kept, so a `restart` fault listens
again on the same port), `stop` (stop listening, close every connection and every room's delivery
line) and `endpoint` (wss:// when `ssl_context` is set, as `TwoPortEmulator` does for `--tls`). It
runs on one event loop, which it records at `start` (`_loop`): timers and connection state belong
to that loop's thread alone.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve


class EndReportingConnection(ServerConnection):
    """A server connection that calls `on_lost(self)` once its TCP connection is gone.

    What a handshake reserved (a quota slot, a roster place) is released there: `connection_lost`
    always runs, also for handshakes that fail after the server accepted them, so the release
    happens exactly once, and a member stays a recipient exactly as long as frames could reach it.
    """

    on_lost: Callable[[Any], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost(self)


def offered_subprotocols(request) -> list[str]:
    """The subprotocols a handshake offers, in order, across repeated `Sec-WebSocket-Protocol` headers."""
    return [item.strip() for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for item in header.split(",") if item.strip()]


class WebSocketPlane:
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None  # serve wss:// with it
    _server: Server | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def _handler(self, connection: ServerConnection) -> None:
        raise NotImplementedError

    def serve_options(self) -> dict:
        raise NotImplementedError

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await serve(self._handler, self.host, self.port, ssl=self.ssl_context, **self.serve_options())
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection (websockets sends each a 1001 close), then every line."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        for line in self.lines():
            line.close()

    @property
    def endpoint(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}"
