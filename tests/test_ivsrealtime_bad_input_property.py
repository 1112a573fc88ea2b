"""Property: whatever a participant or a control-plane caller sends, the emulator gives the spec's answer
to that caller alone and keeps serving.

- Events socket: a joined subscriber sends anything (garbage, near-valid frames, binary). It hears
  PONG for PING, SDP_ANSWER for SDP_OFFER, an EXCHANGE_TOKEN error for EXCHANGE_TOKEN, and nothing
  else; its connection survives (PING→PONG is its next frame); an observer in the stage sees no
  roster change (the sentinel participant's join is its next frame, with the next sequence number).
- Tokens: forged, tampered, expired, garbage: JOIN_ERROR with a token code, then a close, and the
  observer sees nothing.
- Control plane: any JSON (or not JSON) to any operation: a modelled 4xx, never a 500.
- Beside a bystander pair (a publisher changing its state, a listener): forged, expired, not yet
  valid, escalated and kicked actors, hostile control-plane and fault-route calls and frames never
  appear on the listener's roster, never cost or reorder a roster change, and never put a
  traceback in the emulator's log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid

import jwt
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from harness.services.ivsrealtime import codec, tokens
from harness.services.ivsrealtime.emulator.controlplane import INPUTS

from . import hostile
from .chat import run
from .ivsrealtime import (  # noqa: F401 - rt and ivs are fixtures
    assert_next_is_pong,
    assert_next_roster_is,
    ivs,
    join,
    next_frame,
    open_socket,
    publish_offer,
    refused,
    rt,
    token_for,
    wait_closed,
)

TYPES = st.sampled_from(["PING", "SET_STATE", "aws:ivs:SDP_OFFER", "aws:ivs:EXCHANGE_TOKEN", "STAGE_STATE",
                         "aws:ivs:JOIN_ERROR", "PONG", "", "ping", "UNKNOWN"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=10)
PAYLOADS = st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={
    "requestId": st.one_of(st.text(max_size=8), SCALARS), "traceId": SCALARS, "whipUrl": SCALARS,
    "content": st.text(max_size=20)}))
FRAME_LIKE = st.builds(lambda kind, payload, extra: json.dumps({"type": kind, "payload": payload, **extra}), TYPES,
                       PAYLOADS, st.dictionaries(st.sampled_from(["audioMuted", "videoStopped", "version"]), SCALARS,
                                                 max_size=3))
FRAMES = st.one_of(FRAME_LIKE, st.text(max_size=200), st.binary(max_size=200),
                   st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth))


def expected_answer(frame: str | bytes) -> type | str | None:
    """What the spec (the emulator's documented choices) answers to one client frame."""
    if isinstance(frame, bytes):
        return None
    try:
        parsed = codec.parse_client_frame(frame)
    except codec.FrameError:
        return None
    if isinstance(parsed, codec.Ping):
        return codec.Pong
    if isinstance(parsed, codec.SdpOffer):
        return codec.SDP_ANSWER
    if isinstance(parsed, codec.ExchangeToken):
        return codec.EXCHANGE_TOKEN
    return None  # SET_STATE from a subscriber, unknown types: nothing


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
def test_any_frame_gets_its_answer_and_disturbs_no_one(rt, ivs, frames):  # noqa: F811
    stage = ivs.create_stage()["stage"]  # one per example: a fixture's stage would be shared

    async def scenario():
        observer, _, first = await join(rt, ivs, stage, "observer", publish=True)
        # Subscribe-only: even an offer whose whipUrl happened to name a publish is refused, rosters untouched.
        fuzzer, _, joined = await join(rt, ivs, stage, "fuzzer", capabilities=["SUBSCRIBE"])
        assert (await next_frame(observer)).sequence_number == joined.sequence_number
        for frame in frames:
            await fuzzer.send(frame)
            answer = expected_answer(frame)
            if answer is codec.Pong:
                assert isinstance(await next_frame(fuzzer), codec.Pong)
            elif answer is not None:
                got = await next_frame(fuzzer)
                assert isinstance(got, codec.OtherServerFrame) and got.type == answer, (frame[:60], got)
        await assert_next_is_pong(fuzzer)  # alive, and nothing else was queued for it
        sentinel = await assert_next_roster_is(rt, ivs, stage, {observer: joined.sequence_number,
                                                                fuzzer: joined.sequence_number})
        for ws in (observer, fuzzer, sentinel):
            await ws.close()

    run(scenario())
    ivs.delete_stage(arn=stage["arn"])
    assert rt.admin.health()["ok"]


def test_an_oversized_frame_closes_only_its_own_connection(rt, ivs):  # noqa: F811
    stage = ivs.create_stage()["stage"]

    async def scenario():
        observer, _, _ = await join(rt, ivs, stage)
        big, _, joined = await join(rt, ivs, stage)
        await next_frame(observer)
        await big.send("x" * (64 * 1024 + 1))
        assert (await wait_closed(big))[0] == 1009
        left = await next_frame(observer)
        assert left.sequence_number == joined.sequence_number + 1 and len(left.participants) == 1
        await assert_next_is_pong(observer)
        await observer.close()

    run(scenario())


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


TOKEN_CHARACTERS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # RFC 7230 tchar
TOKEN_CODES = {codec.TOKEN_MISSING, codec.TOKEN_INVALID, codec.TOKEN_INVALID_SIGNATURE, codec.TOKEN_EXPIRED}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_tokens_get_a_join_error_and_disturb_no_one(rt, ivs, data):  # noqa: F811
    stage = ivs.create_stage()["stage"]
    real = token_for(ivs, stage)["token"]
    header, payload, signature = real.split(".")
    claims = tokens.unverified_claims(real)
    tampered_claims = data.draw(st.dictionaries(st.sampled_from(sorted(claims)), JSON_VALUES, min_size=1, max_size=3))
    candidates = st.one_of(
        st.text(alphabet=TOKEN_CHARACTERS, min_size=1, max_size=120),  # what can travel as a subprotocol
        st.just(f"{header}.{_b64({**claims, **tampered_claims})}.{signature}"),  # claims changed, signature kept
        st.just(f"{header}.{payload}.{signature[:-4]}AAAA"),  # signature damaged
        st.just(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."),
        st.just(tokens.self_signed_token(tokens.generate_key(), stage["arn"], events_url="", whip_url="",
                                         now=time.time())[0]),
    )
    bad = data.draw(candidates)

    async def scenario():
        observer, _, first = await join(rt, ivs, stage)
        error, close_code = await refused(rt, stage, bad)
        assert error.code in TOKEN_CODES, error
        assert close_code == 1000
        # The token is never echoed; a string of a few characters ("J") is in any message by chance.
        assert len(bad) < 8 or bad not in error.message, error.message
        sentinel = await assert_next_roster_is(rt, ivs, stage, {observer: first.sequence_number})
        await observer.close()
        await sentinel.close()

    run(scenario())
    ivs.delete_stage(arn=stage["arn"])


OPERATIONS = st.sampled_from(sorted(INPUTS))
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(["arn", "stageArn", "name", "duration", "userId", "attributes", "capabilities",
                                     "participantId", "sessionId", "maxResults", "nextToken", "tags", "reason",
                                     "publicKeyMaterial", "filterByPublished", "filterByState",
                                     "participantTokenConfigurations"]), JSON_VALUES, max_size=5).map(
        lambda body: json.dumps(body).encode()),  # stdlib: integers beyond 64 bits too
    st.binary(max_size=100),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operation=OPERATIONS, body=BODIES)
