"""The Hotsock emulator and chatload's `hotsock-js` reconnect policy, judged by the vendor's own client.

hotsock-js 1.4.0 (`../shared/vendor/hotsock-js`, beside the project; skipped where absent) runs in
Node with the npm `ws` package as its WebSocket (`tests/hotsock_js/driver.mjs`, one process for the
module, commanded line by line). Its connectTokenFn signs each token with the emulator's secret when
called, so every token fetch is an event with its time. Absence (no resubscribe, no ping) is judged
over a window another condition bounds, never a bare sleep.

The differential test puts hotsock-js and a chatload session (the real `ChatSession`, Hotsock
protocol, `HotsockJsPolicy`, on its own loop thread) on one channel and faults them together: the
first try's delay, the waits between tries, the tokens fetched and the time until back must agree.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.services.base import KIND_RUNNING_EMULATOR, Target, UserSpec
from harness.services.hotsock.client import SUBSCRIBE
from harness.services.hotsock.emulator import EmulatorProcess
from harness.services.hotsock.reconnect import HotsockJsPolicy
from harness.services.hotsock.service import HotsockService
from harness.services.hotsock.token_provider import SigningKeyTokens

from .differential import ChatloadSession, wait_until
from .hotsock_chat import hotsock, unique  # noqa: F401 - the module's emulator
from .node import node_with_packages

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent
HOTSOCK_JS = ROOT.parent / "shared" / "vendor" / "hotsock-js" / "hotsock.js"
JS_DIR = Path(__file__).parent / "hotsock_js"
FIRST_TRY_S = 0.05  # hotsock-js's first try is "at once": within 50 ms of the close, on a loaded machine
SLACK_S = 0.1  # a failed try's own time (a refused connect, a 401) on top of the wait before the next


@pytest.fixture(scope="module")
def node() -> str:
    if not HOTSOCK_JS.exists():
        pytest.skip(f"hotsock-js is not at {HOTSOCK_JS} (CI lays shared/ beside the checkout; a clone has none)")
    return node_with_packages(JS_DIR, "running hotsock-js")


class HotsockJs:
    """One Node process running hotsock-js clients; its events gathered by a reader thread."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen([node, str(JS_DIR / "driver.mjs")], cwd=JS_DIR, text=True, bufsize=1,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "HOTSOCK_JS": str(HOTSOCK_JS)})
        self.events: list[dict] = []
        self.changed = threading.Condition()
        self.ids = (f"c{n}" for n in itertools.count())
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.changed:
                self.events.append(event)
                self.changed.notify_all()

    def do(self, op: str, id: str, **fields) -> None:
        self.proc.stdin.write(json.dumps({"op": op, "id": id, **fields}) + "\n")

    def client(self, emulator: EmulatorProcess, claims: dict, **options) -> str:
        id = next(self.ids)
        self.do("client", id, url=emulator.websocket_url, secretFile=emulator.info["hs256_secret_file"],
                claims={"scope": "connect", **claims}, **options)
        return id

    def of(self, id: str, ev: str, *, since: float = 0.0, frame: str | None = None) -> list[dict]:
        """Events of client `id` of kind `ev` (and, for frames, of that `event`) from `since` on."""
        with self.changed:
            return [e for e in self.events if e.get("id") == id and e["ev"] == ev and e["t"] / 1000 >= since
                    and (frame is None or e["data"].get("event") == frame)]

    def wait(self, id: str, ev: str, count: int = 1, *, since: float = 0.0, frame: str | None = None,
             timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(found := self.of(id, ev, since=since, frame=frame)) < count:
                errors = [e for e in self.events if e["ev"] == "error"]
                assert not errors, f"the driver failed: {errors}"
                left = deadline - time.monotonic()
                assert left > 0, f"{id}: {count} × {ev} {frame or ''} not seen in {timeout} s; saw {found}"
                self.changed.wait(left)
        return found

    def state(self, id: str) -> dict:
        since = time.time()
        self.do("state", id)
        return self.wait(id, "state", since=since)[-1]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def js(node):
    driver = HotsockJs(node)
    yield driver
    driver.close()


def grant(channel: str, **rule) -> dict:
    return {channel: {"subscribe": True, **rule}}


def test_subscribes_publishes_and_unsubscribes_by_alias(js, hotsock):  # noqa: F811
    user = unique("user")
    pam = js.client(hotsock, {"uid": "pam", "channels": grant(user, alias="me", messages={"chat": {
        "publish": True, "echo": True}})})
    js.do("bind", pam, event="chat", channel="me")
    subscribed = js.wait(pam, "frame", frame="hotsock.subscribed")[0]["data"]
    assert subscribed["channel"] == user and subscribed["meta"]["channelAlias"] == "me"
    assert [s["data"] for s in js.of(pam, "sent") if s["data"]["event"] == "hotsock.subscribe"] == [
        {"event": "hotsock.subscribe", "channel": "me"}], "it subscribes by the alias"
    state = js.state(pam)
    assert state["aliases"] == {"me": user} and state["channels"][user]["state"] == "subscribeConfirmed"
    js.do("send", pam, event="chat", channel="me", data={"n": 1})
    js.wait(pam, "message")  # its echo first: the server's publish must not overtake the send
    status, _ = hotsock.publish(user, "chat", {"n": 2})
    assert status == 202
    messages = [m["message"] for m in js.wait(pam, "message", 2)]
    assert [(m["channel"], m["data"]) for m in messages] == [(user, {"n": 1}), (user, {"n": 2})], \
        "the alias's binding gets the real channel's messages, its own echo and the server's publish"
    js.do("unbind", pam, event="chat", channel="me")
    unsubscribed = js.wait(pam, "frame", frame="hotsock.unsubscribed")[0]["data"]
    assert unsubscribed["channel"] == user and unsubscribed["meta"]["channelAlias"] == "me"
    assert js.state(pam)["channels"][user]["state"] == "unsubscribeConfirmed"
    js.do("terminate", pam)


def test_presence_on_an_aliased_channel(js, hotsock):  # noqa: F811
    room = unique("presence")
    jim, pam = (js.client(hotsock, {"uid": uid, "channels": grant(room, alias="team")}) for uid in ("jim", "pam"))
    js.do("bind", jim, event="chat", channel="team")
    js.wait(jim, "frame", frame="hotsock.subscribed")
    js.do("bind", pam, event="chat", channel="team")
    members = js.wait(pam, "frame", frame="hotsock.subscribed")[0]["data"]["data"]["members"]
    assert [m["uid"] for m in members] == ["jim", "pam"]
    added = js.wait(jim, "frame", frame="hotsock.memberAdded")[0]["data"]
    assert added["channel"] == room and added["data"]["member"]["uid"] == "pam"
    assert js.state(jim)["channels"][room]["members"] == ["jim", "pam"], "hotsock-js kept the roster"
    js.do("terminate", pam)
    js.wait(jim, "frame", frame="hotsock.memberRemoved")
    assert js.state(jim)["channels"][room]["members"] == ["jim"]
    js.do("terminate", jim)


def test_bad_tokens_and_refusals(js, hotsock):  # noqa: F811
    room, muted, presence = unique(), unique(), unique("presence")
    started = time.time()
    forged = js.client(hotsock, {"channels": grant(room)}, tokens="badSignature")
    expired = js.client(hotsock, {"channels": grant(room)}, tokens="expired")
    refused = js.client(hotsock, {"channels": {room: {"subscribe": False}, muted: {"subscribe": True},
                                               presence: {"subscribe": True}}})  # no uid for the presence one
    for channel in (room, muted, presence):
        js.do("bind", refused, event="chat", channel=channel)
    errors = {e["data"]["channel"]: e["data"]["error"]["code"]
              for e in js.wait(refused, "frame", 2, frame="hotsock.error")}
    assert errors == {room: "SUBSCRIBE_PERMISSION_DENIED", presence: "PRESENCE_CHANNEL_USER_ID_REQUIRED"}
    js.do("send", refused, event="chat", channel=muted, data=1)
    assert js.wait(refused, "frame", 3, frame="hotsock.error")[-1]["data"]["error"]["code"] == \
        "PUBLISH_PERMISSION_DENIED"
    # A forged token: 401 at the upgrade, a try at once, then 1 s later (the reconnect loop).
    tokens = [e["t"] / 1000 for e in js.wait(forged, "token", 3, timeout=8)]
    assert js.of(forged, "frame") == [] and js.of(forged, "connect") == []
    assert tokens[1] - tokens[0] < FIRST_TRY_S + SLACK_S and 1.0 <= tokens[2] - tokens[1] < 1.0 + SLACK_S
    # An expired token never reaches the server: two loads, 500 ms apart, then the error callback.
    loads = [e["t"] / 1000 for e in js.wait(expired, "token", 2)]
    assert 0.5 <= loads[1] - loads[0] < 0.5 + SLACK_S
    js.wait(expired, "tokenError")
    assert js.of(expired, "connect") == [] and js.of(expired, "disconnect") == []
    # Over the forged client's 1 s wait (≥ four turns of hotsock-js's 250 ms subscribe loop) the
    # refused channel was not asked for again: hotsock-js marks SUBSCRIBE_PERMISSION_DENIED failed.
    asked = [s for s in js.of(refused, "sent", since=started) if s["data"].get("event") == "hotsock.subscribe"
             and s["data"]["channel"] == room]
    assert len(asked) == 1 and js.state(refused)["channels"][room]["state"] == "subscribeFailed"
    assert not [s for s in js.of(refused, "sent") if s["data"].get("event") == "hotsock.ping"]
    for id in (forged, expired, refused):
        js.do("terminate", id)


def test_heartbeats_keep_a_connection_and_without_them_the_timeouts_close_it_and_it_comes_back(node, js):
    """Scaled ×0.01: a token's heartbeatTimeout of 600 s and the 10-minute idle timeout are both 6 s."""
    with EmulatorProcess("--time-scale", "0.01", service="hotsock") as slow:
        room = unique()
        claims = {"heartbeatTimeout": 600, "channels": grant(room)}
        beating = js.client(slow, claims, heartbeatIntervalSeconds=5)
        quiet = js.client(slow, claims)
        for id in (beating, quiet):
            js.do("bind", id, event="chat", channel=room)
        closed = js.wait(quiet, "disconnect", timeout=12)[0]
        assert closed["code"] == 1001
        tokens = js.wait(quiet, "token", 2)
        assert tokens[1]["t"] - closed["t"] < (FIRST_TRY_S + SLACK_S) * 1000, "back at once after the 1001"
        js.wait(quiet, "frame", 2, frame="hotsock.subscribed")  # and resubscribed
        assert js.of(beating, "disconnect") == [], "its heartbeat (4.5–5 s) kept it past the 6 s timeouts"
        sent = [s["data"]["event"] for id in (beating, quiet) for s in js.of(id, "sent")]
        assert "hotsock.heartbeat" in sent and "hotsock.ping" not in sent, "hotsock-js never pings by itself"
        for id in (beating, quiet):
            js.do("terminate", id)


# -- the differential reconnect test ----------------------------------------------------------------


# (fault, tokens fetched after the close, the waits between them, when back after the close)
FAULTS = {
    "drop": (1, [], (0.0, 0.3)),
    "expire": (1, [], (0.0, 0.3)),  # 1001 "Going away"
    # Refused for 2 s: at once (refused), 1 s (refused), 1.5–2.5 s (back).
    "restart": (3, [(1.0, 1.0), (1.5, 2.5)], (2.5, 3.5 + 2 * SLACK_S)),
}


def test_hotsock_js_and_chatloads_policy_come_back_alike(js, hotsock):  # noqa: F811
    channel = unique()
    vendor = js.client(hotsock, {"channels": grant(channel)})
    js.do("bind", vendor, event="chat", channel=channel)
    js.wait(vendor, "frame", frame="hotsock.subscribed")
    target = Target("hotsock", KIND_RUNNING_EMULATOR, hotsock.websocket_url, hotsock.control_endpoint,
                    rooms=(channel,))
    ours = ChatloadSession(HotsockService(), target, SigningKeyTokens({"signing_key": hotsock.info["hs256_secret_file"]}),
                           UserSpec("chatload", "chatload", channel, capabilities=(SUBSCRIBE,)), HotsockJsPolicy())
    try:
        times = ours.times
        wait_until(lambda: times["back"], 5, "chatload's session never connected")
        for fault, (count, waits, back) in FAULTS.items():
            before = time.time()
            wait_until(lambda: len(hotsock.admin.connections(channel)) == 2, 5, "both must be subscribed")
            if fault == "drop":
                hotsock.admin.drop(room=channel, mode="abrupt")
            elif fault == "expire":
                hotsock.admin.expire(room=channel)
            else:
                hotsock.admin.restart(downtime_ms=2000)
            seen = {}
            closed = js.wait(vendor, "disconnect", since=before)[0]["t"] / 1000
            tokens = [e["t"] / 1000 for e in js.wait(vendor, "token", count, since=before, timeout=8)]
            again = js.wait(vendor, "frame", since=before, frame="hotsock.connected", timeout=8)[0]["t"] / 1000
            seen["hotsock-js"] = closed, tokens, again
            wait_until(lambda start=before: ours.since(start, "back"), 8,
                       f"chatload not back after {fault}: {dict(times)}, since {before}")
            seen["chatload"] = (ours.since(before, "closed")[0], ours.since(before, "token"), ours.since(before, "back")[0])
            first_tries = {}
            for who, (closed, tokens, again) in seen.items():  # shown with -s: the figures compared
                print(f"{fault:8} {who:10} first try {tokens[0] - closed:.4f} s, waits "
                      f"{[round(b - a, 3) for a, b in zip(tokens, tokens[1:], strict=False)]}, back {again - closed:.3f} s")
                assert len(tokens) == count, f"{fault}: {who} fetched {len(tokens)} tokens, not {count}"
                first_tries[who] = tokens[0] - closed
                assert first_tries[who] < FIRST_TRY_S, f"{fault}: {who} waited {first_tries[who]:.3f} s to try"
                for (low, high), gap in zip(waits, [b - a for a, b in zip(tokens, tokens[1:], strict=False)], strict=True):
                    assert low <= gap <= high + SLACK_S, f"{fault}: {who} waited {gap:.3f} s, not {low}–{high} s"
                assert back[0] <= again - closed <= back[1], f"{fault}: {who} back after {again - closed:.3f} s"
            assert abs(first_tries["hotsock-js"] - first_tries["chatload"]) <= 0.05
        assert not times["gave_up"], "hotsock-js never gives up, nor may its policy"
    finally:
        ours.stop()
        js.do("terminate", vendor)
