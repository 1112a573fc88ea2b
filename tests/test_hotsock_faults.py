"""The shared fault and metrics routes on the Hotsock emulator: a channel is the room they act on."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect

from harness.emulation.client import AdminError
from harness.services.hotsock import codec
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator import EmulatorProcess

from .hotsock_chat import (
    assert_next_is_sentinel,
    connect_token,
    expect,
    hotsock,  # noqa: F401 - the session fixture
    join,
    run,
    send,
    unique,
    wait_closed,
    wait_for,
)


def metric(emulator, line_start: str) -> int | None:
    for line in emulator.admin.metrics_text().splitlines():
        if line.startswith(line_start + " "):
            return int(line.split()[-1])
    return None


def test_delivery_delay_is_applied_per_channel(hotsock):  # noqa: F811
    delayed, untouched = unique(), unique()
    hotsock.admin.delay(60, room=delayed)

    async def one_way_ms(room: str) -> float:
        ws, _ = await join(hotsock, subscribe=[room])
        samples = []
        for i in range(5):
            await send(ws, codec.ClientMessage(room, "t", i))
            message = await expect(ws, codec.Message)
            samples.append(time.time() * 1000 - message.server_ms)  # the id's time is taken on accept
        await ws.close()
        return sorted(samples)[2]

    try:
        slow, fast = run(one_way_ms(delayed)), run(one_way_ms(untouched))
        assert 60 <= slow + 1 < 60 + 40, slow  # +1: the ULID's millisecond is truncated
        assert fast < 30, fast
    finally:
        hotsock.admin.delay(0, room=delayed)


def test_jitter_never_reorders_a_channel(hotsock):  # noqa: F811
    room = unique()
    hotsock.admin.delay(5, jitter_ms=30, room=room)

    async def scenario():
        ws, _ = await join(hotsock, subscribe=[room])
        for i in range(30):
            await send(ws, codec.ClientMessage(room, "j", i))
        assert [(await expect(ws, codec.Message)).data for _ in range(30)] == list(range(30))
        await ws.close()

    run(scenario())


def test_pause_drop_loses_exactly_what_was_sent_while_paused(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        sender, _ = await join(hotsock, subscribe=[room])
        viewer, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        hotsock.admin.pause(room, mode="drop")
        for i in range(4):
            await send(sender, codec.ClientMessage(room, "lost", i))
        await wait_for(lambda: metric(hotsock, f'hotsock_messages_accepted_total{{room="{room}",source="client"}}') == 4)
        assert hotsock.admin.resume(room) == 0
        await assert_next_is_sentinel(hotsock, room, sender, viewer)
        assert metric(hotsock, f'hotsock_messages_dropped_paused_total{{room="{room}"}}') == 4
        await sender.close()
        await viewer.close()

    run(scenario())


def test_pause_hold_delivers_in_order_on_resume(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        ws, _ = await join(hotsock, subscribe=[room])
        hotsock.admin.pause(room, mode="hold")
        for i in range(3):
            await send(ws, codec.ClientMessage(room, "held", i))
        await wait_for(lambda: metric(hotsock, f'hotsock_messages_accepted_total{{room="{room}",source="client"}}') == 3)
        assert hotsock.admin.resume(room) == 3
        assert [(await expect(ws, codec.Message)).data for _ in range(3)] == [0, 1, 2]
        await ws.close()

    run(scenario())


def test_drop_abrupt_and_clean_and_presence_notices(hotsock):  # noqa: F811
    room = unique("presence")
    rule = {room: channel_rule()}

    async def scenario():
        survivor, _ = await join(hotsock, rule, uid="survivor", subscribe=[room])
        victims = []
        for i in range(2):
            victims.append((await join(hotsock, rule, uid=f"victim-{i}", subscribe=[room]))[0])
            await expect(survivor, codec.MemberAdded)
        dropped = hotsock.admin.drop(room=room, users=["victim-0"], mode="abrupt")
        assert [d["user_id"] for d in dropped] == ["victim-0"] and dropped[0]["channels"] == [room]
        assert (await wait_closed(victims[0]))[0] == 1006, "abrupt: no close frame"
        assert (await expect(survivor, codec.MemberRemoved)).member.uid == "victim-0"
        hotsock.admin.drop(room=room, users=["victim-1"], mode="clean", code=4000, reason="maintenance")
        assert await wait_closed(victims[1]) == (4000, "maintenance")
        assert (await expect(survivor, codec.MemberRemoved)).member.uid == "victim-1"
        await assert_next_is_sentinel(hotsock, room, survivor)
        await survivor.close()

    run(scenario())


def test_expire_is_the_two_hour_maximum_now(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        expiring, _ = await join(hotsock, {room: channel_rule()}, uid="exp", subscribe=[room])
        staying, _ = await join(hotsock, {room: channel_rule()}, uid="stay", subscribe=[room])
        expired = hotsock.admin.expire(room=room, users=["exp"])
        assert [e["user_id"] for e in expired] == ["exp"]
        assert await wait_closed(expiring) == (1001, "Going away")
        await assert_next_is_sentinel(hotsock, room, staying)
        await staying.close()

    run(scenario())


def test_drop_fraction_picks_that_many(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        members = [(await join(hotsock, {room: channel_rule()}, subscribe=[room]))[0] for _ in range(10)]
        assert len(hotsock.admin.connections(room=room)) == 10
        dropped = hotsock.admin.drop(room=room, fraction=0.3, seed=7)
        assert len({d["connection_id"] for d in dropped}) == 3
        for ws in members:
            await ws.close()

    run(scenario())


def test_admin_rejects_bad_requests(hotsock):  # noqa: F811
    with pytest.raises(AdminError) as info:
        hotsock.admin.pause("not a channel")  # whitespace: no such channel can exist
    assert info.value.status == 404
    with pytest.raises(AdminError) as info:
        hotsock.admin.drop(fraction=2)
    assert info.value.status == 400 and "fraction" in str(info.value)
    with pytest.raises(AdminError) as info:
        hotsock.admin._call("POST", "/_emulator/faults/delay", {"delay_ms": 5, "bogus": 1})
    assert info.value.status == 400 and "bogus" in str(info.value)


def test_restart_drops_everyone_and_serves_again_on_the_same_port():
    with EmulatorProcess(service="hotsock") as own:
        async def scenario():
            before, _ = await join(own, {})
            token = connect_token(own, {})  # minted before the restart, still valid after it
            assert own.admin.restart(downtime_ms=200, mode="abrupt") == 1
            assert (await wait_closed(before))[0] == 1006
            after = await connect(own.connect_url(token), open_timeout=5)
            await expect(after, codec.Connected)
            await after.close()

        run(scenario())


def test_metrics_count_per_channel_and_escape_names(hotsock):  # noqa: F811
    room = unique('q"uote\\d')

    async def scenario():
        sender, _ = await join(hotsock, {room: channel_rule(publish=["chat"])}, subscribe=[room])
        viewer, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        await send(sender, codec.ClientMessage(room, "chat", 1))
        await expect(viewer, codec.Message)
        await send(viewer, codec.ClientMessage(room, "chat", 2))
        await expect(viewer, codec.Error)
        hotsock.publish(room, "news", 3)
        for ws in (sender, viewer):
            await expect(ws, codec.Message)
        label = room.replace("\\", "\\\\").replace('"', '\\"')
        text = hotsock.admin.metrics_text()
        for line in (f'hotsock_connections{{room="{label}"}} 2',
                     f'hotsock_subscriptions_total{{room="{label}"}} 2',
                     f'hotsock_messages_accepted_total{{room="{label}",source="client"}} 1',
                     f'hotsock_messages_accepted_total{{room="{label}",source="server"}} 1',
                     f'hotsock_messages_rejected_total{{room="{label}",code="PUBLISH_PERMISSION_DENIED"}} 1',
                     f'hotsock_frames_delivered_total{{room="{label}"}} 3'):
            assert line in text, line
        assert 'hotsock_control_requests_total{operation="publish",status="202"}' in text
        assert "hotsock_open_connections " in text
        await sender.close()
        await viewer.close()

    run(scenario())


def test_artificial_delivery_cost_slows_fan_out_predictably(hotsock):  # noqa: F811
    room = unique()

    async def fan_out_ms(members: int) -> float:
        sockets = [(await join(hotsock, {room: channel_rule()}, subscribe=[room]))[0] for _ in range(members)]
        started = time.perf_counter()
        await asyncio.to_thread(hotsock.publish, room, "costly", 1)
        for ws in sockets:
            await expect(ws, codec.Message)
        elapsed = (time.perf_counter() - started) * 1000
        for ws in sockets:
            await ws.close()
        return elapsed

    hotsock.admin.delivery_cost(2000)  # 2 ms per frame written
    try:
        assert run(fan_out_ms(10)) >= 10 * 2
    finally:
        hotsock.admin.delivery_cost(0)
