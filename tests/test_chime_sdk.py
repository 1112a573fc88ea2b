"""The emulator against the official Amazon Chime SDK for JavaScript (`amazon-chime-sdk-js`, run in Node).

This test is the judge of the emulator's wire format. The meeting and its attendees come from the
emulator's control plane through boto3; `tests/chime_js/sdk_driver.mjs` then runs the SDK's own
`DefaultSignalingClient` (over its `DefaultWebSocketAdapter`, with the `ws` package as WebSocket) and
its own data-message task and realtime controller, and prints one JSON line of what the SDK saw:
join, data messages both ways, a burst that comes back throttled, replay to a late joiner, PING,
LEAVE, DeleteMeeting (4410) and a forged join token (403, 4403).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from harness.services import registry
from harness.services.base import KIND_RUNNING_EMULATOR, MustReconnect, Target, UserSpec
from harness.services.chime import codec
from harness.services.chime.client import ChimeProtocol
from harness.services.chime.emulator import EmulatorProcess
from harness.services.chime.policy import ChimeSdkPolicy

from .chime import attendee_id, client, meeting, token
from .differential import ChatloadSession, wait_until
from .node import node_with_packages

pytestmark = pytest.mark.node

JS_DIR = Path(__file__).parent / "chime_js"
DRIVER = JS_DIR / "sdk_driver.mjs"
DRIVER_TIMEOUT_S = 60
BURST = 6  # data messages alice sends back to back, past a soft limit of burst 3


@pytest.fixture(scope="module")
def node() -> str:
    """Path of `node`, with tests/chime_js/node_modules installed from the lock file if missing or stale."""
    return node_with_packages(JS_DIR, "the amazon-chime-sdk-js conformance test")


@pytest.fixture(scope="module")
def emulator():
    # A soft limit of burst 3 that hardly refills: the burst's throttled share is predictable.
    with EmulatorProcess("--data-soft-limit", "0.01/3", service="chime") as process:
        yield process


def run_driver(node: str, config: dict) -> dict:
    try:
        proc = subprocess.run([node, str(DRIVER)], input=json.dumps(config), capture_output=True, text=True,
                              cwd=JS_DIR, timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"sdk_driver did not finish in {DRIVER_TIMEOUT_S} s; stderr:\n{exc.stderr}")
    assert proc.returncode == 0, f"sdk_driver exited {proc.returncode}:\n{proc.stderr[-20000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"sdk_driver printed nothing; stderr:\n{proc.stderr}"
    result = json.loads(lines[-1])
    assert result["ok"] is True and result["scenario"] == config["scenario"]
    return result


def test_the_sdk_signaling_client_converses_through_the_emulator(node, emulator):
    chime = client(emulator)
    made = meeting(chime, "alice", "bob", "carol")
    config = {
        "scenario": "conversation", "signalingUrl": made.signaling_url, "controlEndpoint": emulator.control_endpoint,
        "meetingId": made.meeting_id, "tokens": {a.external_user_id: a.join_token for a in made.attendees},
        "forgedToken": "Zm9yZ2VkOmpvaW4tdG9rZW4", "burst": BURST, "lifetimeMs": 60_000,
    }

    result = run_driver(node, config)

    assert result["sdkVersion"] == "3.32.0"
    seen = result["attendees"]
    alice, bob, carol, mallory = (seen[role] for role in ("alice", "bob", "carol", "mallory"))
    ids = {user: attendee_id(made, user) for user in ("alice", "bob")}
    for role in (alice, bob, carol):
        assert role["opened"] and role["decodeFailures"] == 0 and role["errors"] == [], role
        assert [f["type"] for f in role["frames"][:2]] == ["JOIN_ACK", "INDEX"], role["frames"]
        assert role["frames"][0]["turnUris"], role["frames"][0]
    assert [a["frames"][1]["numParticipants"] for a in (alice, bob, carol)] == [1, 2, 3]

    def texts(role, throttled=None):
        return [m["text"] for m in role["dataMessages"] if throttled is None or m["throttled"] is throttled]

    # Fan-out to the others only, with the sender's ids and the server's ingest time (ms, as the SDK reads it).
    hello = bob["dataMessages"][0]
    assert hello["text"] == "hello from alice" and hello["topic"] == "chat" and hello["throttled"] is False
    assert hello["senderAttendeeId"] == ids["alice"] and hello["senderExternalUserId"] == "alice"
    assert hello["timestampMs"] > 1.6e12
    assert alice["dataMessages"][0]["text"] == '{"reply":"hi alice"}'
    assert alice["dataMessages"][0]["senderAttendeeId"] == ids["bob"]
    assert "hello from alice" not in texts(alice)
    # The burst: 2 tokens were left after "hello", so burst-0 and burst-1 reach bob; the rest come back
    # to alice, throttled (the SDK's `throttled` flag: ingestTimeNs === 0).
    burst = [f"burst-{i}" for i in range(BURST)]
    assert [t for t in texts(bob) if t.startswith("burst-")] == burst[:2]
    assert texts(alice, throttled=True) == burst[2:]
    throttled = [m for m in alice["dataMessages"] if m["throttled"]]
    assert all(m["timestampMs"] == 0 and m["senderAttendeeId"] == ids["alice"] for m in throttled)
    # The late joiner gets the burst messages that were delivered (they had a lifetime), as first sent.
    assert texts(carol)[:2] == burst[:2]
    assert carol["dataMessages"][:2] == bob["dataMessages"][1:3]
    # The sentinel is the only other message anyone got.
    assert texts(alice) == ['{"reply":"hi alice"}', *burst[2:], "sentinel"]
    assert texts(bob) == ["hello from alice", *burst[:2]]
    assert texts(carol) == [*burst[:2], "sentinel"]
    # PING → PONG with the same id; LEAVE → LEAVE_ACK, then the client's own close.
    assert {"type": "PING_PONG", "pingPong": {"type": "PONG", "pingId": 7}} in alice["frames"]
    assert alice["frames"][-1] == {"type": "LEAVE_ACK"}
    # DeleteMeeting: AUDIO_STATUS 410 (the SDK's MeetingEnded), then close 4410.
    assert result["deleteStatus"] == 204
    for role in (bob, carol):
        assert role["frames"][-1] == {"type": "AUDIO_STATUS", "audioStatus": 410}
        assert [c["code"] for c in role["closes"]] == [4410]
    # A forged join token: ERROR 403 (AudioAuthenticationRejected to the SDK), then close 4403.
    assert mallory["errors"] == [{"status": 403, "description": "Join token rejected"}]
    assert [c["code"] for c in mallory["closes"]] == [4403] and mallory["dataMessages"] == []


STATUSES = [400, 401, 403, 409, 429, 500, 503]
CLOSE_CODES = [1000, 1001, 1006, 1009, 4401, 4403, 4410, 4429, 4499, 4500, 4599, 4600]


def test_the_emulators_session_expiry_means_what_the_sdk_makes_of_it(node, emulator):
    """ERROR 401 then close 4401: to the SDK a terminal SignalingBadRequest, and no reconnect after
    4401; chatload's protocol and its `sdk` policy (and every other close and status) agree."""
    made = meeting(client(emulator), "alice")
    config = {"scenario": "expiry", "signalingUrl": made.signaling_url, "controlEndpoint": emulator.control_endpoint,
              "meetingId": made.meeting_id, "tokens": {"alice": made.attendees[0].join_token},
              "statuses": STATUSES, "closeCodes": CLOSE_CODES}
    result = run_driver(node, config)
    assert result["expireStatus"] == 200
    alice = result["attendee"]
    assert alice["errors"] == [{"status": 401, "description": "Session expired"}]
    assert [c["code"] for c in alice["closes"]] == [4401]
    assert result["expiryMeaning"] == {"code": "SignalingBadRequest", "terminal": True}
    assert result["reconnectsAfterClose"]["4401"] is False
    policy = ChimeSdkPolicy()
    for code in CLOSE_CODES:  # the SDK's MonitorTask decides on the code alone
        assert policy.reconnect_after(code, clean=code != 1006) is result["reconnectsAfterClose"][str(code)], code
    protocol = ChimeProtocol(UserSpec("s", "alice", made.meeting_id, attributes={"subscribe": "chat"}))
    for status in STATUSES:  # a terminal status never sends chatload back
        events = protocol.receive(codec.encode(codec.ErrorFrame(status, "x"), 0), False, 0)
        events = events if isinstance(events, tuple) else (events,)
        if result["statuses"][str(status)]["terminal"]:
            assert not any(isinstance(e, MustReconnect) for e in events), status
    assert result["statuses"]["401"] == {"code": "SignalingBadRequest", "terminal": True}


