"""Locust chat users end to end: real `locust` processes against a real emulator.

Each check pairs what the harness reports with something it could not have made up: the
emulator's own server-side counters (frames delivered, messages dropped while paused) or a
second run without the injected fault.
"""

from __future__ import annotations

import time

import pytest

from harness.services.ivschat.emulator import EmulatorProcess

from .locust_run import BASIC, arrivals, assert_accounting_adds_up, metric, results_of, run_locust


@pytest.mark.parametrize("thread_checks", [False, True], ids=["", "thread-checks"])
def test_every_accepted_message_is_accounted_for_at_every_receiver(tmp_path, thread_checks):
    # With thread checks on, every marked call asserts its thread (harness/threads/marks.py): the same
    # run must come out the same, and no call may have crossed without the boundary.
    proc = run_locust(tmp_path, "-u", "12", "-r", "12", "-t", "4s", "--chat-message-rate", "2", "--chat-drain", "5",
                      env={"CHATLOAD_CHECK_THREADS": "1"} if thread_checks else None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("thread checks on" in proc.stderr) == thread_checks
    assert "thread check:" not in proc.stdout + proc.stderr
    results = results_of(tmp_path)
    assert results["schema"] == "chatload.results/1" and results["complete"]
    totals = assert_accounting_adds_up(results)
    assert totals["lost"] == 0 and totals["duplicates"] == 0 and totals["unconfirmed_at_disconnect"] == 0
    assert totals["receivers"] == 12
    counters = results["counters"]
    assert counters["sent"] == counters["accepted"] > 0
    # One room of 12 members, the senders included: a message is expected at most 12 times (fewer for
    # the first ones, sent while later users were still connecting), and every expected one arrived.
    assert totals["expected"] == totals["delivered"] <= totals["accepted"] * 12
    assert totals["expected"] > totals["accepted"] * 12 * 0.5
    latency = results["latency_us"]
    # Every arrival is timed.
    assert latency["delivery"]["count"] + latency["ack"]["count"] == arrivals(totals)
    assert latency["connect"]["count"] == 12
    assert results["merge_check"]["equal"]
    assert "WS" in proc.stderr and "connect" in proc.stderr  # Locust's own table shows the connects


def test_injected_delivery_delay_shows_in_the_delivery_median(tmp_path):
    with EmulatorProcess() as emulator:
        target = ["--chat-endpoint", emulator.messaging_endpoint, "--chat-control-endpoint", emulator.control_endpoint,
                  "-u", "8", "-r", "8", "-t", "5s", "--chat-message-rate", "4", "--chat-drain", "3"]
        proc = run_locust(tmp_path / "plain", *target)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        emulator.admin.delay(20)  # every room, including the one the next run creates
        proc = run_locust(tmp_path / "delayed", *target)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    plain = results_of(tmp_path / "plain")["latency_us"]["delivery"]
    delayed = results_of(tmp_path / "delayed")["latency_us"]["delivery"]
    assert plain["count"] > 100 and delayed["count"] > 100
    added_ms = (delayed["percentiles"]["50"] - plain["percentiles"]["50"]) / 1000
    assert 18 <= added_ms <= 22, f"20 ms injected, {added_ms:.2f} ms seen"


def _wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _room_metric(emulator, name: str, room: dict) -> int:
    return metric(emulator.admin.metrics_text(), name, room["id"])


def test_paused_room_shows_exact_lost_counts(tmp_path):
    with EmulatorProcess() as emulator:
        client = emulator.boto3_client()
        room = client.create_room(maximumMessageRatePerSecond=100)
        proc = run_locust(tmp_path, "--chat-endpoint", emulator.messaging_endpoint, "--chat-control-endpoint",
                          emulator.control_endpoint, "--chat-room-arn", room["arn"], "-u", "8", "-r", "8", "-t", "6s",
                          "--chat-message-rate", "5", "--chat-drain", "3", background=True)
        try:
            _wait_for(lambda: _room_metric(emulator, "ivschat_messages_accepted_total", room) >= 5, "chat traffic")
            emulator.admin.pause(room["id"], mode="drop")
            _wait_for(lambda: _room_metric(emulator, "ivschat_messages_dropped_paused_total", room) >= 5,
                      "messages dropped while paused")
            emulator.admin.resume(room["id"])
            output, _ = proc.communicate(timeout=60)
            assert proc.returncode == 1, output  # the paused sends never got an answer: failures, rightly
            text = emulator.admin.metrics_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    results = results_of(tmp_path)
    totals = assert_accounting_adds_up(results)
    receivers = totals["receivers"]
    assert receivers == 8
    paused = metric(text, "ivschat_messages_dropped_paused_total", room["id"])
    assert totals["presumed_accepted"] == paused == results["counters"]["timeouts.send"]
    assert totals["lost"] == paused * receivers
    # Independent check of arrivals: the emulator's own count of frames written.
    assert arrivals(totals) == metric(text, "ivschat_frames_delivered_total", room["id"])


def test_dropped_connections_reconnect_and_are_accounted_exactly(tmp_path):
    with EmulatorProcess() as emulator:
        client = emulator.boto3_client()
        room = client.create_room(maximumMessageRatePerSecond=100)
        proc = run_locust(tmp_path, "--chat-endpoint", emulator.messaging_endpoint, "--chat-control-endpoint",
                          emulator.control_endpoint, "--chat-room-arn", room["arn"], "-u", "8", "-r", "8", "-t", "6s",
                          "--chat-message-rate", "5", "--chat-drain", "3", background=True)
        try:
            _wait_for(lambda: _room_metric(emulator, "ivschat_messages_accepted_total", room) >= 5
                      and len(emulator.admin.connections(room=room["id"])) == 8,
                      "all users connected and chatting")
            dropped = emulator.admin.drop(room=room["id"], fraction=0.5, seed=1, mode="abrupt")
            assert len(dropped) == 4
            _wait_for(lambda: _room_metric(emulator, "ivschat_connections_opened_total", room) >= 12,
                      "the dropped users to reconnect")
            output, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, output
            text = emulator.admin.metrics_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    results = results_of(tmp_path)
    totals = assert_accounting_adds_up(results)
    assert results["counters"]["reconnects"] == 4
    assert results["latency_us"]["reconnect"]["count"] == 4
    assert totals["lost"] == 0  # nothing was lost while connected; what they missed is counted apart
    assert arrivals(totals) == metric(text, "ivschat_frames_delivered_total", room["id"])


@pytest.mark.timeout(180)
def test_two_processes_merge_exactly(tmp_path):
    proc = run_locust(tmp_path, "--processes", "2", "-u", "16", "-r", "16", "-t", "5s", "--chat-message-rate", "2",
                      "--chat-drain", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = results_of(tmp_path)
    check = results["merge_check"]
    assert len(check["per_process"]) == 2 and check["equal"]
    for name, merged_count in check["merged"].items():
        assert merged_count == sum(counts.get(name, 0) for counts in check["per_process"].values()), name
    assert all(counts["delivery"] > 0 for counts in check["per_process"].values())
    totals = assert_accounting_adds_up(results)
    assert totals["lost"] == 0 and totals["receivers"] == 16
    # Both workers run here: their clocks are the master's, known exactly rather than estimated.
    clocks = results["metadata"]["clocks"]
    assert len(clocks) == 2 and all(c == {"offset_ns": 0, "uncertainty_ns": 0, "method": "same-machine"}
                                    for c in clocks.values())


def test_unreachable_endpoint_ends_in_counted_errors_not_a_hang(tmp_path):
    with EmulatorProcess() as emulator:  # tokens come from here; the messaging endpoint is a dead port
        proc = run_locust(tmp_path, "--chat-endpoint", "ws://127.0.0.1:9", "--chat-control-endpoint",
                          emulator.control_endpoint, "-u", "3", "-r", "3", "-t", "3s", "--chat-connect-timeout", "2",
                          timeout=90)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # nobody connected: the run measured nothing
    counters = results_of(tmp_path)["counters"]
    failures = sum(v for k, v in counters.items() if k.startswith("connect_failures."))
    assert failures >= 3 and counters.get("connects", 0) == 0
    assert counters.get("gave_up.ConnectionRefusedError", 0) == 3  # SDK-like: 1 try + 3 retries, then gives up


def test_refused_tokens_are_counted_by_status(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(f"AQICAHforged{i}" for i in range(20)) + "\n")
    proc = run_locust(tmp_path / "out", "--chat-tokens", str(tokens), "-u", "3", "-r", "3", "-t", "3s", timeout=90)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # every token refused: nothing was measured
    results = results_of(tmp_path / "out")
    assert results["counters"].get("connect_failures.HTTP 403", 0) >= 3
    written = next((tmp_path / "out").glob("*/*/results.json")).read_text()
    assert "AQICAHforged" not in written and "AQICAHforged" not in proc.stdout + proc.stderr, "tokens leaked"


GARBAGE_SERVER = r'''
import asyncio, sys
from websockets.asyncio.server import serve

FRAMES = ["not json", "[1,2]", '{"Type":"WHAT","Id":"x"}', '{"Type":"MESSAGE","Id":"abcdefghijkl"}',
          '{"Type":"MESSAGE","Id":"abcdefghijk2","RequestId":"","Content":"x","SendTime":"2022-12-02T08:21:20Z",'
          '"Attributes":{"cl.s":"zz","cl.n":"notanumber","cl.t":"1"},"Sender":{"UserId":"u","Attributes":null}}',
          b"\x00\x01binary"]

async def handler(ws):
    for frame in FRAMES:
        await ws.send(frame)
    await ws.wait_closed()

async def main():
    async with serve(handler, "127.0.0.1", 0, select_subprotocol=lambda c, offered: offered[0]) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
'''


def test_garbage_frames_are_counted_never_fatal(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "garbage_server.py"
    script.write_text(GARBAGE_SERVER)
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        with EmulatorProcess() as emulator:  # only for tokens and a room ARN
            proc = run_locust(tmp_path / "out", "--chat-endpoint", f"ws://127.0.0.1:{port}", "--chat-control-endpoint",
                              emulator.control_endpoint, "-u", "2", "-r", "2", "-t", "3s", "--chat-drain", "1",
                              timeout=90)
    finally:
        server.kill()
    results = results_of(tmp_path / "out")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    # 6 frames per connection, 2 connections: 5 unreadable + 1 binary each.
    assert results["counters"]["protocol_errors"] == 12
    assert results["protocol_error_samples"]


def test_locustfile_is_short():
    # The promise to users: a custom chat behaviour needs only a few lines.
    lines = [line for line in BASIC.read_text().splitlines() if line.strip() and not line.startswith(('"', "#"))]
    assert len(lines) <= 10


def test_default_locustfile_from_pyproject_and_user_mix(tmp_path):
    import subprocess
    import sys

    from .locust_run import ROOT

    # No -f: Locust reads [tool.locust] in pyproject.toml, as a user in the project folder expects.
    proc = subprocess.run([sys.executable, "-m", "locust", "--headless", "--only-summary", "-u", "5", "-r", "5",
                           "-t", "2s", "--chat-mix", "Viewer=4,Chatter=1,Moderator=0", "--chat-drain", "1",
                           "--chat-report-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert '"Chatter": 1' in proc.stderr and '"Viewer": 4' in proc.stderr, proc.stderr
    assert results_of(tmp_path)["metadata"]["locustfile"].endswith("locustfiles/ivschat.py")


def test_bad_user_mix_is_a_clear_error(tmp_path):
    proc = run_locust(tmp_path, "--chat-mix", "Lurker=3", "-u", "1", "-t", "1s", timeout=60)
    assert proc.returncode != 0 and "--chat-mix names 'Lurker'" in proc.stderr and "Viewer" in proc.stderr


TOKEN_COMMAND = """
import os, sys, boto3
client = boto3.client("ivschat", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="y")
caps = [c for c in os.environ["CHATLOAD_CAPABILITIES"].split(",") if c]
print(client.create_chat_token(roomIdentifier=os.environ["CHATLOAD_ROOM_ARN"],
                               userId=os.environ["CHATLOAD_USER_ID"], capabilities=caps)["token"])
"""


def test_tokens_from_an_external_command(tmp_path):
    import sys

    script = tmp_path / "make_token.py"  # not token.py: that would shadow the standard library
    script.write_text(TOKEN_COMMAND)
    with EmulatorProcess() as emulator:
        command = f"{sys.executable} {script} {emulator.control_endpoint}"
        proc = run_locust(tmp_path / "out", "--chat-endpoint", emulator.messaging_endpoint, "--chat-control-endpoint",
                          emulator.control_endpoint, "--chat-token-command", command, "-u", "4", "-r", "4", "-t", "3s",
                          "--chat-message-rate", "2", "--chat-drain", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = results_of(tmp_path / "out")
    assert results["counters"]["token_fetches"] == 4 and results["counters"]["connects"] == 4
    assert results["metadata"]["options"]["chat_token_command"] is True, "named, never shown"
    assert str(script) not in (tmp_path / "out").joinpath(next((tmp_path / "out").glob("*/*/results.json"))).read_text()
    assert_accounting_adds_up(results)
