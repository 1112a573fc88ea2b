"""The toy emulator: rooms, tokens, echo-broadcast fan-out, a per-room rate limit, kicks, and the
shared fault and metrics routes (`harness.emulation.admin`). Its fan-out is every emulator's
(`harness.emulation.fanout`): a message is framed once and written to each member, the sender too."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from functools import partial
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ....emulation.admin import BadRequest, add_admin_routes, json_response, read_body
from ....emulation.delivery import DeliveryLine, select_members
from ....emulation.fanout import FanoutCounts, write_to_all
from ....emulation.frames import text_frame, write_framed
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


class ToyEmulator:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, control_port: int = 0) -> None:
        self.host, self.port, self.control_port = host, port, control_port
        self.rooms: dict[str, Room] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # token → (user, room)
        self.members: dict[int, Member] = {}
        self.dataplane = self  # the shared fault routes talk to this object
        self.delivery_cost_s = 0.0
        self.handshakes_rejected = 0
        self._ids = itertools.count(1)
        self._server = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._listen()
        app = web.Application()
        add_admin_routes(app, self)
        app.router.add_post("/rooms", self._create_room)
        app.router.add_get("/rooms/{room}", self._get_room)
        app.router.add_post("/tokens", self._create_token)
        app.router.add_post("/kick", self._kick)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.control_port).start()
        self.control_port = self._runner.addresses[0][1]

    async def _listen(self) -> None:
        self._server = await serve(self._handler, self.host, self.port, process_request=self._check_token,
                                   compression=None)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def endpoint(self) -> str:
        return f"ws://{self.host}:{self.port}"

    messaging_endpoint = endpoint

    @property
    def control_endpoint(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    def describe(self) -> dict:
        return {"messaging_endpoint": self.endpoint, "control_endpoint": self.control_endpoint}

    # -- control plane -----------------------------------------------------------------------------------

    async def _create_room(self, request: web.Request) -> web.Response:
        body = await read_body(request, {"name", "rate"})
        rate = body.get("rate", 0)
        if not isinstance(rate, int) or rate < 0:
            raise BadRequest("rate must be a whole number >= 0")
        room_id = f"{body.get('name', 'room')}-{secrets.token_hex(3)}"
        self.rooms[room_id] = Room(room_id, rate, self._fanout)
        return json_response({"room": room_id, "rate": rate})

    async def _get_room(self, request: web.Request) -> web.Response:
        room = self.find_room(request.match_info["room"])
        if room is None:
            raise LookupError("no such room")
        return json_response({"room": room.id, "rate": room.rate})

    async def _create_token(self, request: web.Request) -> web.Response:
        body = await read_body(request, {"user", "room"})
        if body.get("room") not in self.rooms or not isinstance(body.get("user"), str):
            raise BadRequest("user (a string) and room (an existing room) are required")
        token = secrets.token_urlsafe(16)
        self.tokens[token] = (body["user"], body["room"])
        return json_response({"token": token})

    async def _kick(self, request: web.Request) -> web.Response:
        body = await read_body(request, {"user", "room"})
        kicked = select_members(self.members.values(), room_id=body.get("room"), user_ids=[body.get("user")])
        for member in kicked:
            self._close_with(member, "kicked", 4000)
        return json_response({"kicked": len(kicked)})

    # -- data plane --------------------------------------------------------------------------------------

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
        room.members[member.id] = self.members[member.id] = member
        try:
            async for data in connection:
                self._on_frame(member, room, data)
        except ConnectionClosed:
            pass
        finally:
            room.members.pop(member.id, None)
            self.members.pop(member.id, None)

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

    def _close_with(self, member: Member, notice: str, code: int) -> None:
        async def close() -> None:
            await _quietly(member.connection.send(codec.encode_notice(notice).decode()))
            await _quietly(member.connection.close(code, notice))
        asyncio.ensure_future(close())

    # -- what the shared fault and metrics routes use ----------------------------------------------------

    def find_room(self, identifier: str) -> Room | None:
        return self.rooms.get(identifier)

    def select(self, **selection) -> list[Member]:
        return select_members(self.members.values(), **selection)

    def drop(self, members: list[Member], *, mode: str = "abrupt", code: int = 1001, reason: str = "") -> list[dict]:
        for member in members:
            if mode == "abrupt":
                member.connection.transport.abort()
            else:
                asyncio.ensure_future(_quietly(member.connection.close(code, reason or "dropped")))
        return [m.describe() for m in members]

    def expire_sessions(self, members: list[Member]) -> list[dict]:
        for member in members:
            self._close_with(member, "expired", 4001)
        return [m.describe() for m in members]

    def set_delay(self, room: Room | None, delay_s: float, jitter_s: float = 0.0) -> None:
        for each in [room] if room else self.rooms.values():
            each.line.set_delay(delay_s, jitter_s)

    def pause(self, room: Room, mode: str = "drop") -> None:
        room.line.pause(mode)

    def resume(self, room: Room) -> int:
        return room.line.resume()

    async def restart(self, downtime_s: float = 0.0, mode: str = "abrupt") -> int:
        members = list(self.members.values())
        self.drop(members, mode=mode)
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        await asyncio.sleep(downtime_s)
        await self._listen()
        return len(members)

    def connection_count(self) -> int:
        return len(self.members)

    def standard_metrics(self):
        from ....emulation.standard_metrics import RoomFigures, StandardMetrics

        rooms = {r.id: RoomFigures(len(r.members), r.accepted, r.counters.frames_delivered) for r in self.rooms.values()}
        return StandardMetrics("toy", rooms,
                               {401: self.handshakes_rejected} if self.handshakes_rejected else {})

    def metrics_text(self) -> str:
        lines = ["# TYPE toy_messages_accepted_total counter"]
        lines += [f'toy_messages_accepted_total{{room="{r.id}"}} {r.accepted}' for r in self.rooms.values()]
        lines += ["# TYPE toy_handshakes_rejected_total counter", f"toy_handshakes_rejected_total {self.handshakes_rejected}"]
        return "\n".join(lines) + "\n"


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except (ConnectionClosed, OSError):
        pass  # the member is already gone
