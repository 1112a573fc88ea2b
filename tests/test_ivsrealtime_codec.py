"""The IVS Real-Time codec and participant tokens, sans-I/O: round trips, the SDK's frame shapes, and
that parsing raises nothing but FrameError / TokenError on what a peer sends."""

from __future__ import annotations

import json
import time

import jwt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.services.ivsrealtime import codec, tokens

STAGE_ARN = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdEf123456"


def test_stage_state_round_trip_in_the_sdks_shape():
    alice = codec.Participant("p1", "alice", {"k": "v"}, is_publishing=True)
    bob = codec.Participant("p2", "bob")
    state = codec.StageState(7, (alice, bob), (codec.DisconnectedParticipant("p3", "carol"),), server_ns=123)
    raw = orjson.loads(codec.encode_stage_state(state))
    assert raw["type"] == "STAGE_STATE"
    assert raw["payload"]["sequenceNumber"] == 7
    # The fields the SDK's roster diff compares: isPublishing, id, audioMuted, userId, videoStopped, attributes.
    assert raw["payload"]["participants"][0] == {"id": "p1", "userId": "alice", "attributes": {"k": "v"},
                                                 "isPublishing": True, "audioMuted": False, "videoStopped": False}
    assert raw["payload"]["disconnected"] == [{"id": "p3", "userId": "carol", "status": "KICKED"}]
    assert codec.parse_server_frame(codec.encode_stage_state(state)) == state
    namespaced = json.dumps({"type": "aws:ivs:STAGE_STATE", "payload": {"sequenceNumber": 2}})
    assert codec.parse_server_frame(namespaced) == codec.StageState(2, ())


def test_server_frames_round_trip():
    error = codec.JoinError(codec.STAGE_AT_CAPACITY, "full", codec.NOT_AUTHORIZED, True)
    assert codec.parse_server_frame(codec.encode_join_error(error)) == error
    disconnect = codec.Disconnect(codec.PARTICIPANT_DISCONNECTED, "bye")
    assert codec.parse_server_frame(codec.encode_disconnect(disconnect)) == disconnect
    assert codec.parse_server_frame(codec.encode_pong()) == codec.Pong()
    other = codec.parse_server_frame('{"type":"aws:ivs:SUBSCRIBER_COUNT","payload":{"count":3}}')
    assert other == codec.OtherServerFrame("aws:ivs:SUBSCRIBER_COUNT", {"count": 3})


def test_client_frames_match_what_the_sdk_sends():
    assert orjson.loads(codec.encode_ping()) == {"type": "PING"}
    assert codec.parse_client_frame(codec.encode_ping()) == codec.Ping()
    assert orjson.loads(codec.encode_set_state(True, False)) == {"audioMuted": True, "type": "SET_STATE",
                                                                 "version": "0", "videoStopped": False}
    assert codec.parse_client_frame(codec.encode_set_state(True, False)) == codec.SetState(True, False)
    offer = '{"type":"aws:ivs:SDP_OFFER","payload":{"whipUrl":"http://x/publish/p","requestId":"r1","content":"v=0"}}'
    assert codec.parse_client_frame(offer) == codec.SdpOffer("r1", "http://x/publish/p")
    assert codec.parse_client_frame('{"type":"NOPE"}') == codec.OtherClientFrame("NOPE")
    assert codec.join_query("AbCd", "t-1") == "error_over_ws=1&topic=AbCd/publishers&traceid=t-1"
    sent = codec.encode_sdp_offer("r2", "t-2", "http://x/whip/publish/p", "v=0")
    assert codec.parse_client_frame(sent) == codec.SdpOffer("r2", "http://x/whip/publish/p")
    answer = json.loads(codec.encode_sdp_answer("r2", 403, "full", codec.PUBLISH_STAGE_AT_CAPACITY))
    assert answer["payload"]["httpStatusCode"] == 403 and answer["payload"]["errorCode"] == 2005


@pytest.mark.parametrize("raw", ["", "nope", "[]", "{}", '{"type":1}', '{"type":"STAGE_STATE"}',
                                 '{"type":"STAGE_STATE","payload":{"sequenceNumber":"1"}}',
                                 '{"type":"STAGE_STATE","payload":{"sequenceNumber":1,"participants":[1]}}',
                                 '{"type":"STAGE_STATE","payload":{"sequenceNumber":true}}',
                                 '{"type":"aws:ivs:JOIN_ERROR","payload":{"code":5}}'])
