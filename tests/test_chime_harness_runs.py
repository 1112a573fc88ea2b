"""The shipped Chime scenarios end to end through `chatload run`, each scaled down (fewer users, shorter),
against an emulator the test runs (`kind = "running-emulator"`), so that what the harness reports can be
checked against the emulator's own `/metrics`; one report in headless Chromium; the gate reading it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness.capacity.plan import dump_toml
from harness.report.numbers import key_numbers
from harness.services.chime.emulator import EmulatorProcess

from .browser import chromium  # noqa: F401  (the fixture)
from .chime import client
from .locust_run import ROOT, arrivals
from .test_report_browser import load
from .test_run import assert_gate_reads, chatload, only_report

pytestmark = pytest.mark.timeout(300)


def shipped(name: str, emulator: EmulatorProcess, tmp_path: Path, *, scenario: dict, meetings: dict | None = None,
            users: dict | None = None, faults: dict | None = None) -> Path:
    """The shipped scenario `name`, scaled down: its rules unchanged, pointed at `emulator`."""
    data = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
    data["scenario"].update(scenario)
    data["target"] = {"service": "chime", "kind": "running-emulator", "control_endpoint": emulator.control_endpoint}
    data.setdefault("meetings", {}).update(meetings or {})
    for population in data["population"]:
        population.update((users or {}).get(population["kind"], {}))
    for fault in data.get("faults", []):
        fault.update(faults or {})
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_toml(data))
    return path


def run(path: Path, tmp_path: Path) -> dict:
    proc = chatload("run", str(path), "--report-dir", str(tmp_path / "reports"), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(only_report(tmp_path / "reports", path.stem).read_text())


def metric(text: str, name: str, **labels: str) -> int:
    """The sum of `chime_<name>` samples whose labels include `labels`."""
    total = 0
    for line in text.splitlines():
        if line.startswith(f"chime_{name}{{") or line.startswith(f"chime_{name} "):
            sample, value = line.rsplit(" ", 1)
            if all(f'{key}="{want}"' in sample for key, want in labels.items()):
                total += int(float(value))
    return total


def test_meeting_counts_match_the_emulator_render_cleanly_and_pass_the_gate(tmp_path, chromium):  # noqa: F811
    with EmulatorProcess("--throttle", service="chime") as emulator:
        path = shipped("chime-meeting", emulator, tmp_path, scenario={"duration": "6s", "ramp": "1s", "drain": "2s"},
                       users={"attendee": {"users": 30}, "data_sender": {"users": 2, "message_rate": 5.0}})
        report = run(path, tmp_path)
        text = emulator.admin.metrics_text()
        meeting = report["metadata"]["target"]["rooms"][0]
        tokens = [a["JoinToken"] for a in client(emulator).list_attendees(MeetingId=meeting)["Attendees"]]
    totals, counters, latency = report["accounting"]["totals"], report["counters"], report["latency_us"]
    assert report["verdict"] == "pass" and totals["lost"] == 0 and totals["receivers"] == 30
    assert totals["accepted"] == counters["sent"] == metric(text, "messages_accepted_total", room=meeting) > 0
    # Every frame the emulator wrote: to the attendees (as the ledger judged them) and to the two
    # senders, who subscribe to nothing (the SDK has no callback for it).
    assert metric(text, "frames_delivered_total", room=meeting) == arrivals(totals) + counters["events.not_subscribed"]
    assert metric(text, "joins_total", room=meeting) == counters["connects"] == latency["join"]["count"] == 32
    assert latency["ingest"]["count"] == latency["delivery"]["count"] == latency["from_server"]["count"]
    assert len(tokens) == 32
    written = [p for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    for token in tokens:  # join tokens stay in the process that used them: not in any report or log
        assert not any(token in p.read_text(errors="replace") for p in written)
    page = only_report(tmp_path / "reports", "chime-meeting").with_name("report.html")
    shown = load(chromium, page)
    assert not shown.errors, "console errors:\n" + "\n".join(shown.errors)
    assert not shown.requests and shown.charts and all(c["rendered"] == "true" for c in shown.charts)
    assert "Amazon Chime SDK meetings" in shown.text or "chime" in shown.text
    assert_gate_reads(page.with_name("report.json"), tmp_path, failing="join.p99 < 1us")


def test_throttle_onset_and_hang_up_match_a_time_scaled_emulator(tmp_path):
    # The hard limit's burst scaled from 10,000 to 2,000, so the hang-up comes within seconds; the
    # verdicts read the limits the emulator says it enforces.
    with EmulatorProcess("--throttle", "--data-hard-limit", "500/2000", service="chime") as emulator:
        path = shipped("chime-throttle", emulator, tmp_path, scenario={"duration": "9s", "drain": "2s"},
                       meetings={"ramp_to_rate": 1500.0, "ramp_over": "6s"}, users={"attendee": {"users": 3}})
        report = run(path, tmp_path)
        text = emulator.admin.metrics_text()
    meeting = report["metadata"]["target"]["rooms"][0]
    verdict = report["verdicts"]["chime"]
    assert verdict["limits"]["hard_limit"] == [500, 2000] and verdict["limits"]["source"] == "emulator"
    throttle = verdict["throttle"]
    assert throttle["per_attendee_judged"] and 1.0 < throttle["predicted_start_s"] < 3.0  # ~1.5 s after the start
    assert 5.5 < throttle["hard_limit_predicted_s"] < 7.5, "500/s, burst 2,000 under this ramp: near 6.4 s"
    totals, counters = report["accounting"]["totals"], report["counters"]
    throttled = metric(text, "messages_throttled_total", room=meeting)
    assert totals["rejected_by_code"]["THROTTLED"] == counters["errors.THROTTLED"] == throttled == throttle["throttled"]
    assert totals["accepted"] == metric(text, "messages_accepted_total", room=meeting)
    assert metric(text, "closed_total", room=meeting, code="4429") == counters["closes.4429"] == 1
    assert counters["not_connected_at_end.closed_by_server"] == 1, "the SDK does not come back after 4429"
    # One source for each count (issue 24, point 5): the key numbers, the accounting and the rate-limit
    # table say the same accepted and rejected, though nothing acknowledges an accepted data message;
    # the table names the per-sender limits in force instead of "unknown".
    numbers = {number.key: number.value for number in key_numbers(report)}
    room = report["verdicts"]["rate_limit"]["rooms"][meeting]
    assert numbers["accepted"] == totals["accepted"] == room["accepted"] > 0
    assert numbers["rejected"] == totals["rejected"] == sum(room["rejected"].values()) > 0
    assert room["limit"] is None and room["limit_words"].startswith("per sender: 100/s, burst 200")
    assert "500/s, burst 2000" in room["limit_words"]
    page = only_report(tmp_path / "reports", "chime-throttle").with_name("report.html").read_text()
    assert f"{totals['accepted']:,} accepted · {totals['rejected']:,} rejected" in page
    assert ">unknown<" not in page
    # The report leads with the service's own measures and facts: throttle onset and hang-up (point 4).
    assert page.index("Amazon Chime SDK meetings: what it measured") < page.index("Key numbers")
    assert "Derived facts" in page and "chime.throttle_start_error" in page and "chime.hard_limit_error" in page


def test_late_joiners_and_comebacks_get_exactly_their_replays(tmp_path):
    with EmulatorProcess("--throttle", service="chime") as emulator:
        path = shipped("chime-late-join", emulator, tmp_path, scenario={"duration": "8s", "ramp": "1s", "drain": "2s"},
                       meetings={"late_join_after": "3s"}, faults={"at": "5s"},
                       users={"attendee": {"users": 8}, "late_attendee": {"users": 4}})
        report = run(path, tmp_path)
        text = emulator.admin.metrics_text()
    meeting = report["metadata"]["target"]["rooms"][0]
    totals, latency = report["accounting"]["totals"], report["latency_us"]
    assert totals["replayed"] == totals["replay_expected"] > 0 and totals["replay_missed"] == 0
    dropped = report["faults"][0]["result"]
    assert dropped >= 3 and report["counters"]["reconnects"] == dropped, "a quarter of 14 dropped, all back"
    replays = metric(text, "messages_replayed_total", room=meeting)
    # What the emulator replayed came as Replayed (timed as `replay`, not as delivery); one ingested
    # in the very millisecond of a JOIN counts as live (INDEX's time is whole milliseconds).
    assert 0 <= replays - latency["replay"]["count"] <= 2 and latency["replay"]["count"] > 0
    assert latency["replay"]["max"] > 1_000_000 > latency["delivery"]["percentiles"]["99"], "replays are seconds old"
    # Frames written just before an abrupt drop may never arrive: at most what was written.
    assert arrivals(totals) <= metric(text, "frames_delivered_total", room=meeting)


def test_api_churn_latency_and_429s_match_the_emulators_count(tmp_path):
    with EmulatorProcess("--throttle", service="chime") as emulator:
        path = shipped("chime-api-churn", emulator, tmp_path, scenario={"duration": "9s", "drain": "1s"},
                       users={"attendee": {"users": 5}})
        report = run(path, tmp_path)
        text = emulator.admin.metrics_text()
    counters, latency = report["counters"], report["latency_us"]

    def served(operation: str, status: str) -> int:
        return metric(text, "control_requests_total", operation=operation, status=status)

    # What the emulator answered equals what the users counted, but for calls still in flight when the run
    # stopped (counted as started, never answered: whether the emulator acted on them is unknown).
    create_cut, delete_cut = (counters[f"api_{op}_meeting_started"] - counters[f"api_{op}_meeting_calls"]
                              for op in ("create", "delete"))
    assert create_cut >= 0 and delete_cut >= 0
    throttled = counters["api_create_meeting_failures.ThrottlingException"]
    made = counters["api_create_meeting_calls"] - throttled
    assert served("CreateMeeting", "429") > 0 and throttled > 0
    assert throttled <= served("CreateMeeting", "429") and made + 1 <= served("CreateMeeting", "200")  # + the run's
    assert served("CreateMeeting", "429") + served("CreateMeeting", "200") - 1 - (throttled + made) <= create_cut
    deleted = counters["api_delete_meeting_calls"] - sum(
        n for k, n in counters.items() if k.startswith("api_delete_meeting_failures."))
    assert deleted <= served("DeleteMeeting", "204") <= deleted + delete_cut
    assert latency["api_create_meeting"]["count"] == counters["api_create_meeting_calls"]
    assert report["verdicts"]["chime"]["api"]["operations"]["api_create_meeting"]["throttled"] == throttled
