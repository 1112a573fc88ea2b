"""Loopback-only HTTP endpoints every emulator shares: inject faults, look inside, `GET /metrics`.

Everything here is a thin JSON wrapper over the emulator's data-plane methods (the `FaultTarget`
below), so tests in the same process can call those directly and tests in another process (or the
load harness) use these routes or `harness.emulation.client.EmulatorAdmin`. A "room" is the
service's fan-out scope: an IVS Chat room, a Hotsock channel, a Chime meeting, an IVS stage.
What "expire" means is the service's own (IVS Chat: ERROR 401 then a clean close).

| route | body | does |
|---|---|---|
| GET  /_emulator/health | | endpoints and open connection count |
| GET  /_emulator/connections?room=ID | | open connections (id, room, user, since) |
| POST /_emulator/faults/drop | room?, users?, connections?, fraction?, seed?, mode=abrupt\\|clean, code?, reason? | drop connections |
| POST /_emulator/faults/expire | room?, users?, connections?, fraction?, seed? | the service's session expiry, now |
| POST /_emulator/faults/delay | room?, delay_ms, jitter_ms? | delivery delay (all rooms without room) |
| POST /_emulator/faults/pause | room, mode=drop\\|hold | stop delivering in a room |
| POST /_emulator/faults/resume | room | deliver again (held frames go out in order) |
| POST /_emulator/faults/restart | downtime_ms?, mode=abrupt\\|clean | restart the data plane on the same port |
| POST /_emulator/faults/cost | per_delivery_us | artificial CPU cost per frame fanned out (capacity tests) |
"""

from __future__ import annotations

import ipaddress
from typing import Protocol

import orjson
from aiohttp import web

from .request_body import Refused, read_json_object

SELECTION_KEYS = {"room", "users", "connections", "fraction", "seed"}


class FaultTarget(Protocol):
    """What a service's data plane offers the shared fault routes."""

    endpoint: str
    delivery_cost_s: float

    def select(self, *, room_id=None, user_ids=None, connection_ids=None, fraction=None, seed=None) -> list: ...
    def drop(self, members: list, *, mode: str = "abrupt", code: int = 1001, reason: str = "") -> list[dict]: ...
    def expire_sessions(self, members: list) -> list[dict]: ...
    def set_delay(self, room, delay_s: float, jitter_s: float = 0.0) -> None: ...
    def pause(self, room, mode: str = "drop") -> None: ...
    def resume(self, room) -> int: ...
    async def restart(self, downtime_s: float = 0.0, mode: str = "abrupt") -> int: ...
    def connection_count(self) -> int: ...


class EmulatorServer(Protocol):
    """The emulator object the routes are added for: its data plane, rooms and metrics."""

    dataplane: FaultTarget
    control_endpoint: str

    def find_room(self, identifier: str):  # a room object with `.id`, or None
        ...

    def metrics_text(self) -> str: ...


class BadRequest(Exception):
    pass


