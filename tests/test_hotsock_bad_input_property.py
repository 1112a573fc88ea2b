"""Property: whatever a client, a token or a backend sends, the Hotsock emulator answers as the spec says,
keeps serving, and nobody else notices.

- Frames: the fuzzing connection's token allows nothing, so every frame it sends — garbage,
  near-valid JSON, valid requests it may not make, binary — earns at most one answer, addressed to it
  (a `hotsock.error`, or a pong for a well-formed ping), and the connection stays open: a barrier
  frame with a known answer follows every frame. A subscribed bystander then sees only the sentinel.
- Tokens: broken in one way each, every one is refused at the upgrade with 401 and opens nothing.
- Publish: any body with the right key is 202, 400 or 413 with a JSON error, never a crash; any
  wrong key is 401.
- Beside a bystander pair (a publisher and a listener on one channel): forged, expired, not yet
  valid and escalated tokens, dropped or expired connections that keep sending, hostile publish and
  fault-route calls and frames never reach the listener, never lose or reorder the publisher's
  messages, and never put a traceback in the emulator's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.services.hotsock import codec, tokens
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator.process import post_json

from .hostile import ADMIN_CALLS, BODIES, ODD_HEADERS, admin_call, assert_no_traceback, control_call
from .hotsock_chat import (
    assert_next_is_sentinel,
    expect,
    expect_error,
    hotsock,  # noqa: F401 - the session fixture
    join,
    next_frame,
    run,
    send,
    unique,
)

CODES = {codec.INVALID_FRAME, codec.INVALID_CHANNEL, codec.INVALID_EVENT, codec.DATA_TOO_LARGE,
         codec.PUBLISH_PERMISSION_DENIED, codec.UNSUPPORTED_EVENT, codec.INVALID_UMD_TOKEN,
         codec.INVALID_SUBSCRIBE_TOKEN, codec.SUBSCRIBE_PERMISSION_DENIED, codec.NOT_SUBSCRIBED,
         codec.UMD_UPDATE_PERMISSION_DENIED}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = st.sampled_from(["event", "channel", "data", "token", "id", "meta", "Event", "extra"])
EVENTS = st.sampled_from(["hotsock.subscribe", "hotsock.unsubscribe", "hotsock.ping", "hotsock.heartbeat",
                          "hotsock.pong", "hotsock.umdUpdate", "hotsock.channelStorageSet", "hotsock.nope",
                          "chat", "#chat", "a*b", "", "e" * 129])
CHANNELS = st.sampled_from(["room.1", "presence.x", "", "a b", "a*", "a#", "a,b", "c" * 257, "ok-channel"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30),
                    EVENTS, CHANNELS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
REQUEST_LIKE = st.dictionaries(KEYS, st.one_of(EVENTS, CHANNELS, JSON_VALUES,
                                               st.fixed_dictionaries({"token": JSON_VALUES})),
                               max_size=5).map(json.dumps)  # stdlib: emits integers beyond 64 bits too
FRAMES = st.one_of(
    REQUEST_LIKE,
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=2000).map(lambda depth: "[" * depth),  # nesting past the parser's limit
    st.integers(min_value=32 * 1024 - 4, max_value=100_000).map(  # around and over the 32 KiB data limit
        lambda n: json.dumps({"channel": "room.1", "event": "chat", "data": "z" * n})),
)


@FUZZ
@given(frames=st.lists(FRAMES, min_size=1, max_size=6))
def test_any_frame_gets_at_most_one_answer_and_disturbs_no_one(hotsock, frames):  # noqa: F811
    room = unique("fuzz")

    async def scenario():
        fuzzer, _ = await join(hotsock, {}, uid="fuzzer")  # a token that allows nothing
        bystander, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        for i, frame in enumerate(frames):
            await fuzzer.send(frame)
            barrier = f"barrier.{i}"
            await fuzzer.send(codec.Unsubscribe(barrier).encode().decode())
            answers = []
            while not isinstance(answer := await next_frame(fuzzer), codec.Error) or answer.channel != barrier:
                answers.append(answer)
            assert answer.code == codec.NOT_SUBSCRIBED
            assert len(answers) <= 1, (frame[:60], answers)
            for answer in answers:
                assert answer == codec.SERVER_PONG or (isinstance(answer, codec.Error) and answer.code in CODES), (
                    frame[:60], answer)
            if isinstance(frame, bytes) or not frame.lstrip().startswith("{"):
                assert [a.code for a in answers] == [codec.INVALID_FRAME], (frame[:60], answers)
        await assert_next_is_sentinel(hotsock, room, bystander)
        await fuzzer.close()
        await bystander.close()

    run(scenario())
    assert hotsock.admin.health()["ok"]


def _claims(**changes) -> dict:
    base = tokens.connect_claims({"lobby": channel_rule()}, uid="u")
    return {k: v for k, v in {**base, **changes}.items() if v is not _DROP}


_DROP = object()
NOT_A_SCOPE = st.one_of(st.sampled_from(["", " ", "subscribe", "umd", "subscribe umd", "connect admin", "CONNECT"]),
                        st.integers(), st.lists(st.just("connect"), max_size=2), st.just(_DROP))
BAD_CLAIMS = st.one_of(
    NOT_A_SCOPE.map(lambda scope: _claims(scope=scope)),
    st.one_of(st.integers(max_value=int(time.time()) - 5), st.text(max_size=5), st.just(_DROP)).map(
        lambda exp: _claims(exp=exp)),
    # "Not yet valid" is relative to when the example runs, not to collection: the suite takes minutes.
    st.integers(min_value=60, max_value=10**9).map(lambda ahead: _claims(nbf=int(time.time()) + ahead)),
    st.one_of(st.integers(max_value=4), st.integers(min_value=601), st.text(max_size=3), st.booleans()).map(
        lambda h: _claims(heartbeatTimeout=h)),
    st.one_of(st.text(min_size=129, max_size=140), st.integers(), st.lists(st.text(), max_size=2)).map(
        lambda uid: _claims(uid=uid)),
    st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
              st.dictionaries(st.text(min_size=1, max_size=5), st.one_of(st.integers(), st.text(max_size=3)),
                              min_size=1, max_size=3)).map(lambda channels: _claims(channels=channels)),
    st.text(min_size=1, max_size=20).map(lambda cid: _claims(connectionId=cid)),
)
SIGNERS = st.sampled_from(["right", "wrong-secret", "tampered", "truncated"])


@FUZZ
@given(claims=BAD_CLAIMS, signer=SIGNERS, junk=st.one_of(st.none(), st.text(max_size=60)))
def test_bad_tokens_are_refused_at_the_upgrade_and_open_nothing(hotsock, claims, signer, junk):  # noqa: F811
    room = unique("fuzz")
    if junk is not None:
        token = junk
    elif signer == "right":
        token = hotsock.mint(claims)
    elif signer == "wrong-secret":
        token = tokens.mint(_claims(), b"w" * 64)  # well-formed claims, wrong key
    else:
        good = hotsock.mint(_claims())
        token = good[:-3] + ("xyz" if good[-3:] != "xyz" else "abc") if signer == "tampered" else good[: len(good) // 2]

    async def scenario():
        bystander, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        before = hotsock.admin.health()["connections"]
        from urllib.parse import quote

        try:
            ws = await connect(f"{hotsock.websocket_url}?token={quote(token, safe='')}", open_timeout=5)
        except InvalidStatus as exc:
            assert exc.response.status_code == 401
        else:
            await ws.close()
            raise AssertionError(f"accepted a bad token ({signer}): {claims}")
        assert hotsock.admin.health()["connections"] == before
        await assert_next_is_sentinel(hotsock, room, bystander)
        await bystander.close()

    run(scenario())


PUBLISH_BODIES = st.one_of(
    st.dictionaries(st.sampled_from(["channel", "event", "data", "store", "deduplicationId", "eagerIdGeneration",
                                     "scheduleExpression", "key", "bogus"]),
                    st.one_of(CHANNELS, EVENTS, JSON_VALUES), max_size=6).map(json.dumps),
    st.text(max_size=100),
    JSON_VALUES.map(json.dumps),
)
WRONG_KEYS = st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=50))


@FUZZ
@given(body=PUBLISH_BODIES, wrong_key=WRONG_KEYS)
def test_publish_answers_every_body_and_refuses_every_wrong_key(hotsock, body, wrong_key):  # noqa: F811
    url = hotsock.info["publish_url"]
    raw = body.encode()
    status, answer = post_json(url, raw, api_key=hotsock.api_key())
    assert status in (202, 400, 413), (body[:80], status, answer)
    if status == 202:
        assert set(answer) == {"channel", "event", "id"}
    else:
        assert set(answer["error"]) == {"code", "message"}
    if wrong_key != hotsock.api_key():
        status, answer = post_json(url, raw, api_key=wrong_key)
        assert status == 401 and answer["error"]["code"] == "UNAUTHORIZED"
    assert hotsock.admin.health()["ok"]


# -- hostile actors and callers beside a bystander pair --------------------------------------------------------

ACTORS = st.sampled_from(["forged", "expired", "not-yet-valid", "escalated-publish", "escalated-subscribe",
                          "escalated-bound", "kicked", "expired-session"])
STEPS = st.one_of(
    st.tuples(st.just("actor"), ACTORS),
    st.tuples(st.just("publish"), st.tuples(BODIES, ODD_HEADERS, st.booleans())),
    st.tuples(st.just("admin"), ADMIN_CALLS),
    st.tuples(st.just("frame"), FRAMES),
)


async def _refused_at_upgrade(emulator, claims: dict, key: bytes | None = None) -> None:
    token = tokens.mint(claims, key) if key is not None else emulator.mint(claims)
    with pytest.raises(InvalidStatus) as refusal:
        await connect(emulator.connect_url(token), open_timeout=5)
    assert refusal.value.response.status_code == 401


async def _act(emulator, room: str, kind: str, n: int) -> None:
    """One hostile actor tries to act on the bystanders' channel; nothing it does may reach them."""
    now = int(time.time())
    publisher = {room: channel_rule(publish=["chat"])}
    if kind == "forged":
        return await _refused_at_upgrade(emulator, tokens.connect_claims(publisher, uid=f"actor-{n}"), b"f" * 64)
    if kind == "expired":
        return await _refused_at_upgrade(emulator, {**tokens.connect_claims(publisher), "exp": now - 1})
    if kind == "not-yet-valid":
        return await _refused_at_upgrade(emulator, {**tokens.connect_claims(publisher), "nbf": now + 600})
    if kind.startswith("escalated"):
        # A listener's token (subscribe only) publishing; another channel's token subscribing here; a
        # subscribe token bound to some other connection.
        rules = {room: channel_rule()} if kind == "escalated-publish" else {unique("other"): channel_rule()}
        ws, _ = await join(emulator, rules, uid=f"actor-{n}")
        if kind == "escalated-publish":
            await send(ws, codec.Subscribe(room))
            await expect(ws, codec.Subscribed)
            await send(ws, codec.ClientMessage(room, "chat", "escalated"))
            await expect_error(ws, codec.PUBLISH_PERMISSION_DENIED, room)
        elif kind == "escalated-subscribe":
            await send(ws, codec.Subscribe(room))
            await expect_error(ws, codec.SUBSCRIBE_PERMISSION_DENIED, room)
        else:
            bound = emulator.mint(tokens.subscribe_claims(publisher, connection_id="AAAAAAAAAAAAAAA="))
            await send(ws, codec.Subscribe(room, bound))
            await expect_error(ws, codec.INVALID_SUBSCRIBE_TOKEN, room)
        return await ws.close()
    ws, connected = await join(emulator, publisher, uid=f"actor-{n}")
    chosen = [c["connection_id"] for c in emulator.admin.connections()
              if c["hotsock_connection_id"] == connected.connection_id]
    if kind == "kicked":
        emulator.admin.drop(connections=chosen, mode="clean")
    else:
        emulator.admin.expire(connections=chosen)
    with contextlib.suppress(ConnectionClosed):  # however fast it sends before its close, none is heard
        while True:
            await send(ws, codec.ClientMessage(room, "chat", "after the end"))
            await asyncio.sleep(0.005)
    assert ws.close_code in (1000, 1001)


