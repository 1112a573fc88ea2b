"""A run that measured nothing is an error (exit 2), never a pass: in `chatload run`, in the gate,
and in a plain `locust -f` run; and the console says, as it happens, why connections fail."""

from __future__ import annotations

import json

import pytest

from harness import measured
from harness.report.numbers import error_total
from harness.services.ivschat.emulator import EmulatorProcess

from .locust_run import run_locust
from .test_run import chatload, only_report

UNREACHABLE = '''[scenario]
name = "unreachable"
duration = "3s"
ramp = "1s"
drain = "1s"
processes = 1
[target]
kind = "running-emulator"
endpoint = "ws://127.0.0.1:9"
control_endpoint = "{control}"
[[population]]
kind = "viewer"
users = 3
[[population]]
kind = "chatter"
users = 1
[expectations]
rules = ["lost == 0", "duplicates == 0"]
'''


@pytest.fixture(scope="module")
def running_emulator():
    with EmulatorProcess() as emulator:
        yield emulator


def test_unreachable_data_plane_is_an_error_in_run_and_gate(tmp_path, running_emulator):
    scenario = tmp_path / "unreachable.toml"
    scenario.write_text(UNREACHABLE.format(control=running_emulator.control_endpoint))
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # Said on the console while it happened, grouped by cause, naming the endpoint.
    assert "failing to connect to ws://127.0.0.1:9: connect ConnectionRefusedError" in proc.stderr, proc.stderr
    assert "ERROR: the run measured nothing" in proc.stdout and "no user connected" in proc.stdout, proc.stdout
    report_path = only_report(tmp_path, "unreachable")
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "error" and report["measured"]["ok"] is False
    assert any("Viewer0 0 of 3" in problem for problem in report["measured"]["problems"]), report["measured"]
    assert "ConnectionRefusedError" in report["measured"]["problems"][0]
    assert "banner-measured-nothing" in (report_path.parent / "report.html").read_text()
    # The errors the console showed are the errors the report counts: one definition for both.
    lines = (report_path.parent / "raw" / "progress.jsonl").read_text().splitlines()
    last = [json.loads(line) for line in lines if '"progress"' in line][-1]
    assert last["errors"] == error_total(report["counters"]) > 0
    gate = chatload("gate", str(report_path))
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert "measured nothing" in gate.stdout and "no user connected" in gate.stdout


def test_plain_locust_run_that_never_connected_exits_2(tmp_path, running_emulator):
    proc = run_locust(tmp_path, "--chat-endpoint", "ws://127.0.0.1:9", "--chat-control-endpoint",
                      running_emulator.control_endpoint, "-u", "3", "-r", "3", "-t", "3s", "--chat-drain", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the run measured nothing: no user connected" in proc.stderr, proc.stderr[-3000:]


# -- the rules, on hand-made results ------------------------------------------------------------------------

def _results(counters: dict, totals: dict | None = None) -> dict:
    return {"counters": counters, "accounting": {"totals": totals or {}},
            "metadata": {"target": {"endpoint": "ws://example:1"}}}


def test_a_population_that_mostly_failed_to_connect_is_named():
    results = _results({"users_spawned.Viewer0": 10, "users_connected.Viewer0": 10,
                        "users_spawned.Chatter1": 10, "users_connected.Chatter1": 8,
                        "connect_failures.HTTP 429": 5, "sent": 10},
                       {"accepted": 10, "delivered": 100, "connections": 18})
    (problem,) = measured.problems(results)
    assert problem.startswith("Chatter1: 8 of 10 users connected (at least 90% must)")
    assert "connect HTTP 429 ×5" in problem and "ws://example:1" in problem
    assert measured.problems(results, min_connected=0.8) == []


def test_nothing_accepted_and_nothing_delivered_are_problems():
    base = {"users_spawned.Chatter0": 2, "users_connected.Chatter0": 2}
    rejected = _results({**base, "sent": 40, "rejected.rate_limited": 40}, {"accepted": 0, "connections": 2})
    assert measured.problems(rejected) == ["none of the 40 messages sent was accepted (rejected: rate_limited ×40)"]
    undelivered = _results({**base, "sent": 40}, {"accepted": 40, "connections": 2, "delivered": 0})
    assert "none was delivered" in measured.problems(undelivered)[0]
    silent = _results(base, {"connections": 2})
    assert measured.problems(silent, sending_populations=["Chatter0"]) == [
        "the senders (Chatter0) connected but sent nothing"]
    assert measured.problems(silent) == [], "without sending populations, silence is not a problem"


def test_results_written_before_population_counts_are_judged_by_their_connects():
    assert measured.problems(_results({"connects": 0})) == ["no user connected"]
    assert measured.problems(_results({"connects": 4})) == []
