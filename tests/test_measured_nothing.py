"""A run that measured nothing is an error (exit 2), never a pass: in `chatload run`, in the gate,
and in a plain `locust -f` run; and the console says, as it happens, why connections fail."""

from __future__ import annotations

import json

import pytest

from harness.metrics.counters import error_total
from harness.results import measured
from harness.run.worker import LOCUSTFILE
from harness.scenario.reader import ScenarioError, load_scenario
from harness.services.ivschat.emulator import EmulatorProcess

from .locust_run import results_of, run_locust
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


# -- a run that applied only part of its load (issue 24, point 1) ------------------------------------------

def test_plain_locust_run_whose_ramp_did_not_finish_exits_2(tmp_path, running_emulator):
    # 8 users at 1 a second in a 3 s run: about 3 start; the run applied a fraction of its load.
    proc = run_locust(tmp_path, "--chat-endpoint", running_emulator.messaging_endpoint, "--chat-control-endpoint",
                      running_emulator.control_endpoint, "-u", "8", "-r", "1", "-t", "3s", "--chat-drain", "1",
                      "--chat-health-window", "ramp")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "the load was not all applied: users " in proc.stderr and " of 8 users started" in proc.stderr, (
        proc.stderr[-3000:])
    results = results_of(tmp_path)
    assert results["metadata"]["planned_users"] == {"total": 8, "by_population": {}}
    # A run that measures its ramp has its harness health judged on it (harness/metrics/saturation.py).
    assert results["health"]["window"] == "ramp" and results["health"]["judged_seconds"] >= 2


def test_a_scenario_run_names_each_population_that_was_not_all_started(tmp_path, running_emulator):
    # The locustfile `chatload run` gives Locust, with its populations as fixed counts: 6 viewers and
    # 2 chatters at 1 user a second in a 3 s run. (`--check` refuses such a scenario, so Locust is
    # driven directly, as `chatload run` drives it.)
    import os
    import subprocess
    import sys

    scenario = tmp_path / "under.toml"
    scenario.write_text('[scenario]\nduration = "10s"\nramp = "2s"\n[[population]]\nkind = "viewer"\nusers = 6\n'
                        '[[population]]\nkind = "chatter"\nusers = 2\n')
    as_run = tmp_path / "as-run.json"
    as_run.write_text(json.dumps(load_scenario(scenario).as_run()))
    locustfile = LOCUSTFILE
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
                           "-u", "8", "-r", "1", "-t", "3s", "--chat-drain", "1", "--chat-report-dir", str(tmp_path),
                           "--chat-endpoint", running_emulator.messaging_endpoint,
                           "--chat-control-endpoint", running_emulator.control_endpoint],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "CHATLOAD_SCENARIO": str(as_run)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert results_of(tmp_path)["metadata"]["planned_users"] == {"total": 8, "by_population": {"Viewer0": 6,
                                                                                                "Chatter1": 2}}
    (line,) = [line for line in proc.stderr.splitlines() if "the load was not all applied" in line]
    assert " of 6" in line and "Viewer0 " in line, line


def _planned(spawned: dict[str, int], planned: dict[str, int], complete: bool = True) -> dict:
    counters = {**{f"users_spawned.{p}": n for p, n in spawned.items()},
                **{f"users_connected.{p}": n for p, n in spawned.items()}}
    results = _results(counters, {"connections": sum(spawned.values())})
    results["metadata"]["planned_users"] = {"total": sum(planned.values()), "by_population": planned}
    results["complete"] = complete
    return results


def test_populations_not_all_started_are_named_unless_the_scenario_accepts_the_share():
    results = _planned({"Subscriber0": 18, "Publisher1": 2}, {"Subscriber0": 50, "Publisher1": 5})
    (problem,) = measured.problems(results)
    assert problem.startswith("the load was not all applied: Publisher1 2 of 5, Subscriber0 18 of 50 users started")
    assert "all must" in problem
    assert measured.problems(results, min_spawned=0.35) == []
    assert "at least 40% must" in measured.problems(results, min_spawned=0.4)[0]
    assert measured.problems(_planned({"Viewer0": 50}, {"Viewer0": 50})) == []
    # An incomplete run (Ctrl-C) is already not a pass; its counts are not the whole run's.
    assert measured.problems(_planned({"Viewer0": 3}, {"Viewer0": 50}, complete=False)) == []
    # The gate judges a report by the bound the scenario stated.
    report = {**results, "measured": {"min_spawned": 0.35}}
    assert measured.judge_report(report) == []
    assert measured.judge_report({**results, "measured": {}})


def test_check_refuses_a_ramp_that_cannot_finish_within_the_duration(tmp_path):
    scenario = tmp_path / "under.toml"
    text = ('[scenario]\nduration = "10s"\nramp = "30s"\n[target]\nservice = "hotsock"\n'
            '[[population]]\nkind = "subscriber"\nusers = 50\n[[population]]\nkind = "publisher"\nusers = 5\n')
    scenario.write_text(text)
    with pytest.raises(ScenarioError) as error:
        load_scenario(scenario)
    (problem,) = error.value.problems
    assert "scenario.ramp: 30 s cannot complete within duration (10 s): only about 33% of the 55 users" in problem
    assert problem.endswith("(line 3)")
    # A stated lower bound the ramp reaches is accepted; one it cannot reach is not.
    scenario.write_text(text + '[expectations]\nmin_spawned = 0.3\n')
    assert load_scenario(scenario).min_spawned == 0.3
    scenario.write_text(text + '[expectations]\nmin_spawned = 0.5\n')
    with pytest.raises(ScenarioError, match="make ramp at most 20 s for"):
        load_scenario(scenario)
