"""The Hotsock client protocol as a unit: frames in → exact neutral events out (no socket, no clock),
plus its token source and hotsock-js reconnect policy."""

from __future__ import annotations

import random
import time

import jwt
import orjson
import pytest

from harness.services.base import (
    FOREIGN,
    READY,
    Acked,
    Category,
    Delivered,
    Joined,
    Left,
    Measured,
    MustReconnect,
    Observed,
    Origin,
    ProtocolError,
    Rejected,
    Request,
    ServiceEvent,
    TokenWanted,
    UserSpec,
)
from harness.services.hotsock import codec, ulid
from harness.services.hotsock.claims import Claims
from harness.services.hotsock.client import (
    NO_PUBLISH,
    NO_SUBSCRIBE,
    PUBLISH,
    SUBSCRIBE,
    HotsockProtocol,
    server_time_ns,
    ulid_ms,
)
from harness.services.hotsock.emulator.auth import TokenInvalid, Verifier, secret_slot
from harness.services.hotsock.reconnect import HotsockJsPolicy
from harness.services.hotsock.token_provider import SigningKeyTokens, user_claims
from harness.services.tokens import TokenFetchFailed

ROOM = "chatload-t-0"
PRESENCE = "presence.chatload-t-0"
T0 = 1_800_000_000_000_000_000  # ns
MS = 1_800_000_000_123  # a millisecond a little after T0


def user(room: str = ROOM, sender: str = "me", capabilities=(SUBSCRIBE, PUBLISH), attributes=None) -> UserSpec:
    return UserSpec(sender_id=sender, user_id=f"user-{sender}", room=room, capabilities=capabilities,
                    attributes=attributes)


def frame(value) -> bytes:
    return orjson.dumps(value)


def message(sender: str, seq: int, intended_us: int, *, ms: int = MS, channel: str = ROOM, **extra) -> bytes:
    data = {"cl.s": sender, "cl.n": seq, "cl.t": intended_us, "text": "hi", **extra}
    return codec.Message(ulid.encode(ms, 7), channel, "chat", data).encode()


def connected() -> bytes:
    return codec.Connected("AbCdEfGhIjKlMnO=", "2026-01-01T00:00:00Z", "s3cr3t").encode()


def ready(protocol: HotsockProtocol, at_ns: int = T0) -> Request:
    """hotsock.connected → READY, and the protocol's own subscribe queued; returns that request."""
    assert protocol.receive(connected(), True, at_ns) is READY
    assert protocol.outbox == [codec.Subscribe(protocol.channel).encode()]
    protocol.outbox.clear()
    return protocol.pending[("subscribe", protocol.channel)]


def subscribed(protocol: HotsockProtocol, at_ns: int, members=None) -> tuple:
    return protocol.receive(codec.Subscribed(protocol.channel, codec.Meta(protocol.user.user_id), members).encode(),
                            True, at_ns)


def send(protocol: HotsockProtocol, seq: int, intended_ns: int) -> tuple[Request, dict]:
    request = Request("send", seq, intended_ns, intended_ns)
    return request, orjson.loads(protocol.send_message(request, "hello", None))


# -- connect, subscribe, deliveries ------------------------------------------------------------------------


def test_connected_is_ready_and_subscribes_the_users_channel_once():
    protocol = HotsockProtocol(user())
    request = ready(protocol)
    assert request.kind == "subscribe" and request.intended_ns == T0
    assert protocol.receive(connected(), True, T0 + 5) == ServiceEvent("connected_again")
    assert protocol.outbox == []


def test_subscribed_is_the_join_its_ack_and_its_latency():
    protocol = HotsockProtocol(user())
    request = ready(protocol)
    events = subscribed(protocol, T0 + 2_500_000)
    assert events == (Joined(ROOM), Acked(request), Measured("subscribe", 2_500))
    assert protocol.pending == {}


def test_a_message_from_another_member_is_one_delivery_with_the_server_time_of_its_ulid():
    protocol = HotsockProtocol(user())
    ready(protocol)
    subscribed(protocol, T0)
    intended_us = MS * 1000 - 400  # intended 0.4 ms before its ULID's millisecond began
    assert protocol.receive(message("other", 3, intended_us), True, T0) == Delivered("other", 3, intended_us,
                                                                                     MS * 1_000_000)
    late = MS * 1000 + 300  # intended within that millisecond: the later bound wins
    assert protocol.receive(message("other", 4, late), True, T0) == Delivered("other", 4, late, late * 1000)


