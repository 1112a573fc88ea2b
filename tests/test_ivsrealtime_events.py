"""The events WebSocket: joins, roster propagation, PING, JOIN_ERROR, DISCONNECT, caps, self-signed
tokens, participant records and events, faults and metrics — real websockets clients, boto3 tokens."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from harness.services.ivsrealtime import codec, tokens
from harness.services.ivsrealtime.emulator import EmulatorProcess

from .chat import run
from .ivsrealtime import (  # noqa: F401 - rt, ivs and stage are fixtures
    assert_next_is_pong,
    assert_next_roster_is,
    events_url,
    ivs,
    join,
    join_when_free,
    next_frame,
    open_socket,
    publish_offer,
    refused,
    rt,
    stage,
    token_for,
    topic_of,
    wait_closed,
)


def test_join_and_roster_propagation(rt, ivs, stage):  # noqa: F811
    async def scenario():
        a, a_id, first = await join(rt, ivs, stage, "alice", attributes={"name": "Alice"})
        assert [p.id for p in first.participants] == [a_id] and first.sequence_number >= 2
        assert first.server_ns is not None and abs(first.server_ns - time.time_ns()) < 5e9
        b, b_id, b_publishing = await join(rt, ivs, stage, "bob", publish=True)
        joined, seen = await next_frame(a), await next_frame(a)
        assert joined.participant(b_id) == codec.Participant(b_id, "bob", {}, is_publishing=False)
        assert seen == b_publishing, "every member gets the same roster frame"
        assert seen.sequence_number == first.sequence_number + 2, "the join, then the publish"
        bob = seen.participant(b_id)
        assert bob == codec.Participant(b_id, "bob", {}, is_publishing=True)
        assert seen.participant(a_id).attributes == {"name": "Alice"}
        await assert_next_is_pong(a)
        await b.close()
        after = await next_frame(a)
        assert after.sequence_number == seen.sequence_number + 1 and [p.id for p in after.participants] == [a_id]
        await a.close()

        records = {p["participantId"]: p for p in ivs.list_participants(
            stageArn=stage["arn"], sessionId=stage["activeSessionId"])["participants"]}
        assert records[b_id]["published"] is True and records[a_id]["published"] is False
        assert {records[p]["state"] for p in (a_id, b_id)} <= {"CONNECTED", "DISCONNECTED"}
        got = ivs.get_participant(stageArn=stage["arn"], sessionId=stage["activeSessionId"], participantId=a_id)
        assert got["participant"]["attributes"] == {"name": "Alice"} and got["participant"]["userId"] == "alice"
        events = ivs.list_participant_events(stageArn=stage["arn"], sessionId=stage["activeSessionId"],
                                             participantId=b_id)["events"]
        assert [e["name"] for e in events] == ["JOINED", "PUBLISH_STARTED", "PUBLISH_STOPPED", "LEFT"]
        published = ivs.list_participants(stageArn=stage["arn"], sessionId=stage["activeSessionId"],
                                          filterByPublished=True)["participants"]
        assert [p["participantId"] for p in published] == [b_id]

    run(scenario())


def test_participant_state_follows_the_connection(rt, ivs, stage):  # noqa: F811
    async def scenario():
        a, a_id, _ = await join(rt, ivs, stage)
        state = ivs.get_participant(stageArn=stage["arn"], sessionId=stage["activeSessionId"], participantId=a_id)
        assert state["participant"]["state"] == "CONNECTED"
        await a.close()
        await a.wait_closed()
        deadline = time.monotonic() + 5
        while ivs.get_participant(stageArn=stage["arn"], sessionId=stage["activeSessionId"],
                                  participantId=a_id)["participant"]["state"] != "DISCONNECTED":
            assert time.monotonic() < deadline, "the record never became DISCONNECTED"
            await asyncio.sleep(0.02)

    run(scenario())


def test_disconnect_participant(rt, ivs, stage):  # noqa: F811
    async def scenario():
        a, a_id, first = await join(rt, ivs, stage, "watcher")
        token = token_for(ivs, stage, "kicked")
        b = await open_socket(rt, stage, token["token"])
        await next_frame(b)
        joined = await next_frame(a)
        ivs.disconnect_participant(stageArn=stage["arn"], participantId=token["participantId"], reason="bye")
        assert await next_frame(b) == codec.Disconnect(codec.PARTICIPANT_DISCONNECTED, "bye")
        assert await wait_closed(b) == (1000, codec.PARTICIPANT_DISCONNECTED)
        gone = await next_frame(a)
        assert gone.sequence_number == joined.sequence_number + 1
        assert gone.participant(token["participantId"]) is None
        assert gone.disconnected == (codec.DisconnectedParticipant(token["participantId"], "kicked"),)
        # The token can no longer join.
        error, _ = await refused(rt, stage, token["token"])
        assert error.code == codec.PARTICIPANT_DISCONNECTED
        events = ivs.list_participant_events(stageArn=stage["arn"], sessionId=stage["activeSessionId"],
                                             participantId=token["participantId"])["events"]
        assert [e["name"] for e in events] == ["JOINED", "LEFT", "JOIN_ERROR"]
        await assert_next_roster_is(rt, ivs, stage, {a: gone.sequence_number})

    run(scenario())


def test_delete_stage_disconnects_everyone(rt, ivs):  # noqa: F811
    stage_ = ivs.create_stage()["stage"]

    async def scenario():
        a, _, _ = await join(rt, ivs, stage_)
        spare = token_for(ivs, stage_)
        ivs.delete_stage(arn=stage_["arn"])
        assert await next_frame(a) == codec.Disconnect(codec.STAGE_DELETED, "the stage was deleted")
        assert (await wait_closed(a))[0] == 1000
        error, _ = await refused(rt, stage_, spare["token"])
        assert error.code == codec.STAGE_DELETED

    run(scenario())


def test_join_errors(rt, ivs, stage):  # noqa: F811
    other_stage = ivs.create_stage()["stage"]

    async def scenario():
        forged, _ = tokens.self_signed_token(tokens.generate_key(), stage["arn"], events_url="", whip_url="",
                                             now=time.time())
        known_key = tokens.generate_key()
        imported = ivs.import_public_key(publicKeyMaterial=tokens.public_key_pem(known_key))["publicKey"]
        no_such_stage = stage["arn"].rsplit("/", 1)[0] + "/NoSuchStage1"
        unknown, _ = tokens.self_signed_token(known_key, no_such_stage, events_url="", whip_url="", now=time.time())
        cases = [
            ("", {}, codec.TOKEN_MISSING),
            ("not.a.jwt", {}, codec.TOKEN_INVALID),
            (forged, {}, codec.TOKEN_INVALID_SIGNATURE),
            (unknown, {}, codec.TOKEN_INVALID),  # well signed, but for a stage that does not exist
        ]
        for token, kwargs, code in cases:
            error, close_code = await refused(rt, stage, token, **kwargs)
            assert (error.code, error.fatal, close_code) == (code, True, 1000), (code, error)
        # A token for another stage joined with this stage's topic: the query does not match the token.
        mismatched = token_for(ivs, other_stage)
        ws = await open_socket(rt, stage, mismatched["token"])
        error = await next_frame(ws)
        assert (error.code, error.type) == (codec.BAD_REQUEST, codec.BAD_REQUEST)
        await wait_closed(ws)
        ivs.delete_public_key(arn=imported["arn"])

    run(scenario())
    metrics = rt.admin.metrics_text()
    assert 'ivsrealtime_joins_rejected_total{room="",code="TOKEN_INVALID_SIGNATURE"}' in metrics


def test_without_error_over_ws_refusals_are_http_statuses(rt, ivs, stage):  # noqa: F811
    async def scenario():
        for token, status in (("", 401), ("x.y.z", 401)):
            with pytest.raises(InvalidStatus) as caught:
                await open_socket(rt, stage, token, error_over_ws=False)
            assert caught.value.response.status_code == status

    run(scenario())
    assert 'ivsrealtime_handshakes_rejected_total{status="401"}' in rt.admin.metrics_text()


def test_expired_token_is_refused_with_time_scaled_minutes():
    with EmulatorProcess("--minute-seconds", "0.2") as fast:
        ivs_ = fast.boto3_client()
        stage_ = ivs_.create_stage()["stage"]
        token = token_for(ivs_, stage_, duration=1)  # one service minute: 0.2 s here
        claims = tokens.unverified_claims(token["token"])
        assert claims["exp"] - claims["iat"] == pytest.approx(0.2, abs=0.01)

        async def scenario():
            while time.time() < claims["exp"]:
                await asyncio.sleep(0.05)
            error, _ = await refused(fast, stage_, token["token"])
            assert error.code == codec.TOKEN_EXPIRED

        run(scenario())
        events = ivs_.list_participant_events(stageArn=stage_["arn"], sessionId=stage_["activeSessionId"],
                                              participantId=token["participantId"])["events"]
        assert [e["name"] for e in events] == ["JOIN_ERROR"]


def test_token_reuse_replaces_the_earlier_connection(rt, ivs, stage):  # noqa: F811
    async def scenario():
        watcher, _, first = await join(rt, ivs, stage)
        token = token_for(ivs, stage, "twice")
        one = await open_socket(rt, stage, token["token"])
        await next_frame(one)
        await next_frame(watcher)
        two = await open_socket(rt, stage, token["token"])
        assert await next_frame(one) == codec.Disconnect(codec.TOKEN_REUSED, "the token was used by another connection")
        assert (await wait_closed(one))[1] == codec.TOKEN_REUSED
        state = await next_frame(two)
        assert state.participant(token["participantId"]) is not None
        await assert_next_is_pong(two)

    run(scenario())


@pytest.mark.parametrize("mode", ["refuse", "single-use"])
def test_token_reuse_refused_modes(mode):
    with EmulatorProcess("--token-reuse", mode) as strict:
        ivs_ = strict.boto3_client()
        stage_ = ivs_.create_stage()["stage"]
        token = token_for(ivs_, stage_)

        async def scenario():
            one = await open_socket(strict, stage_, token["token"])
            await next_frame(one)
            error, _ = await refused(strict, stage_, token["token"])
            assert error.code == codec.TOKEN_REUSED
            await assert_next_is_pong(one)  # the first connection is untouched
            await one.close()
            await one.wait_closed()
            if mode == "single-use":
                error, _ = await refused(strict, stage_, token["token"])
                assert error.code == codec.TOKEN_REUSED
            else:  # a token may come back once its connection is gone (how the SDK reconnects)
                again, _ = await join_when_free(strict, stage_, token["token"])
                await again.close()

        run(scenario())


def test_thirteenth_publisher_joins_and_its_publish_is_refused_as_the_sdk_reads_it(rt, ivs, stage):  # noqa: F811
    """SDK 1.41.0 meets the 12-publisher cap on its publish request, not at join: a PUBLISH token joins
    a full stage, and its SDP_OFFER is answered 403 with the service's code 2005 (the SDK's
    StageErrorCode.STAGE_AT_CAPACITY). A subscribe-only token's offer gets 403 and 2003."""
    async def scenario():
        publishers = [await join(rt, ivs, stage, f"pub-{i}", publish=True) for i in range(12)]
        last = publishers[-1][2].sequence_number
        for ws, _, _ in publishers[:-1]:  # drain the roster changes the later joins and publishes caused
            while (await next_frame(ws)).sequence_number < last:
                pass
        thirteenth = token_for(ivs, stage, "pub-13")
        ws13 = await open_socket(rt, stage, thirteenth["token"])
        joined = await next_frame(ws13)
        assert isinstance(joined, codec.StageState) and joined.participant(thirteenth["participantId"])
        answer, _ = await publish_offer(ws13, thirteenth)
        assert (answer["httpStatusCode"], answer["errorCode"]) == (403, codec.PUBLISH_STAGE_AT_CAPACITY)
        viewer = token_for(ivs, stage, "viewer", capabilities=["SUBSCRIBE"])
        ws_viewer = await open_socket(rt, stage, viewer["token"])
        await next_frame(ws_viewer)
        answer, _ = await publish_offer(ws_viewer, viewer)
        assert (answer["httpStatusCode"], answer["errorCode"]) == (403, codec.PUBLISH_NO_PERMISSIONS)
        # The refused publishes changed no roster: after the two joins, the sentinel's join is next.
        for ws, _, _ in publishers:
            assert (await next_frame(ws)).sequence_number == last + 1
            assert (await next_frame(ws)).sequence_number == last + 2
        sentinel = await assert_next_roster_is(rt, ivs, stage, {ws: last + 2 for ws, _, _ in publishers})
        # A slot frees when a publisher leaves: the thirteenth's next publish is accepted.
        await publishers[0][0].close()
        await publishers[0][0].wait_closed()
        answer, _ = await publish_offer(ws13, thirteenth)
        assert answer["httpStatusCode"] == 501, "held; media is not emulated"
        for ws in [sentinel, ws13, ws_viewer, *(p[0] for p in publishers[1:])]:
            await ws.close()
        return thirteenth["participantId"], viewer["participantId"]

    thirteenth_id, viewer_id = run(scenario())
    session = {"stageArn": stage["arn"], "sessionId": stage["activeSessionId"]}
    events = [(e["name"], e.get("errorCode")) for e in ivs.list_participant_events(
        participantId=thirteenth_id, **session)["events"]]
    assert events[:3] == [("JOINED", None), ("PUBLISH_ERROR", "QUOTA_EXCEEDED"), ("PUBLISH_STARTED", None)], events
    events = [(e["name"], e.get("errorCode")) for e in ivs.list_participant_events(
        participantId=viewer_id, **session)["events"]]
    assert events[:2] == [("JOINED", None), ("PUBLISH_ERROR", "INSUFFICIENT_CAPABILITIES")], events
    metrics = rt.admin.metrics_text()
    stage_id = topic_of(stage)
    assert f'ivsrealtime_publishes_rejected_total{{room="{stage_id}",code="QUOTA_EXCEEDED"}} 1' in metrics