def test_unreadable_server_frames_raise_frame_error(raw):
    with pytest.raises(codec.FrameError):
        codec.parse_server_frame(raw)


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=10)
TYPES = st.sampled_from(["STAGE_STATE", "aws:ivs:STAGE_STATE", "PONG", "PING", "SET_STATE", "aws:ivs:JOIN_ERROR",
                         "aws:ivs:DISCONNECT", "aws:ivs:SDP_OFFER", "aws:ivs:EXCHANGE_TOKEN", "X"])
FRAMES = st.one_of(st.binary(max_size=64), st.text(max_size=64),
                   st.builds(lambda t, p: json.dumps({"type": t, "payload": p}), TYPES, JSON),
                   st.builds(lambda t, p: json.dumps({"type": t, **p}), TYPES,
                             st.dictionaries(st.sampled_from(["audioMuted", "videoStopped", "payload"]), JSON)))


@settings(max_examples=300, deadline=None)
@given(raw=FRAMES)
def test_parsers_raise_only_frame_error(raw):
    for parse in (codec.parse_server_frame, codec.parse_client_frame):
        try:
            parse(raw)
        except codec.FrameError:
            pass


# -- tokens ------------------------------------------------------------------------------------------------


def test_self_signed_token_carries_the_claims_the_sdk_reads():
    key = tokens.generate_key()
    token, claims = tokens.self_signed_token(key, STAGE_ARN, events_url="ws://127.0.0.1:1", whip_url="http://x/whip",
                                             now=1000.0, duration_s=60, user_id="u", capabilities=["SUBSCRIBE"],
                                             attributes={"a": "b"})
    assert jwt.get_unverified_header(token)["alg"] == "ES384"
    raw = tokens.unverified_claims(token)
    assert raw == {"resource": STAGE_ARN, "jti": claims.participant_id, "topic": "AbCdEf123456",
                   "events_url": "ws://127.0.0.1:1", "whip_url": "http://x/whip", "user_id": "u",
                   "attributes": {"a": "b"}, "capabilities": {"allow_publish": False, "allow_subscribe": True},
                   "version": "1.0", "iat": 1000, "exp": 1060}
    assert tokens.verify_participant_token(token, [key.public_key()], now=1059.9) == claims


def test_verification_failures_have_the_join_error_codes():
    key, other = tokens.generate_key(), tokens.generate_key()
    token, _ = tokens.self_signed_token(key, STAGE_ARN, events_url="", whip_url="", now=time.time(), duration_s=5)
    cases = {
        "TOKEN_MISSING": ("", [key.public_key()], time.time()),
        "TOKEN_INVALID": ("a.b.c", [key.public_key()], time.time()),
        "TOKEN_INVALID_SIGNATURE": (token, [other.public_key()], time.time()),
        "TOKEN_EXPIRED": (token, [other.public_key(), key.public_key()], time.time() + 5),
    }
    for code, (candidate, keys, now) in cases.items():
        with pytest.raises(tokens.TokenError) as caught:
            tokens.verify_participant_token(candidate, keys, now)
        assert caught.value.code == code
        assert candidate == "" or candidate not in str(caught.value), "errors never repeat the token"
    hs256 = jwt.encode({"resource": STAGE_ARN, "jti": "x", "exp": time.time() + 60}, "s" * 48, algorithm="HS256")
    with pytest.raises(tokens.TokenError) as caught:
        tokens.verify_participant_token(hs256, [key.public_key()], time.time())
    assert caught.value.code == "TOKEN_INVALID"


FUZZ_KEY = tokens.generate_key()


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.text(max_size=300), st.lists(st.text(max_size=80), min_size=3, max_size=3).map(".".join)))
def test_any_string_as_a_token_raises_only_token_error(raw):
    try:
        tokens.verify_participant_token(raw, [FUZZ_KEY.public_key()], time.time())
    except tokens.TokenError:
        pass


def test_only_p384_public_keys_load():
    assert tokens.load_public_key(tokens.public_key_pem(tokens.generate_key()))
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1())
    for bad in (tokens.public_key_pem(p256), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "x"):
        with pytest.raises(ValueError):
            tokens.load_public_key(bad)
