"""Property: whatever a client sends, the emulator answers that client alone and keeps serving.

The fuzzing member has no capabilities, so every frame it sends — garbage, near-valid JSON, valid
requests it may not make, binary — must earn exactly one ERROR frame addressed to it, and the
observer in the same room must see nothing but the sentinel that follows.

Beside a bystander pair (a sender and a listener), hostile actors (a forged or reused token, a
member acting beyond its capabilities, a kicked or expired member that keeps sending), hostile
control-plane and fault-route calls and frames never reach the listener, never lose or reorder
the sender's messages, and never put a traceback in the emulator's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.services.ivschat import codec

from .chat import assert_next_is_sentinel, join, next_event, run, send, token_for
from .hostile import ADMIN_CALLS, BODIES, ODD_HEADERS, admin_call, assert_no_traceback, control_call

KEYS = st.sampled_from(["Action", "action", "ACTION", "RequestId", "requestid", "Content", "Attributes", "Id",
                        "UserId", "Reason", "Extra"])
ACTIONS = st.sampled_from(["SEND_MESSAGE", "DELETE_MESSAGE", "DISCONNECT_USER", "send_message", "", "NOPE"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40),
                    ACTIONS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
REQUEST_LIKE = st.dictionaries(KEYS, st.one_of(ACTIONS, JSON_VALUES), max_size=6).map(
    json.dumps)  # stdlib: emits integers beyond 64 bits too
FRAMES = st.one_of(
    REQUEST_LIKE,
    st.text(max_size=200),
    st.binary(min_size=0, max_size=200),
    st.integers(min_value=1, max_value=2000).map(lambda depth: "[" * depth),  # nesting past the parser's limit
    st.integers(min_value=10_241, max_value=40_000).map(lambda n: "z" * n),  # above the 10 KiB frame cap
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
def test_any_frame_gets_one_error_and_disturbs_no_one(emulator, ivschat, frames):
    room = ivschat.create_room()  # one per example: hypothesis would reuse a fixture's room (and its rate)

    async def scenario():
        fuzzer = await join(emulator, ivschat, room, "fuzzer")  # no capabilities: nothing it sends is allowed
        observer = await join(emulator, ivschat, room, "observer", ["SEND_MESSAGE"])
        for frame in frames:
            await fuzzer.send(frame)
            event = await next_event(fuzzer)
            assert isinstance(event, codec.ChatError), (frame[:60], event)
            assert event.code in (400, 403, 413), (frame[:60], event)
        await assert_next_is_sentinel(observer, fuzzer)
        await fuzzer.close()
        await observer.close()

    run(scenario())
    ivschat.delete_room(identifier=room["arn"])
    assert emulator.admin.health()["ok"]


# -- hostile actors and callers beside a bystander pair --------------------------------------------------------

ACTORS = st.sampled_from(["forged", "reused", "escalated-send", "escalated-kick", "escalated-delete", "kicked",
                          "expired", "dropped"])
OPERATIONS = st.sampled_from(["CreateChatToken", "SendEvent", "DeleteMessage", "DisconnectUser", "GetRoom",
                              "UpdateRoom", "DeleteRoom", "ListRooms", "CreateRoom", "TagResource"])
STEPS = st.one_of(
    st.tuples(st.just("actor"), ACTORS),
    st.tuples(st.just("control"), st.tuples(OPERATIONS, BODIES, ODD_HEADERS)),
    st.tuples(st.just("admin"), ADMIN_CALLS),
    st.tuples(st.just("frame"), FRAMES),
)


async def _act(emulator, ivschat, room: dict, actor: str, kind: str, listener_id: str) -> None:
    """One hostile actor tries to act; whatever it does must not reach the room (checked by the caller)."""
    if kind == "forged":
        with pytest.raises(InvalidStatus) as refusal:
            await connect(emulator.messaging_endpoint, subprotocols=["x" * 40], open_timeout=5)
        assert refusal.value.response.status_code == 403
        return
    capabilities = {"escalated-send": [], "escalated-kick": ["SEND_MESSAGE"],
                    "escalated-delete": ["SEND_MESSAGE"]}.get(kind, ["SEND_MESSAGE"])
    token = token_for(ivschat, room, actor, capabilities)
    ws = await connect(emulator.messaging_endpoint, subprotocols=[token], open_timeout=5)
    if kind == "reused":
        await ws.close()
        with pytest.raises(InvalidStatus) as refusal:
            await connect(emulator.messaging_endpoint, subprotocols=[token], open_timeout=5)
        assert refusal.value.response.status_code == 403
        return
    if kind.startswith("escalated"):
        frame = {"escalated-send": codec.encode_send_message("e", "escalated"),
                 "escalated-kick": codec.encode_disconnect_user("e", listener_id, "escalated"),
                 "escalated-delete": codec.encode_delete_message("e", "A" * 12)}[kind]
        await ws.send(frame.decode())
        error = await next_event(ws)
        assert isinstance(error, codec.ChatError) and error.code == 403, error
        await ws.close()
        return
    if kind == "kicked":
        ivschat.disconnect_user(roomIdentifier=room["arn"], userId=actor, reason="out " * 50 + "é" * 40)
    elif kind == "dropped":  # a clean close by the drop fault
        emulator.admin.drop(room=room["id"], users=[actor], mode="clean", reason="é" * 100)
    else:  # expired: the session's end, now
        emulator.admin.expire(room=room["id"], users=[actor])
    with contextlib.suppress(ConnectionClosed):  # the close may come first: sending must not help it either
        while True:
            await ws.send(codec.encode_send_message("after", "after the end").decode())
            await asyncio.sleep(0.005)
    assert ws.close_code == (1001 if kind == "dropped" else 1000)  # a drop fault closes 1001 by default


def _kick_of_an_actor(event) -> bool:
    """A moderator's kick of an actor: announced to the whole room, the only event an actor may cause."""
    return isinstance(event, codec.ChatEvent) and (event.attributes or {}).get("UserId", "").startswith("actor-")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEPS, min_size=1, max_size=5))
