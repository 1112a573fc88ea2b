"""`chatload run --workers N` across machines, proved with network namespaces (tests/netns.py): the
master and its embedded emulator in one namespace, workers in others started with `chatload worker`,
so everything between them crosses a veth, never loopback. One shipped scenario with a fault
timeline and expectations runs to a report naming both workers; a run whose second worker never
comes ends with exit 2 and says who came, who was refused and how many are missing; a worker with
the wrong secret is refused (`chatload worker`, asking for the scenario) and so is a plain Locust
worker that skips that step (its hello has no secret)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.scenario.reader import load_scenario

from .locust_run import ROOT, assert_accounting_adds_up
from .netns import Hosts, NamespaceUnavailable

pytestmark = pytest.mark.timeout(180)
PORT = 5557  # inside the master's own namespace: nothing else can hold it
SECRET = "admit-me-0123456789"


@pytest.fixture(scope="module")
def hosts():
    try:
        hosts = Hosts("master", "w1", "w2")
        hosts.__enter__()
    except NamespaceUnavailable as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        yield hosts
    finally:
        hosts.__exit__(None, None, None)


def _env(secret: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CHATLOAD_WORKER_SECRET", None)
    env.pop("CHATLOAD_SCENARIO", None)
    if secret is not None:
        env["CHATLOAD_WORKER_SECRET"] = secret
    return env


def _worker(hosts: Hosts, name: str, log: Path, secret: str | None) -> subprocess.Popen:
    return hosts.popen(name, [sys.executable, "-m", "harness", "worker", "--master",
                              f"{hosts.address('master')}:{PORT}", "--wait", "60"],
                       stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT, env=_env(secret))


def _run(hosts: Hosts, tmp_path: Path, scenario: str, *extra: str) -> subprocess.Popen:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    master = hosts.address("master")
    return hosts.popen("master", [sys.executable, "-m", "harness", "run", str(ROOT / "scenarios" / scenario),
                                  "--workers", "2", "--master-bind-host", master, "--master-bind-port", str(PORT),
                                  "--emulator-bind", master, "--secret-file", str(secret_file),
                                  "--report-dir", str(tmp_path / "reports"), "--quiet", *extra],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(None))


def test_a_shipped_scenario_runs_on_two_remote_workers_with_its_faults_checks_and_report(hosts, tmp_path):
    run = _run(hosts, tmp_path, "reconnect-drop.toml", "--workers-wait", "60")
    workers = [_worker(hosts, name, tmp_path / f"{name}.log", SECRET) for name in ("w1", "w2")]
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    for worker in workers:
        assert worker.wait(timeout=30) == 0, "a worker ends when its master does"
    assert "2 remote worker(s)" in err and err.count(" joined: ") == 2, err
    assert f"the embedded emulator listens on {hosts.address('master')}" in err, err
    report = json.loads(next((tmp_path / "reports").glob("reconnect-drop/*/report.json")).read_text())
    assert report["verdict"] == "pass" and report["complete"], report["checks"]
    # The fault timeline was played (half of 64 users dropped at 4 s) and the scenario's own checks judged it.
    (fault,) = report["faults"]
    assert fault["action"] == "drop" and fault["result"] == 32, fault
    assert {c["rule"]: c["verdict"] for c in report["checks"]}["reconnects == 32"] == "pass", report["checks"]
    # The emulator was reached across the veths, not over loopback.
    assert report["metadata"]["target"]["endpoint"].startswith(f"ws://{hosts.address('master')}:")
    totals = assert_accounting_adds_up(report)
    assert totals["lost"] == totals["duplicates"] == 0 and totals["delivered"] == totals["expected"] > 0, totals
    assert report["merge_check"]["equal"]
    # Each worker named: its host, CPUs, its share of users and connections, its clock, its health.
    rows = report["metadata"]["workers"]
    assert len(rows) == 2 and sorted(r["process"] for r in rows) == sorted(report["metadata"]["processes"])
    assert sum(r["users"] for r in rows) == 64 and all(r["users"] > 0 for r in rows), rows
    assert sum(r["users_share"] for r in rows) == pytest.approx(1.0, abs=0.001)
    for row in rows:
        assert row["host"] and row["cpus"] == os.cpu_count(), row
        assert 0 < row["connections_peak"] <= row["users"], row
        assert row["clock_method"] == "same-machine" and row["clock_offset_ns"] == 0, row  # namespaces share a kernel
        assert row["saturated"] is False and "cpu_percent" in row["health"], row
    assert "workers (2):" in out and all(r["process"] in out for r in rows), out
    html = next((tmp_path / "reports").glob("reconnect-drop/*/report.html")).read_text()
    assert 'id="workers"' in html and all(r["process"] in html for r in rows)


def test_a_missing_worker_ends_the_run_with_exit_2_and_wrong_secrets_are_refused(hosts, tmp_path):
    run = _run(hosts, tmp_path, "smoke.toml", "--workers-wait", "8")
    good = _worker(hosts, "w1", tmp_path / "good.log", SECRET)
    wrong = _worker(hosts, "w2", tmp_path / "wrong.log", "not-the-secret")
    # A plain Locust worker, scenario from a local file, no secret: it skips the scenario request, so
    # only its hello can refuse it.
    local = tmp_path / "scenario.json"
    local.write_text(json.dumps(load_scenario(ROOT / "scenarios" / "smoke.toml").as_run()))
    plain = hosts.popen("w2", [sys.executable, "-m", "locust", "-f", str(ROOT / "harness" / "run" / "locustfile.py"),
                               "--worker", "--master-host", hosts.address("master"), "--master-port", str(PORT)],
                        stdout=(tmp_path / "plain.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                        env={**_env(None), "CHATLOAD_SCENARIO": str(local)})
    # While the master waits, its emulator listens on the master's address; its fault endpoints still
    # answer this machine only (the runner, from that same address), not a worker's namespace.
    note = run.stderr.readline()
    assert "the embedded emulator listens on" in note, note
    control = note.split("control plane ")[1].split()[0]
    probe = hosts.popen("w1", [sys.executable, "-c", "import sys, urllib.request, urllib.error\ntry:\n"
                               f"    urllib.request.urlopen('{control}/_emulator/health', timeout=5)\n"
                               "except urllib.error.HTTPError as e:\n    sys.exit(e.code - 400)"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert probe.wait(timeout=30) == 3, probe.stdout.read()  # 403
    out, err = run.communicate(timeout=90)
    assert run.returncode == 2, out + err
    cause = err.strip().splitlines()[-1]
    assert "waited 8 s for 2 worker(s); 1 joined" in cause and "1 missing" in cause, err
    assert cause.count("wrong worker secret") == 2, cause  # both refused, each named
    assert wrong.wait(timeout=30) == 2
    assert "refused this worker: wrong worker secret" in (tmp_path / "wrong.log").read_text()
    assert plain.wait(timeout=30) == 2, (tmp_path / "plain.log").read_text()[-2000:]
    assert "the master refused this worker" in (tmp_path / "plain.log").read_text()
    good.wait(timeout=30)
    assert not list((tmp_path / "reports").glob("smoke/*/report.json")), "no report for a run that never ran"


@pytest.mark.parametrize("argv, said", [
    (["run", "scenarios/smoke.toml", "--emulator-bind", "0.0.0.0"], "--emulator-bind 0.0.0.0: name an address"),
    (["run", "scenarios/smoke.toml", "--workers", "-1"], "--workers must be 0 or more"),
    (["run", "scenarios/smoke.toml", "--workers", "1", "--secret-file", "/nonexistent/secret"],
     "/nonexistent/secret: cannot read the worker secret"),
    (["run", "scenarios/smoke.toml", "--emulator-bind", "192.0.2.1"],
     "target.bind / --emulator-bind 192.0.2.1: chatload emulator: cannot listen on 192.0.2.1"),
    (["worker", "--master", "nohost"], "--master 'nohost': give HOST:PORT"),
    (["worker", "--master", "10.0.0.5:5557", "--processes", "0"], "--processes 0: give 1 or more"),
])
def test_bad_distributed_input_is_exit_2_naming_it(tmp_path, capsys, monkeypatch, argv, said):
    from harness.cli import main

    monkeypatch.chdir(ROOT)
    assert main([*argv, *(["--report-dir", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


def test_a_scenario_says_how_many_workers_it_needs(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[run]\nworkers = 3\n[target]\nbind = "10.0.0.5"\n[[population]]\nkind = "viewer"\nusers = 1\n')
    scenario = load_scenario(path)
    assert (scenario.workers, scenario.emulator_bind) == (3, "10.0.0.5")
    assert scenario.as_run()["workers"] == 3  # what the report's "scenario as run" shows


REPLAY = (f'[run]\nworkers = {{workers}}\n[[population]]\nkind = "viewer"\nusers = 2\n[[population]]\n'
          f'kind = "chatter"\nusers = 1\n[traffic]\ntrace = "{ROOT}/scenarios/traces/ivschat-final.log.jsonl"\n'
          'format = "ivschat-log"\n')


def test_a_replay_on_more_than_one_remote_worker_is_refused_by_the_scenario_and_the_cli(tmp_path, capsys):
    """Each remote worker would replay the whole trace: the load would be N times the trace's."""
    from harness.cli import main
    from harness.scenario.reader import ScenarioError

    path = tmp_path / "s.toml"
    path.write_text(REPLAY.format(workers=2))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert any("traffic.trace" in p and "[run] workers = 1" in p for p in caught.value.problems), caught.value.problems
    path.write_text(REPLAY.format(workers=0))
    assert load_scenario(path).traffic is not None
    assert main(["run", str(path), "--workers", "2", "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--workers 2:" in err and "replays a trace" in err and "Traceback" not in err, err


def test_emulator_bind_on_the_cli_is_for_the_embedded_emulator_only(tmp_path, capsys):
    from harness.cli import main

    path = tmp_path / "s.toml"
    path.write_text('[target]\nkind = "running-emulator"\nendpoint = "ws://127.0.0.1:1"\n'
                    'control_endpoint = "http://127.0.0.1:2"\n[[population]]\nkind = "viewer"\nusers = 1\n')
    assert main(["run", str(path), "--emulator-bind", "10.0.0.5", "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--emulator-bind is for the embedded emulator" in err and "Traceback" not in err, err


@pytest.mark.parametrize("target, said", [
    ('bind = "0.0.0.0"', "workers cannot connect to 0.0.0.0"),
    ('kind = "running-emulator"\nendpoint = "ws://127.0.0.1:1"\ncontrol_endpoint = "http://127.0.0.1:2"\n'
     'bind = "10.0.0.5"', "only the embedded emulator"),
])
def test_a_bad_target_bind_is_named_with_its_key(tmp_path, target, said):
    from harness.scenario.reader import ScenarioError

    path = tmp_path / "s.toml"
    path.write_text(f'[target]\n{target}\n[[population]]\nkind = "viewer"\nusers = 1\n')
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert any("target.bind" in p and said in p for p in caught.value.problems), caught.value.problems


def test_the_workers_table_names_a_worker_that_saturated_in_the_steady_run_only():
    from harness.report.console import worker_lines
    from harness.report.html import workers_section
    from harness.results.run_results import ChatStats

    stats = ChatStats()
    t0 = 1_800_000_000 * 10**9
    for second in range(8):
        for source, users, cpu in (("w-hot", 30, 97.0), ("w-cool", 10, 20.0)):
            ramping = second == 0
            stats.add_interval({"t_ns": t0 + second * 10**9, "counters": {}, "histograms": {},
                                "gauges": {"users": users // 2 if ramping else users,
                                           "connections_open": users // 2 if ramping else users},
                                # The cool one spikes while users connect: that is start-up, not saturation.
                                "health": {"cpu_percent": 99.0 if source == "w-cool" and ramping else cpu}}, source)
    for source, users in (("w-hot", 30), ("w-cool", 10)):
        stats.add_final(source, {"process": {"host": f"{source}.example", "cpus": 4, "pid": 1, "users": users},
                                 "clock": {"method": "min-rtt-ping", "offset_ns": -1_500_000, "uncertainty_ns": 200_000}})
    rows = {row["process"]: row for row in stats.processes(stats.timeline())}
    hot, cool = rows["w-hot"], rows["w-cool"]
    assert hot["saturated"] and "cpu_percent reached 97.0 (limit 90.0)" in hot["saturation_reasons"], hot
    assert not cool["saturated"] and cool["health"]["cpu_percent"] == 99.0, cool  # the worst value is still shown
    assert (hot["users_share"], cool["users_share"]) == (0.75, 0.25)
    assert (hot["connections_peak"], cool["connections_share"]) == (30, 0.25)
    report = {"metadata": {"workers": list(rows.values())}}
    lines = worker_lines(report)
    assert any("w-hot" in line and "w-hot.example" in line and "30 (75%)" in line and "-1.500 ± 0.200 ms" in line
               and "SATURATED: cpu_percent" in line for line in lines), lines
    assert any("w-cool" in line and line.rstrip().endswith("ok") for line in lines), lines
    assert "SATURATED: cpu_percent" in str(workers_section(report))


def test_a_master_open_beyond_loopback_without_a_secret_warns(tmp_path):
    from harness.run.runner import free_tcp_port

    port = free_tcp_port()
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "scenarios/smoke.toml", "--workers", "1",
                           "--master-bind-host", "0.0.0.0", "--master-bind-port", str(port), "--workers-wait", "1",
                           "--report-dir", str(tmp_path)], cwd=ROOT, env=_env(None), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"WARNING the master listens on 0.0.0.0:{port} with no worker secret: ANY process" in proc.stderr
    assert "waited 1 s for 1 worker(s); 0 joined (none), 1 missing" in proc.stderr, proc.stderr
