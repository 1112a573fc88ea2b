"""The emulator against the official IVS Chat JavaScript SDK (`amazon-ivs-chat-messaging`, run in Node).

Rooms and chat tokens come from the emulator's control plane through boto3; `tests/js/sdk_driver.mjs`
then runs one scenario with the real SDK (the `ws` package as its global WebSocket) and prints one
JSON line describing what the SDK saw. Tokens go to the driver on stdin, one per expected connection.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness.services import registry
from harness.services.base import KIND_RUNNING_EMULATOR, Target, UserSpec

from .differential import ChatloadSession, wait_until
from .node import node_with_packages

pytestmark = pytest.mark.node

JS_DIR = Path(__file__).parent / "js"
DRIVER = JS_DIR / "sdk_driver.mjs"
ID_RE = re.compile(r"^[A-Za-z0-9]{12}$")
DRIVER_TIMEOUT_S = 60

_names = itertools.count()


@pytest.fixture(scope="module")
def node() -> str:
    """Path of `node`, with tests/js/node_modules installed from the lock file if missing or stale."""
    return node_with_packages(JS_DIR, "the official IVS Chat JS SDK tests")


@pytest.fixture(scope="module")
def ivs(emulator):
    return emulator.boto3_client()


def _room(ivs, **kwargs) -> str:
    return ivs.create_room(name=f"js-sdk-{next(_names)}", **kwargs)["arn"]


def _iso(value) -> str | None:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def _token(ivs, room_arn: str, user_id: str, capabilities: list[str], attributes: dict | None = None) -> dict:
    """One CreateChatToken answer in the shape the SDK's tokenProvider returns."""
    kwargs = {"roomIdentifier": room_arn, "userId": user_id, "capabilities": capabilities}
    if attributes is not None:
        kwargs["attributes"] = attributes
    answer = ivs.create_chat_token(**kwargs)
    return {
        "token": answer["token"],
        "tokenExpirationTime": _iso(answer.get("tokenExpirationTime")),
        "sessionExpirationTime": _iso(answer.get("sessionExpirationTime")),
    }


def run_driver(node: str, emulator, scenario: str, tokens: dict[str, list[dict]], **extra) -> dict:
    config = {
        "messagingEndpoint": emulator.messaging_endpoint,
        "scenario": scenario,
        "tokens": tokens,
        **extra,
    }
    try:
        proc = subprocess.run(
            [node, str(DRIVER)],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            cwd=JS_DIR,
            timeout=DRIVER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"sdk_driver {scenario} did not finish in {DRIVER_TIMEOUT_S} s; stderr:\n{exc.stderr}")
    if proc.returncode != 0:
        pytest.fail(
            f"sdk_driver {scenario} exited {proc.returncode}:\n{proc.stderr[-20000:]}\n"
            f"emulator log (tail):\n{_emulator_log(emulator)}"
        )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"sdk_driver {scenario} printed nothing; stderr:\n{proc.stderr}"
    result = json.loads(lines[-1])
    assert result["ok"] is True and result["scenario"] == scenario
    return result


def _emulator_log(emulator) -> str:
    log_text = getattr(emulator, "log_text", None)
    return log_text()[-4000:] if callable(log_text) else "(not available)"


def _assert_handshakes(result: dict) -> None:
    """Every socket the SDK opened was upgraded with the token echoed as the subprotocol."""
    for socket in result["sockets"]:
        assert socket["upgradeStatus"] == 101, socket
        assert socket["selectedProtocolEchoed"] is True, socket
        assert socket["errors"] == [], socket


def _assert_single_connection(result: dict, *roles: str) -> None:
    for role in roles:
        client = result["clients"][role]
        assert client["tokenRequests"] == 1, (role, client)
        assert client["connects"] == 1, (role, client)


def test_echo(node, emulator, ivs):
    room = _room(ivs)
    sender_attrs = {"username": "alice", "color": "blue"}
    tokens = {"sender": [_token(ivs, room, "alice", ["SEND_MESSAGE"], sender_attrs)]}
    content = "héllo 👋 from the SDK"
    attributes = {"k": "v", "emoji": "🙂", "empty": ""}

    result = run_driver(node, emulator, "echo", tokens, content=content, attributes=attributes)

    message = result["message"]
    assert ID_RE.match(message["id"]), message
    assert message["requestId"] == result["requestId"]
    assert message["content"] == content
    assert message["attributes"] == attributes
    assert message["sender"] == {"userId": "alice", "attributes": sender_attrs}
    sent = datetime.datetime.fromisoformat(message["sendTime"].replace("Z", "+00:00"))
    assert abs((datetime.datetime.now(datetime.UTC) - sent).total_seconds()) < 60
    # The echo is the only frame, delivered once.
    assert [m["id"] for m in result["clients"]["sender"]["messages"]] == [message["id"]]
    _assert_handshakes(result)
    _assert_single_connection(result, "sender")


