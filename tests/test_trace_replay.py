"""Trace replay end to end, as a user runs it: the shipped scenario (an IVS Chat log) through
`chatload run` against the embedded emulator, its report read back and rendered in Chromium; a Hotsock
run (server publishes, subscribers leaving and rejoining as the trace says) to show the replay goes
through the service contract; and `locust -f … --chat-trace`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness.capacity.plan import dump_toml
from harness.report.run_sections import reconnect_section
from harness.trace.loading import import_trace
from harness.trace.model import JOIN, LEAVE, TraceEvent
from harness.trace.plan import build_plan
from harness.trace.reader import write_trace
from harness.trace.replayreport import LATE_US
from tests.locust_run import results_of, run_locust
from tests.test_report_browser import load
from tests.test_run import ROOT, chatload, only_report

pytestmark = pytest.mark.timeout(300)
SHIPPED = ROOT / "scenarios" / "replay-ivschat-log.toml"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> tuple[Path, dict, str]:
    report_dir = tmp_path_factory.mktemp("reports")
    proc = chatload("run", str(SHIPPED), "--report-dir", str(report_dir), timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = only_report(report_dir, "replay-ivschat-log")
    return path, json.loads(path.read_text()), proc.stdout


def test_the_shipped_replay_passes_and_reports_trace_against_replayed(shipped):
    path, report, stdout = shipped
    assert "replay-ivschat-log: PASS" in stdout
    scenario = tomllib.loads(SHIPPED.read_text())
    trace = import_trace([SHIPPED.parent / scenario["traffic"]["trace"]], "ivschat-log")
    plan = build_plan(trace, speed=scenario["traffic"]["speed"])
    replay = report["replay"]
    total = len(trace.messages)
    assert replay["messages_total"] == total and replay["replayed"] == total and replay["replayed_ratio"] == 1.0
    assert f"replayed {total:,} of the trace's {total:,} messages (100.0%) at speed 2" in stdout
    assert "schedule lag (the harness's own): dispatched p50" in stdout and "written to the socket p99" in stdout
    # The trace's own per-second rates at its speed, and the accepted ones beside them: every message
    # accepted (lost == 0 passed), within a second of its due second.
    assert replay["per_second"]["trace"] == plan.trace_per_second
    assert sum(replay["per_second"]["replayed"]) == total
    assert len(replay["per_second"]["replayed"]) <= len(plan.trace_per_second) + 1
    assert replay["lag_us"]["count"] == total and replay["lag_us"]["max"] is not None and not replay["too_fast"]
    # Every message went out at its due time as the intended time: ack latency counts all of them.
    assert report["accounting"]["totals"]["sent"] == total
    # Listeners followed the trace's viewers: a third of the 30 leave near its end.
    assert replay["presences"] == 30 and 1 <= replay["leaves"] <= 10
    # The users gauge moves with the trace's joins and leaves: health is judged on the whole run, not
    # on a steady window that a replay never has.
    assert report["health"]["window"] == "ramp" and report["health"]["judged_seconds"] > 0
    # A listener the trace made leave (or come back) is the same user: spawned once, and not a user
    # "not connected at the end"; so the report has no Reconnects section for it.
    counters = report["counters"]
    assert sum(v for k, v in counters.items() if k.startswith("users_spawned.")) == 40
    assert counters.get("replay.rejoins", 0) == sum(v for k, v in counters.items() if k.startswith("users_rejoined."))
    assert not report["verdicts"]["reconnect"].get("not_connected_at_end"), report["verdicts"]["reconnect"]
    assert reconnect_section(report, {}) is None
    # No trace identity or content reaches the report or the run's folder.
    for file in (path, path.with_name("report.html"), path.parent / "raw" / "trace.jsonl"):
        text = file.read_text()
        assert "fan-" not in text and "viewer-" not in text and "xxxxxxxx" not in text, file


def test_the_replay_report_renders_its_chart_in_chromium(shipped, chromium):
    path, _, _ = shipped
    run = load(chromium, path.with_name("report.html"))
    assert not run.errors, run.errors
    charts = {chart["id"]: chart for chart in run.charts}
    assert charts["chart-replay"]["rendered"] == "true" and charts["chart-replay"]["traces"] == 2
    assert "Trace replay" in run.text and "replayed 173 of the trace's 173 messages" in run.text


def test_a_hotsock_replay_publishes_and_moves_subscribers_as_the_trace_says(tmp_path):
    events = [TraceEvent(i * 0.25, "lobby", f"p{i % 2}", 20 + i) for i in range(12)]  # 4 msg/s for 3 s
    events += [TraceEvent(0.0, "lobby", "v1", 0, JOIN), TraceEvent(1.0, "lobby", "v1", 0, LEAVE),
               TraceEvent(2.0, "lobby", "v1", 0, JOIN), TraceEvent(0.5, "lobby", "v2", 0, JOIN),
               TraceEvent(30.0, "lobby", "v3", 0, JOIN)]  # after the run: no listener waits for it
    write_trace(tmp_path / "lobby.jsonl", events)
    document = {
        "scenario": {"name": "hotsock-replay", "duration": "6s", "ramp": "1s", "drain": "2s", "processes": 1},
        "target": {"service": "hotsock"},
        "population": [{"kind": "subscriber", "users": 4}, {"kind": "publisher", "users": 2}],
        "traffic": {"trace": "lobby.jsonl", "speed": 1.0},
        "expectations": {"rules": ["lost == 0", "duplicates == 0", "trace.replay_ratio == 1"]},
    }
    path = tmp_path / "hotsock-replay.toml"
    path.write_text(dump_toml(document))
    proc = chatload("run", str(path), "--report-dir", str(tmp_path / "reports"), timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(only_report(tmp_path / "reports", "hotsock-replay").read_text())
    replay = report["replay"]
    assert replay["replayed"] == 12 and replay["per_second"]["trace"] == [4, 4, 4]
    assert replay["presences"] == 3 and replay["presences_after_end"] == 1
    assert replay["leaves"] == 1 and replay["rejoins"] == 1
    assert report["accounting"]["totals"]["accepted"] == 12
    # Owed to the subscribers: 12 each to the two the trace does not move, 10 to v2 (joins at 0.5 s),
    # 8 to v1 (away from 1 s to 2 s); a message due the instant a member joins may race its handshake.
    # All four there all along would be owed 48.
    assert 38 <= report["accounting"]["totals"]["expected"] <= 42
    assert report["accounting"]["totals"]["lost"] == 0


def test_locust_f_replays_a_trace_named_by_an_option_and_counts_how_late_it_ran(tmp_path):
    # 20,000 messages due within 0.2 s: the driver falls behind, by how much depends on the machine
    # (18 ms at most on a quiet one, over 50 ms beside other load), and it must count that lateness by
    # its threshold while keeping every message's due time as its intended time.
    trace = write_trace(tmp_path / "t.jsonl", [TraceEvent(i / 100_000, "x", f"s{i % 3}", 12) for i in range(20_000)])
    proc = run_locust(tmp_path, "-u", "2", "-r", "2", "-t", "4s", "--chat-drain", "2", "--chat-trace", str(trace),
                      "--chat-trace-delay", "1", "--chat-mix", "Chatter=1", "--chat-rooms", "1")
    # Locust exits 1 when requests failed: the room's rate limit (100/s) rejects most of these sends.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = results_of(tmp_path)
    assert results["accounting"]["totals"]["rejected_by_code"].get("429", 0) > 0
    counters, lag = results["counters"], results["latency_us"]["replay_lag"]
    assert counters["replay.sent"] == 20_000 and results["accounting"]["totals"]["sent"] == 20_000
    assert lag["count"] == 20_000 and lag["max"] > 0
    late = counters.get("replay.late", 0)  # dispatched LATE_US (50 ms) or more after its due time
    assert late == 0 or lag["max"] >= LATE_US, (late, lag)
    assert lag["max"] < LATE_US * 1.001 or late >= 1, (late, lag)  # HDR reads a value back within 0.1 %
    # Intended times are the trace's: the send lag (due → written) is at least the dispatch lag.
    assert results["latency_us"]["send_lag"]["max"] >= lag["max"] - 1000


def test_locust_f_with_a_bad_replay_option_is_one_line_naming_it_and_exit_2(tmp_path):
    trace = write_trace(tmp_path / "t.jsonl", [TraceEvent(i / 10, "x", "s1", 12) for i in range(20)])
    bad = {"--chat-trace-speed": ("--chat-trace", str(trace), "--chat-trace-speed", "0"),
           "--chat-trace-rooms": ("--chat-trace", str(trace), "--chat-trace-rooms", "x=3"),
           "--chat-trace:": ("--chat-trace", str(tmp_path / "absent.jsonl"))}
    runs = {name: run_locust(tmp_path / name.strip("-:"), "-u", "1", "-r", "1", "-t", "3s", "--chat-rooms", "1",
                             *argv, background=True) for name, argv in bad.items()}
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2, out
        lines = [line for line in out.splitlines() if "chatload: --chat-trace" in line]
        assert len(lines) == 1 and name in lines[0], out
        assert "Traceback" not in out, out