def test_bad_control_plane_bodies_get_modelled_errors(rt, operation, body):  # noqa: F811
    request = urllib.request.Request(f"{rt.control_endpoint}/{operation}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, error_type = response.status, None
            created = orjson.loads(response.read()).get("stage") if operation == "CreateStage" else None
        if created:  # a valid CreateStage: give the stage back (the module's stage quota is shared)
            urllib.request.urlopen(urllib.request.Request(f"{rt.control_endpoint}/DeleteStage", method="POST",
                                                          data=orjson.dumps({"arn": created["arn"]})), timeout=5)
    except urllib.error.HTTPError as exc:
        status, error_type = exc.code, exc.headers.get("x-amzn-ErrorType")
        answer = orjson.loads(exc.read())
        assert answer["exceptionMessage"]
    assert status in (200, 400, 402, 404, 409), (operation, body[:80], status)
    if status != 200:
        assert error_type in ("ValidationException", "ResourceNotFoundException", "ServiceQuotaExceededException",
                              "ConflictException")


# -- hostile actors and callers beside a bystander pair --------------------------------------------------------

ACTORS = st.sampled_from(["forged", "expired", "not-yet-valid", "escalated-publish", "escalated-claims", "kicked",
                          "dropped"])
STEPS = st.one_of(
    st.tuples(st.just("actor"), ACTORS),
    st.tuples(st.just("control"), st.tuples(OPERATIONS, hostile.BODIES, hostile.ODD_HEADERS)),
    st.tuples(st.just("admin"), hostile.ADMIN_CALLS),
    st.tuples(st.just("frame"), FRAMES),
)


@pytest.fixture(scope="module")
def imported_key(ivs):  # noqa: F811
    """A key pair whose public half the emulator trusts: actors sign their own (bad) tokens with it."""
    key = tokens.generate_key()
    ivs.import_public_key(publicKeyMaterial=tokens.public_key_pem(key))
    return key


def _signed(key, stage: dict, pid: str, **changes) -> str:
    now = time.time()
    claims = tokens.ParticipantClaims(stage["arn"], pid, "", "", now + 600, now, user_id=pid)
    return jwt.encode({**claims.to_jwt(), **changes}, key, algorithm=tokens.ALGORITHM)


async def _act(rt, ivs, stage: dict, key, kind: str, pid: str) -> None:  # noqa: F811
    """One hostile actor tries to join or act; refused actors never reach a roster (checked by the caller)."""
    now = int(time.time())
    codes = {"forged": codec.TOKEN_INVALID_SIGNATURE, "expired": codec.TOKEN_EXPIRED,
             "not-yet-valid": codec.TOKEN_INVALID, "escalated-claims": codec.TOKEN_INVALID_SIGNATURE}
    if kind == "forged":
        token = _signed(tokens.generate_key(), stage, pid)
    elif kind == "expired":
        token = _signed(key, stage, pid, exp=now - 1)
    elif kind == "not-yet-valid":
        token = _signed(key, stage, pid, nbf=now + 600)
    elif kind == "escalated-publish":  # joins as the subscriber its token makes it; its publish is refused
        token = _signed(key, stage, pid, capabilities={"allow_publish": False, "allow_subscribe": True})
        ws = await open_socket(rt, stage, token)
        assert isinstance(await next_frame(ws), codec.StageState)
        answer, _ = await publish_offer(ws, {"token": token, "participantId": pid})
        assert (answer["httpStatusCode"], answer["errorCode"]) == (403, codec.PUBLISH_NO_PERMISSIONS), answer
        await ws.close()
        return
    elif kind == "escalated-claims":  # a subscriber's token with publishing granted, its signature kept
        header, payload, signature = _signed(key, stage, pid, capabilities={"allow_subscribe": True}).split(".")
        claims = tokens.unverified_claims(f"{header}.{payload}.{signature}")
        claims["capabilities"]["allow_publish"] = True
        token = f"{header}.{_b64(claims)}.{signature}"
    else:  # kicked or dropped: joins, is closed, keeps muting itself (never seen), kicked comes back
        token = _signed(key, stage, pid)
        ws = await open_socket(rt, stage, token)
        assert isinstance(await next_frame(ws), codec.StageState)
        answer, _ = await publish_offer(ws, {"token": token, "participantId": pid})
        assert answer["httpStatusCode"] == 501, answer  # a publisher's slot held (media is not emulated)
        if kind == "kicked":
            ivs.disconnect_participant(stageArn=stage["arn"], participantId=pid, reason="é" * 100)
        else:
            rt.admin.drop(connections=[c["connection_id"] for c in rt.admin.connections()
                                       if c.get("participant_id") == pid], mode="clean", reason="é" * 100)
        with contextlib.suppress(ConnectionClosed):
            for _ in range(3):
                await ws.send(codec.encode_set_state(True, False).decode())
        await wait_closed(ws)
        if kind == "kicked":
            error, _ = await refused(rt, stage, token)
            assert error.code == codec.PARTICIPANT_DISCONNECTED
        return
    error, _ = await refused(rt, stage, token)
    assert error.code == codes[kind], (kind, error)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEPS, min_size=1, max_size=5))
