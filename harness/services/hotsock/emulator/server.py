"""The Hotsock emulator as one object: WebSocket data plane, HTTP API, shared faults and metrics.

Two ports, as IVS Chat's emulator: the WebSocket (`messaging_endpoint`, clients connect to
`<it>/v1?token=…`) and an HTTP app (`control_endpoint`) holding what the installation serves over
HTTP plus the shared loopback-only fault routes and `/metrics`:

| route | what |
|---|---|
| POST /publish | server publish: `Authorization: Bearer <40-char key>`, body `{channel, event, data[, store, deduplicationId, eagerIdGeneration, emitPubSubEvent]}` → 202 `{channel, event, id}` |
| POST /connection/listMessages?connectionId=…&connectionSecret=… | body `{channel[, before, after, reverse]}` → 200 `{messages: […]}` (stored messages, ≤100) |

Errors are JSON `{"error": {"code", "message"}}` (emulator choice: the service's error bodies are
unpublished): 401 UNAUTHORIZED for a wrong or missing key or connection secret, 400 with the
codec's codes (INVALID_CHANNEL, INVALID_EVENT, DATA_TOO_LARGE) or INVALID_REQUEST /
UNSUPPORTED for the body, 403 NOT_SUBSCRIBED for history of a channel the connection is not in,
413 DATA_TOO_LARGE for a body over 1 MiB, 415 UNSUPPORTED_MEDIA_TYPE for a body with a
Content-Encoding (the shared reader, `harness/emulation/request_body.py`). `id` is always in a publish's answer (the service adds it
only with `eagerIdGeneration`: emulator choice). Scheduled messages (`scheduleExpression`) and
storage writes (`key`) are not emulated: 400 UNSUPPORTED.

Signing material and API keys come from files or environment variables; when none is given the
emulator makes its own and writes it to a 0600 file in a private temporary folder, whose *path*
`describe()` reports — never the key.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import shutil
import string
import tempfile
from pathlib import Path

from aiohttp import web

from ....emulation.admin import json_response
from ....emulation.request_body import Refused, header_text, read_json_object
from ....emulation.two_ports import TwoPortEmulator
from .. import codec
from ..claims import STORE_MAX_S
from ..ulid import UlidError, timestamp_ms
from .auth import KeySlot, Verifier, secret_slot
from .channels import Channel
from .dataplane import PRESENCE_CAPACITY_BYTES, DataPlane
from .metrics import Metrics
from .timers import Timings

log = logging.getLogger(__name__)

API_KEY_CHARS = 40
PUBLISH_KEYS = {"channel", "event", "data", "store", "deduplicationId", "eagerIdGeneration", "emitPubSubEvent"}
NOT_EMULATED = {"scheduleExpression", "scheduleExpressionTimezone", "key"}
LIST_KEYS = {"channel", "before", "after", "reverse"}
LIST_PAGE = 100
LIST_PAGE_BYTES = 1024 * 1024
KEY_ALPHABET = string.ascii_letters + string.digits


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def valid_api_key(key: bytes) -> bool:
    return len(key) == API_KEY_CHARS and all(33 <= b < 127 for b in key)


class Emulator(TwoPortEmulator):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        key_slots: list[KeySlot] | None = None,
        api_keys: list[bytes] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        time_scale: float = 1.0,
        presence_capacity_bytes: int = PRESENCE_CAPACITY_BYTES,
        region: str = "us-east-1",
    ) -> None:
        self.host = host
        self.control_port = control_port
        self.region = region
        self._private_dir: Path | None = None
        self.hs256_secret_file: Path | None = None
        self.api_key_file: Path | None = None
        if not key_slots:  # an installation needs a key: make an HS256 secret and say where it is
            secret = self._generate("hs256-secret", 64)
            self.hs256_secret_file = self._private_dir / "hs256-secret"
            key_slots = [secret_slot(secret)]
        if not api_keys:
            api_keys = [self._generate("api-key", API_KEY_CHARS)]
            self.api_key_file = self._private_dir / "api-key"
        for key in api_keys:
            if not valid_api_key(key):
                raise ValueError(f"an API key is {API_KEY_CHARS} printable ASCII characters")
        self.api_keys = api_keys
        self.verifier = Verifier(key_slots, audience=audience, issuer=issuer)
        self.metrics = Metrics()
        self.dataplane = DataPlane(self.verifier, self.metrics, host=host, port=port, timings=Timings(time_scale),
                                   presence_capacity_bytes=presence_capacity_bytes)

    def _generate(self, name: str, length: int) -> bytes:
        """A random key written to a 0600 file in the emulator's own 0700 folder."""
        if self._private_dir is None:
            self._private_dir = Path(tempfile.mkdtemp(prefix="chatload-hotsock-"))
        key = "".join(secrets.choice(KEY_ALPHABET) for _ in range(length)).encode()
        path = self._private_dir / name
        path.touch(mode=0o600)
        path.write_bytes(key)
        return key

    # -- lifecycle ---------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/publish", self._publish)
        app.router.add_post("/connection/listMessages", self._list_messages)

    async def stop(self) -> None:
        await super().stop()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    # -- what the shared routes and launcher read --------------------------------------------------------

    def find_room(self, identifier: str) -> Channel | None:
        """A channel by name; any valid name is a channel (channels exist as soon as they are named)."""
        return self.dataplane.channel(identifier) if codec.channel_problem(identifier) is None else None

    def metrics_text(self) -> str:
        return self.metrics.render(self.dataplane.connection_count(), self.dataplane.channel_metrics())

    def standard_metrics(self):
        from ....emulation.standard_metrics import RoomFigures, StandardMetrics

        rooms = {name: RoomFigures(n, c.client_messages + c.server_messages, c.frames_delivered, dict(c.rejected))
                 for name, (n, c) in self.dataplane.channel_metrics().items()}
        return StandardMetrics("hotsock", rooms, dict(self.metrics.handshakes_rejected))

    def describe(self) -> dict:
        """Endpoints and where keys are; never a key itself."""
        info = {
            "messaging_endpoint": self.messaging_endpoint,
            "websocket_url": f"{self.messaging_endpoint}/v1",
            "control_endpoint": self.control_endpoint,
            "publish_url": f"{self.control_endpoint}/publish",
            "http_api_url": f"{self.control_endpoint}/",
            "region": self.region,
            "time_scale": self.dataplane.timings.scale,
            "key_slots": [slot.describe() for slot in self.verifier.slots],
            "audience": self.verifier.audience,
            "issuer": self.verifier.issuer,
        }
        if self.hs256_secret_file is not None:
            info["hs256_secret_file"] = str(self.hs256_secret_file)
        if self.api_key_file is not None:
            info["api_key_file"] = str(self.api_key_file)
        return info

    # -- HTTP API ----------------------------------------------------------------------------------------

    async def _answer(self, operation: str, request: web.Request, handle) -> web.Response:
        try:
            status, body = await handle(request)
        except ApiError as error:
            status, body = error.status, {"error": {"code": error.code, "message": error.message}}
        self.metrics.control_request(operation, status)
        return json_response(body, status)

    @staticmethod
    async def _json_body(request: web.Request, allowed: set[str]) -> dict:
        try:
            body = await read_json_object(request)
        except Refused as refused:
            code = {413: codec.DATA_TOO_LARGE, 415: "UNSUPPORTED_MEDIA_TYPE"}.get(refused.status, "INVALID_REQUEST")
            raise ApiError(refused.status, code, refused.reason) from None
        unsupported = sorted(set(body) & NOT_EMULATED)
        if unsupported:
            raise ApiError(400, "UNSUPPORTED", f"{', '.join(unsupported)}: not emulated")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(400, "INVALID_REQUEST", f"unknown key(s): {', '.join(k[:40] for k in unknown[:5])}")
        return body

    def _check_api_key(self, request: web.Request) -> None:
        try:
            scheme, _, key = header_text(request, "Authorization").partition(" ")
        except Refused as refused:
            raise ApiError(401, "UNAUTHORIZED", refused.reason) from None
        offered = key.strip().encode()
        # Compare with every key, always: how long the check takes says nothing about which is close.
        matches = [hmac.compare_digest(offered, known) for known in self.api_keys]
        if scheme.lower() != "bearer" or not any(matches):
            raise ApiError(401, "UNAUTHORIZED", "missing or wrong API key (Authorization: Bearer <key>)")

    async def _publish(self, request: web.Request) -> web.Response:
        return await self._answer("publish", request, self._do_publish)

    async def _do_publish(self, request: web.Request) -> tuple[int, dict]:
        self._check_api_key(request)
        body = await self._json_body(request, PUBLISH_KEYS)
        channel, event = body.get("channel"), body.get("event")
        if problem := codec.channel_problem(channel):
            raise ApiError(400, codec.INVALID_CHANNEL, problem)
        if problem := codec.event_problem(event):
            raise ApiError(400, codec.INVALID_EVENT, problem)
        data = body.get("data")
        if data is not None and len(codec.dumps(data)) > codec.DATA_MAX_BYTES:
            raise ApiError(400, codec.DATA_TOO_LARGE, f"data is over {codec.DATA_MAX_BYTES} bytes of JSON")
        store = body.get("store", 0)
        if isinstance(store, bool) or not isinstance(store, int) or not -1 <= store <= STORE_MAX_S:
            raise ApiError(400, "INVALID_REQUEST", f"store must be a whole number of seconds from -1 to {STORE_MAX_S}")
        deduplication_id = body.get("deduplicationId")
        if deduplication_id is not None and (not isinstance(deduplication_id, str)
                                             or not 1 <= len(deduplication_id) <= 128):
            raise ApiError(400, "INVALID_REQUEST", "deduplicationId must be a string of 1 to 128 characters")
        for flag in ("eagerIdGeneration", "emitPubSubEvent"):
            if not isinstance(body.get(flag, False), bool):
                raise ApiError(400, "INVALID_REQUEST", f"{flag} must be true or false")
        message_id = self.dataplane.publish(channel, event, data, store=store, deduplication_id=deduplication_id)
        return 202, {"channel": channel, "event": event, "id": message_id}

    async def _list_messages(self, request: web.Request) -> web.Response:
        return await self._answer("listMessages", request, self._do_list_messages)

    async def _do_list_messages(self, request: web.Request) -> tuple[int, dict]:
        conn = self.dataplane.by_connection_id.get(request.query.get("connectionId", ""))
        secret = request.query.get("connectionSecret", "").encode()
        if conn is None or not hmac.compare_digest(secret, conn.secret.encode()):
            raise ApiError(401, "UNAUTHORIZED", "unknown connectionId or wrong connectionSecret")
        body = await self._json_body(request, LIST_KEYS)
        channel = body.get("channel")
        if problem := codec.channel_problem(channel):
            raise ApiError(400, codec.INVALID_CHANNEL, problem)
        reverse = body.get("reverse", False)
        before, after = body.get("before"), body.get("after")
        if not isinstance(reverse, bool) or not all(isinstance(v, str | None) for v in (before, after)):
            raise ApiError(400, "INVALID_REQUEST", "reverse must be true or false; before and after message ids")
        subscription = conn.subscriptions.get(channel)
        if subscription is None:
            raise ApiError(403, codec.NOT_SUBSCRIBED, "history is for channels this connection is subscribed to")
        messages = [m for m in self.dataplane.stored_messages(channel) if _issued_ms(m["id"]) >= subscription.since_ms]
        if reverse:
            messages = [m for m in reversed(messages) if before is None or m["id"] < before]
        else:
            messages = [m for m in messages if after is None or m["id"] > after]
        page, size = [], 0
        for message in messages[:LIST_PAGE]:
            size += len(codec.dumps(message))
            if size > LIST_PAGE_BYTES:
                break
            page.append(message)
        return 200, {"messages": page}


def _issued_ms(message_id: str) -> int:
    try:
        return timestamp_ms(message_id)
    except UlidError:  # pragma: no cover - the emulator issues every id it stores
        return 0
