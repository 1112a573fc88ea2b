"""The emulator's messaging WebSocket, driven by a real websockets client and real boto3 tokens."""

from __future__ import annotations

import asyncio
import re
import time

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.services.ivschat import codec
from harness.services.ivschat.emulator import EmulatorProcess

from .chat import (
    ALL_CAPABILITIES,
    assert_next_is_sentinel,
    join,
    next_event,
    next_raw,
    run,
    send,
    token_for,
    wait_closed,
)

SEND_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
FRAME_ID = re.compile(r"^[A-Za-z0-9]{12}$")


def test_message_reaches_every_member_and_echoes_to_sender(emulator, ivschat, room):
    async def scenario():
        sender = await join(emulator, ivschat, room, "alice", ["SEND_MESSAGE"], attributes={"username": "alice"})
        viewers = [await join(emulator, ivschat, room) for _ in range(3)]
        request_id = await send(sender, "héllo 👋", {"seq": "1"})
        raws = [await next_raw(ws) for ws in (sender, *viewers)]
        assert len(set(raws)) == 1, "every member, the sender included, gets the same frame"
        frame = orjson.loads(raws[0])
        assert list(frame) == ["Type", "Id", "RequestId", "Attributes", "Content", "SendTime", "Sender"]
        assert frame["Type"] == "MESSAGE" and FRAME_ID.match(frame["Id"])
        assert frame["RequestId"] == request_id and frame["Content"] == "héllo 👋"
        assert frame["Attributes"] == {"seq": "1"}
        assert SEND_TIME.match(frame["SendTime"]) and not frame["SendTime"].endswith("0Z")
        sent_ns = codec.parse_send_time(frame["SendTime"])
        assert abs(sent_ns - time.time_ns()) < 5e9
        assert frame["Sender"] == {"UserId": "alice", "Attributes": {"username": "alice"}}
        # Missing maps are null, not {} or absent.
        await send(sender, "plain")
        plain = orjson.loads(await next_raw(sender))
        assert plain["Attributes"] is None
        for ws in (sender, *viewers):
            await ws.close()

    run(scenario())


def test_frame_ids_are_unique(emulator, ivschat):
    room = ivschat.create_room(maximumMessageRatePerSecond=100)

    async def scenario():
        ws = await join(emulator, ivschat, room, capabilities=ALL_CAPABILITIES)
        seen = set()
        for i in range(50):
            await send(ws, f"m{i}")
            seen.add((await next_event(ws)).id)
        await ws.send(b"binary")  # errors get ids too
        seen.add((await next_event(ws)).id)
        assert len(seen) == 51
        await ws.close()

    run(scenario())


def test_keys_match_case_insensitively(emulator, ivschat, room):
    async def scenario():
        ws = await join(emulator, ivschat, room, capabilities=["SEND_MESSAGE"])
        await ws.send('{"action":"SEND_MESSAGE","REQUESTID":"r-1","content":"lower","attributes":{"K":"v"}}')
        event = await next_event(ws)
        assert isinstance(event, codec.ChatMessage)
        assert (event.request_id, event.content, event.attributes) == ("r-1", "lower", {"K": "v"})
        await ws.close()

    run(scenario())


def test_handshake_rejections(emulator, ivschat, room):
    async def status_of(subprotocols):
        with pytest.raises(InvalidStatus) as info:
            await connect(emulator.messaging_endpoint, subprotocols=subprotocols, open_timeout=5)
        return info.value.response.status_code

    async def scenario():
        assert await status_of(None) == 401  # no token
        assert await status_of(["forgedAQICAHtoken"]) == 403
        token = token_for(ivschat, room)
        ws = await connect(emulator.messaging_endpoint, subprotocols=[token])
        assert await status_of([token]) == 403, "tokens are single-use"
        await ws.close()
        other = ivschat.create_room()
        unused = token_for(ivschat, other)
        ivschat.delete_room(identifier=other["arn"])
        assert await status_of([unused]) == 404

    run(scenario())


def test_expired_token_is_refused():
    with EmulatorProcess("--token-minutes", "0.000001") as short_lived:  # 60 µs tokens
        client = short_lived.boto3_client()
        room = client.create_room()

        async def scenario():
            token = token_for(client, room)  # dead before boto3 has even parsed the answer
            with pytest.raises(InvalidStatus) as info:
                await connect(short_lived.messaging_endpoint, subprotocols=[token])
            assert info.value.response.status_code == 403

        run(scenario())


