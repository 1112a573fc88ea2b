"""The toy emulator is built like the four real ones: its fault methods are the shared `LineFaults`,
reached through the shared admin routes, and a restart fault restarts its data plane alone while
its control app (rooms, tokens, the fault routes themselves) keeps answering."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness.emulation.client import EmulatorAdmin
from harness.emulation.faults import LineFaults
from harness.emulation.two_ports import TwoPortEmulator
from harness.emulation.websocket_plane import WebSocketPlane
from harness.services.toy import codec
from harness.services.toy.emulator.server import ToyEmulator, ToyPlane


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def _room(emulator: ToyEmulator) -> str:
    return (await asyncio.to_thread(_post, emulator.control_endpoint, "/rooms", {"name": "faults"}))["room"]


async def _join(emulator: ToyEmulator, room: str, user: str):
    token = (await asyncio.to_thread(_post, emulator.control_endpoint, "/tokens", {"user": user, "room": room}))["token"]
    return await connect(f"{emulator.messaging_endpoint}/?token={token}", open_timeout=5), token


async def _closed(ws) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    await ws.wait_closed()
    return ws.close_code, ws.close_reason  # 1006 when no close frame came


def test_the_toy_data_plane_runs_the_shared_fault_methods():
    for name in ("select", "drop", "set_delay", "pause", "resume", "restart", "all_members", "line_of", "lines"):
        assert getattr(ToyPlane, name) is getattr(LineFaults, name), f"{name} is the toy's own"
    assert issubclass(ToyPlane, WebSocketPlane) and issubclass(ToyEmulator, TwoPortEmulator)


def test_drops_through_the_admin_route_are_the_shared_ones():
    async def scenario():
        async with ToyEmulator() as emulator:
            admin = EmulatorAdmin(emulator.control_endpoint)
            room = await _room(emulator)
            (alice, _), (bob, _) = await _join(emulator, room, "alice"), await _join(emulator, room, "bob")
            while len(await asyncio.to_thread(admin.connections, room)) < 2:
                await asyncio.sleep(0.01)
            dropped = await asyncio.to_thread(admin.drop, room=room, users=["alice"], mode="clean")
            assert [d["user_id"] for d in dropped] == ["alice"]
            assert await _closed(alice) == (1001, "Dropped by fault injection")  # LineFaults' reason
            await bob.send(codec.encode_send("r1", "still here", {}).decode())
            assert json.loads(await asyncio.wait_for(bob.recv(), 5))["body"] == "still here"
            assert len(await asyncio.to_thread(admin.drop, room=room, mode="abrupt")) == 1
            assert (await _closed(bob))[0] == 1006  # aborted: no close frame
            assert emulator.dataplane.connection_count() == 0

    asyncio.run(scenario())


def test_a_restart_restarts_the_data_plane_alone_on_the_same_port():
    async def scenario():
        async with ToyEmulator() as emulator:
            admin = EmulatorAdmin(emulator.control_endpoint)
            room = await _room(emulator)
            ws, token = await _join(emulator, room, "alice")
            while emulator.dataplane.connection_count() < 1:
                await asyncio.sleep(0.01)
            endpoint = emulator.messaging_endpoint
            restart = asyncio.create_task(asyncio.to_thread(admin.restart, downtime_ms=1000, mode="abrupt"))
            assert (await _closed(ws))[0] == 1006
            with pytest.raises(OSError):  # the data plane is down ...
                await connect(f"{endpoint}/?token={token}", open_timeout=5)
            health = await asyncio.to_thread(admin.health)  # ... and the control app answers meanwhile
            assert health["ok"] and health["connections"] == 0 and not restart.done()
            assert await restart == 1
            assert emulator.messaging_endpoint == endpoint
            again = await connect(f"{endpoint}/?token={token}", open_timeout=5)  # a token from before still serves
            await again.close()

    asyncio.run(scenario())


def test_delay_pause_and_resume_are_the_shared_line_faults():
    async def scenario():
        async with ToyEmulator() as emulator:
            admin = EmulatorAdmin(emulator.control_endpoint)
            await asyncio.to_thread(admin.delay, 30)  # every room, including rooms made later
            room = await _room(emulator)
            assert emulator.dataplane.line_of(emulator.find_room(room)).delay_s == pytest.approx(0.03)
            await asyncio.to_thread(admin.delay, 0)
            ws, _ = await _join(emulator, room, "alice")
            await asyncio.to_thread(admin.pause, room, "hold")
            await ws.send(codec.encode_send("r1", "held", {}).decode())
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.2)
            assert await asyncio.to_thread(admin.resume, room) == 1
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["body"] == "held"
            await ws.close()

    asyncio.run(scenario())