def test_hostile_steps_never_reach_or_disturb_a_bystander_pair(emulator, ivschat, steps):
    """Forged, reused, escalated, kicked and expired actors, hostile control-plane and fault calls and
    frames, each followed by a bystander message: the listener gets exactly the bystander's messages,
    in order, nothing an actor sent, and the emulator logs no traceback."""
    room = ivschat.create_room(maximumMessageRatePerSecond=100)

    async def scenario():
        sender = await join(emulator, ivschat, room, "sender", ["SEND_MESSAGE"])
        listener = await join(emulator, ivschat, room, "listener")
        fuzzer = await join(emulator, ivschat, room, "fuzzer")
        sent = []
        for n, (kind, what) in enumerate(steps):
            if kind == "actor":
                await _act(emulator, ivschat, room, f"actor-{n}", what, "listener")
            elif kind == "control":
                operation, body, headers = what
                control_call(emulator, f"/{operation}", body, headers=headers)
            elif kind == "admin":
                admin_call(emulator, *what)
            else:
                await fuzzer.send(what)
                while not isinstance(event := await next_event(fuzzer), codec.ChatError):
                    assert _kick_of_an_actor(event) or event.sender_user_id == "sender", event
            sent.append(await send(sender, f"bystander-{n}"))
        for ws in (listener, sender):
            received = []
            while len(received) < len(sent):
                event = await next_event(ws)
                if _kick_of_an_actor(event):
                    continue
                assert isinstance(event, codec.ChatMessage) and event.sender_user_id == "sender", event
                received.append(event.request_id)
            assert received == sent
        await assert_next_is_sentinel(sender, listener)
        for ws in (sender, listener, fuzzer):
            await ws.close()

    run(scenario())
    ivschat.delete_room(identifier=room["arn"])
    assert_no_traceback(emulator)