def test_subscriber_cap():
    with EmulatorProcess("--max-subscribers", "2") as small:
        ivs_ = small.boto3_client()
        stage_ = ivs_.create_stage()["stage"]

        async def scenario():
            a, _, _ = await join(small, ivs_, stage_)
            b, _, _ = await join(small, ivs_, stage_)
            third = token_for(ivs_, stage_)
            error, _ = await refused(small, stage_, third["token"])
            assert error.code == codec.STAGE_AT_CAPACITY and "2 subscribers" in error.message
            events = ivs_.list_participant_events(stageArn=stage_["arn"], sessionId=stage_["activeSessionId"],
                                                  participantId=third["participantId"])["events"]
            assert [(e["name"], e.get("errorCode")) for e in events] == [("JOIN_ERROR", "QUOTA_EXCEEDED")]
            for ws in (a, b):
                await ws.close()

        run(scenario())


def test_self_signed_tokens_from_an_imported_key(rt, ivs, stage, tmp_path):  # noqa: F811
    key = tokens.generate_key()
    claims_now = time.time()

    def sign(**kwargs):
        return tokens.self_signed_token(key, stage["arn"], events_url=rt.messaging_endpoint,
                                        whip_url=stage["endpoints"]["whip"], now=claims_now, **kwargs)

    async def scenario():
        token, _ = sign(user_id="self")
        error, _ = await refused(rt, stage, token)
        assert error.code == codec.TOKEN_INVALID_SIGNATURE  # not imported yet
        imported = ivs.import_public_key(publicKeyMaterial=tokens.public_key_pem(key))["publicKey"]
        token, claims = sign(user_id="self", attributes={"via": "own key"})
        ws = await open_socket(rt, stage, token)
        state = await next_frame(ws)
        assert state.participant(claims.participant_id) == codec.Participant(claims.participant_id, "self",
                                                                             {"via": "own key"})
        await ws.close()
        ivs.delete_public_key(arn=imported["arn"])
        token, _ = sign()
        error, _ = await refused(rt, stage, token)
        assert error.code == codec.TOKEN_INVALID_SIGNATURE

    run(scenario())
    pem = tmp_path / "key.pem"
    pem.write_text(tokens.public_key_pem(key))
    with EmulatorProcess("--public-key", str(pem)) as keyed:
        stage_ = keyed.boto3_client().create_stage()["stage"]
        token, _ = tokens.self_signed_token(key, stage_["arn"], events_url="", whip_url="", now=time.time())

        async def with_option():
            ws = await open_socket(keyed, stage_, token)
            assert isinstance(await next_frame(ws), codec.StageState)
            await ws.close()

        run(with_option())


