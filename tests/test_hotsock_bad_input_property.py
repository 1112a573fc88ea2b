"""Property: whatever a client, a token or a backend sends, the Hotsock emulator answers as the spec says,
keeps serving, and nobody else notices.

- Frames: the fuzzing connection's token allows nothing, so every frame it sends — garbage,
  near-valid JSON, valid requests it may not make, binary — earns at most one answer, addressed to it
  (a `hotsock.error`, or a pong for a well-formed ping), and the connection stays open: a barrier
  frame with a known answer follows every frame. A subscribed bystander then sees only the sentinel.
- Tokens: broken in one way each, every one is refused at the upgrade with 401 and opens nothing.
- Publish: any body with the right key is 202, 400 or 413 with a JSON error, never a crash; any
  wrong key is 401.
"""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.services.hotsock import codec, tokens
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator.process import post_json

from .hotsock_chat import (
    assert_next_is_sentinel,
    hotsock,  # noqa: F401 - the session fixture
    join,
    next_frame,
    run,
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