def test_the_own_echo_acks_the_send_and_is_also_a_delivery():
    protocol = HotsockProtocol(user())
    ready(protocol)
    subscribed(protocol, T0)
    request, sent = send(protocol, 1, MS * 1_000_000)
    assert sent == {"channel": ROOM, "event": "chat",
                    "data": {"cl.s": "me", "cl.n": 1, "cl.t": MS * 1000, "text": "hello"}}
    echo = protocol.receive(message("me", 1, MS * 1000), True, T0)
    assert echo == Acked(request, MS * 1_000_000, Delivered("me", 1, MS * 1000, MS * 1_000_000))
    assert protocol.pending == {}
    # The same copy again is a plain delivery (the ledger counts the duplicate).
    assert protocol.receive(message("me", 1, MS * 1000), True, T0) == Delivered("me", 1, MS * 1000, MS * 1_000_000)


def test_messages_without_chatload_identity_are_foreign_and_unreadable_identity_is_a_protocol_error():
    protocol = HotsockProtocol(user())
    ready(protocol)
    subscribed(protocol, T0)
    for data in (None, "text", [1], {"text": "hi"}):
        raw = codec.Message(ulid.encode(MS, 1), ROOM, "chat", data).encode()
        assert protocol.receive(raw, True, T0) is FOREIGN
    for bad in ({"cl.s": 5, "cl.n": 1, "cl.t": 1}, {"cl.s": "x", "cl.n": "1", "cl.t": 1},
                {"cl.s": "x", "cl.n": 1}):
        raw = codec.Message(ulid.encode(MS, 1), ROOM, "chat", bad).encode()
        assert isinstance(protocol.receive(raw, True, T0), ProtocolError)


def test_a_message_id_that_is_no_ulid_leaves_the_server_time_unknown():
    protocol = HotsockProtocol(user())
    ready(protocol)
    subscribed(protocol, T0)
    raw = codec.Message("not-a-ulid", ROOM, "chat", {"cl.s": "o", "cl.n": 1, "cl.t": 5}).encode()
    assert protocol.receive(raw, True, T0) == Delivered("o", 1, 5, None)


def test_what_should_never_arrive_is_counted_beside_the_delivery():
    outsider = HotsockProtocol(user())
    ready(outsider)  # subscribing: an early message is fine
    assert outsider.receive(message("o", 1, 5), True, T0) == Delivered("o", 1, 5, MS * 1_000_000)
    outsider.receive(codec.Error(ROOM, codec.SUBSCRIBE_PERMISSION_DENIED).encode(), True, T0)
    assert outsider.receive(message("o", 2, 5), True, T0) == (Delivered("o", 2, 5, MS * 1_000_000),
                                                                ServiceEvent("delivered_unsubscribed"))
    member = HotsockProtocol(user())
    ready(member)
    subscribed(member, T0)
    assert member.receive(message("muted", 1, 5, **{"cl.f": 1}), True, T0) == (
        Delivered("muted", 1, 5, MS * 1_000_000), ServiceEvent("forbidden_delivered"))


def test_a_forbidden_user_marks_what_it_sends():
    protocol = HotsockProtocol(user(capabilities=(SUBSCRIBE, NO_PUBLISH)))
    _, sent = send(protocol, 1, T0)
    assert sent["data"]["cl.f"] == 1


# -- errors: no request id, matched by channel and kind -----------------------------------------------------


def test_errors_are_matched_to_the_oldest_pending_request_of_their_kind_on_their_channel():
    protocol = HotsockProtocol(user(capabilities=(SUBSCRIBE, NO_PUBLISH)))
    subscribe = ready(protocol)
    first, _ = send(protocol, 1, T0 + 1)
    second, _ = send(protocol, 2, T0 + 2)
    denied = codec.Error(ROOM, codec.PUBLISH_PERMISSION_DENIED, "no publish").encode()
    # A send error skips the older subscribe and goes to the oldest send.
    assert protocol.receive(denied, True, T0) == Rejected(first, Category.FORBIDDEN, "PUBLISH_PERMISSION_DENIED",
                                                          "no publish")
    assert protocol.receive(denied, True, T0) == Rejected(second, Category.FORBIDDEN, "PUBLISH_PERMISSION_DENIED",
                                                          "no publish")
    refused = codec.Error(ROOM, codec.SUBSCRIBE_PERMISSION_DENIED).encode()
    assert protocol.receive(refused, True, T0) == (Rejected(subscribe, Category.FORBIDDEN,
                                                            "SUBSCRIBE_PERMISSION_DENIED", ""),
                                                   ServiceEvent("subscribe_rejected.forbidden"))
    # Nothing left on the channel: untied.
    assert protocol.receive(denied, True, T0) == Rejected(None, Category.FORBIDDEN, "PUBLISH_PERMISSION_DENIED",
                                                          "no publish")
    assert protocol.pending == {}