def test_publishers_only_roster():
    with EmulatorProcess("--roster", "publishers") as emulator:
        ivs_ = emulator.boto3_client()
        stage_ = ivs_.create_stage()["stage"]

        async def scenario():
            pub, pub_id, first = await join(emulator, ivs_, stage_, publish=True)
            viewer_token = token_for(ivs_, stage_)
            viewer = await open_socket(emulator, stage_, viewer_token["token"])
            state = await next_frame(viewer)
            assert [p.id for p in state.participants] == [pub_id] and state.sequence_number == first.sequence_number
            await assert_next_is_pong(pub)  # the subscriber's join changed nothing the publisher sees
            for ws in (pub, viewer):
                await ws.close()

        run(scenario())


def test_set_state_from_a_publisher_is_a_roster_change(rt, ivs, stage):  # noqa: F811
    async def scenario():
        pub, pub_id, first = await join(rt, ivs, stage, publish=True)
        await pub.send(codec.encode_set_state(True, False).decode())
        changed = await next_frame(pub)
        assert changed.sequence_number == first.sequence_number + 1
        assert changed.participant(pub_id).audio_muted is True
        await pub.send('{"type":"aws:ivs:SDP_OFFER","payload":{"requestId":"r1","whipUrl":"x","content":"v=0"}}')
        answer = await next_frame(pub)
        assert answer.type == codec.SDP_ANSWER and answer.payload["httpStatusCode"] == 501
        await pub.close()

    run(scenario())