def test_delete(node, emulator, ivs):
    room = _room(ivs)
    tokens = {
        "moderator": [_token(ivs, room, "mod", ["DELETE_MESSAGE"])],
        "viewer": [_token(ivs, room, "viewer", [])],
        "sender": [_token(ivs, room, "alice", ["SEND_MESSAGE"])],
    }
    reason = "off-topic"

    result = run_driver(node, emulator, "delete", tokens, reason=reason)

    sent_id = result["sentId"]
    assert ID_RE.match(sent_id)
    resolved = result["resolved"]  # the moderator's deleteMessage() promise
    assert resolved["messageId"] == sent_id
    assert resolved["reason"] == reason
    assert resolved["requestId"] == result["deleteRequestId"]
    assert ID_RE.match(resolved["id"]) and resolved["id"] != sent_id
    for role in ("viewer", "sender", "moderator"):
        event = result[role]
        assert event["messageId"] == sent_id, (role, event)
        assert event["reason"] == reason, (role, event)
        assert event["id"] == resolved["id"], (role, event)
        assert event["attributes"]["MessageID"] == sent_id
        assert event["attributes"].get("MessageId") == sent_id  # the non-deprecated spelling too
        # Exactly one delete event per connection (no duplicate frames).
        assert len(result["clients"][role]["messageDeletes"]) == 1, role
    _assert_handshakes(result)
    _assert_single_connection(result, "moderator", "viewer", "sender")


def test_kick(node, emulator, ivs):
    room = _room(ivs)
    tokens = {
        "moderator": [_token(ivs, room, "mod", ["DISCONNECT_USER"])],
        "viewer": [_token(ivs, room, "carol", [])],
        # Two connections of the same user: DISCONNECT_USER closes every one of them.
        "target": [_token(ivs, room, "bob", ["SEND_MESSAGE"])],
        "target2": [_token(ivs, room, "bob", [])],
    }
    reason = "Kicked by moderator"

    result = run_driver(node, emulator, "kick", tokens, targetUserId="bob", reason=reason, quietMs=1500)

    resolved = result["resolved"]  # the moderator's disconnectUser() promise
    assert resolved["userId"] == "bob"
    assert resolved["reason"] == reason
    assert resolved["requestId"] == result["requestId"]
    assert ID_RE.match(resolved["id"])
    assert set(result["userDisconnectSeenBy"]) == {"moderator", "viewer", "target", "target2"}
    for role, event in result["userDisconnectSeenBy"].items():
        assert event["userId"] == "bob" and event["id"] == resolved["id"], (role, event)
    for role in ("target", "target2"):
        target = result["targets"][role]
        assert target["disconnectReasons"] == ["serverDisconnect"], (role, target)
        assert target["state"] == "disconnected", (role, target)
        # No rejoin within the observation window after the disconnect.
        assert target["tokenRequestsAfterDisconnect"] == 0, (role, target)
        assert target["connectingAfterDisconnect"] == 0, (role, target)
        assert target["connectsAfterDisconnect"] == 0, (role, target)
        assert result["clients"][role]["tokenRequests"] == 1, (role, result["clients"][role])
    assert result["othersState"] == {"moderator": "connected", "viewer": "connected"}
    # The kicked sockets were closed by the server, cleanly.
    kicked = [s for s in result["sockets"] if s["role"] in ("target", "target2")]
    assert len(kicked) == 2
    for socket in kicked:
        close = socket["close"]
        assert close is not None, socket
        assert close["closeFrameReceived"] is True, socket
        assert close["wasClean"] or close["code"] == 1000, socket
    _assert_handshakes(result)


def test_forbidden(node, emulator, ivs):
    room = _room(ivs)
    tokens = {"viewer": [_token(ivs, room, "viewer", [])]}

    result = run_driver(node, emulator, "forbidden", tokens)

    for method in ("sendMessage", "deleteMessage", "disconnectUser"):
        outcome = result[method]
        assert outcome["fulfilled"] is False, (method, outcome)
        error = outcome["error"]
        assert error.get("errorCode") == 403, (method, outcome)
        assert error["requestId"] == outcome["requestId"], (method, outcome)
        assert ID_RE.match(error["id"]), (method, outcome)
    client = result["clients"]["viewer"]
    assert client["messages"] == [] and client["messageDeletes"] == [] and client["userDisconnects"] == []
    assert client["state"] == "connected"
    _assert_handshakes(result)
    _assert_single_connection(result, "viewer")