def test_an_error_of_another_kind_falls_back_to_the_oldest_request_on_its_channel_and_others_are_untied():
    protocol = HotsockProtocol(user())
    subscribe = ready(protocol)
    too_large = codec.Error(ROOM, codec.DATA_TOO_LARGE).encode()
    assert protocol.receive(too_large, True, T0) == (Rejected(subscribe, Category.TOO_LARGE, "DATA_TOO_LARGE", ""),
                                                     ServiceEvent("subscribe_rejected.too_large"))
    elsewhere = codec.Error("elsewhere", codec.PUBLISH_PERMISSION_DENIED).encode()
    assert protocol.receive(elsewhere, True, T0).request is None
    no_channel = codec.Error(None, codec.INVALID_FRAME, "?").encode()
    assert protocol.receive(no_channel, True, T0) == Rejected(None, Category.INVALID, "INVALID_FRAME", "?")
    unknown = codec.Error(ROOM, "SOMETHING_NEW").encode()
    assert protocol.receive(unknown, True, T0) == Rejected(None, Category.INVALID, "SOMETHING_NEW", "")


@pytest.mark.parametrize("code, category", [
    (codec.SUBSCRIBE_PERMISSION_DENIED, Category.FORBIDDEN), (codec.INVALID_SUBSCRIBE_TOKEN, Category.UNAUTHORIZED),
    (codec.PRESENCE_CHANNEL_CAPACITY_REACHED, Category.TOO_LARGE), (codec.ALREADY_SUBSCRIBED, Category.INVALID),
    (codec.PRESENCE_CHANNEL_USER_ID_REQUIRED, Category.FORBIDDEN)])
def test_subscribe_errors_answer_the_subscribe_by_neutral_category(code, category):
    protocol = HotsockProtocol(user())
    subscribe = ready(protocol)
    events = protocol.receive(codec.Error(ROOM, code).encode(), True, T0)
    assert events == (Rejected(subscribe, category, code, ""), ServiceEvent(f"subscribe_rejected.{category}"))


# -- unreadable frames, server pings, other events, closes -------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"event": 5}', b'{"event": "chat", "channel": "c"}',
                                 b'{"event": "hotsock.error", "channel": "c", "error": {}}',
                                 b'{"event": "hotsock.memberAdded", "channel": "c", "data": {"member": {}}}',
                                 b'{"event": "hotsock.connected", "data": {}}', "é".encode()])
def test_unreadable_frames_are_protocol_errors_never_exceptions(raw):
    protocol = HotsockProtocol(user())
    assert isinstance(protocol.receive(raw, True, T0), ProtocolError)


def test_binary_frames_are_protocol_errors():
    assert HotsockProtocol(user()).receive(connected(), False, T0) == ProtocolError("binary frame from server")


def test_server_ping_is_answered_and_other_server_events_are_counted():
    protocol = HotsockProtocol(user())
    assert protocol.receive(codec.SERVER_PING.encode(), True, T0) == ServiceEvent("ping")
    assert protocol.outbox == [b'{"event":"hotsock.pong"}']
    assert protocol.receive(codec.KEEP_ALIVE.encode(), True, T0) == ServiceEvent("keepAlive")
    assert protocol.receive(codec.SERVER_PONG.encode(), True, T0) is None
    assert protocol.receive(frame({"event": "hotsock.channelStorageUpdated", "channel": ROOM, "data": {}}),
                            True, T0) == ServiceEvent("hotsock.channelStorageUpdated")


def test_going_away_means_come_back_with_a_fresh_token_and_other_closes_mean_nothing():
    protocol = HotsockProtocol(user())
    assert protocol.closed(1001, "Going away", True) == MustReconnect("going away")
    assert protocol.closed(1006, "", False) is None
    assert protocol.closed(1000, "", True) is None


