"""The emulator object's lifecycle: a data plane on one port, an HTTP control app on another.

Every emulator is the same pair: a data plane (a `WebSocketPlane` or anything with `start`, `stop`
and `endpoint`) and an aiohttp app that serves the shared loopback-only fault and metrics routes
(`admin.add_admin_routes`) next to the service's own control plane. A service's emulator subclasses
`TwoPortEmulator`, sets `host`, `control_port` and `dataplane` in its `__init__`, and supplies

    add_routes(app)     the service's own routes, added after the shared ones, in its own order

and gets `start` (data plane first, so `describe()` is complete once the control port answers),
`stop`, `async with`, `messaging_endpoint` and `control_endpoint`. `client_max_size` is the control
app's request-body limit. A service with more to release (files, sessions) extends `stop`.

TLS is one switch for both planes: set `ssl_context` (a server context, `harness.emulation.tls`)
before `start`, and the data plane serves wss://, the control app https:// (boto3 reaches it with
`verify=<CA file>`), each endpoint saying so.
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .admin import FaultTarget, add_admin_routes


class _ClientErrorsInOneLine(logging.Filter):
    """aiohttp logs a request it cannot parse (a bad request line, header or chunk) with a traceback,
    though the fault is the client's and it has answered 400: here that is one line, no traceback.
    The line names the error's class and status only: its message can repeat the raw request line or
    header (LineTooLong, InvalidHeader), which may carry a query-string token or an Authorization value."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "%s: %s %s", (record.getMessage(), error.code, type(error).__name__)
            record.exc_info = record.exc_text = None
        return True


http_log = logging.getLogger("harness.emulation.http")
http_log.addFilter(_ClientErrorsInOneLine())


class TwoPortEmulator:
    host: str
    control_port: int
    dataplane: FaultTarget  # with start(), stop() and endpoint
    client_max_size = 1024 * 1024
    ssl_context: ssl.SSLContext | None = None  # both planes serve TLS with it when set
    _runner: web.AppRunner | None = None

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self.dataplane.ssl_context = self.ssl_context
        await self.dataplane.start()
        app = web.Application(client_max_size=self.client_max_size)
        add_admin_routes(app, self)
        self.add_routes(app)
        # No access log: query strings may hold secrets. No decompression: bodies are plain JSON, and
        # a Content-Encoding is refused with 415 (`request_body`) instead of failing mid-body.
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False, logger=http_log)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.control_port, ssl_context=self.ssl_context).start()
        self.control_port = self._runner.addresses[0][1]  # port 0 picked a free one

    async def stop(self) -> None:
        await self.dataplane.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def messaging_endpoint(self) -> str:
        return self.dataplane.endpoint

    @property
    def control_endpoint(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.control_port}"