def test_ratelimit(node, emulator, ivs):
    room = _room(ivs, maximumMessageRatePerSecond=1)
    tokens = {
        "sender": [_token(ivs, room, "alice", ["SEND_MESSAGE"])],
        "viewer": [_token(ivs, room, "viewer", [])],
    }

    result = run_driver(node, emulator, "ratelimit", tokens, count=3)

    outcomes = result["outcomes"]
    assert len(outcomes) == 3
    accepted = [o for o in outcomes if o["fulfilled"]]
    rejected = [o for o in outcomes if not o["fulfilled"]]
    assert rejected, f"no send was rejected at 1 msg/s: {outcomes}"
    assert accepted, f"every send was rejected: {outcomes}"
    for o in rejected:
        assert o["error"].get("errorCode") == 429, o
        assert o["error"]["requestId"] == o["requestId"], o
    for o in accepted:
        assert ID_RE.match(o["message"]["id"]), o
        assert o["message"]["requestId"] == o["requestId"], o
        assert o["message"]["content"] == o["content"], o
    accepted_ids = sorted(o["message"]["id"] for o in accepted)
    assert sorted(result["accepted"]) == accepted_ids
    # Accepted messages reach everyone (sender echo included); rejected ones reach no one.
    for role in ("sender", "viewer"):
        delivered = sorted(m["id"] for m in result["clients"][role]["messages"])
        assert delivered == accepted_ids, (role, delivered, outcomes)
    _assert_handshakes(result)
    _assert_single_connection(result, "sender", "viewer")


# -- the differential reconnect test --------------------------------------------------------------------------

# (fault mode, does the SDK come back, tokens it fetches after the close)
DROPS = [("abrupt", True, 1), ("clean", False, 0)]


@pytest.mark.parametrize(("mode", "back", "tokens_after"), DROPS)
def test_the_sdk_and_chatloads_sdk_policy_meet_a_drop_alike(node, emulator, ivs, mode, back, tokens_after):
    """The IVS Chat SDK and a chatload session with the `sdk` policy (`SdkLike`) in one room, dropped
    together by the emulator: abruptly (1006: both come back at once with one fresh token, the first
    try within 50 ms of the close) or with a clean close 1000 (neither comes back: the SDK reports
    `disconnect`, chatload ends `closed_by_server`). The SDK has no backoff to compare: it retries at
    once, and so does the policy."""
    room_arn = _room(ivs)
    service = registry.get("ivschat")
    target = Target("ivschat", KIND_RUNNING_EMULATOR, emulator.messaging_endpoint, emulator.control_endpoint,
                    rooms=(room_arn,))
    ours = ChatloadSession(service, target, service.token_provider(target),
                           UserSpec("chatload", "chatload", room_arn, capabilities=("SEND_MESSAGE",)),
                           service.sdk_policy())
    try:
        wait_until(lambda: ours.times["back"], 5, "chatload's session never connected")
        before = time.time()
        result = run_driver(node, emulator, "drop", {"viewer": [_token(ivs, room_arn, "viewer", ["SEND_MESSAGE"])
                                                                for _ in range(2)]},
                            roomArn=room_arn, controlEndpoint=emulator.control_endpoint, mode=mode, quietMs=1000)
        assert result["dropStatus"] == 200
        started = result["started"] / 1000
        closed = started + result["closedAt"][0] / 1000
        sdk_tokens = [started + t / 1000 for t in result["tokenRequestsAt"][1:]]  # after the first connect
        assert len(sdk_tokens) == tokens_after and result["clients"]["viewer"]["connects"] == 1 + back
        if back:
            wait_until(lambda: ours.since(before, "back"), 5, "chatload not back after the drop")
        else:  # the SDK's quiet second has passed: chatload's session must have ended, not be retrying
            wait_until(lambda: ours.session.state == "stopped", 5, "chatload's session still alive")
            assert ours.session.end_reason == "closed_by_server"
        ours_closed, ours_tokens = ours.since(before, "closed")[0], ours.since(before, "token")
        assert len(ours_tokens) == tokens_after, (mode, ours_tokens)
        for who, (at, tokens) in {"sdk": (closed, sdk_tokens), "chatload": (ours_closed, ours_tokens)}.items():
            print(f"{mode:6} {who:8} tokens after the close {[round(t - at, 4) for t in tokens]}")  # with -s
            if tokens:
                assert tokens[0] - at < 0.05, f"{mode}: {who} waited {tokens[0] - at:.3f} s before its first try"
        if back:
            assert abs((sdk_tokens[0] - closed) - (ours_tokens[0] - ours_closed)) <= 0.05
    finally:
        ours.stop()
