"""The toy emulator: rooms, tokens, echo-broadcast fan-out, a per-room rate limit, kicks, and the
shared fault and metrics routes (`harness.emulation.admin`), in one short file built like the four
real emulators: a data plane (`ToyPlane`: the shared `WebSocketPlane` and the shared fault methods,
`LineFaults`) next to a control app (`ToyEmulator`, a `TwoPortEmulator`), so a restart fault restarts
the data plane alone. Its fan-out is every emulator's (`harness.emulation.fanout`): a message is
framed once and written to each member, the sender too."""

from __future__ import annotations

import itertools
import secrets
import time
from functools import partial
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ....emulation.admin import BadRequest, json_response, read_body
from ....emulation.delivery import DeliveryLine
from ....emulation.fanout import FanoutCounts, write_to_all
from ....emulation.faults import LineFaults
from ....emulation.frames import text_frame, write_framed
from ....emulation.two_ports import TwoPortEmulator
from ....emulation.websocket_plane import WebSocketPlane
from .. import codec


class Member:
    def __init__(self, member_id: int, connection: ServerConnection, user_id: str, room_id: str) -> None:
        self.id, self.connection, self.user_id, self.room_id = member_id, connection, user_id, room_id
        self.transport = connection.transport  # the shared fan-out writes ready frames to it

    def describe(self) -> dict:
        return {"connection_id": self.id, "room_id": self.room_id, "user_id": self.user_id}


class Room:
    def __init__(self, room_id: str, rate: int, fanout) -> None:
        self.id, self.rate = room_id, rate
        self.members: dict[int, Member] = {}
        self.line = DeliveryLine(partial(fanout, self))
        self.counters = FanoutCounts()
        self.window, self.in_window = 0, 0
        self.accepted = 0

    def allow(self) -> bool:
        """A one-second fixed window; rate 0 means no limit."""
        if not self.rate:
            return True
        second = int(time.time())
        if second != self.window:
            self.window, self.in_window = second, 0
        self.in_window += 1
        return self.in_window <= self.rate