def test_keepalive_is_a_heartbeat_when_the_token_asks_for_one_else_nothing_as_hotsock_js():
    plain = HotsockProtocol(user())
    assert plain.keepalive_s is None, "hotsock-js never sends hotsock.ping by itself"
    beating = HotsockProtocol(user(attributes={"heartbeatTimeout": "10"}))
    assert beating.keepalive() == b'{"event":"hotsock.heartbeat"}' and beating.keepalive_s == pytest.approx(9.0)


# -- presence ------------------------------------------------------------------------------------------------


def members(*uids: str) -> tuple[codec.Member, ...]:
    return tuple(codec.Member(uid) for uid in uids)


def test_presence_subscribe_is_an_origin_and_member_events_are_observations_checked_against_the_roster():
    protocol = HotsockProtocol(user(PRESENCE, "me"))
    request = ready(protocol)
    events = subscribed(protocol, T0 + 1_000_000, members("user-a", "user-me"))
    assert events == (Joined(PRESENCE), Acked(request), Measured("subscribe", 1_000),
                      Origin("presence_join", "user-me", T0, PRESENCE))
    added = codec.MemberAdded(PRESENCE, codec.Member("user-b"), members("user-a", "user-me", "user-b")).encode()
    assert protocol.receive(added, True, T0) == (ServiceEvent("memberAdded"),
                                                 Observed("presence_join", "user-b", PRESENCE))
    removed = codec.MemberRemoved(PRESENCE, codec.Member("user-a"), members("user-me", "user-b")).encode()
    assert protocol.receive(removed, True, T0) == (ServiceEvent("memberRemoved"),
                                                   Observed("presence_leave", "user-a", PRESENCE))
    # A list that disagrees with the changes so far is a roster mismatch, and becomes the roster.
    wrong = codec.MemberAdded(PRESENCE, codec.Member("user-c"), members("user-me", "user-c")).encode()
    assert protocol.receive(wrong, True, T0) == (ServiceEvent("memberAdded"),
                                                 Observed("presence_join", "user-c", PRESENCE),
                                                 ServiceEvent("roster_mismatch"))
    assert protocol.roster == {"user-me", "user-c"}


def test_a_roster_without_oneself_is_a_mismatch():
    protocol = HotsockProtocol(user(PRESENCE, "me"))
    ready(protocol)
    assert ServiceEvent("roster_mismatch") in subscribed(protocol, T0, members("user-a"))


def test_leaving_and_coming_back_on_request():
    protocol = HotsockProtocol(user(PRESENCE, "me"))
    ready(protocol)
    subscribed(protocol, T0, members("user-me"))
    leave = Request("unsubscribe", 0, T0 + 10, T0 + 10)
    assert protocol.encode_request("unsubscribe", leave) == codec.Unsubscribe(PRESENCE).encode()
    left = protocol.receive(codec.Unsubscribed(PRESENCE, codec.Meta("user-me")).encode(), True, T0 + 20)
    assert left == (Left(PRESENCE), Acked(leave), Origin("presence_leave", "user-me", T0 + 10, PRESENCE))
    back = Request("subscribe", 0, T0 + 30, T0 + 30)
    assert protocol.encode_request("subscribe", back) == codec.Subscribe(PRESENCE).encode()
    assert subscribed(protocol, T0 + 40, members("user-me")) == (
        Joined(PRESENCE), Acked(back), Measured("subscribe", 0), Origin("presence_join", "user-me", T0 + 30,
                                                                          PRESENCE))
    with pytest.raises(ValueError):
        protocol.encode_request("delete", back)


# -- ULIDs on the hot path -----------------------------------------------------------------------------------


def test_the_fast_ulid_time_agrees_with_the_full_decoder():
    rng = random.Random(5)
    for _ in range(500):
        ms, bits = rng.randrange(1 << 48), rng.randrange(1 << 80)
        text = ulid.encode(ms, bits)
        assert ulid_ms(text) == ulid.timestamp_ms(text) == ms
        assert ulid_ms(text.lower()) == ms
    for bad in ("", "8" + "0" * 25, "0" * 25, "0" * 27, "0" * 25 + "U", "0I" + "0" * 24, "_" * 26, " " + "0" * 25):
        assert ulid_ms(bad) is None, bad
    assert server_time_ns("nope", 5) is None