# -- faults and metrics ------------------------------------------------------------------------------------


def test_delay_fault_applies_to_roster_propagation(rt, ivs, stage):  # noqa: F811
    stage_id = stage["arn"].rsplit("/", 1)[-1]

    async def scenario():
        a, _, first = await join(rt, ivs, stage)
        rt.admin.delay(150, room=stage_id)
        try:
            started = time.monotonic()
            b, _, _ = await join(rt, ivs, stage)
            seen = await next_frame(a)
            assert seen.sequence_number == first.sequence_number + 1
            assert time.monotonic() - started >= 0.15
        finally:
            rt.admin.delay(0, room=stage_id)
        await a.close()
        await b.close()

    run(scenario())


def test_pause_drop_and_resume(rt, ivs, stage):  # noqa: F811
    stage_id = stage["arn"].rsplit("/", 1)[-1]

    async def scenario():
        a, _, first = await join(rt, ivs, stage)
        rt.admin.pause(stage_id, mode="drop")
        b_token = token_for(ivs, stage)
        b = await open_socket(rt, stage, b_token["token"])
        await assert_next_is_pong(b)  # its join happened, but no STAGE_STATE went out
        rt.admin.resume(stage_id)
        await assert_next_is_pong(a)
        sentinel = await assert_next_roster_is(rt, ivs, stage, {a: first.sequence_number + 1,
                                                                 b: first.sequence_number + 1})
        assert f'ivsrealtime_frames_dropped_paused_total{{room="{stage_id}"}} 1' in rt.admin.metrics_text()
        for ws in (a, b, sentinel):
            await ws.close()

    run(scenario())