class ToyPlane(WebSocketPlane, LineFaults):
    """Rooms, tokens and connections; the fault methods (select, drop, delay, pause, resume, restart)
    are `LineFaults`', built on `runtimes()` and `runtime(room)`: a toy room is its own live state."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.rooms: dict[str, Room] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # token → (user, room)
        self.delivery_cost_s = 0.0
        self.handshakes_rejected = 0
        self._ids = itertools.count(1)

    def serve_options(self) -> dict:
        return dict(process_request=self._check_token, compression=None)

    def add_room(self, name: str, rate: int) -> Room:
        room = Room(f"{name}-{secrets.token_hex(3)}", rate, self._fanout)
        room.line.set_delay(*self.default_delay)  # a delay set for every room holds for later ones too
        self.rooms[room.id] = room
        return room

    def _check_token(self, connection: ServerConnection, request):
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        if token not in self.tokens:
            self.handshakes_rejected += 1
            return connection.respond(401, "bad token\n")
        connection.toy_grant = self.tokens[token]
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        user_id, room_id = connection.toy_grant
        room = self.rooms[room_id]
        member = Member(next(self._ids), connection, user_id, room_id)
        room.members[member.id] = member
        try:
            async for data in connection:
                self._on_frame(member, room, data)
        except ConnectionClosed:
            pass
        finally:
            room.members.pop(member.id, None)

    def _on_frame(self, member: Member, room: Room, data) -> None:
        try:
            frame = codec.decode(data)
        except codec.BadFrame as exc:
            return self._send(member, codec.encode_error("", 400, str(exc)))
        ref = frame.get("ref") if isinstance(frame.get("ref"), str) else ""
        body = frame.get("body")
        if frame["op"] != "send" or not isinstance(body, str):
            return self._send(member, codec.encode_error(ref, 400, "expected op send with a string body"))
        if len(body) > codec.MAX_BODY:
            return self._send(member, codec.encode_error(ref, 413, f"body over {codec.MAX_BODY} characters"))
        if not room.allow():
            return self._send(member, codec.encode_error(ref, 429, "room rate limit"))
        room.accepted += 1
        meta = frame.get("meta") if isinstance(frame.get("meta"), dict) else None
        room.line.deliver(text_frame(codec.encode_message(ref, member.user_id, time.time_ns(), body, meta)))

    def _fanout(self, room: Room, frame: bytes) -> None:
        write_to_all(frame, room.members.values(), room.counters, cost_s=self.delivery_cost_s, room_id=room.id)

    @staticmethod
    def _send(member: Member, frame: bytes) -> None:
        write_framed(member, text_frame(frame))  # at once, as the fan-out writes: a member's frames stay in order

    def close_with(self, member: Member, notice: str, code: int) -> None:
        """A kick or an expiry: a notice, then a clean close."""
        self._send(member, codec.encode_notice(notice))
        self.close_soon(member, code, notice)

    # -- what LineFaults builds on, and the faults that stay the toy's own -------------------------------

    def runtimes(self):
        return self.rooms.values()

    def runtime(self, room: Room) -> Room:
        return room

    def close_member(self, member: Member, code: int, reason: str) -> None:
        self.close_soon(member, code, reason)

    def expire_sessions(self, members: list[Member]) -> list[dict]:
        for member in members:
            self.close_with(member, "expired", 4001)
        return [m.describe() for m in members]

    def connection_count(self) -> int:
        return sum(len(room.members) for room in self.rooms.values())


class ToyEmulator(TwoPortEmulator):
    """The control app: rooms, tokens and kicks next to the shared fault and metrics routes."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, control_port: int = 0) -> None:
        self.host, self.control_port = host, control_port
        self.dataplane = ToyPlane(host, port)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/rooms", self._create_room)
        app.router.add_get("/rooms/{room}", self._get_room)
        app.router.add_post("/tokens", self._create_token)
        app.router.add_post("/kick", self._kick)

    def describe(self) -> dict:
        return {"messaging_endpoint": self.messaging_endpoint, "control_endpoint": self.control_endpoint}

    async def _create_room(self, request: web.Request) -> web.Response:
        body = await read_body(request, {"name", "rate"})
        rate = body.get("rate", 0)
        if not isinstance(rate, int) or rate < 0:
            raise BadRequest("rate must be a whole number >= 0")
        room = self.dataplane.add_room(body.get("name", "room"), rate)
        return json_response({"room": room.id, "rate": rate})

    async def _get_room(self, request: web.Request) -> web.Response:
        room = self.find_room(request.match_info["room"])
        if room is None:
            raise LookupError("no such room")
        return json_response({"room": room.id, "rate": room.rate})

    async def _create_token(self, request: web.Request) -> web.Response:
        body = await read_body(request, {"user", "room"})
        if body.get("room") not in self.dataplane.rooms or not isinstance(body.get("user"), str):
            raise BadRequest("user (a string) and room (an existing room) are required")
        token = secrets.token_urlsafe(16)
        self.dataplane.tokens[token] = (body["user"], body["room"])
        return json_response({"token": token})

    async def _kick(self, request: web.Request) -> web.Response:
        body = await read_body(request, {"user", "room"})
        kicked = self.dataplane.select(room_id=body.get("room"), user_ids=[body.get("user")])
        for member in kicked:
            self.dataplane.close_with(member, "kicked", 4000)
        return json_response({"kicked": len(kicked)})

    # -- what the shared metrics routes use ---------------------------------------------------------------

    def find_room(self, identifier: str) -> Room | None:
        return self.dataplane.rooms.get(identifier)

    def standard_metrics(self):
        from ....emulation.standard_metrics import RoomFigures, StandardMetrics

        plane = self.dataplane
        rooms = {r.id: RoomFigures(len(r.members), r.accepted, r.counters.frames_delivered) for r in plane.rooms.values()}
        return StandardMetrics("toy", rooms, {401: plane.handshakes_rejected} if plane.handshakes_rejected else {})

    def metrics_text(self) -> str:
        plane = self.dataplane
        lines = ["# TYPE toy_messages_accepted_total counter"]
        lines += [f'toy_messages_accepted_total{{room="{r.id}"}} {r.accepted}' for r in plane.rooms.values()]
        lines += ["# TYPE toy_handshakes_rejected_total counter", f"toy_handshakes_rejected_total {plane.handshakes_rejected}"]
        return "\n".join(lines) + "\n"
