"""Attacks that once worked against the emulators, each refused now (issue 22), and the shared
readers of client-controlled input (`harness/services/untrusted.py`, `request_body.py`).

Each test drives a real emulator child over loopback, as a hostile client would, and checks the
child's log for tracebacks: a refusal is an answer, never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from urllib.parse import urlsplit

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.services import untrusted
from harness.services.chime.emulator import EmulatorProcess as ChimeProcess
from harness.services.hotsock import codec as hotsock_codec
from harness.services.hotsock import tokens as hotsock_tokens
from harness.services.hotsock.claims import Claims, channel_rule
from harness.services.ivschat import codec as ivschat_codec
from harness.services.ivsrealtime import codec as rt_codec
from harness.services.ivsrealtime import tokens as rt_tokens

from .chat import ALL_CAPABILITIES, assert_next_is_sentinel, join, next_event, send, wait_closed
from .chime import client as chime_client
from .hostile import assert_no_traceback, raw_request
from .hotsock_chat import assert_next_is_sentinel as assert_next_is_sentinel_hotsock
from .hotsock_chat import (
    expect,
    expect_error,
    hotsock,  # noqa: F401 - the session fixture
    run,
    unique,
)
from .hotsock_chat import join as hotsock_join
from .ivsrealtime import ivs, open_socket, refused, rt, stage, token_for  # noqa: F401 - fixtures
from .ivsrealtime import join as rt_join
from .ivsrealtime import next_frame as rt_next_frame

DEEP = 300  # past orjson's 254-level writer, within its 1,024-level reader


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- the shared readers ---------------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.text(max_size=200))
def test_a_close_reason_fits_a_close_frame_in_bytes_and_keeps_whole_characters(text):
    cut = untrusted.close_reason(text)
    assert len(cut.encode()) <= untrusted.MAX_CLOSE_REASON_BYTES
    clean = text.encode("utf-8", "replace").decode()
    assert clean.startswith(cut)
    if len(clean.encode()) <= untrusted.MAX_CLOSE_REASON_BYTES:
        assert cut == clean


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=2000))
def test_json_deeper_than_the_limit_is_refused_and_shallower_is_read(depth):
    text = nested(depth) if depth else "1"
    if depth > untrusted.MAX_JSON_DEPTH:
        with pytest.raises(untrusted.Refused, match="nested deeper"):
            untrusted.loads(text)
    else:
        assert untrusted.loads(text) is not None
        orjson.dumps(untrusted.loads(text))  # whatever is read can be written again


def test_brackets_inside_strings_do_not_count_as_depth():
    assert untrusted.loads(orjson.dumps({"a": "[" * 1000})) == {"a": "[" * 1000}


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 10**400, 1e300, True, "1", None])
def test_a_token_time_must_be_a_finite_plausible_number(value):
    with pytest.raises(untrusted.Refused):
        untrusted.seconds(value, "exp")


def test_a_token_nested_past_the_limit_is_refused_before_pyjwt_reads_it():
    deep_header = jwt.utils.base64url_encode(("{\"a\":" + nested(5000) + "}").encode()).decode()
    with pytest.raises(untrusted.Refused, match="nested"):
        untrusted.check_jwt_shape(f"{deep_header}.e30.c2ln")
    with pytest.raises(untrusted.Refused, match="longer"):
        untrusted.check_jwt_shape("a" * (untrusted.MAX_TOKEN_CHARS + 1))
    untrusted.check_jwt_shape(jwt.encode({"exp": 1}, "k" * 32, algorithm="HS256"))


def test_regex_claims_match_in_linear_time():
    claims = Claims.from_payload({"exp": time.time() + 60, "scope": "connect",
                                  "channels": {"#regex:^(a+)+$": {"subscribe": True}}})
    started = time.perf_counter()
    assert not claims.channel("a" * 5000 + "!").subscribe  # Python's re: 2^5000 steps
    assert claims.channel("a" * 5000).subscribe
    assert time.perf_counter() - started < 0.5


# -- IVS Chat ---------------------------------------------------------------------------------------------


def test_a_kick_with_a_long_multibyte_reason_closes_the_kicked_user(emulator, ivschat, room):
    reason = "é" * 100  # 100 characters, 200 bytes: more than a close frame carries

    async def scenario():
        moderator = await join(emulator, ivschat, room, "mod", ALL_CAPABILITIES)
        kicked = await join(emulator, ivschat, room, "troll", ["SEND_MESSAGE"])
        await moderator.send(ivschat_codec.encode_disconnect_user("kick", "troll", reason).decode())
        for ws in (moderator, kicked):
            event = await next_event(ws)
            assert event.event_name == ivschat_codec.EVENT_DISCONNECT_USER and event.attributes["Reason"] == reason
        try:
            await kicked.send(ivschat_codec.encode_send_message("after", "still here?").decode())
        except Exception:  # noqa: BLE001 - the close may already have ended the socket
            pass
        code, close_reason = await wait_closed(kicked)
        assert code == 1000 and reason.startswith(close_reason) and len(close_reason.encode()) <= 123
        await assert_next_is_sentinel(moderator)  # the kicked user's message never reached anyone
        await moderator.close()

    run(scenario())
    assert_no_traceback(emulator)


def test_a_kicked_user_is_heard_no_more_even_before_its_close(emulator, ivschat, room):
    """The kick's event waits in a held delivery line, so the close has not happened yet: what the
    kicked user sends meanwhile must not reach anyone (it once went out on resume)."""
    async def scenario():
        listener = await join(emulator, ivschat, room, "listener")
        kicked = await join(emulator, ivschat, room, "kicked", ["SEND_MESSAGE"])
        emulator.admin.pause(room["id"], mode="hold")
        ivschat.disconnect_user(roomIdentifier=room["arn"], userId="kicked", reason="bye")
        await send(kicked, "sent after the kick")
        await kicked.send(ivschat_codec.encode_disconnect_user("k", "listener").decode())
        emulator.admin.pause(room["id"], mode="hold")  # a round trip: the kicked user's frames have arrived
        emulator.admin.resume(room["id"])
        event = await next_event(listener)
        assert event.event_name == ivschat_codec.EVENT_DISCONNECT_USER, event
        assert (await wait_closed(kicked))[0] == 1000
        sender = await join(emulator, ivschat, room, "sender", ["SEND_MESSAGE"])
        await assert_next_is_sentinel(sender, listener)
        for ws in (listener, sender):
            await ws.close()

    run(scenario())


def test_deep_json_from_a_chat_client_is_an_error_frame(emulator, ivschat, room):
    async def scenario():
        ws = await join(emulator, ivschat, room, "deep", ["SEND_MESSAGE"])
        await ws.send('{"Action":' + nested(900) + ',"RequestId":"r1"}')
        error = await next_event(ws)
        assert isinstance(error, ivschat_codec.ChatError) and error.code == 400, error
        assert "nested deeper" in error.message
        await send(ws, "still open")
        assert (await next_event(ws)).content == "still open"
        await ws.close()

    run(scenario())
    assert_no_traceback(emulator)


@pytest.mark.parametrize("headers, status", [
    (b"Content-Encoding: gzip\r\n", 415),
    (b"Authorization: AWS4-HMAC-SHA256 Credential=\xc3\xa9\xff/x\r\n", 400),
])
def test_unreadable_control_plane_requests_are_4xx_with_a_reason(emulator, headers, status):
    answer_status, body = raw_request(emulator.control_endpoint, "/ListRooms", headers=headers)
    assert answer_status == status, body
    assert orjson.loads(body)["message"]
    deep_status, deep_body = raw_request(emulator.control_endpoint, "/ListRooms",
                                         body=('{"a":' + nested(DEEP) + "}").encode())
    assert deep_status == 400 and b"nested deeper" in deep_body
    assert_no_traceback(emulator)


@pytest.mark.parametrize("route, body", [
    ("drop", {"users": [["a"]]}), ("drop", {"seed": {"x": 1}}), ("drop", {"connections": ["1"]}),
    ("drop", {"reason": ["x"]}), ("drop", {"code": True}), ("delay", {"delay_ms": 1e300}),
    ("restart", {"downtime_ms": -1}), ("cost", {"per_delivery_us": "1"}), ("expire", {"fraction": 2}),
])
def test_admin_fault_routes_answer_wrong_types_with_400(emulator, route, body):
    status, answer = raw_request(emulator.control_endpoint, f"/_emulator/faults/{route}", body=orjson.dumps(body))
    assert status == 400 and orjson.loads(answer)["error"], answer
    assert_no_traceback(emulator)


# -- Hotsock ------------------------------------------------------------------------------------------------


def test_deep_client_data_is_an_error_frame_not_a_1011(hotsock):  # noqa: F811
    room = unique("deep")

    async def scenario():
        ws, _ = await hotsock_join(hotsock, {room: channel_rule(publish=["chat"], echo=True)}, subscribe=[room])
        await ws.send('{"event":"chat","channel":"' + room + '","data":' + nested(DEEP) + "}")
        error = await expect_error(ws, hotsock_codec.INVALID_FRAME)
        assert "nested deeper" in error.message
        await ws.send(hotsock_codec.ClientMessage(room, "chat", [[1]]).encode().decode())
        assert (await expect(ws, hotsock_codec.Message)).data == [[1]]
        await ws.close()

    run(scenario())
    assert_no_traceback(hotsock)


def test_a_refused_subscribe_leaves_no_channel_behind(hotsock):  # noqa: F811
    names = [unique("refused") for _ in range(5)]

    async def scenario():
        ws, _ = await hotsock_join(hotsock, {})  # a token that allows nothing
        for name in names:
            await ws.send(hotsock_codec.Subscribe(name).encode().decode())
            await expect_error(ws, hotsock_codec.SUBSCRIBE_PERMISSION_DENIED, name)
            await ws.send(hotsock_codec.ClientMessage(name, "chat", 1).encode().decode())
            await expect_error(ws, hotsock_codec.PUBLISH_PERMISSION_DENIED, name)
        await ws.close()

    run(scenario())
    text = hotsock.admin.metrics_text()
    assert not any(name in text for name in names), "a refused request made a channel and its series"
    assert 'hotsock_errors_total{code="SUBSCRIBE_PERMISSION_DENIED"}' in text  # still counted overall


def test_a_dropped_connection_is_heard_no_more_even_before_its_close(hotsock):  # noqa: F811
    room = unique("dropped")
    rules = {room: channel_rule(publish=["chat"])}

    async def scenario():
        listener, _ = await hotsock_join(hotsock, rules, subscribe=[room])
        dropped, connected = await hotsock_join(hotsock, rules, subscribe=[room])
        chosen = [c["connection_id"] for c in hotsock.admin.connections()
                  if c["hotsock_connection_id"] == connected.connection_id]
        hotsock.admin.drop(connections=chosen, mode="clean")
        for _ in range(3):  # on its way before the close frame comes back
            await dropped.send(hotsock_codec.ClientMessage(room, "chat", "after the drop").encode().decode())
        assert (await wait_closed(dropped))[0] == 1001
        await assert_next_is_sentinel_hotsock(hotsock, room, listener)
        await listener.close()

    run(scenario())


@pytest.mark.parametrize("exp", ["1e999", str(10**400), "NaN", "Infinity"])
def test_a_token_with_an_absurd_exp_is_401_not_500(hotsock, exp):  # noqa: F811
    good = hotsock.mint(hotsock_tokens.connect_claims({"lobby": channel_rule()}, uid="u"))
    header, _, _ = good.split(".")
    payload = jwt.utils.base64url_encode(('{"scope":"connect","exp":' + exp + "}").encode()).decode()
    signing_input = f"{header}.{payload}".encode()
    signature = jwt.utils.base64url_encode(jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
        signing_input, hotsock.hs256_secret())).decode()

    async def scenario():
        with pytest.raises(InvalidStatus) as refusal:
            await connect(hotsock.connect_url(f"{header}.{payload}.{signature}"), open_timeout=5)
        assert refusal.value.response.status_code == 401

    run(scenario())
    assert_no_traceback(hotsock)


@pytest.mark.parametrize("headers, status", [
    (b"Content-Encoding: gzip\r\n", 415),
    (b"Authorization: Bearer \xc3\xa9\xff\r\n", 401),
])
def test_unreadable_publish_requests_are_4xx_with_a_reason(hotsock, headers, status):  # noqa: F811
    if status == 415:
        headers += f"Authorization: Bearer {hotsock.api_key()}\r\n".encode()
    answer_status, body = raw_request(hotsock.info["control_endpoint"], "/publish", headers=headers)
    assert answer_status == status, body
    assert orjson.loads(body)["error"]["message"]
    assert_no_traceback(hotsock)


# -- IVS Real-Time -------------------------------------------------------------------------------------------


def test_a_failed_second_handshake_leaves_the_first_connection_joined(rt, ivs, stage):  # noqa: F811
    async def scenario():
        token = token_for(ivs, stage, "twice")
        first = await open_socket(rt, stage, token["token"])
        assert isinstance(await rt_next_frame(first), rt_codec.StageState)
        url = first.request.path  # the same join, with a WebSocket version the server refuses
        with pytest.raises(InvalidStatus):
            await connect(f"{rt.messaging_endpoint}{url}", subprotocols=[token["token"]], open_timeout=5,
                          additional_headers={"Sec-WebSocket-Version": "12"})
        # The first connection still holds its place: a second join with the token replaces it (one
        # joined at a time), and DisconnectParticipant reaches whoever holds it.
        second = await open_socket(rt, stage, token["token"])
        assert await rt_next_frame(first) == rt_codec.Disconnect(rt_codec.TOKEN_REUSED,
                                                                  "the token was used by another connection")
        state = await rt_next_frame(second)
        assert [p.id for p in state.participants].count(token["participantId"]) == 1
        listed = ivs.list_participants(stageArn=stage["arn"], sessionId=stage["activeSessionId"])["participants"]
        assert [p["participantId"] for p in listed].count(token["participantId"]) == 1
        ivs.disconnect_participant(stageArn=stage["arn"], participantId=token["participantId"])
        assert (await rt_next_frame(second)).code == rt_codec.PARTICIPANT_DISCONNECTED
        assert (await wait_closed(second))[0] == 1000

    run(scenario())
    assert_no_traceback(rt)


def test_one_token_joining_many_times_at_once_is_joined_once(rt, ivs, stage):  # noqa: F811
    async def scenario():
        token = token_for(ivs, stage, "many")
        sockets = await asyncio.gather(*(open_socket(rt, stage, token["token"]) for _ in range(4)))
        for ws in sockets:  # each joined: after all four, every displacement has been sent
            assert isinstance(await rt_next_frame(ws), rt_codec.StageState)
        joined = 0
        for ws in sockets:  # a PING: the one still joined answers PONG; the others were told to go first
            with contextlib.suppress(ConnectionClosed):
                await ws.send(rt_codec.encode_ping().decode())
            while not isinstance(frame := await rt_next_frame(ws), rt_codec.Pong | rt_codec.Disconnect):
                assert isinstance(frame, rt_codec.StageState), frame
            joined += isinstance(frame, rt_codec.Pong)
        assert joined == 1
        listed = ivs.list_participants(stageArn=stage["arn"], sessionId=stage["activeSessionId"],
                                       filterByState="CONNECTED")["participants"]
        assert [p["participantId"] for p in listed] == [token["participantId"]]
        for ws in sockets:
            await ws.close()

    run(scenario())


def test_a_token_not_valid_yet_is_refused(rt, ivs, stage):  # noqa: F811
    key = rt_tokens.generate_key()
    imported = ivs.import_public_key(publicKeyMaterial=rt_tokens.public_key_pem(key))["publicKey"]
    now = time.time()
    claims = rt_tokens.ParticipantClaims(stage["arn"], rt_tokens.new_participant_id(), "", "", now + 3600, now)
    early = jwt.encode({**claims.to_jwt(), "nbf": int(now) + 600}, key, algorithm="ES384")

    async def scenario():
        error, _ = await refused(rt, stage, early)
        assert error.code == rt_codec.TOKEN_INVALID and "nbf" in error.message
        ws, _, _ = await rt_join(rt, ivs, stage)  # the stage goes on
        await ws.close()

    try:
        run(scenario())
    finally:
        ivs.delete_public_key(arn=imported["arn"])
    assert_no_traceback(rt)


def _pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_import_public_key_of_another_curve_or_algorithm_is_a_validation_error(rt, ivs):  # noqa: F811
    p256 = ec.generate_private_key(ec.SECP256R1())
    der = p256.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    unknown_curve = der.replace(bytes.fromhex("2A8648CE3D030107"), bytes.fromhex("2A8648CE3D030163"))  # OID …3.1.99
    unknown_pem = ("-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(unknown_curve).decode()
                   + "-----END PUBLIC KEY-----\n")
    for pem in (unknown_pem, _pem(p256), _pem(ed25519.Ed25519PrivateKey.generate())):
        with pytest.raises(ivs.exceptions.ValidationException):
            ivs.import_public_key(publicKeyMaterial=pem)
    assert_no_traceback(rt)


# -- Chime -----------------------------------------------------------------------------------------------------


def test_create_meeting_with_attendees_that_fails_validation_creates_nothing():
    path = "/meetings?operation=create-attendees"  # raw: boto3 would refuse the bad items itself
    with ChimeProcess("--max-meetings", "1") as emulator:
        for n in range(3):  # each once used up the one meeting the quota allows
            body = {"ClientRequestToken": f"bad-{n}", "MediaRegion": "us-east-1", "ExternalMeetingId": "meeting",
                    "Attendees": [{"Capabilities": {}}]}
            status, answer = raw_request(emulator.control_endpoint, path, body=orjson.dumps(body))
            assert status == 400 and b"ExternalUserId" in answer, answer
        chime = chime_client(emulator)
        made = chime.create_meeting_with_attendees(ClientRequestToken="good", MediaRegion="us-east-1",
                                                   ExternalMeetingId="meeting",
                                                   Attendees=[{"ExternalUserId": "attendee-a"}])
        assert made["Meeting"]["MeetingId"] and len(made["Attendees"]) == 1
        invented = [f"made-up-{n}" for n in range(3)]  # operation names a client invents
        for name in invented:
            assert raw_request(emulator.control_endpoint, f"/meetings?operation={name}")[0] == 400
        metrics = emulator.admin.metrics_text()
        assert not any(name in metrics for name in invented) and 'operation="unknown",status="400"} 3' in metrics
        assert_no_traceback(emulator)


JUNK = [b"GARBAGE\r\n\r\n", b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /x?\xc3\xbf HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]


def test_junk_on_every_port_is_answered_without_a_traceback(emulator, hotsock, rt):  # noqa: F811
    for process in (emulator, hotsock, rt):
        for endpoint in (process.control_endpoint, process.messaging_endpoint):
            url = urlsplit(endpoint)
            for junk in JUNK:
                with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
                    sock.sendall(junk)
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):  # until the server closes: it has handled the junk
                        pass
        assert_no_traceback(process)