def test_expire_and_drop_faults(rt, ivs, stage):  # noqa: F811
    stage_id = stage["arn"].rsplit("/", 1)[-1]

    async def scenario():
        a, _, _ = await join(rt, ivs, stage, "stays")
        b, _, _ = await join(rt, ivs, stage, "expires")
        c, _, _ = await join(rt, ivs, stage, "dropped")
        for _ in range(2):
            await next_frame(a)
        await next_frame(b)
        expired = rt.admin.expire(room=stage_id, users=["expires"])
        assert [e["user_id"] for e in expired] == ["expires"]
        assert await next_frame(b) == codec.JoinError(codec.TOKEN_EXPIRED, "the participant token has expired")
        await wait_closed(b)
        after_expiry = await next_frame(a)
        assert {p.user_id for p in after_expiry.participants} == {"stays", "dropped"}
        await next_frame(c)
        rt.admin.drop(room=stage_id, users=["dropped"])
        after_drop = await next_frame(a)
        assert {p.user_id for p in after_drop.participants} == {"stays"}
        assert after_drop.sequence_number == after_expiry.sequence_number + 1
        assert [m["user_id"] for m in rt.admin.connections(room=stage_id)] == ["stays"]
        await a.close()

    run(scenario())


def test_restart_drops_everyone_and_listens_again(rt, ivs, stage):  # noqa: F811
    async def scenario():
        a, _, _ = await join(rt, ivs, stage)
        assert rt.admin.restart(downtime_ms=50) >= 1
        code, _ = await wait_closed(a)
        assert code == 1006
        b, _, state = await join(rt, ivs, stage)
        assert len(state.participants) == 1
        await b.close()

    run(scenario())


def test_metrics_and_health(rt, ivs, stage):  # noqa: F811
    stage_id = stage["arn"].rsplit("/", 1)[-1]

    async def scenario():
        a, _, _ = await join(rt, ivs, stage)
        await a.send(b"\x00binary")
        await a.send("{not json")
        await assert_next_is_pong(a)
        text = rt.admin.metrics_text()
        assert f'ivsrealtime_connections{{room="{stage_id}"}} 1' in text
        assert f'ivsrealtime_joins_accepted_total{{room="{stage_id}"}} 1' in text
        assert f'ivsrealtime_protocol_errors_total{{room="{stage_id}"}} 2' in text
        assert f'ivsrealtime_pings_total{{room="{stage_id}"}} 1' in text
        assert rt.admin.health()["connections"] >= 1
        await a.close()

    run(scenario())
    body = urllib.request.urlopen(rt.control_endpoint + "/metrics", timeout=5).read().decode()
    assert "eyJ" not in body, "no token (a JWT starts eyJ) ever appears in metrics"


def test_events_url_shape(rt, stage):  # noqa: F811
    url = events_url(rt, stage)
    assert url.startswith(rt.messaging_endpoint + "/?error_over_ws=1&topic=")
