"""Test helpers for the IVS Real-Time emulator: fixtures, joining a stage, reading frames with deadlines.

Absence is never checked by sleeping: `assert_next_roster_is` makes a known roster change (a
sentinel participant joins) and requires it to be the very next frame each member receives, with
the next sequence number; `assert_next_is_pong` does the same for one connection with PING.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect

from harness.services.ivsrealtime import codec, tokens
from harness.services.ivsrealtime.emulator import EmulatorProcess

from .chat import wait_closed

_names = itertools.count()


@pytest.fixture(scope="module")
def rt():
    """One emulator process per test module; tests isolate themselves by creating their own stages."""
    with EmulatorProcess() as process:
        yield process


@pytest.fixture(scope="module")
def ivs(rt):
    return rt.boto3_client()


@pytest.fixture
def stage(ivs):
    created = ivs.create_stage(name=f"test-{next(_names)}")["stage"]
    yield created
    try:
        ivs.delete_stage(arn=created["arn"])
    except ivs.exceptions.ResourceNotFoundException:
        pass


def topic_of(stage: dict) -> str:
    return stage["arn"].rsplit("/", 1)[-1]


def token_for(ivs, stage: dict, user_id: str | None = None, **kwargs) -> dict:
    """A CreateParticipantToken answer: token, participantId, …"""
    return ivs.create_participant_token(stageArn=stage["arn"], userId=user_id or f"user-{next(_names)}",
                                        **kwargs)["participantToken"]


def events_url(emulator, stage: dict, *, error_over_ws: bool = True) -> str:
    query = codec.join_query(topic_of(stage), f"trace-{next(_names)}")
    if not error_over_ws:
        query = query.replace("error_over_ws=1&", "")
    return f"{emulator.messaging_endpoint}/?{query}"


async def open_socket(emulator, stage: dict, token: str, **kwargs) -> ClientConnection:
    ws = await connect(events_url(emulator, stage, **kwargs), subprotocols=[token] if token else None,
                       open_timeout=5)
    if token:
        assert ws.subprotocol == token, "the server must echo the token as the selected subprotocol"
    return ws


async def next_frame(ws: ClientConnection, timeout: float = 5.0) -> codec.ServerFrame:
    return codec.parse_server_frame(await asyncio.wait_for(ws.recv(), timeout))


async def join(emulator, ivs, stage: dict, user_id: str | None = None, *, publish: bool = False, **kwargs
               ) -> tuple[ClientConnection, str, codec.StageState]:
    """Join with a fresh token; returns the socket, the participant id and the first STAGE_STATE —
    with `publish`, the publish must be accepted and the STAGE_STATE is the one showing it."""
    token = token_for(ivs, stage, user_id, **kwargs)
    ws = await open_socket(emulator, stage, token["token"])
    first = await next_frame(ws)
    assert isinstance(first, codec.StageState), first
    if publish:
        answer, states = await publish_offer(ws, token)
        assert answer["httpStatusCode"] == 501, answer  # the slot is held; media is not emulated
        first = states[-1]
        assert first.participant(token["participantId"]).is_publishing
    assert first.participant(token["participantId"]) is not None, "a joiner is on its own first roster"
    return ws, token["participantId"], first


async def publish_offer(ws: ClientConnection, token: dict) -> tuple[dict, list[codec.StageState]]:
    """Publish as the SDK does (an SDP_OFFER to the token's whip_url + /publish/<participant id>);
    returns the SDP_ANSWER's payload and the STAGE_STATEs that came before it."""
    whip_url = tokens.unverified_claims(token["token"])["whip_url"]
    await ws.send(codec.encode_sdp_offer("offer-1", "trace", f"{whip_url}/publish/{token['participantId']}",
                                         "v=0").decode())
    states = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), 5)
        frame = json.loads(raw)
        if frame["type"] == codec.SDP_ANSWER:
            assert frame["payload"]["requestId"] == "offer-1"
            return frame["payload"], states
        states.append(codec.parse_server_frame(raw))


async def refused(emulator, stage: dict, token: str, **kwargs) -> tuple[codec.JoinError, int | None]:
    """Open the socket expecting JOIN_ERROR then a close; returns the error and the close code."""
    ws = await open_socket(emulator, stage, token, **kwargs)
    frame = await next_frame(ws)
    assert isinstance(frame, codec.JoinError), frame
    code, _ = await wait_closed(ws)
    return frame, code


async def join_when_free(emulator, stage: dict, token: str, *,
                         timeout: float = 5.0) -> tuple[ClientConnection, codec.StageState]:
    """Join, retrying while refused: a slot frees only once the TCP connection holding it is gone."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ws = await open_socket(emulator, stage, token)
        frame = await next_frame(ws)
        if isinstance(frame, codec.StageState):
            return ws, frame
        assert asyncio.get_running_loop().time() < deadline, f"still refused: {frame}"
        await asyncio.sleep(0.05)


async def assert_next_is_pong(ws: ClientConnection) -> None:
    await ws.send(codec.encode_ping().decode())
    frame = await next_frame(ws)
    assert isinstance(frame, codec.Pong), f"expected only the PONG, got {frame}"


async def assert_next_roster_is(emulator, ivs, stage: dict, members: dict[ClientConnection, int]
                                ) -> ClientConnection:
    """A sentinel joins: every member's next frame must be the STAGE_STATE with the sentinel in it.

    `members` maps each socket to the last sequence number it saw; that number plus one is required
    (nothing else happened in between). Returns the sentinel's socket (still joined).
    """
    sentinel, sentinel_id, first = await join(emulator, ivs, stage, "sentinel")
    for ws, last in members.items():
        frame = await next_frame(ws)
        assert isinstance(frame, codec.StageState), f"expected only the sentinel's join, got {frame}"
        assert frame.sequence_number == last + 1, (frame.sequence_number, last)
        assert frame.participant(sentinel_id) is not None
    return sentinel
