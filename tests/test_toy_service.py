"""The service contract suffices: a toy echo-broadcast service, added as one package plus one
registry line, runs scenarios end to end through the same runner, report and gate as IVS Chat."""

from __future__ import annotations

import json
from pathlib import Path

from .locust_run import ROOT
from .test_run import chatload, only_report

TOY = '''[scenario]
name = "{name}"
duration = "4s"
ramp = "1s"
drain = "2s"
processes = 1
[target]
service = "toy"
[rooms]
count = 1
rate = {rate}
[[population]]
kind = "listener"
users = 4
[[population]]
kind = "sender"
users = 2
message_rate = {message_rate}
[expectations]
rules = {rules}
'''


def _scenario(tmp_path: Path, name: str, **values) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TOY.format(name=name, **values))
    return path


def test_toy_service_runs_a_scenario_to_a_passing_report(tmp_path):
    scenario = _scenario(tmp_path, "toy-fanout", rate=0, message_rate=2.0,
                         rules='["lost == 0", "duplicates == 0", "delivered > 0", "delivery.p99 < 1s"]')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(only_report(tmp_path, "toy-fanout").read_text())
    assert report["verdict"] == "pass" and report["complete"]
    totals = report["accounting"]["totals"]
    # Two senders, six members in one room, the sender included: every accepted message is owed to up to six.
    assert totals["accepted"] > 0 and totals["delivered"] == totals["expected"] <= totals["accepted"] * 6
    assert report["metadata"]["target"]["service"] == "toy"
    assert report["latency_us"]["ack"]["count"] == totals["accepted"]
    assert (only_report(tmp_path, "toy-fanout").parent / "report.html").stat().st_size > 10_000
    proc = chatload("gate", str(only_report(tmp_path, "toy-fanout")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_toy_rate_limit_rejections_are_counted_by_neutral_category(tmp_path):
    scenario = _scenario(tmp_path, "toy-limited", rate=1, message_rate=5.0,
                         rules='["rejected.rate_limited.ratio > 0.5", "rejected.429.ratio > 0.5", '
                               '"rate_limit.untied_rejections == 0", "lost == 0"]')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(only_report(tmp_path, "toy-limited").read_text())
    totals = report["accounting"]["totals"]
    assert totals["rejected_by_category"]["rate_limited"] == totals["rejected"] > 0
    assert report["verdicts"]["rate_limit"]["peak_ratio"] <= 1, "the toy room's limit of 1/s held"


def test_nothing_outside_the_toy_package_knows_the_toy_service():
    mentions = [path.relative_to(ROOT) for path in (ROOT / "harness").rglob("*.py")
                if "toy" in path.read_text().lower() and "services/toy" not in path.as_posix()]
    assert mentions == [Path("harness/services/registry.py")], mentions
