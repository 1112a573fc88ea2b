"""`chatload run` and `chatload gate` as a team uses them every day, through the real command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "smoke.toml"


def chatload(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def assert_gate_reads(report: Path, tmp_path: Path, *rules: str, failing: str) -> None:
    """`chatload gate` passes `report` on its own expectations, then fails it on a rules file holding
    `rules` and the impossible `failing`, naming that rule: the gate found the report's metrics."""
    proc = chatload("gate", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = tmp_path / "rules.toml"
    path.write_text("".join(f'[[threshold]]\nrule = "{rule}"\n' for rule in (*rules, failing)))
    proc = chatload("gate", str(report), "--rules", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert failing in proc.stdout and "FAIL" in proc.stdout


def only_report(report_dir: Path, name: str) -> Path:
    reports = sorted(report_dir.glob(f"{name}/*/report.json"))
    assert len(reports) == 1, reports
    return reports[0]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> Path:
    report_dir = tmp_path_factory.mktemp("reports")
    proc = chatload("run", str(SMOKE), "--report-dir", str(report_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke: PASS" in proc.stdout and "report:" in proc.stdout
    assert "deliveries/s" in proc.stderr, "live progress is shown"
    return only_report(report_dir, "smoke")


def test_smoke_run_writes_a_complete_passing_report(smoke_report):
    report = json.loads(smoke_report.read_text())
    assert report["schema"] == "chatload.report/1" and report["complete"] and report["verdict"] == "pass"
    assert {c["rule"] for c in report["checks"]} >= {"lost == 0", "delivery.p99 < 250ms"}
    assert report["scenario"]["name"] == "smoke" and report["scenario"]["as_run"]["populations"]
    assert report["accounting"]["totals"]["lost"] == 0 and report["accounting"]["totals"]["delivered"] > 0
    assert (smoke_report.parent / "report.html").stat().st_size > 10_000
    assert not list(smoke_report.parent.glob(".tmp-*")), "no temporary files survive"


def test_gate_passes_on_the_smoke_report_and_fails_on_an_impossible_rule(smoke_report, tmp_path):
    proc = chatload("gate", str(smoke_report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = tmp_path / "rules.toml"
    rules.write_text('[[threshold]]\nrule = "delivery.p99 < 1us"\n')
    junit = tmp_path / "gate.xml"
    proc = chatload("gate", str(smoke_report), "--rules", str(rules), "--junit", str(junit))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "delivery.p99 < 1us" in proc.stdout and "FAIL" in proc.stdout
    assert "<failure" in junit.read_text()


def test_gate_regression_against_the_run_itself_passes(smoke_report, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[regression]]\nmetric = "delivery.p99"\nworse_by_at_most = "10%"\nnoise = "1ms"\n')
    proc = chatload("gate", str(smoke_report), "--baseline", str(smoke_report), "--rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_report_and_compare_rerender(smoke_report, tmp_path):
    out = tmp_path / "again.html"
    proc = chatload("report", str(smoke_report), "-o", str(out))
    assert proc.returncode == 0 and out.stat().st_size > 10_000, proc.stderr
    compare = tmp_path / "compare.html"
    proc = chatload("compare", str(smoke_report), str(smoke_report), "-o", str(compare))
    assert proc.returncode == 0 and compare.stat().st_size > 10_000, proc.stderr


def test_invalid_scenario_is_exit_2_naming_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[population]]\nkind = "viewer"\nusers = 0\n')
    proc = chatload("run", str(bad), "--report-dir", str(tmp_path))
    assert proc.returncode == 2
    assert f"{bad}: population[0].users: must be at least 1" in proc.stderr
    assert not list(tmp_path.glob("*/*/report.json")), "nothing ran"


def test_real_room_needs_confirmation(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text('[target]\nkind = "ivschat"\nendpoint = "wss://edge.ivschat.us-east-1.amazonaws.com"\n'
                    'room_arns = ["arn:aws:ivschat:us-east-1:123456789012:room/AbCdEfGhIjKl"]\n'
                    '[scenario]\nduration = "10s"\n[[population]]\nkind = "chatter"\nusers = 2\n')
    proc = chatload("run", str(real), "--report-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "about 20 messages" in proc.stderr and "bills" in proc.stderr and "pass --yes" in proc.stderr


def test_unreachable_running_emulator_is_exit_2(tmp_path):
    scenario = tmp_path / "gone.toml"
    scenario.write_text('[target]\nkind = "running-emulator"\nendpoint = "ws://127.0.0.1:9"\n'
                        'control_endpoint = "http://127.0.0.1:9"\n[[population]]\nkind = "viewer"\nusers = 1\n')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path))
    assert proc.returncode == 2 and "does not answer" in proc.stderr, proc.stderr
    assert not (tmp_path / "gone").exists(), "a run that never started leaves no empty folder"


def test_fault_timeline_is_played_and_reported(tmp_path):
    scenario = tmp_path / "faulty.toml"
    scenario.write_text('[scenario]\nname = "faulty"\nduration = "6s"\nramp = "1s"\ndrain = "2s"\nprocesses = 1\n'
                        '[[population]]\nkind = "viewer"\nusers = 6\n[[population]]\nkind = "chatter"\nusers = 2\n'
                        '[[faults]]\nat = "3s"\naction = "drop"\nfraction = 0.5\nseed = 1\n'
                        '[expectations]\nrules = ["lost == 0", "reconnects == 4"]\n')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(only_report(tmp_path, "faulty").read_text())
    (fault,) = report["faults"]
    assert fault["action"] == "drop" and fault["result"] == 4 and fault["applied_at_s"] >= 3
    assert report["counters"]["reconnects"] == 4


def test_ctrl_c_drains_and_writes_an_incomplete_report(tmp_path):
    scenario = tmp_path / "long.toml"
    scenario.write_text('[scenario]\nname = "long"\nduration = "60s"\nramp = "1s"\ndrain = "2s"\nprocesses = 1\n'
                        '[[population]]\nkind = "viewer"\nusers = 4\n[[population]]\nkind = "chatter"\nusers = 2\n'
                        '[expectations]\nrules = ["lost == 0"]\n')
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(scenario), "--report-dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = tmp_path.glob("long/*/raw/progress.jsonl")
        deadline = time.monotonic() + 60
        while not any('"deliveries_per_s": ' in p.read_text() and '"connections": 6' in p.read_text()
                      for p in tmp_path.glob("long/*/raw/progress.jsonl")):
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert progress is not None
    assert proc.returncode == 1, out + err
    assert "long: INCOMPLETE (interrupted (Ctrl-C)); the checks that ran: PASS" in out and "stopping" in err
    report = json.loads(only_report(tmp_path, "long").read_text())
    assert report["complete"] is False and "interrupted" in report["incomplete_reason"]
    assert report["accounting"]["totals"]["lost"] == 0, "the drain still ran"
