"""Listener pools end to end: one Locust user holds many connections, each accounted as a receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.scenario.reader import ScenarioError, load_scenario

from .locust_run import ROOT, arrivals, assert_accounting_adds_up, results_of, run_locust

POOL = ROOT / "tests" / "locustfiles" / "chat_pool.py"


def test_a_pool_user_holds_many_receivers_each_accounted(tmp_path):
    # 3 Locust users: 1 chatter and 2 pools of 10 viewers, so 21 connections, all receivers.
    progress = tmp_path / "progress.jsonl"
    proc = run_locust(tmp_path, "-u", "3", "-r", "3", "-t", "4s", "--chat-message-rate", "2", "--chat-drain", "5",
                      "--chat-progress-file", str(progress), locustfile=POOL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = results_of(tmp_path)
    assert results["metadata"]["options"]["num_users"] == 3
    counters = results["counters"]
    assert counters["users_spawned.ViewerPool"] == counters["users_connected.ViewerPool"] == 20
    assert counters["users_spawned.Chatter"] == 1
    totals = assert_accounting_adds_up(results)
    assert totals["receivers"] == 21 and len(results["accounting"]["per_receiver"]) == 21
    assert totals["lost"] == 0 and totals["duplicates"] == 0 and totals["unconfirmed_at_disconnect"] == 0
    assert counters["sent"] == counters["accepted"] > 0
    # Each pooled connection is its own receiver: most messages reached all 21 of them.
    assert totals["expected"] == totals["delivered"] > totals["accepted"] * 21 * 0.5
    assert results["latency_us"]["delivery"]["count"] + results["latency_us"]["ack"]["count"] == arrivals(totals)
    # The timeline counts connections held, not Locust users.
    assert max(row["users"] for row in results["timeline"]) == 21
    assert max(row["connections_open"] for row in results["timeline"]) == 21
    # The progress line too: Locust's 3 users, 21 connections, and the delivery p99 so far.
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    shown = [line for line in lines if line["event"] == "progress" and line["connections"] == 21]
    assert shown and all(line["users"] == 3 for line in shown)
    slowest_ms = results["latency_us"]["delivery"]["max"] / 1000
    assert 0 < max(line["delivery_p99_ms"] for line in shown) <= slowest_ms + 0.01


def _scenario(tmp_path, population: str):
    path = tmp_path / "pool.toml"
    path.write_text(f'[scenario]\nname = "pool"\nduration = "5s"\nramp = "1s"\n[[population]]\n{population}\n'
                    '[[population]]\nkind = "chatter"\nusers = 1\n')
    return load_scenario(path)


def test_a_pooled_population_counts_connections_and_makes_fewer_locust_users(tmp_path):
    scenario = _scenario(tmp_path, 'kind = "viewer"\nusers = 600\nconnections_per_user = 200')
    assert scenario.users == 601 and scenario.locust_users == 4


@pytest.mark.parametrize("population, message", [
    ('kind = "viewer"\nusers = 601\nconnections_per_user = 200', "must be a multiple"),
    ('kind = "chatter"\nusers = 4\nconnections_per_user = 2', "only listening populations"),
])
def test_a_pool_that_cannot_be_made_is_an_error_naming_the_key(tmp_path, population, message):
    with pytest.raises(ScenarioError) as error:
        _scenario(tmp_path, population)
    assert "connections_per_user" in str(error.value) and message in str(error.value)


def test_chatload_run_builds_pool_users_from_the_population(tmp_path):
    # In a child: importing Locust monkey-patches this process (gevent), which other tests must not inherit.
    scenario = _scenario(tmp_path, 'kind = "viewer"\nusers = 600\nconnections_per_user = 200')
    (tmp_path / "as_run.json").write_text(json.dumps(scenario.as_run()))
    probe = ("import json, harness.run.locustfile as m; from harness.locust.pool import ListenerPool as P; "
             "print(json.dumps({n: [issubclass(c, P), c.fixed_count, getattr(c, 'connections_per_user', 1)] "
             "for n, c in ((n, getattr(m, n)) for n in ('Viewer0', 'Chatter1'))}))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CHATLOAD_SCENARIO": str(tmp_path / "as_run.json")})
    assert proc.returncode == 0, proc.stderr
    classes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert classes["Viewer0"] == [True, 3, 200]
    assert classes["Chatter1"][:2] == [False, 1]


def test_chatload_run_with_a_pooled_population_accounts_every_connection(tmp_path):
    path = tmp_path / "pooled.toml"
    path.write_text('[scenario]\nname = "pooled"\nduration = "4s"\nramp = "1s"\ndrain = "3s"\nprocesses = 1\n'
                    '[[population]]\nkind = "viewer"\nusers = 20\nconnections_per_user = 10\n'
                    '[[population]]\nkind = "chatter"\nusers = 1\nmessage_rate = 2.0\n')
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--report-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = tmp_path.glob("pooled/*/report.json")
    document = json.loads(report.read_text())
    results = document.get("results", document)
    counters = results["counters"]
    assert counters["users_spawned.Viewer0"] == counters["users_connected.Viewer0"] == 20
    assert results["metadata"]["options"]["num_users"] == 3  # 2 pools + 1 chatter: Locust's own count
    totals = assert_accounting_adds_up(results)
    assert totals["receivers"] == 21 and totals["lost"] == 0 and totals["expected"] == totals["delivered"] > 0