@FUZZ
@given(steps=st.lists(STEPS, min_size=1, max_size=5))
def test_hostile_steps_never_reach_or_disturb_a_bystander_pair(hotsock, steps):  # noqa: F811
    """Forged, expired, not-yet-valid, escalated, dropped and expired actors, hostile publish and
    fault-route calls and frames, each followed by a bystander message: the listener gets exactly the
    sender's messages, in order, and the emulator logs no traceback."""
    room = unique("pair")

    async def scenario():
        sender, _ = await join(hotsock, {room: channel_rule(publish=["chat"])}, subscribe=[room], uid="sender")
        listener, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room], uid="listener")
        fuzzer, _ = await join(hotsock, {}, uid="fuzzer")
        for n, (kind, what) in enumerate(steps):
            if kind == "actor":
                await _act(hotsock, room, what, n)
            elif kind == "publish":
                body, headers, right_key = what
                key = hotsock.api_key() if right_key else "k" * 40
                status = control_call(hotsock, "/publish", body,
                                      headers=headers + f"Authorization: Bearer {key}\r\n".encode())
                assert status != 202 or right_key
            elif kind == "admin":
                admin_call(hotsock, *what)
            else:
                await fuzzer.send(what)
                await fuzzer.send(codec.Unsubscribe(f"barrier.{n}").encode().decode())
                while not isinstance(answer := await next_frame(fuzzer), codec.Error) or answer.channel != f"barrier.{n}":
                    pass
            await send(sender, codec.ClientMessage(room, "chat", f"bystander-{n}"))
        for n in range(len(steps)):
            frame = await next_frame(listener)
            assert isinstance(frame, codec.Message) and frame.data == f"bystander-{n}", frame
        await assert_next_is_sentinel(hotsock, room, listener)
        for ws in (sender, listener, fuzzer):
            await ws.close()

    run(scenario())
    assert_no_traceback(hotsock)