def test_capabilities_are_enforced(emulator, ivschat, room):
    async def scenario():
        viewer = await join(emulator, ivschat, room)
        frames = [
            codec.encode_send_message("s", "hi"),
            codec.encode_delete_message("d", "M2YcHkgffEvU"),
            codec.encode_disconnect_user("k", "someone"),
        ]
        for frame in frames:
            await viewer.send(frame.decode())
            event = await next_event(viewer)
            assert isinstance(event, codec.ChatError) and event.code == 403
            assert event.request_id == orjson.loads(frame)["RequestId"]
        await viewer.close()

    run(scenario())


def test_message_length_counts_code_points(emulator, ivschat):
    room = ivschat.create_room(maximumMessageLength=5, maximumMessageRatePerSecond=100)

    async def scenario():
        ws = await join(emulator, ivschat, room, capabilities=["SEND_MESSAGE"])
        await send(ws, "👋👋👋👋👋")  # 5 code points, 20 bytes: allowed
        assert isinstance(await next_event(ws), codec.ChatMessage)
        request_id = await send(ws, "abcdef")
        error = await next_event(ws)
        assert isinstance(error, codec.ChatError) and (error.code, error.request_id) == (400, request_id)
        await ws.close()

    run(scenario())


def test_rate_limit_is_per_room_across_clients(emulator, ivschat):
    room = ivschat.create_room(maximumMessageRatePerSecond=3)

    async def scenario():
        # Start right after a second boundary so the fixed one-second window holds the whole burst.
        await asyncio.sleep(1.02 - time.time() % 1)
        a = await join(emulator, ivschat, room, capabilities=["SEND_MESSAGE"])
        b = await join(emulator, ivschat, room, capabilities=["SEND_MESSAGE"])
        a_ids = [await send(a, f"a{i}") for i in range(3)]
        b_ids = [await send(b, f"b{i}") for i in range(3)]
        accepted, rejected = set(), {}
        for ws, ids in ((a, a_ids), (b, b_ids)):
            while len([i for i in ids if i in accepted or i in rejected]) < len(ids):
                event = await next_event(ws)
                if isinstance(event, codec.ChatError):
                    rejected[event.request_id] = event.code
                elif event.request_id in ids:
                    accepted.add(event.request_id)
        assert len(accepted) == 3 and set(rejected.values()) == {429} and len(rejected) == 3
        await a.close()
        await b.close()

    run(scenario())


def test_delete_message_event_carries_both_id_spellings(emulator, ivschat, room):
    async def scenario():
        moderator = await join(emulator, ivschat, room, "mod", ALL_CAPABILITIES)
        viewer = await join(emulator, ivschat, room)
        await send(moderator, "to be deleted")
        message = await next_event(moderator)
        await next_event(viewer)
        await moderator.send(codec.encode_delete_message("del-1", message.id, "spam").decode())
        for ws in (moderator, viewer):
            event = await next_event(ws)
            assert isinstance(event, codec.ChatEvent) and event.event_name == "aws:DELETE_MESSAGE"
            assert event.attributes == {"MessageID": message.id, "MessageId": message.id, "Reason": "spam"}
            assert event.request_id == "del-1"
        # Through the control plane: RequestId is empty and the message need not exist.
        ivschat.delete_message(roomIdentifier=room["arn"], id="AAAAAAAAAAAA", reason="cleanup")
        event = await next_event(viewer)
        assert event.request_id == "" and event.attributes["MessageId"] == "AAAAAAAAAAAA"
        await moderator.close()
        await viewer.close()

    run(scenario())


def test_disconnect_user_closes_every_connection_of_that_user_cleanly(emulator, ivschat, room):
    async def scenario():
        moderator = await join(emulator, ivschat, room, "mod", ALL_CAPABILITIES)
        target = [await join(emulator, ivschat, room, "troll") for _ in range(2)]
        bystander = await join(emulator, ivschat, room, "fan")
        await moderator.send(codec.encode_disconnect_user("kick-1", "troll", "bye").decode())
        for ws in (moderator, bystander, *target):
            event = await next_event(ws)
            assert event.event_name == "aws:DISCONNECT_USER" and event.request_id == "kick-1"
            assert event.attributes == {"UserId": "troll", "Reason": "bye"}
        for ws in target:
            code, _ = await wait_closed(ws)
            assert code == 1000, "a clean close frame, so the SDK reports serverDisconnect and stays out"
        await assert_next_is_sentinel(moderator, bystander)
        await moderator.close()
        await bystander.close()

    run(scenario())


