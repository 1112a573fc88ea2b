"""The shipped Hotsock scenarios, scaled down, through `chatload run` as a user runs them; the
harness's counts checked against the emulator's own /metrics; the gate on a report; a report in
headless Chromium; and no key, API key or token anywhere in what a run leaves behind."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from harness.capacity.plan import dump_toml
from harness.services.hotsock.emulator import EmulatorProcess
from tests.test_report_browser import load
from tests.test_run import ROOT, assert_gate_reads, chatload, only_report

SCENARIOS = ROOT / "scenarios"
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess() as process:
        yield process


def running(emulator: EmulatorProcess) -> dict:
    """A [target] for the test's own emulator: its keys named by the files it wrote, never given."""
    return {"service": "hotsock", "kind": "running-emulator", "endpoint": emulator.websocket_url,
            "control_endpoint": emulator.control_endpoint, "signing_key": emulator.info["hs256_secret_file"],
            "api_key": emulator.info["api_key_file"]}


def scaled(tmp_path: Path, name: str, *, scenario: dict, populations: list[dict], rules: dict[str, str] | None = None,
           target: dict | None = None, faults: list[dict] | None = None) -> Path:
    """The shipped scenario `name`, smaller: its tables updated, size-bound rules (and sdk_rules)
    rewritten (each rule named in `rules` must be in the shipped file, so a change there shows up here)."""
    document = tomllib.loads((SCENARIOS / f"{name}.toml").read_text())
    document["scenario"].update(scenario)
    assert len(populations) == len(document["population"])
    for table, changes in zip(document["population"], populations, strict=True):
        table.update(changes)
    expectations = document["expectations"]
    for old, new in (rules or {}).items():
        shipped = next((expectations[key] for key in ("rules", "sdk_rules") if old in expectations.get(key, [])), None)
        assert shipped is not None, f"{old!r} is no longer in {name}.toml"
        shipped[shipped.index(old)] = new
    if target is not None:
        document["target"] = target
    if faults is not None:
        assert len(faults) == len(document["faults"])
        for table, changes in zip(document["faults"], faults, strict=True):
            table.update(changes)
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_toml(document))
    return path