class _KnownTokens:
    """Join tokens made beforehand (chatload's AttendeeTokens batch on gevent, which this test has not)."""

    def __init__(self, made) -> None:
        self.made = made

    def fetch(self, user: UserSpec) -> str:
        return token(self.made, user.user_id)


# (fault, its body, the SDK's tries until back, the wait before try k within uniform(0, min(5, 2^k)) s)
FAULTS = [("drop", {"mode": "abrupt"}, 1), ("restart", {"downtime_ms": 1500}, None)]


@pytest.mark.parametrize(("fault", "body", "tries"), FAULTS, ids=[f[0] for f in FAULTS])
def test_the_sdks_reconnect_logic_and_chatloads_sdk_policy_come_back_alike(node, emulator, fault, body, tries):
    """amazon-chime-sdk-js's DefaultReconnectController and FullJitterBackoff around its signaling
    client, and a chatload session on `ChimeSdkPolicy`, in one meeting, faulted together: each wait
    before a try lies within the SDK's full-jitter range (try k: 0 to min(5 s, 1 s × 2^k)), both come
    back, and (after a drop, with the emulator up) each at its first try."""
    made = meeting(client(emulator), "alice", "bob")
    target = Target("chime", KIND_RUNNING_EMULATOR, emulator.messaging_endpoint, emulator.control_endpoint,
                    rooms=(made.meeting_id,), settings={"signaling_urls": {made.meeting_id: made.signaling_url}})
    service = registry.get("chime")
    ours = ChatloadSession(service, target, _KnownTokens(made),
                           UserSpec("bob", "bob", made.meeting_id, attributes={"subscribe": "chat"}), ChimeSdkPolicy())
    try:
        wait_until(lambda: ours.times["back"], 5, "chatload's session never joined")
        before = time.time()
        config = {"scenario": "reconnect", "signalingUrl": made.signaling_url,
                  "controlEndpoint": emulator.control_endpoint, "meetingId": made.meeting_id,
                  "tokens": {"alice": token(made, "alice")}, "fault": fault,
                  "faultBody": {"room": made.meeting_id, **body} if fault == "drop" else body}
        result = run_driver(node, config)
        assert result["faultStatus"] == 200 and result["unexpected"] is True and result["closeCode"] == 1006
        sdk = [result["closedAt"] / 1000, [t / 1000 for t in result["attempts"]], result["backAt"] / 1000]
        wait_until(lambda: ours.since(before, "back"), 10, f"chatload not back after {fault}")
        # chatload's tries: the token fetches after the close (one per try; a Chime join token is reused).
        mine = [ours.since(before, "closed")[0], ours.since(before, "token"), ours.since(before, "back")[0]]
        for who, (closed, attempts, back) in {"sdk": sdk, "chatload": mine}.items():
            print(f"{fault:8} {who:8} waits {[round(b - a, 3) for a, b in zip([closed, *attempts], attempts, strict=False)]}, back {back - closed:.3f} s")  # noqa: E501 - with -s
            assert attempts and (tries is None or len(attempts) == tries), (who, attempts)
            for k, (previous, attempt) in enumerate(zip([closed, *attempts], attempts, strict=False)):
                assert 0 <= attempt - previous <= min(5.0, 2 ** k) + 0.1, f"{who}: try {k} after {attempt - previous:.3f} s"
            assert back >= attempts[-1]
    finally:
        ours.stop()
