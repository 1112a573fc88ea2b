"""The service's long timers, time-scaled: 2 h maximum, 10 min idle, 9.5 min keepAlive, heartbeatTimeout,
the 5 min deduplication window. Each is one `--time-scale` factor away from seconds."""

from __future__ import annotations

import asyncio
import calendar
import time

import pytest

from harness.services.hotsock import codec
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator import EmulatorProcess

from .hotsock_chat import expect, join, next_frame, run, send, unique, wait_closed

FAST = 0.0005  # 2 h → 3.6 s, 10 min → 0.3 s, 9.5 min → 0.285 s, 5 min → 0.15 s


@pytest.fixture(scope="module")
def fast():
    with EmulatorProcess("--time-scale", str(FAST), service="hotsock") as emulator:
        yield emulator


def server_closes(emulator, cause: str) -> int:
    for line in emulator.admin.metrics_text().splitlines():
        if line.startswith(f'hotsock_server_closes_total{{cause="{cause}"}}'):
            return int(line.split()[-1])
    return 0


def test_idle_connections_close_going_away_and_traffic_keeps_them(fast):
    async def scenario():
        busy, _ = await join(fast, {})
        idle, _ = await join(fast, {})
        started = time.monotonic()
        async def closed(ws):
            return await wait_closed(ws), time.monotonic() - started

        idle_closed = asyncio.ensure_future(closed(idle))
        while time.monotonic() - started < 1.0:  # three idle periods, a ping every third of one
            await send(busy, codec.PING)
            assert await next_frame(busy) == codec.SERVER_PONG
            await asyncio.sleep(0.1)
        close, after = await idle_closed
        assert close == (1001, "Going away") and 0.25 <= after < 1.0, (close, after)
        assert await wait_closed(busy) == (1001, "Going away")  # once the pings stop
        assert server_closes(fast, "idle") >= 2

    run(scenario())


def test_keep_alive_frames_then_the_two_hour_maximum(fast):
    async def scenario():
        started = time.time()
        ws, connected = await join(fast, {}, keepAlive=True)
        expires_at = calendar.timegm(time.strptime(connected.connection_expires_at, "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(expires_at - (started + 7200 * FAST)) <= 1.5
        keep_alives = 0
        try:
            while True:
                frame = await next_frame(ws, timeout=10)
                assert frame == codec.KEEP_ALIVE, frame
                keep_alives += 1
        except Exception:
            pass
        assert (ws.close_code, ws.close_reason) == (1001, "Going away")
        lasted = time.time() - started
        assert 7200 * FAST - 0.3 <= lasted < 7200 * FAST + 3, lasted
        assert keep_alives >= 6, "keepAlive every 9.5 min (scaled) kept an otherwise idle connection open"
        assert server_closes(fast, "max-duration") >= 1

    run(scenario())


def test_deduplication_window(fast):
    room = unique()

    async def scenario():
        ws, _ = await join(fast, {room: channel_rule()}, keepAlive=True, subscribe=[room])
        first = fast.publish(room, "e", 1, deduplicationId="d-1")[1]["id"]
        assert fast.publish(room, "e", 2, deduplicationId="d-1")[1]["id"] == first  # accepted, not delivered
        second = fast.publish(room, "e", 3, deduplicationId="d-2")[1]["id"]
        assert [(await expect(ws, codec.Message)).id for _ in range(2)] == [first, second]
        deadline = time.monotonic() + 5
        while (again := fast.publish(room, "e", 4, deduplicationId="d-1")[1]["id"]) == first:  # until the window ends
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        frame = await expect(ws, codec.Message)
        while frame == codec.KEEP_ALIVE:
            frame = await expect(ws, codec.Message)
        assert frame.id == again and frame.data == 4
        await ws.close()

    run(scenario())


def test_heartbeat_timeout():
    scale = 0.05  # heartbeatTimeout 5 s → 0.25 s; idle 10 min → 30 s
    with EmulatorProcess("--time-scale", str(scale), service="hotsock") as emulator:
        async def scenario():
            ws, _ = await join(emulator, {}, heartbeatTimeout=5)
            quiet, _ = await join(emulator, {})  # no heartbeatTimeout claim: never closed for it
            started = time.monotonic()
            while time.monotonic() - started < 1.0:  # four timeouts' worth, a heartbeat every fifth of one
                await send(ws, codec.HEARTBEAT)
                await asyncio.sleep(0.05)
            last_heartbeat = time.monotonic()
            await send(ws, codec.PING)  # other frames are no heartbeat
            assert await next_frame(ws) == codec.SERVER_PONG
            assert await wait_closed(ws) == (1001, "Going away")
            assert time.monotonic() - last_heartbeat >= 0.2
            await send(quiet, codec.PING)
            assert await next_frame(quiet) == codec.SERVER_PONG
            await quiet.close()
            assert server_closes(emulator, "heartbeat") == 1

        run(scenario())