def run_scenario(path: Path, report_dir: Path, *extra: str) -> tuple[Path, dict]:
    proc = chatload("run", str(path), "--report-dir", str(report_dir), *extra, timeout=150)
    name = tomllib.loads(path.read_text())["scenario"]["name"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{name}: PASS" in proc.stdout, proc.stdout
    report_path = only_report(report_dir, name)
    return report_path, json.loads(report_path.read_text())


def metric(emulator: EmulatorProcess, family: str, **labels: str) -> int:
    """One sample of the emulator's /metrics (0 when absent)."""
    wanted = "hotsock_" + family + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in emulator.admin.metrics_text().splitlines():
        if line.startswith(wanted + " "):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def assert_no_secrets(folder: Path, *secrets: bytes) -> None:
    """Nothing a run writes (report, results, raw logs, progress) holds a key or a token."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert not JWT.search(data), f"a JWT in {path}"
        for secret in secrets:
            assert secret not in data, f"a key in {path}"


@pytest.fixture(scope="module")
def fanout(emulator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fanout")
    before = metric(emulator, "connections_opened_total")
    path = scaled(folder, "hotsock-fanout", scenario={"duration": "5s", "ramp": "1s", "drain": "2s", "processes": 1},
                  populations=[{"users": 30}, {"users": 1, "message_rate": 4.0}],
                  rules={"subscribe.count >= 1000": "subscribe.count >= 30"}, target=running(emulator))
    report_path, report = run_scenario(path, folder)
    return report_path, report, before


def test_fanout_delivers_every_publish_to_every_subscriber_as_the_emulator_counts(fanout, emulator):
    report_path, report, connections_before = fanout
    channel = report["metadata"]["target"]["rooms"][0]
    totals = report["accounting"]["totals"]
    # Every message is owed to the subscribers there when it was accepted: all 30 after the 1 s ramp.
    assert totals["accepted"] > 10 and totals["delivered"] == totals["expected"] <= totals["accepted"] * 30
    assert totals["expected"] >= (totals["accepted"] - 4) * 30
    # The emulator's own counts: what it accepted from POST /publish, the frames it wrote, the subscribes.
    assert metric(emulator, "messages_accepted_total", room=channel, source="server") == totals["accepted"]
    assert metric(emulator, "frames_delivered_total", room=channel) == report["latency_us"]["delivery"]["count"]
    assert metric(emulator, "subscriptions_total", room=channel) == report["latency_us"]["subscribe"]["count"] == 30
    assert metric(emulator, "connections_opened_total") - connections_before == report["counters"]["connects"] == 30
    # Publishes are acked by the POST's answer; a spread is measured for each message that reached two
    # subscribers or more (all after the ramp).
    assert report["latency_us"]["ack"]["count"] == totals["accepted"]
    assert totals["accepted"] - 4 <= report["latency_us"]["spread"]["count"] <= totals["accepted"]
    assert report["metadata"]["target"]["settings"]["publish_url"].endswith("/publish")


def test_the_gate_reads_a_hotsock_report(fanout, tmp_path):
    report_path, _, _ = fanout
    assert_gate_reads(report_path, tmp_path, "spread.p50 < 1s", failing="subscribe.p99 < 1us")


def test_a_run_leaves_no_key_and_no_token_behind(fanout, emulator):
    report_path, _, _ = fanout
    assert_no_secrets(report_path.parent, emulator.hs256_secret(), emulator.api_key().encode())


@pytest.fixture(scope="module")
def presence(emulator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("presence")
    path = scaled(folder, "hotsock-presence", scenario={"duration": "8s", "ramp": "1s", "drain": "2s"},
                  populations=[{"users": 8}, {"users": 4}, {"users": 1, "message_rate": 2.0}],
                  rules={"presence_join.observed >= 1000": "presence_join.observed >= 20",
                         "presence_leave.observed >= 1000": "presence_leave.observed >= 20"},
                  target={**running(emulator), "heartbeat_timeout": 5})
    before = metric(emulator, "server_closes_total", cause="heartbeat")
    report_path, report = run_scenario(path, folder)
    return report_path, report, metric(emulator, "server_closes_total", cause="heartbeat") - before


def test_presence_joins_and_leaves_are_owed_observed_and_matched_exactly(presence, emulator):
    _, report, _ = presence
    channel = report["metadata"]["target"]["rooms"][0]
    assert channel.startswith("presence.")
    for stream in ("presence_join", "presence_leave"):
        facts = report["propagation"][stream]
        assert facts["expected"] == facts["observed"] + facts["missed"] + facts["unconfirmed"]
        assert facts["observed"] >= 20 and facts["missed"] == 0 and facts["duplicates"] == 0
        # Timed: every first observation, owed or not (a member that joined while it happened: extra).
        assert report["latency_us"][stream]["count"] == facts["observed"] + facts["extra"]
    assert report["counters"]["events.memberAdded"] >= report["propagation"]["presence_join"]["observed"]
    assert metric(emulator, "messages_accepted_total", room=channel, source="server") == \
        report["accounting"]["totals"]["accepted"] > 0


def test_tokens_with_a_heartbeat_timeout_keep_their_connections_by_heartbeating(presence):
    _, report, heartbeat_closes = presence
    assert report["metadata"]["target"]["settings"]["heartbeat_timeout"] == 5
    # 10 s of connections against a 5 s heartbeatTimeout: without heartbeats every one would be closed.
    assert heartbeat_closes == 0 and "reconnects" not in report["counters"]
    assert report["counters"].get("closes.1001", 0) == 0


def test_a_hotsock_report_renders_in_chromium_without_errors(presence, chromium):
    report_path, _, _ = presence
    page = load(chromium, report_path.parent / "report.html")
    assert not page.errors, "console errors:\n" + "\n".join(page.errors)
    assert not page.requests, f"the page went to the network: {page.requests}"
    assert page.charts and all(chart["rendered"] == "true" and chart["svg"] >= 1 for chart in page.charts)
    assert "presence_join" in page.text and "PASS" in page.text


def test_reconnects_follow_hotsock_js_and_count_what_was_missed(emulator, tmp_path):
    closes = {cause: metric(emulator, "server_closes_total", cause=cause) for cause in ("fault", "expire")}
    opened = metric(emulator, "connections_opened_total")
    path = scaled(tmp_path, "hotsock-reconnect", scenario={"duration": "13s", "ramp": "1s", "drain": "2s"},
                  populations=[{"users": 16}, {"users": 1}, {"users": 1}],
                  rules={"reconnects == 124": "reconnects == 33", "counters.closes.1006 == 93": "counters.closes.1006 == 25",
                         "counters.closes.1001 == 31": "counters.closes.1001 == 8"},
                  target=running(emulator), faults=[{"at": "3s", "room": 0}, {"at": "5.5s", "room": 0}, {"at": "7.5s"}])
    _, report = run_scenario(path, tmp_path)
    counters, latency = report["counters"], report["latency_us"]
    assert counters["reconnects"] == 8 + 8 + 17
    assert metric(emulator, "server_closes_total", cause="fault") - closes["fault"] == 8
    assert metric(emulator, "server_closes_total", cause="expire") - closes["expire"] == counters["closes.1001"] == 8
    assert metric(emulator, "connections_opened_total") - opened == counters["connects"] == 17 + 33
    # A fresh token for every try: the first connects, one try after each drop and 1001, three after the restart.
    assert counters["token_fetches"] == 17 + 8 + 8 + 17 * 3
    # hotsock-js: at once after a close; after the restart's refused first try 1 s, then 1.5–2.5 s.
    assert latency["reconnect"]["min"] < 1_000_000 and latency["reconnect_attempts"]["max"] == 3
    # The policy's waits are 1 s, then at most 2.5 s; HDR reads 2.5 s back as up to 2,500,607 µs.
    assert 999_000 <= latency["retry_wait"]["min"] <= 1_000_000 and latency["retry_wait"]["max"] <= 2_500_607
    assert latency["retry_wait"]["count"] == 17 * 2
    assert report["accounting"]["totals"]["missed_while_away"] > 0


def test_forbidden_subscribes_and_publishes_are_refused_by_category_on_the_embedded_emulator(tmp_path):
    path = scaled(tmp_path, "hotsock-permissions", scenario={"duration": "5s", "ramp": "1s", "drain": "2s"},
                  populations=[{"users": 4}, {"users": 1}, {"users": 1}, {"users": 2}, {"users": 2}],
                  rules={"errors.SUBSCRIBE_PERMISSION_DENIED == 5": "errors.SUBSCRIBE_PERMISSION_DENIED == 2",
                         "events.subscribe_rejected.forbidden == 5": "events.subscribe_rejected.forbidden == 2"})
    report_path, report = run_scenario(path, tmp_path)
    totals = report["accounting"]["totals"]
    assert totals["rejected"] == totals["rejected_by_category"]["forbidden"] == \
        totals["rejected_by_code"]["PUBLISH_PERMISSION_DENIED"] > 0
    assert totals["sent"] == totals["accepted"] + totals["rejected"]
    assert report["metadata"]["target"]["kind"] == "emulator"
    assert set(report["metadata"]["target"]["settings"]) >= {"signing_key", "api_key", "publish_url"}
    assert_no_secrets(report_path.parent)
