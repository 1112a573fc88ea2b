"""Test helpers for the Hotsock emulator: a session emulator, tokens, connections, frames with deadlines.

Absence is never checked by sleeping: `assert_next_is_sentinel` publishes a marker through
`POST /publish` and requires it to be the very next frame each receiver gets.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest
from websockets.asyncio.client import ClientConnection, connect

from harness.services.hotsock import codec, tokens
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator import EmulatorProcess

from .chat import run, wait_closed  # noqa: F401 - the same helpers for every service's tests

_names = itertools.count()
ALL = {"*": channel_rule(publish=["*"], echo=True)}  # subscribe to anything, publish anything, echo


def unique(prefix: str = "room") -> str:
    return f"{prefix}.{next(_names)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def hotsock():
    """One emulator (generated HS256 secret and API key) per test module that imports this fixture;
    tests isolate themselves with channels of their own."""
    with EmulatorProcess(service="hotsock") as process:
        yield process


def connect_token(emulator: EmulatorProcess, channels=None, **claims) -> str:
    return emulator.mint(tokens.connect_claims(ALL if channels is None else channels, **claims))


async def open_ws(emulator: EmulatorProcess, token: str) -> ClientConnection:
    return await connect(emulator.connect_url(token), open_timeout=5, max_size=None)


async def join(emulator: EmulatorProcess, channels=None, *, subscribe=(), **claims
               ) -> tuple[ClientConnection, codec.Connected]:
    """Connect with a token for `channels` (default: everything), read hotsock.connected, subscribe."""
    ws = await open_ws(emulator, connect_token(emulator, channels, **claims))
    connected = await next_frame(ws)
    assert isinstance(connected, codec.Connected), connected
    for channel in subscribe:
        await ws.send(codec.Subscribe(channel).encode().decode())
        await expect(ws, codec.Subscribed)
    return ws, connected


async def next_raw(ws: ClientConnection, timeout: float = 5.0) -> str:
    return await asyncio.wait_for(ws.recv(), timeout)


async def next_frame(ws: ClientConnection, timeout: float = 5.0) -> codec.ServerFrame:
    return codec.parse_server_frame(await next_raw(ws, timeout))


async def expect(ws: ClientConnection, kind: type, timeout: float = 5.0):
    frame = await next_frame(ws, timeout)
    assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame}"
    return frame


async def expect_error(ws: ClientConnection, code: str, channel: str | None = None) -> codec.Error:
    frame = await expect(ws, codec.Error)
    assert frame.code == code, frame
    if channel is not None:
        assert frame.channel == channel, frame
    return frame


async def send(ws: ClientConnection, frame) -> None:
    await ws.send(frame.encode().decode())


async def assert_next_is_sentinel(emulator: EmulatorProcess, channel: str, *receivers: ClientConnection) -> None:
    """Publish a marker on `channel` and require it as the next frame at every receiver."""
    status, body = await asyncio.to_thread(emulator.publish, channel, "sentinel", uuid.uuid4().hex)
    assert status == 202, body
    for ws in receivers:
        frame = await next_frame(ws)
        assert isinstance(frame, codec.Message) and frame.id == body["id"], f"expected only the sentinel, got {frame}"


async def wait_for(condition, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll a (blocking) condition until it holds; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(condition):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)