# -- tokens and the reconnect policy -------------------------------------------------------------------------


def test_tokens_grant_exactly_the_users_capabilities(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"k" * 64 + b"\n")
    provider = SigningKeyTokens({"signing_key": str(secret), "key_id": "kid-1", "audience": "app",
                                 "issuer": "backend"})
    verifier = Verifier([secret_slot(b"k" * 64, "kid-1")], audience="app", issuer="backend")

    def claims_of(spec: UserSpec) -> Claims:
        return verifier.verify(provider.fetch(spec), "connect", time.time())

    chatter = claims_of(user(attributes={"heartbeatTimeout": "30"}))
    grant = chatter.channel(ROOM)
    assert grant.subscribe and grant.message("chat").allows(subscribed=True) and grant.message("chat").echo
    assert chatter.uid == "user-me" and chatter.heartbeat_timeout_s == 30
    assert not chatter.channel("other").subscribe, "only the user's own channel"
    intruder = claims_of(user(capabilities=(NO_SUBSCRIBE, NO_PUBLISH))).channel(ROOM)
    assert not intruder.subscribe and intruder.message("chat").publish is False
    assert not intruder.message("chat").allows(subscribed=True)
    subscriber = claims_of(user(capabilities=(SUBSCRIBE,))).channel(ROOM)
    assert subscriber.subscribe and not subscriber.message("chat").allows(subscribed=True)
    token_one, token_two = provider.fetch(user()), provider.fetch(user())
    assert jwt.get_unverified_header(token_one)["kid"] == "kid-1"
    with pytest.raises(TokenInvalid):
        Verifier([secret_slot(b"other" * 13)]).verify(token_one, "connect", time.time())
    assert token_one.count(".") == 2 and token_two.count(".") == 2


def test_an_unreadable_key_fails_the_fetch_naming_the_source_never_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOAD_TEST_EMPTY", "")
    for source in (str(tmp_path / "missing"), "env:CHATLOAD_TEST_EMPTY", ""):
        with pytest.raises(TokenFetchFailed) as failure:
            SigningKeyTokens({"signing_key": source}).fetch(user())
        assert f"signing_key {source}" in str(failure.value) or "no signing_key" in str(failure.value)
    secret = tmp_path / "hs"
    secret.write_bytes(b"sEcReT" * 10)
    with pytest.raises(TokenFetchFailed) as failure:
        SigningKeyTokens({"signing_key": str(secret), "algorithm": "RS256"}).fetch(user())
    assert "sEcReT" not in str(failure.value) and str(secret) in str(failure.value)


def test_hotsock_js_tries_at_once_then_waits_one_second_then_grows_by_half_plus_jitter_up_to_twenty():
    policy = HotsockJsPolicy(rng=random.Random(1))
    assert policy.after_failure(1) == 0.0, "a failed first connect starts the loop: its first try at once"
    delays = [policy.after_failure(attempt) for attempt in range(2, 16)]
    assert delays[0] == 1.0
    for before, after in zip(delays, delays[1:], strict=False):
        assert after == 20.0 or before * 1.5 <= after <= before * 1.5 + 1.0
    assert delays[-1] == 20.0 and None not in delays
    assert policy.after_drop() == 0.0, "after a drop the first try is at once"
    assert policy.after_failure(1) == 1.0 and 1.5 <= policy.after_failure(2) <= 2.5
    assert policy.after_unready(3) == 0.0, "it had opened: a new loop, at once"
    assert policy.after_failure(4) == 1.0
    assert policy.reconnect_after(1000, True) and policy.reconnect_after(1006, False)


