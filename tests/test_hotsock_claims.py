"""The Hotsock claims engine, pure: patterns, false-wins, per-event publish/broadcast/echo, merges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.services.hotsock.claims import Claims, ClaimsError, Pattern, channel_rule, resolve


def claims(channels: dict, scope: str = "connect", **extra) -> Claims:
    return Claims.from_payload({"exp": 2_000_000_000, "scope": scope, "channels": channels, **extra})


@pytest.mark.parametrize("key, name, matches", [
    ("room.1", "room.1", True),
    ("room.1", "room.10", False),
    ("room.*", "room.1", True),
    ("room.*", "room.", True),  # `*` matches the empty run too
    ("room.*", "roomX1", False),  # the dot is literal, not a regex dot
    ("*.admin", "chat.admin", True),
    ("a*b*c", "aXXbYYc", True),
    ("a*b*c", "aXXbYY", False),
    ("#regex:^chat\\.[0-9]+$", "chat.42", True),
    ("#regex:^chat\\.[0-9]+$", "chat.x", False),
    ("#regex:[0-9]", "room-7-x", True),  # unanchored, as Go's MatchString
])
def test_patterns(key, name, matches):
    assert Pattern(key).matches(name) is matches


def test_explicit_false_wins_whatever_the_order():
    for channels in ({"chat.admin": {"subscribe": False}, "chat.*": {"subscribe": True}},
                     {"chat.*": {"subscribe": True}, "chat.admin": {"subscribe": False}}):
        token = claims(channels)
        assert token.channel("chat.admin").subscribe is False
        assert token.channel("chat.lobby").subscribe is True
    assert claims({"other": {"subscribe": True}}).channel("chat.x").subscribe is False  # default false


@given(st.lists(st.sampled_from([True, False, None]), max_size=8), st.randoms())
def test_false_wins_for_any_mix_and_order(values, random):
    random.shuffle(values)
    expected = False if False in values else True if True in values else None
    assert resolve(values) is expected
    # Distinct keys that all match the channel "c", in a random order.
    channels = {f"#regex:^c$|^never{i}$": {"subscribe": v} for i, v in enumerate(values) if v is not None}
    assert claims(channels).channel("c").subscribe is (expected is True)


def test_publish_needs_a_subscription_broadcast_does_not():
    token = claims({"room": {"subscribe": True, "messages": {
        "chat": {"publish": True, "echo": True},
        "shout": {"broadcast": True},
        "muted": {"broadcast": True, "publish": False},
    }}})
    grant = token.channel("room")
    chat, shout, muted = grant.message("chat"), grant.message("shout"), grant.message("muted")
    assert chat.allows(subscribed=True) and not chat.allows(subscribed=False)
    assert shout.allows(subscribed=False) and shout.allows(subscribed=True)
    assert not muted.allows(subscribed=False) and not muted.allows(subscribed=True), "publish: false wins"
    assert chat.echo and not shout.echo, "echo defaults to false"
    assert not grant.message("other").allows(subscribed=True), "publish permission is per event"


def test_message_rules_pool_across_matching_channel_keys():
    token = claims({"room.*": {"messages": {"*": {"publish": True}}},
                    "room.quiet": {"messages": {"chat": {"publish": False}}}})
    assert token.channel("room.loud").message("chat").allows(subscribed=True)
    assert not token.channel("room.quiet").message("chat").allows(subscribed=True)
    assert token.channel("room.quiet").message("typing").allows(subscribed=True)


def test_store_resolves_to_the_largest_and_forever_beats_all():
    token = claims({"a": {"messages": {"*": {"store": 60}, "chat": {"store": 3600}}},
                    "b": {"messages": {"*": {"store": 60}, "chat": {"store": -1}}}})
    assert token.channel("a").message("chat").store == 3600
    assert token.channel("a").message("x").store == 60
    assert token.channel("b").message("chat").store == -1
    assert claims({}).channel("a").message("chat").store == 0


def test_subscribe_token_merges_for_one_channel_and_connect_false_still_wins():
    connect = claims({"room.*": {"subscribe": True}, "room.vip": {"subscribe": False}, "other": {}})
    extra = claims({"other": {"subscribe": True, "messages": {"chat": {"publish": True}}},
                    "room.vip": {"subscribe": True}}, scope="subscribe", uid="u")
    assert not connect.channel("other").subscribe
    merged = connect.channel("other").merged(extra.channel("other"))
    assert merged.subscribe and merged.message("chat").allows(subscribed=True)
    assert not connect.channel("room.vip").merged(extra.channel("room.vip")).subscribe
    with pytest.raises(ValueError):
        connect.channel("a").merged(extra.channel("b"))


def test_auto_subscribe_only_exact_names_only_connect_tokens_and_not_where_forbidden():
    channels = {"feed": {"autoSubscribe": True}, "news.*": {"autoSubscribe": True, "subscribe": True},
                "alerts": {"autoSubscribe": True, "subscribe": True}, "alerts*": {"subscribe": False},
                "inbox": {"autoSubscribe": True, "subscribe": True}}
    assert claims(channels).auto_subscribe_channels() == ["feed", "inbox"]
    assert claims(channels, scope="subscribe").auto_subscribe_channels() == []


@pytest.mark.parametrize("payload, complaint", [
    ({"exp": 1}, "scope is required"),
    ({"exp": 1, "scope": "connect admin"}, "scope must list only"),
    ({"exp": 1, "scope": ""}, "scope must list only"),
    ({"scope": "connect"}, "exp is required"),
    ({"exp": "soon", "scope": "connect"}, "exp must be a NumericDate"),
    ({"exp": 1, "scope": "connect", "uid": "u" * 129}, "uid must be a string"),
    ({"exp": 1, "scope": "connect", "uid": 7}, "uid must be a string"),
    ({"exp": 1, "scope": "connect", "umd": "x" * 1100}, "umd must serialise"),
    ({"exp": 1, "scope": "connect", "heartbeatTimeout": 4}, "heartbeatTimeout"),
    ({"exp": 1, "scope": "connect", "heartbeatTimeout": 601}, "heartbeatTimeout"),
    ({"exp": 1, "scope": "connect", "keepAlive": "yes"}, "keepAlive must be true or false"),
    ({"exp": 1, "scope": "connect", "channels": []}, "channels must be an object"),
    ({"exp": 1, "scope": "connect", "channels": {"a": True}}, "each channels entry must be an object"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"subscribe": "yes"}}}, "subscribe must be true or false"),
    ({"exp": 1, "scope": "connect", "channels": {"#regex:(": {}}}, "does not compile"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"messages": {"e": {"store": -2}}}}}, "store must be"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"messages": {"e": {"echo": 1}}}}}, "echo must be"),
    ({"exp": 1, "scope": "connect", "singleUse": True}, "singleUse needs a jti"),
    ({"exp": 1, "scope": "connect", "channels": {"a.*": {"alias": "a"}}}, "only on an exact channel name"),
    ({"exp": 1, "scope": "connect", "channels": {"#regex:^a$": {"alias": "x"}}}, "only on an exact channel name"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"alias": "x y"}}}, "alias must be a valid channel name"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"alias": 7}}}, "alias must be a valid channel name"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"alias": "x"}, "b": {"alias": "x"}}}, "the same alias"),
    ({"exp": 1, "scope": "connect", "channels": {"a": {"alias": "b"}, "b": {}}}, "also a channel key"),
])
def test_malformed_claims_are_refused_without_repeating_values(payload, complaint):
    with pytest.raises(ClaimsError) as info:
        Claims.from_payload(payload)
    assert complaint in str(info.value)
    assert "uuuu" not in str(info.value) and "xxxx" not in str(info.value)


def test_unknown_directives_are_ignored():
    token = claims({"a": {"subscribe": True, "historyStart": 0, "storage": {"k": {"get": True}}}},
                   iat=1, somethingNew={"x": 1})
    assert token.channel("a").subscribe


def test_an_alias_resolves_to_its_channel_and_a_channel_key_beats_it():
    token = claims({"user.123": channel_rule(alias="user"), "lobby": channel_rule(), "*": channel_rule()})
    assert token.real_channel("user") == "user.123"
    assert token.real_channel("user.123") == "user.123"
    assert token.real_channel("lobby") == "lobby" and token.real_channel("other") == "other"
    assert token.alias_of("user.123") == "user" and token.alias_of("lobby") is None
    assert token.aliased("lobby") is None
    assert token.channel(token.real_channel("user")).subscribe


def test_channel_rule_builds_what_it_says():
    token = claims({"room.*": channel_rule(publish=["chat"], broadcast=["shout"], echo=True, store=60)})
    grant = token.channel("room.1")
    assert grant.subscribe
    assert grant.message("chat").allows(subscribed=True) and grant.message("chat").echo
    assert grant.message("shout").allows(subscribed=False) and grant.message("shout").store == 60
    assert not grant.message("other").allows(subscribed=True)
    listen_only = claims({"room": channel_rule()}).channel("room")
    assert listen_only.subscribe and not listen_only.message("chat").allows(subscribed=True)
