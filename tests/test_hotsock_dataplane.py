"""The Hotsock emulator's WebSocket, driven by a real websockets client with real signed JWTs."""

from __future__ import annotations

import re
import time

import orjson
from websockets.exceptions import InvalidStatus

from harness.services.hotsock import codec, tokens, ulid
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.codec import Member, Meta
from harness.services.hotsock.emulator import EmulatorProcess

from .hotsock_chat import (
    assert_next_is_sentinel,
    expect,
    expect_error,
    hotsock,  # noqa: F401 - the session fixture
    join,
    next_frame,
    next_raw,
    open_ws,
    run,
    send,
    unique,
    wait_closed,
)

CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")


def test_connected_frame(hotsock):  # noqa: F811
    async def scenario():
        ws = await open_ws(hotsock, hotsock.mint(tokens.connect_claims({}, uid="jim", umd={"title": "sales"})))
        raw = orjson.loads(await next_raw(ws))
        assert list(raw) == ["event", "data", "meta"] and raw["event"] == "hotsock.connected"
        assert list(raw["data"]) == ["connectionId", "connectionExpiresAt", "connectionSecret"]
        assert CONNECTION_ID.match(raw["data"]["connectionId"])
        assert re.fullmatch(r"[A-Za-z0-9]{20}", raw["data"]["connectionSecret"])
        expires = time.mktime(time.strptime(raw["data"]["connectionExpiresAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        assert abs(expires - (time.time() + 7200)) < 60
        assert raw["meta"] == {"uid": "jim", "umd": {"title": "sales"}}
        anonymous, connected = await join(hotsock, {})
        assert connected.meta == Meta(None, None) and connected.connection_id != raw["data"]["connectionId"]
        await ws.close()
        await anonymous.close()

    run(scenario())


def test_subscribe_unsubscribe_and_their_errors(hotsock):  # noqa: F811
    room, other = unique(), unique()

    async def scenario():
        ws, _ = await join(hotsock, {room: channel_rule(), f"{other}*": {"subscribe": True},
                                     other: {"subscribe": False}}, uid="u1", umd=[1])
        await send(ws, codec.Subscribe(room))
        subscribed = await expect(ws, codec.Subscribed)
        assert subscribed == codec.Subscribed(room, Meta("u1", [1]), None, False)
        assert orjson.loads(subscribed.encode())["data"] == {}
        await send(ws, codec.Subscribe(room))
        await expect_error(ws, codec.ALREADY_SUBSCRIBED, room)
        await send(ws, codec.Subscribe(other))
        await expect_error(ws, codec.SUBSCRIBE_PERMISSION_DENIED, other)  # explicit false beats the wildcard
        await send(ws, codec.Subscribe(unique()))
        await expect(ws, codec.Error)
        await send(ws, codec.Unsubscribe(room))
        assert await expect(ws, codec.Unsubscribed) == codec.Unsubscribed(room, Meta("u1", [1]))
        await send(ws, codec.Unsubscribe(room))
        await expect_error(ws, codec.NOT_SUBSCRIBED, room)
        status, _ = hotsock.publish(room, "after", 1)
        assert status == 202
        await send(ws, codec.PING)
        assert await next_frame(ws) == codec.SERVER_PONG, "unsubscribed: the publish did not reach us"
        await ws.close()

    run(scenario())


def test_client_messages_fan_out_with_meta_and_echo_only_when_granted(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        quiet, _ = await join(hotsock, {room: channel_rule(publish=["chat"])}, uid="quiet", subscribe=[room])
        loud, _ = await join(hotsock, {room: channel_rule(publish=["chat"], echo=True)}, uid="loud",
                             umd={"n": "L"}, subscribe=[room])
        viewer, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        await send(quiet, codec.ClientMessage(room, "chat", {"seq": 1}))
        for ws in (loud, viewer):
            message = await expect(ws, codec.Message)
            assert (message.channel, message.event, message.data, message.meta) == (
                room, "chat", {"seq": 1}, Meta("quiet", None))
        await assert_next_is_sentinel(hotsock, room, quiet, loud, viewer)  # no echo for quiet
        await send(loud, codec.ClientMessage(room, "chat", "hi"))
        frames = [await expect(ws, codec.Message) for ws in (quiet, loud, viewer)]
        assert len({f.id for f in frames}) == 1 and frames[1].meta == Meta("loud", {"n": "L"})
        await send(viewer, codec.ClientMessage(room, "chat", "sneaky"))
        await expect_error(viewer, codec.PUBLISH_PERMISSION_DENIED, room)
        await send(quiet, codec.ClientMessage(room, "other-event", 1))
        await expect_error(quiet, codec.PUBLISH_PERMISSION_DENIED, room)
        await assert_next_is_sentinel(hotsock, room, quiet, loud, viewer)
        for ws in (quiet, loud, viewer):
            await ws.close()

    run(scenario())


def test_publish_needs_a_subscription_broadcast_does_not(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        listener, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        outsider, _ = await join(hotsock, {room: {"messages": {"chat": {"publish": True}, "alert": {"broadcast": True},
                                                               "muted": {"broadcast": True, "publish": False}}}})
        await send(outsider, codec.ClientMessage(room, "chat", 1))
        await expect_error(outsider, codec.PUBLISH_PERMISSION_DENIED, room)
        await send(outsider, codec.ClientMessage(room, "muted", 1))
        await expect_error(outsider, codec.PUBLISH_PERMISSION_DENIED, room)
        await send(outsider, codec.ClientMessage(room, "alert", {"level": 3}))
        message = await expect(listener, codec.Message)
        assert message.event == "alert" and message.meta == Meta(None, None)
        await assert_next_is_sentinel(hotsock, room, listener)
        await listener.close()
        await outsider.close()

    run(scenario())


def test_server_publish_has_no_meta_and_ids_are_monotonic_per_channel(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        ws, _ = await join(hotsock, {room: channel_rule(publish=["chat"], echo=True)}, uid="u", subscribe=[room])
        ids = []
        for i in range(30):
            if i % 2:
                await send(ws, codec.ClientMessage(room, "chat", i))
            else:
                status, body = hotsock.publish(room, "news", {"i": i})
                assert status == 202 and body["channel"] == room and body["event"] == "news"
            message = await expect(ws, codec.Message)
            assert message.data == ({"i": i} if i % 2 == 0 else i)
            raw_meta = message.meta
            assert (raw_meta is None) == (i % 2 == 0), "server-published messages carry no meta"
            ids.append(message.id)
        assert ids == sorted(ids) and len(set(ids)) == 30
        assert all(abs(ulid.timestamp_ms(i) - time.time() * 1000) < 60_000 for i in ids)
        await ws.close()

    run(scenario())


def test_ping_pong_heartbeat_and_errors_keep_the_connection(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        ws, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        await ws.send('{"event":"hotsock.ping"}')
        assert orjson.loads(await next_raw(ws)) == {"event": "hotsock.pong", "data": "{}"}
        await ws.send('{"event":"hotsock.heartbeat"}')
        await ws.send('{"event":"hotsock.pong"}')
        await assert_next_is_sentinel(hotsock, room, ws)  # neither got an answer
        for frame in ("nope", b"\x00\x01binary", "[1]", '{"event":"hotsock.subscribe","channel":"a b"}',
                      '{"channel":"x","event":"hotsock.custom"}', '{"channel":"x","event":"a*b"}',
                      '{"event":"hotsock.channelStorageGet","channel":"x","key":"k"}'):
            await ws.send(frame)
            error = await expect(ws, codec.Error)
            assert error.code in (codec.INVALID_FRAME, codec.INVALID_CHANNEL, codec.INVALID_EVENT,
                                  codec.UNSUPPORTED_EVENT) and error.message
        await assert_next_is_sentinel(hotsock, room, ws)
        await ws.close()

    run(scenario())


def test_limits_of_names_and_sizes(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        ws, _ = await join(hotsock, subscribe=[room])  # may publish anything anywhere, with echo
        await send(ws, codec.ClientMessage(room, "e" * 128, "x" * (32 * 1024 - 2)))
        fits = await expect(ws, codec.Message)
        assert len(fits.data) == 32 * 1024 - 2
        await send(ws, codec.ClientMessage(room, "e", "x" * (32 * 1024 - 1)))
        await expect_error(ws, codec.DATA_TOO_LARGE, room)
        await send(ws, codec.ClientMessage(room, "e" * 129, 1))
        await expect_error(ws, codec.INVALID_EVENT, room)
        for name in ("c" * 257, "a,b", "a#b", "a\nb"):
            await send(ws, codec.Subscribe(name))
            await expect_error(ws, codec.INVALID_CHANNEL)
        await send(ws, codec.Subscribe("c" * 256))
        await expect(ws, codec.Subscribed)
        await ws.send("x" * (128 * 1024 + 1))  # over API Gateway's message limit
        assert (await wait_closed(ws))[0] == 1009

    run(scenario())


def test_auto_subscribe_after_connected_exact_names_only(hotsock):  # noqa: F811
    feed, inbox = unique("feed"), unique("inbox")

    async def scenario():
        ws = await open_ws(hotsock, hotsock.mint(tokens.connect_claims({
            feed: channel_rule(auto_subscribe=True), f"{inbox}*": channel_rule(auto_subscribe=True),
            inbox: channel_rule(auto_subscribe=True)})))
        await expect(ws, codec.Connected)
        frames = [await expect(ws, codec.Subscribed), await expect(ws, codec.Subscribed)]
        assert [(f.channel, f.auto_subscribed) for f in frames] == [(feed, True), (inbox, True)]
        assert orjson.loads(frames[0].encode())["data"] == {"autoSubscribed": True}
        await assert_next_is_sentinel(hotsock, feed, ws)
        await ws.close()

    run(scenario())


def test_subscribe_tokens_merge_for_their_channel_and_bind_to_a_connection(hotsock):  # noqa: F811
    room, vip = unique(), unique("vip")

    async def scenario():
        ws, connected = await join(hotsock, {vip: {"subscribe": False}}, uid="pam")
        await send(ws, codec.Subscribe(room))
        await expect_error(ws, codec.SUBSCRIBE_PERMISSION_DENIED, room)
        grant = {room: channel_rule(publish=["chat"], echo=True), vip: channel_rule()}
        for claims in (tokens.subscribe_claims(grant, connection_id="AAAAAAAAAAAAAAA="),  # another connection
                       tokens.subscribe_claims(grant, uid="jim"),  # another user
                       tokens.subscribe_claims(grant, uid="pam", ttl_s=-10),  # expired
                       tokens.connect_claims(grant, uid="pam")):  # connect scope, not subscribe
            await send(ws, codec.Subscribe(room, hotsock.mint(claims)))
            error = await expect_error(ws, codec.INVALID_SUBSCRIBE_TOKEN, room)
            assert "eyJ" not in error.message, "errors never repeat the token"
        await send(ws, codec.Subscribe(room, "not-a-jwt"))
        await expect_error(ws, codec.INVALID_SUBSCRIBE_TOKEN, room)
        await send(ws, codec.Subscribe(room, hotsock.mint(tokens.subscribe_claims(
            grant, connection_id=connected.connection_id, umd={"badge": "gold"}))))
        assert (await expect(ws, codec.Subscribed)).meta == Meta("pam", {"badge": "gold"})
        await send(ws, codec.ClientMessage(room, "chat", "merged"))  # publish came with the subscribe token
        message = await expect(ws, codec.Message)
        assert message.data == "merged" and message.meta == Meta("pam", {"badge": "gold"})
        await send(ws, codec.Subscribe(vip, hotsock.mint(tokens.subscribe_claims(grant, uid="pam"))))
        await expect_error(ws, codec.SUBSCRIBE_PERMISSION_DENIED, vip)  # the connect token's false wins
        await ws.close()

    run(scenario())


def test_single_use_subscribe_token(hotsock):  # noqa: F811
    room = unique()

    async def scenario():
        ws, _ = await join(hotsock, {}, uid="kev")
        token = hotsock.mint(tokens.subscribe_claims({room: channel_rule()}, uid="kev", singleUse=True,
                                                     jti=unique("jti")))
        await send(ws, codec.Subscribe(room, token))
        await expect(ws, codec.Subscribed)
        await send(ws, codec.Unsubscribe(room))
        await expect(ws, codec.Unsubscribed)
        await send(ws, codec.Subscribe(room, token))
        await expect_error(ws, codec.INVALID_SUBSCRIBE_TOKEN, room)
        await ws.close()

    run(scenario())


def test_presence_members_added_updated_removed(hotsock):  # noqa: F811
    room = unique("presence")
    rule = {room: channel_rule()}

    async def scenario():
        nobody, _ = await join(hotsock, rule)
        await send(nobody, codec.Subscribe(room))
        await expect_error(nobody, codec.PRESENCE_CHANNEL_USER_ID_REQUIRED, room)
        jim, _ = await join(hotsock, rule, uid="Jim")
        await send(jim, codec.Subscribe(room))
        assert (await expect(jim, codec.Subscribed)).members == (Member("Jim"),)
        dwight, _ = await join(hotsock, rule, uid="Dwight")
        await send(dwight, codec.Subscribe(room))
        assert (await expect(dwight, codec.Subscribed)).members == (Member("Jim"), Member("Dwight"))
        added = await expect(jim, codec.MemberAdded)
        assert added == codec.MemberAdded(room, Member("Dwight"), (Member("Jim"), Member("Dwight")))
        # Dwight again from a second tab, same umd: no event at all.
        dwight_tab, _ = await join(hotsock, rule, uid="Dwight", subscribe=[room])
        await assert_next_is_sentinel(hotsock, room, jim, dwight, dwight_tab)
        # A third tab with other metadata: everyone learns the update, nobody hears "added".
        dwight_away, _ = await join(hotsock, rule, uid="Dwight", umd={"status": "away"})
        await send(dwight_away, codec.Subscribe(room))
        await expect(dwight_away, codec.Subscribed)
        away = (Member("Jim"), Member("Dwight", {"status": "away"}))
        for ws in (jim, dwight, dwight_tab, dwight_away):
            assert await expect(ws, codec.MemberUpdated) == codec.MemberUpdated(room, away[1], away)
        # Dwight leaves from two tabs, then disconnects the last: removed only when the last one goes.
        await send(dwight_tab, codec.Unsubscribe(room))
        await expect(dwight_tab, codec.Unsubscribed)
        await dwight.close()
        await assert_next_is_sentinel(hotsock, room, jim, dwight_away)
        await dwight_away.close()
        assert await expect(jim, codec.MemberRemoved) == codec.MemberRemoved(room, away[1], (Member("Jim"),))
        await assert_next_is_sentinel(hotsock, room, jim)
        for ws in (nobody, jim, dwight_tab):
            await ws.close()

    run(scenario())


def test_presence_capacity():
    room = "presence.small"
    # A member is {"uid":"aaaaaaaaaa","umd":null}: 31 bytes of JSON. Room for two, not three.
    with EmulatorProcess("--presence-capacity-bytes", "70", service="hotsock") as small:
        async def scenario():
            first, _ = await join(small, {room: channel_rule()}, uid="a" * 10, subscribe=[room])
            again, _ = await join(small, {room: channel_rule()}, uid="a" * 10, subscribe=[room])  # no new bytes
            second, _ = await join(small, {room: channel_rule()}, uid="b" * 10, subscribe=[room])  # 62 bytes
            await expect(first, codec.MemberAdded)
            await expect(again, codec.MemberAdded)
            third, _ = await join(small, {room: channel_rule()}, uid="c")
            await send(third, codec.Subscribe(room))
            await expect_error(third, codec.PRESENCE_CHANNEL_CAPACITY_REACHED, room)
            await assert_next_is_sentinel(small, room, first, again, second)
            for ws in (first, again, second, third):
                await ws.close()

        run(scenario())


def test_umd_updates(hotsock):  # noqa: F811
    room, plain = unique("presence"), unique()
    rule = {room: channel_rule(publish=["chat"], echo=True), plain: channel_rule(publish=["chat"], echo=True)}

    async def scenario():
        jim, connected = await join(hotsock, rule, uid="Jim", subscribe=[room, plain])
        pam, _ = await join(hotsock, rule, uid="Pam", subscribe=[room])
        await expect(jim, codec.MemberAdded)
        update = tokens.subscribe_claims({room: {"umdUpdate": True}, plain: {"umdUpdate": True}}, uid="Jim",
                                         scope="umd", umd={"status": "busy"})
        await send(jim, codec.UmdUpdate(hotsock.mint(update), room))
        for ws in (jim, pam):  # everyone, the updater included
            updated = await expect(ws, codec.MemberUpdated)
            assert updated.member == Member("Jim", {"status": "busy"})
        await send(jim, codec.UmdUpdate(hotsock.mint(update), plain))
        assert await expect(jim, codec.UmdUpdated) == codec.UmdUpdated(Meta("Jim", {"status": "busy"}), plain)
        await send(jim, codec.ClientMessage(plain, "chat", 1))
        assert (await expect(jim, codec.Message)).meta == Meta("Jim", {"status": "busy"})
        no_permission = tokens.subscribe_claims({}, uid="Jim", scope="umd", umd=1)
        await send(jim, codec.UmdUpdate(hotsock.mint(no_permission), room))
        await expect_error(jim, codec.UMD_UPDATE_PERMISSION_DENIED, room)
        await send(jim, codec.UmdUpdate(hotsock.mint(no_permission)))
        await expect_error(jim, codec.UMD_UPDATE_PERMISSION_DENIED)
        for bad in (hotsock.mint({**no_permission, "uid": "Pam"}), hotsock.mint({**no_permission, "scope": "connect"}),
                    "garbage"):
            await send(jim, codec.UmdUpdate(bad, room))
            await expect_error(jim, codec.INVALID_UMD_TOKEN, room)
        connection_level = tokens.subscribe_claims({}, connection_id=connected.connection_id, scope="umd",
                                                   umd="new", umdUpdate=True, umdPropagate=True)
        await send(jim, codec.UmdUpdate(hotsock.mint(connection_level)))
        assert await expect(jim, codec.UmdUpdated) == codec.UmdUpdated(Meta("Jim", "new"))
        for ws in (jim, pam):  # propagated to the presence channel
            assert (await expect(ws, codec.MemberUpdated)).member == Member("Jim", "new")
        await assert_next_is_sentinel(hotsock, room, jim, pam)
        await jim.close()
        await pam.close()

    run(scenario())


def test_list_messages_returns_what_was_stored_during_the_subscription(hotsock):  # noqa: F811
    from harness.services.hotsock.emulator.process import post_json

    room = unique()

    async def scenario():
        status, _ = hotsock.publish(room, "before", 0, store=60)  # before anyone subscribed: not visible
        assert status == 202
        ws, connected = await join(hotsock, {room: channel_rule(publish=["chat"], echo=True, store=-1)},
                                   uid="u", subscribe=[room])
        for i in range(3):
            await send(ws, codec.ClientMessage(room, "chat", i))
            await expect(ws, codec.Message)
        hotsock.publish(room, "ephemeral", "not stored")
        hotsock.publish(room, "kept", "stored", store=60)
        await expect(ws, codec.Message)
        await expect(ws, codec.Message)
        url = (f"{hotsock.control_endpoint}/connection/listMessages?connectionId="
               f"{connected.connection_id.replace('=', '%3D')}&connectionSecret={connected.connection_secret}")
        status, body = post_json(url, {"channel": room})
        assert status == 200, body
        assert [m["data"] for m in body["messages"]] == [0, 1, 2, "stored"]
        assert body["messages"][0]["meta"] == {"uid": "u", "umd": None} and "meta" not in body["messages"][3]
        first_id = body["messages"][0]["id"]
        status, page = post_json(url, {"channel": room, "after": first_id})
        assert [m["data"] for m in page["messages"]] == [1, 2, "stored"]
        status, page = post_json(url, {"channel": room, "reverse": True, "before": body["messages"][3]["id"]})
        assert [m["data"] for m in page["messages"]] == [2, 1, 0]
        assert post_json(url, {"channel": unique()})[0] == 403
        assert post_json(url, {"channel": room, "bogus": 1})[0] == 400
        assert post_json(url.replace("connectionSecret=", "connectionSecret=x"), {"channel": room})[0] == 401
        await ws.close()
        status, body = post_json(url, {"channel": room})
        assert status == 401, "the connection is gone"

    run(scenario())


def test_channel_aliases_subscribe_publish_unsubscribe_and_presence(hotsock):  # noqa: F811
    """The `alias` claim (vendor's claims page): the client uses the alias, every frame names the real
    channel, (un)subscribed frames add meta.channelAlias, a subscribe token's alias beats the connect token's."""
    user, room, lobby = unique("user"), unique("presence"), unique("lobby")

    async def scenario():
        ws, connected = await join(hotsock, {user: channel_rule(alias="me", publish=["chat"], echo=True),
                                             room: channel_rule(alias="team"), lobby: channel_rule(alias="hall")},
                                   uid="pam")
        await send(ws, codec.Subscribe("me"))
        subscribed = await expect(ws, codec.Subscribed)
        assert subscribed == codec.Subscribed(user, Meta("pam"), None, False, "me")
        await send(ws, codec.Subscribe(user))  # the real name of a channel it is in
        await expect_error(ws, codec.ALREADY_SUBSCRIBED, user)
        await send(ws, codec.ClientMessage("me", "chat", "by alias"))
        message = await expect(ws, codec.Message)
        assert (message.channel, message.data) == (user, "by alias")
        await send(ws, codec.Unsubscribe(user))  # by the real name: the answer still carries the alias
        assert await expect(ws, codec.Unsubscribed) == codec.Unsubscribed(user, Meta("pam"), "me")
        await send(ws, codec.Unsubscribe("me"))
        await expect_error(ws, codec.NOT_SUBSCRIBED, "me")  # errors name what the client sent
        await send(ws, codec.ClientMessage("me", "chat", "not subscribed"))
        await expect_error(ws, codec.PUBLISH_PERMISSION_DENIED, "me")
        # Presence on an aliased channel: members and events name the real channel.
        jim, _ = await join(hotsock, {room: channel_rule(alias="team")}, uid="jim", subscribe=["team"])
        await send(ws, codec.Subscribe("team"))
        joined = await expect(ws, codec.Subscribed)
        assert (joined.channel, joined.alias, joined.members) == (room, "team", (Member("jim"), Member("pam")))
        added = await expect(jim, codec.MemberAdded)
        assert (added.channel, added.member) == (room, Member("pam"))
        # A subscribe token's alias for the same channel wins over the connect token's.
        await send(ws, codec.Subscribe("vip", hotsock.mint(tokens.subscribe_claims(
            {lobby: channel_rule(alias="vip")}, connection_id=connected.connection_id))))
        assert (await expect(ws, codec.Subscribed)).alias == "vip"
        await send(ws, codec.Unsubscribe("vip"))
        assert (await expect(ws, codec.Unsubscribed)).alias == "vip"
        await ws.close()
        removed = await expect(jim, codec.MemberRemoved)
        assert removed.channel == room
        await jim.close()

    run(scenario())


def test_a_token_with_a_bad_alias_is_refused_at_the_upgrade(hotsock):  # noqa: F811
    async def scenario():
        for channels in ({"user.*": {"alias": "me"}}, {"a": {"alias": "b"}, "b": {}}):
            try:
                await open_ws(hotsock, hotsock.mint(tokens.connect_claims(channels)))
            except InvalidStatus as exc:
                assert exc.response.status_code == 401
            else:
                raise AssertionError(f"{channels} was accepted")

    run(scenario())