def json_response(data, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def loopback_only(request: web.Request, handler):
    """Faults are powerful; only callers on this machine may use them: over loopback, or from the very
    address the emulator listens on (`chatload run` playing faults on an emulator bound to a LAN
    address for remote workers: a peer with our own address is in our own network namespace)."""
    if request.path.startswith("/_emulator/"):
        try:
            loopback = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            loopback = False
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not loopback and not (sockname and request.remote == sockname[0]):
            return json_response({"error": "admin endpoints answer loopback callers only"}, 403)
        try:
            return await handler(request)
        except BadRequest as exc:
            return json_response({"error": str(exc)}, 400)
        except Refused as exc:  # a body the shared reader will not read: 400, 413 or 415
            return json_response({"error": exc.reason}, exc.status)
        except LookupError as exc:
            return json_response({"error": str(exc)}, 404)
    return await handler(request)


async def read_body(request: web.Request, allowed: set[str]) -> dict:
    body = await read_json_object(request, empty_is={})
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return body


HOUR_MS = 3_600_000  # the longest delay or downtime a fault may ask for: a timer the loop can hold


def number(body: dict, key: str, default: float | None = None, *, minimum: float = 0.0,
           maximum: float = HOUR_MS) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= maximum:
        raise BadRequest(f"{key} must be a number from {minimum:g} to {maximum:g}")
    return float(value)


def choice(body: dict, key: str, choices: tuple[str, ...]) -> str:
    value = body.get(key, choices[0])
    if value not in choices:
        raise BadRequest(f"{key} must be one of {list(choices)}")
    return value


def add_admin_routes(app: web.Application, emulator: EmulatorServer) -> None:
    dataplane = emulator.dataplane

    def room_of(body: dict, *, required: bool):
        identifier = body.get("room")
        if identifier is None:
            if required:
                raise BadRequest("room is required (a room ARN or id)")
            return None
        if not isinstance(identifier, str):
            raise BadRequest("room must be a room ARN or id")
        room = emulator.find_room(identifier)
        if room is None:
            raise LookupError(f"room not found: {identifier}")
        return room

    def selection(body: dict):
        room = room_of(body, required=False)
        # Every type checked here: a list of lists is unhashable and a dict seeds no random generator,
        # so either once raised inside the data plane (500 and a traceback) instead of answering 400.
        for key, kind, what in (("users", str, "user ids (strings)"), ("connections", int, "connection ids")):
            items = body.get(key, [])
            if not isinstance(items, list) or not all(isinstance(i, kind) and not isinstance(i, bool) for i in items):
                raise BadRequest(f"{key} must be a list of {what}")
        fraction = number(body, "fraction", maximum=1.0)
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
            raise BadRequest("seed must be an integer or a string")
        return dataplane.select(
            room_id=room.id if room else None, user_ids=body.get("users"), connection_ids=body.get("connections"),
            fraction=fraction, seed=body.get("seed"),
        )

    async def health(request):
        return json_response({"ok": True, "messaging_endpoint": dataplane.endpoint,
                      "control_endpoint": emulator.control_endpoint, "connections": dataplane.connection_count()})

    async def connections(request):
        room = room_of(dict(request.query), required=False)
        members = dataplane.select(room_id=room.id if room else None)
        return json_response({"connections": [m.describe() for m in members]})

    async def drop(request):
        body = await read_body(request, SELECTION_KEYS | {"mode", "code", "reason"})
        code = body.get("code", 1001)
        if not isinstance(code, int) or isinstance(code, bool) or not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
            raise BadRequest("code must be a close code a server may send (1000-4999, not 1004-1006/1015)")
        mode = choice(body, "mode", ("abrupt", "clean"))
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise BadRequest("reason must be a string")
        return json_response({"dropped": dataplane.drop(selection(body), mode=mode, code=code, reason=reason)})

    async def expire(request):
        body = await read_body(request, SELECTION_KEYS)
        return json_response({"expired": dataplane.expire_sessions(selection(body))})

    async def delay(request):
        body = await read_body(request, {"room", "delay_ms", "jitter_ms"})
        delay_ms = number(body, "delay_ms", 0.0)
        jitter_ms = number(body, "jitter_ms", 0.0)
        dataplane.set_delay(room_of(body, required=False), delay_ms / 1000, jitter_ms / 1000)
        return json_response({"delay_ms": delay_ms, "jitter_ms": jitter_ms})

    async def pause(request):
        body = await read_body(request, {"room", "mode"})
        mode = choice(body, "mode", ("drop", "hold"))
        dataplane.pause(room_of(body, required=True), mode)
        return json_response({"paused": mode})

    async def resume(request):
        body = await read_body(request, {"room"})
        return json_response({"released": dataplane.resume(room_of(body, required=True))})

    async def restart(request):
        body = await read_body(request, {"downtime_ms", "mode"})
        downtime_ms = number(body, "downtime_ms", 0.0)
        mode = choice(body, "mode", ("abrupt", "clean"))
        return json_response({"dropped": await dataplane.restart(downtime_ms / 1000, mode)})

    async def cost(request):
        body = await read_body(request, {"per_delivery_us"})
        per_delivery_us = number(body, "per_delivery_us", 0.0, maximum=1e6)
        dataplane.delivery_cost_s = per_delivery_us / 1e6
        return json_response({"per_delivery_us": per_delivery_us})

    async def metrics(request):
        text = emulator.metrics_text()
        if hasattr(emulator, "standard_metrics"):  # the names a shared dashboard uses (standard_metrics.py)
            from .standard_metrics import render

            text += render(emulator.standard_metrics())
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    app.middlewares.append(loopback_only)
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/connections", connections)
    app.router.add_post("/_emulator/faults/drop", drop)
    app.router.add_post("/_emulator/faults/expire", expire)
    app.router.add_post("/_emulator/faults/delay", delay)
    app.router.add_post("/_emulator/faults/pause", pause)
    app.router.add_post("/_emulator/faults/resume", resume)
    app.router.add_post("/_emulator/faults/restart", restart)
    app.router.add_post("/_emulator/faults/cost", cost)
    app.router.add_get("/metrics", metrics)
