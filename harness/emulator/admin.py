"""Loopback-only HTTP endpoints to inject faults and look inside the emulator, plus `GET /metrics`.

Everything here is a thin JSON wrapper over `DataPlane` methods, so tests in the same process can
call those directly and tests in another process (or the load harness) use these routes or
`harness.emulator.client.EmulatorAdmin`.

| route | body | does |
|---|---|---|
| GET  /_emulator/health | | endpoints and open connection count |
| GET  /_emulator/connections?room=ID | | open connections (id, room, user, since) |
| POST /_emulator/faults/drop | room?, users?, connections?, fraction?, seed?, mode=abrupt\\|clean, code?, reason? | drop connections |
| POST /_emulator/faults/expire | room?, users?, connections?, fraction?, seed? | ERROR 401 + clean close now |
| POST /_emulator/faults/delay | room?, delay_ms, jitter_ms? | delivery delay (all rooms without room) |
| POST /_emulator/faults/pause | room, mode=drop\\|hold | stop delivering in a room |
| POST /_emulator/faults/resume | room | deliver again (held frames go out in order) |
| POST /_emulator/faults/restart | downtime_ms?, mode=abrupt\\|clean | restart the data plane on the same port |
| POST /_emulator/limits | algorithm=fixed-window\\|token-bucket\\|off | rate-limit algorithm for every room |
| POST /_emulator/faults/cost | per_delivery_us | artificial CPU cost per frame fanned out (capacity tests) |
"""

from __future__ import annotations

import ipaddress

import orjson
from aiohttp import web

from .limits import ALGORITHMS, make_limiter

SELECTION_KEYS = {"room", "users", "connections", "fraction", "seed"}


class BadRequest(Exception):
    pass


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def loopback_only(request: web.Request, handler):
    """Faults are powerful; only callers on this machine may use them."""
    if request.path.startswith("/_emulator/"):
        try:
            loopback = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return _json({"error": "admin endpoints answer loopback callers only"}, 403)
        try:
            return await handler(request)
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)
        except LookupError as exc:
            return _json({"error": str(exc)}, 404)
    return await handler(request)


async def _body(request: web.Request, allowed: set[str]) -> dict:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return body


def _number(body: dict, key: str, default: float | None = None, *, minimum: float = 0.0) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise BadRequest(f"{key} must be a number >= {minimum}")
    return float(value)


def _choice(body: dict, key: str, choices: tuple[str, ...]) -> str:
    value = body.get(key, choices[0])
    if value not in choices:
        raise BadRequest(f"{key} must be one of {list(choices)}")
    return value


def add_admin_routes(app: web.Application, emulator) -> None:
    dataplane = emulator.dataplane

    def room_of(body: dict, *, required: bool):
        identifier = body.get("room")
        if identifier is None:
            if required:
                raise BadRequest("room is required (a room ARN or id)")
            return None
        if not isinstance(identifier, str):
            raise BadRequest("room must be a room ARN or id")
        room = emulator.state.find_room(identifier)
        if room is None:
            raise LookupError(f"room not found: {identifier}")
        return room

    def selection(body: dict):
        room = room_of(body, required=False)
        for key in ("users", "connections"):
            if key in body and not isinstance(body[key], list):
                raise BadRequest(f"{key} must be a list")
        fraction = _number(body, "fraction")
        if fraction is not None and fraction > 1:
            raise BadRequest("fraction must be between 0 and 1")
        return dataplane.select(
            room_id=room.id if room else None, user_ids=body.get("users"), connection_ids=body.get("connections"),
            fraction=fraction, seed=body.get("seed"),
        )

    async def health(request):
        return _json({"ok": True, "messaging_endpoint": dataplane.endpoint,
                      "control_endpoint": emulator.control_endpoint, "connections": dataplane.connection_count()})

    async def connections(request):
        room = room_of(dict(request.query), required=False)
        members = dataplane.select(room_id=room.id if room else None)
        return _json({"connections": [m.describe() for m in members]})

    async def drop(request):
        body = await _body(request, SELECTION_KEYS | {"mode", "code", "reason"})
        code = body.get("code", 1001)
        if not isinstance(code, int) or not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
            raise BadRequest("code must be a close code a server may send (1000-4999, not 1004-1006/1015)")
        mode = _choice(body, "mode", ("abrupt", "clean"))
        return _json({"dropped": dataplane.drop(selection(body), mode=mode, code=code,
                                                reason=str(body.get("reason", "")))})

    async def expire(request):
        body = await _body(request, SELECTION_KEYS)
        return _json({"expired": dataplane.expire_sessions(selection(body))})

    async def delay(request):
        body = await _body(request, {"room", "delay_ms", "jitter_ms"})
        delay_ms = _number(body, "delay_ms", 0.0)
        jitter_ms = _number(body, "jitter_ms", 0.0)
        dataplane.set_delay(room_of(body, required=False), delay_ms / 1000, jitter_ms / 1000)
        return _json({"delay_ms": delay_ms, "jitter_ms": jitter_ms})

    async def pause(request):
        body = await _body(request, {"room", "mode"})
        mode = _choice(body, "mode", ("drop", "hold"))
        dataplane.pause(room_of(body, required=True), mode)
        return _json({"paused": mode})

    async def resume(request):
        body = await _body(request, {"room"})
        return _json({"released": dataplane.resume(room_of(body, required=True))})

    async def restart(request):
        body = await _body(request, {"downtime_ms", "mode"})
        downtime_ms = _number(body, "downtime_ms", 0.0)
        mode = _choice(body, "mode", ("abrupt", "clean"))
        return _json({"dropped": await dataplane.restart(downtime_ms / 1000, mode)})

    async def cost(request):
        body = await _body(request, {"per_delivery_us"})
        per_delivery_us = _number(body, "per_delivery_us", 0.0)
        dataplane.delivery_cost_s = per_delivery_us / 1e6
        return _json({"per_delivery_us": per_delivery_us})

    async def limits(request):
        body = await _body(request, {"algorithm"})
        algorithm = _choice(body, "algorithm", tuple(ALGORITHMS))
        dataplane.rate_algorithm = algorithm
        for runtime in dataplane.rooms.values():
            runtime.limiter = make_limiter(algorithm, runtime.room.maximum_message_rate_per_second)
        return _json({"algorithm": algorithm})

    async def metrics(request):
        text = emulator.metrics.render(dataplane.room_metrics())
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
    app.router.add_post("/_emulator/limits", limits)
    app.router.add_post("/_emulator/faults/cost", cost)
    app.router.add_get("/metrics", metrics)
