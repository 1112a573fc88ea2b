"""The Hotsock codec, both ends, and its ULIDs: round trips, §1.4 limits, one exception type for garbage."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.services.hotsock import codec, ulid
from harness.services.hotsock.codec import FrameError, Member, Meta

CLIENT_FRAMES = [
    codec.Subscribe("room.1"),
    codec.Subscribe("room.1", "a.b.c"),
    codec.Unsubscribe("room.1"),
    codec.ClientMessage("room.1", "chat", {"s": "u1", "n": 3, "t": 1700000000000000}),
    codec.ClientMessage("room.1", "chat", None),
    codec.UmdUpdate("a.b.c", "presence.x"),
    codec.UmdUpdate("a.b.c"),
    codec.Ping(), codec.Pong(), codec.Heartbeat(),
]

SERVER_FRAMES = [
    codec.Connected("JCnTZd_KoAMCF-A=", "2024-10-13T19:09:23Z", "1FfpK4PHV1B7ZryUSCsN", Meta("u1", {"n": 1})),
    codec.Connected("JCnTZd_KoAMCF-A=", "2024-10-13T19:09:23Z", "1FfpK4PHV1B7ZryUSCsN"),
    codec.Subscribed("room.1", Meta("u1")),
    codec.Subscribed("presence.x", Meta("u1"), (Member("u1"), Member("u2", {"a": 1})), auto_subscribed=True),
    codec.Unsubscribed("room.1", Meta(None)),
    codec.Subscribed("user.123", Meta(None), auto_subscribed=True, alias="user"),
    codec.Unsubscribed("user.123", Meta("u1"), alias="user"),
    codec.Message("01H2BSNHFJXKF2XDFD8KMM36FF", "room.1", "chat", {"x": [1, 2]}, Meta("u1", None)),
    codec.Message("01H2BSNHFJXKF2XDFD8KMM36FF", "room.1", "welcome", "hi", None),
    codec.MemberAdded("presence.x", Member("u2"), (Member("u1"), Member("u2"))),
    codec.MemberRemoved("presence.x", Member("u2"), (Member("u1"),)),
    codec.MemberUpdated("presence.x", Member("u1", {"s": "away"}), (Member("u1", {"s": "away"}),)),
    codec.SERVER_PONG, codec.KEEP_ALIVE, codec.SERVER_PING,
    codec.UmdUpdated(Meta("u1", 5)), codec.UmdUpdated(Meta("u1", 5), "room.1"),
    codec.Error("room.1", codec.NOT_SUBSCRIBED, "not subscribed"),
    codec.Error(None, codec.INVALID_FRAME, "frame is not valid JSON"),
]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda f: type(f).__name__)
def test_client_frames_round_trip(frame):
    assert codec.parse_client_frame(frame.encode()) == frame


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_server_frames_round_trip(frame):
    assert codec.parse_server_frame(frame.encode()) == frame


def test_wire_shapes_match_the_spec():
    assert orjson.loads(codec.ClientMessage("c", "e", 1).encode()) == {"channel": "c", "event": "e", "data": 1}
    assert orjson.loads(codec.SERVER_PONG.encode()) == {"event": "hotsock.pong", "data": "{}"}
    assert orjson.loads(codec.KEEP_ALIVE.encode()) == {"event": "hotsock.keepAlive", "data": {}}
    aliased = orjson.loads(codec.Subscribed("user.123", alias="user").encode())  # the vendor's claims page
    assert aliased == {"event": "hotsock.subscribed", "channel": "user.123", "data": {},
                       "meta": {"channelAlias": "user", "uid": None, "umd": None}}
    server = orjson.loads(codec.Message("01H2BSNHFJXKF2XDFD8KMM36FF", "c", "e", 1).encode())
    assert list(server) == ["id", "event", "channel", "data"], "server-published messages have no meta"
    client = orjson.loads(codec.Message("01H2BSNHFJXKF2XDFD8KMM36FF", "c", "e", 1, Meta("u", None)).encode())
    assert client["meta"] == {"uid": "u", "umd": None}
    error = orjson.loads(codec.Error("c", "NOT_SUBSCRIBED", "m").encode())
    assert error == {"event": "hotsock.error", "channel": "c", "error": {"code": "NOT_SUBSCRIBED", "message": "m"}}
    # The service's own documented examples parse.
    connected = codec.parse_server_frame(
        '{"event":"hotsock.connected","data":{"connectionId":"JCnTZd_KoAMCF-A=","connectionExpiresAt":'
        '"2024-10-13T19:09:23Z","connectionSecret":"1FfpK4PHV1B7ZryUSCsN"},"meta":{"uid":null,"umd":null}}')
    assert connected.connection_id == "JCnTZd_KoAMCF-A=" and connected.meta == Meta(None, None)
    added = codec.parse_server_frame(
        '{"event":"hotsock.memberAdded","channel":"presence.live-chat","data":{"member":{"uid":"Dwight",'
        '"umd":null},"members":[{"uid":"Jim","umd":null},{"uid":"Dwight","umd":null}]}}')
    assert isinstance(added, codec.MemberAdded) and [m.uid for m in added.members] == ["Jim", "Dwight"]


@pytest.mark.parametrize("name, problem", [
    ("c" * 256, None), ("c" * 257, "at most 256"), ("", "non-empty"), ("a b", "whitespace"), ("a\tb", "whitespace"),
    ("a*", "'*'"), ("a#b", "'#'"), ("a,b", "','"), ("presence.x-é", None), ("a\u00a0b", "whitespace"),
])
def test_channel_names(name, problem):
    found = codec.channel_problem(name)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("name, problem", [
    ("e" * 128, None), ("e" * 129, "at most 128"), ("hotsock.x", "may not start"), ("#x", "may not start"),
    ("a*b", "'*'"), ("", "non-empty"), ("chat message", None),
])
def test_event_names(name, problem):
    found = codec.event_problem(name)
    assert (found is None) if problem is None else (problem in found)


def test_data_limit_counts_json_bytes():
    room = "room.1"
    just_fits = "é" * ((codec.DATA_MAX_BYTES - 2) // 2)  # two bytes each, plus two quotes
    assert codec.parse_client_frame(codec.ClientMessage(room, "e", just_fits).encode()).data == just_fits
    with pytest.raises(FrameError) as info:
        codec.parse_client_frame(codec.ClientMessage(room, "e", just_fits + "x").encode())
    assert (info.value.code, info.value.channel) == (codec.DATA_TOO_LARGE, room)


@pytest.mark.parametrize("text, code, channel", [
    ("not json", codec.INVALID_FRAME, None),
    ("[]", codec.INVALID_FRAME, None),
    ('{"channel":"c"}', codec.INVALID_FRAME, "c"),
    ('{"event":7,"channel":"c"}', codec.INVALID_FRAME, "c"),
    ('{"event":"e","channel":7}', codec.INVALID_FRAME, None),
    ('{"event":"hotsock.subscribe"}', codec.INVALID_CHANNEL, None),
    ('{"event":"hotsock.subscribe","channel":"a*"}', codec.INVALID_CHANNEL, "a*"),
    ('{"event":"hotsock.subscribe","channel":"c","data":{"token":5}}', codec.INVALID_SUBSCRIBE_TOKEN, "c"),
    ('{"event":"hotsock.subscribe","channel":"c","data":"tok"}', codec.INVALID_FRAME, "c"),
    ('{"event":"hotsock.umdUpdate","channel":"c"}', codec.INVALID_UMD_TOKEN, "c"),
    ('{"event":"hotsock.channelStorageSet","channel":"c"}', codec.UNSUPPORTED_EVENT, "c"),
    ('{"event":"hotsock.whatever","channel":"c"}', codec.INVALID_EVENT, "c"),
    ('{"event":"#x","channel":"c"}', codec.INVALID_EVENT, "c"),
    ('{"event":"e"}', codec.INVALID_CHANNEL, None),
])
def test_client_frame_errors_carry_the_answering_code(text, code, channel):
    with pytest.raises(FrameError) as info:
        codec.parse_client_frame(text)
    assert (info.value.code, info.value.channel) == (code, channel)


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=10)
KEYS = st.sampled_from(["event", "channel", "data", "id", "meta", "error", "members", "member", "token", "code"])
EVENTS = st.sampled_from(["hotsock.subscribe", "hotsock.unsubscribe", "hotsock.ping", "hotsock.heartbeat",
                          "hotsock.umdUpdate", "hotsock.connected", "hotsock.subscribed", "hotsock.error",
                          "hotsock.memberAdded", "hotsock.pong", "chat", "", "hotsock.x"])
NEAR_FRAMES = st.dictionaries(KEYS, st.one_of(EVENTS, JSON, st.dictionaries(KEYS, st.one_of(EVENTS, JSON))),
                              max_size=5).map(json.dumps)
ANYTHING = st.one_of(NEAR_FRAMES, st.text(max_size=100), st.binary(max_size=100),
                     st.integers(1, 2000).map(lambda depth: "[" * depth + "]" * depth))


@settings(max_examples=200)
@given(ANYTHING)
def test_parsers_raise_only_frame_error(data):
    for parse in (codec.parse_client_frame, codec.parse_server_frame):
        try:
            frame = parse(data)
        except FrameError as exc:
            assert isinstance(exc.code, str) and exc.code
            assert exc.channel is None or isinstance(exc.channel, str)
        else:
            assert frame is not None


def test_ulids_are_monotonic_within_one_millisecond():
    generate = ulid.MonotonicUlid()
    ids = [generate(1_700_000_000_000) for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {ulid.timestamp_ms(i) for i in ids} == {1_700_000_000_000}
    assert generate(1_700_000_000_001) > ids[-1]
    assert generate(1_699_999_999_000) > ids[-1], "a clock stepping back never sorts an id earlier"


def test_ulid_encoding():
    value = ulid.encode(1_686_000_000_000, 12345)
    assert len(value) == 26 and set(value) <= set(ulid.ALPHABET)
    assert ulid.decode(value) == (1_686_000_000_000, 12345)
    assert ulid.decode(value.lower()) == (1_686_000_000_000, 12345)
    # The service's documented example id was issued on 2023-06-07 (20:44:42.866 UTC).
    assert ulid.timestamp_ms("01H2BSNHFJXKF2XDFD8KMM36FF") == 1686170682866
    for bad in ("", "0" * 25, "8" + "0" * 25, "0" * 25 + "U", 26):
        with pytest.raises(ulid.UlidError):
            ulid.decode(bad)
    assert codec.Message("not-a-ulid", "c", "e", None).server_ms is None


def test_ulid_randomness_overflow_borrows_the_next_millisecond():
    generate = ulid.MonotonicUlid(random_bits=lambda bits: (1 << 80) - 2)
    first, second, third = generate(5), generate(5), generate(5)
    assert first < second < third
    assert ulid.decode(second) == (5, (1 << 80) - 1) and ulid.decode(third) == (6, 0)