def test_hostile_steps_never_reach_or_disturb_a_bystander_pair(rt, ivs, imported_key, steps):  # noqa: F811
    """Forged, expired, not-yet-valid, escalated and kicked actors, hostile control-plane and fault
    calls and frames, each followed by a bystander's roster change (its SET_STATE): the listener sees
    every change in sequence, the bystander's in order, no refused actor and no kicked one after its
    kick, and the emulator logs no traceback."""
    stage = ivs.create_stage()["stage"]

    async def scenario():
        sender, sender_id, _ = await join(rt, ivs, stage, "sender", publish=True)
        listener, _, state = await join(rt, ivs, stage, "listener")
        fuzzer, _, _ = await join(rt, ivs, stage, "fuzzer")
        actors, kicked = {}, set()
        for n, (kind, what) in enumerate(steps):
            if kind == "actor":
                actors[f"actor{n:02d}{uuid.uuid4().hex[:3]}"] = what
                pid = list(actors)[-1]
                await _act(rt, ivs, stage, imported_key, what, pid)
                if what in ("kicked", "dropped"):
                    kicked.add(pid)
            elif kind == "control":
                operation, body, headers = what
                hostile.control_call(rt, f"/{operation}", body, headers=headers)
            elif kind == "admin":
                hostile.admin_call(rt, *what)
            else:
                await fuzzer.send(what)
                await fuzzer.send(codec.encode_ping().decode())
                while not isinstance(await next_frame(fuzzer), codec.Pong):
                    pass
            await sender.send(codec.encode_set_state(n % 2 == 0, False).decode())
        seen, muted, last = [], False, state.sequence_number
        while len(seen) < len(steps):
            frame = await next_frame(listener)
            assert isinstance(frame, codec.StageState), frame
            assert frame.sequence_number == last + 1, (last, frame.sequence_number)  # none lost or reordered
            last = frame.sequence_number
            present = {p.id for p in frame.participants}
            # Refused actors never appear; an escalated one may join as the subscriber its token
            # makes it, but is never seen publishing.
            assert not present & {pid for pid, kind in actors.items()
                                  if pid not in kicked and kind != "escalated-publish"}, present
            assert not any(p.is_publishing for p in frame.participants if actors.get(p.id) == "escalated-publish")
            assert not any(p.audio_muted for p in frame.participants if p.id in kicked), frame  # never heard
            if frame.participant(sender_id).audio_muted != muted:  # one of the bystander's changes
                muted = not muted
                seen.append(muted)
        assert seen == [n % 2 == 0 for n in range(len(steps))]
        assert not {p.id for p in frame.participants} & kicked
        for ws in (sender, listener, fuzzer):
            await ws.close()

    run(scenario())
    ivs.delete_stage(arn=stage["arn"])
    hostile.assert_no_traceback(rt)