def test_an_aliased_channel_is_named_by_its_alias_on_the_wire_and_read_back_from_the_real_channel():
    protocol = HotsockProtocol(user(attributes={"alias": "room"}))
    protocol.receive(connected(), True, T0)
    assert orjson.loads(protocol.outbox.pop()) == {"event": "hotsock.subscribe", "channel": "room"}
    events = protocol.receive(codec.Subscribed(ROOM, alias="room").encode(), True, T0 + 1000)
    assert Joined(ROOM) in events and ServiceEvent("alias_missing") not in events
    sent = protocol.send_message(Request("send", 1, T0, T0), "hi", None)
    assert orjson.loads(sent)["channel"] == "room"
    echo = protocol.receive(message("me", 1, T0 // 1000), True, T0 + 2000)  # the server names the real channel
    assert isinstance(echo, Acked)
    error = codec.Error("room", codec.NOT_SUBSCRIBED).encode()
    protocol.encode_request("unsubscribe", Request("unsubscribe", 0, T0, T0))
    rejected = protocol.receive(error, True, T0 + 3000)
    assert rejected.request is not None and rejected.request.kind == "unsubscribe", "an error naming the alias is the channel's"
    lost = HotsockProtocol(user(attributes={"alias": "room"}))
    lost.receive(connected(), True, T0)
    assert ServiceEvent("alias_missing") in lost.receive(codec.Subscribed(ROOM).encode(), True, T0 + 1000)
    claims = Claims.from_payload(user_claims(user(attributes={"alias": "room"})))  # what its token grants
    assert claims.real_channel("room") == ROOM and claims.channel(ROOM).subscribe


def test_a_send_accepted_in_its_intended_millisecond_is_never_timed_at_or_before_its_intended_time():
    # The ULID names only the millisecond; the client raises it to the intended time, so an echo in
    # the intended millisecond says "accepted at the intended time": to_server 0, which the histogram
    # clamps as impossible (histogram_clamped_low.to_server in Hotsock runs). Nothing is accepted
    # before it left: the session takes the later of that and the send.
    from harness.services.base import accepted_after

    protocol = HotsockProtocol(user())
    ready(protocol)
    subscribed(protocol, T0)
    intended_ns = MS * 1_000_000 + 400_000  # 0.4 ms into the millisecond the server will name
    request = Request("send", 1, intended_ns, intended_ns + 35_000)  # it left 35 µs late
    protocol.send_message(request, "hello", None)
    echo = protocol.receive(message("me", 1, intended_ns // 1000), True, intended_ns + 900_000)
    assert echo.server_ns == intended_ns, "the ULID's millisecond, raised to the intended time"
    to_server_us = (accepted_after(echo.server_ns, request.sent_ns) - request.intended_ns) // 1000
    assert to_server_us == 35


def test_an_aliased_channel_asks_its_subscribe_token_and_subscribes_by_its_alias():
    # hotsock-js hands subscribeTokenFn the name it subscribes by, and sends that name with the token.
    protocol = HotsockProtocol(user(attributes={"alias": "room"}))
    protocol.token_purposes = ("subscribe",)
    ready_event, wanted = protocol.receive(connected(), True, T0)
    assert ready_event is READY and protocol.outbox == []
    assert (wanted.purpose, wanted.scope, wanted.connection_id) == ("subscribe", "room", "AbCdEfGhIjKlMnO=")
    protocol.token_arrived(wanted, "tok")
    assert orjson.loads(protocol.outbox.pop()) == {"event": "hotsock.subscribe", "channel": "room",
                                                   "data": {"token": "tok"}}
    events = protocol.receive(codec.Subscribed(ROOM, alias="room").encode(), True, T0 + 1000)
    assert Joined(ROOM) in events and any(isinstance(event, Acked) for event in events)


def test_a_subscribe_again_asks_for_its_subscribe_token_as_the_first_did():
    # A presence member that leaves and joins again: hotsock-js calls subscribeTokenFn on every
    # subscribe, so the re-subscribe waits for a fresh token too, and goes out with it.
    protocol = HotsockProtocol(user())
    protocol.token_purposes = ("subscribe",)
    _, wanted = protocol.receive(connected(), True, T0)
    protocol.token_arrived(wanted, "first")
    protocol.outbox.clear()
    protocol.receive(codec.Subscribed(ROOM).encode(), True, T0 + 1000)
    protocol.encode_request("unsubscribe", Request("unsubscribe", 0, T0, T0))
    protocol.receive(codec.Unsubscribed(ROOM).encode(), True, T0 + 2000)
    again = protocol.encode_request("subscribe", Request("subscribe", 0, T0 + 3000, T0 + 3000))
    assert isinstance(again, TokenWanted) and (again.purpose, again.scope) == ("subscribe", ROOM), again
    assert again.connection_id == wanted.connection_id
    protocol.token_arrived(again, "second")
    assert orjson.loads(protocol.outbox.pop()) == {"event": "hotsock.subscribe", "channel": ROOM,
                                                   "data": {"token": "second"}}
    assert any(isinstance(event, Acked) for event in protocol.receive(codec.Subscribed(ROOM).encode(), True, T0 + 4000))