def test_send_event_from_control_plane(emulator, ivschat, room):
    async def scenario():
        ws = await join(emulator, ivschat, room)
        answer = ivschat.send_event(roomIdentifier=room["arn"], eventName="app:poll", attributes={"q": "1"})
        event = await next_event(ws)
        assert isinstance(event, codec.ChatEvent)
        assert (event.id, event.event_name, event.attributes, event.request_id) == (answer["id"], "app:poll",
                                                                                   {"q": "1"}, "")
        await ws.close()

    run(scenario())


def test_room_deleted_while_connected(emulator, ivschat):
    room = ivschat.create_room()

    async def scenario():
        ws = await join(emulator, ivschat, room)
        ivschat.delete_room(identifier=room["arn"])
        event = await next_event(ws)
        assert isinstance(event, codec.ChatError) and event.code == 404
        code, _ = await wait_closed(ws)
        assert code == 1000

    run(scenario())


def test_session_expiry_sends_401_then_closes(emulator, ivschat, room):
    async def scenario():
        ws = await join(emulator, ivschat, room, "sleepy")
        other = await join(emulator, ivschat, room, "awake", ["SEND_MESSAGE"])
        expired = emulator.admin.expire(room=room["id"], users=["sleepy"])
        assert [c["user_id"] for c in expired] == ["sleepy"]
        event = await next_event(ws)
        assert isinstance(event, codec.ChatError) and event.code == 401
        code, _ = await wait_closed(ws)
        assert code == 1000
        await assert_next_is_sentinel(other)
        await other.close()

    run(scenario())


def test_bad_input_gets_errors_and_disturbs_no_one(emulator, ivschat, room):
    bad_frames = [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('{"Action": "SHOUT", "RequestId": "r"}', 400),
        ('{"Action": "SEND_MESSAGE", "RequestId": "r"}', 400),  # no Content
        ('{"Action": "SEND_MESSAGE", "RequestId": 7, "Content": "x"}', 400),
        ('{"Action": "SEND_MESSAGE", "Content": "x", "Attributes": {"a": 1}}', 400),
        ('{"Action": "SEND_MESSAGE", "Content": ""}', 400),
        ('{"Action": "DELETE_MESSAGE", "Id": "short"}', 400),
        (orjson.dumps({"Action": "SEND_MESSAGE", "Content": "x", "Attributes": {"k": "v" * 2000}}).decode(), 413),
        ("x" * 20_000, 413),
        (b"\x00\x01binary", 400),
    ]

    async def scenario():
        fuzzer = await join(emulator, ivschat, room, "fuzzer", ALL_CAPABILITIES)
        observer = await join(emulator, ivschat, room, "observer", ["SEND_MESSAGE"])
        for frame, code in bad_frames:
            await fuzzer.send(frame)
            event = await next_event(fuzzer)
            assert isinstance(event, codec.ChatError) and event.code == code, (frame[:40], event)
        await assert_next_is_sentinel(observer, fuzzer)
        await fuzzer.close()
        await observer.close()

    run(scenario())


def test_oversized_frame_beyond_hard_cap_closes_only_that_connection(emulator, ivschat, room):
    async def scenario():
        fuzzer = await join(emulator, ivschat, room)
        observer = await join(emulator, ivschat, room, capabilities=["SEND_MESSAGE"])
        await fuzzer.send("y" * (2 * 1024 * 1024))
        code, _ = await wait_closed(fuzzer)
        assert code == 1009  # message too big
        await assert_next_is_sentinel(observer)
        await observer.close()

    run(scenario())


def test_connection_quota_answers_429():
    with EmulatorProcess("--max-connections", "2") as small:
        client = small.boto3_client()
        room = client.create_room()

        async def scenario():
            first = await join(small, client, room)
            second = await join(small, client, room)
            with pytest.raises(InvalidStatus) as info:
                await join(small, client, room)
            assert info.value.response.status_code == 429
            await first.close()
            await wait_closed(first)
            # The slot is released when the connection ends.
            deadline = time.monotonic() + 5
            while True:
                try:
                    third = await join(small, client, room)
                    break
                except InvalidStatus:
                    assert time.monotonic() < deadline, "quota slot was never released"
                    await asyncio.sleep(0.05)
            await second.close()
            await third.close()

        run(scenario())
