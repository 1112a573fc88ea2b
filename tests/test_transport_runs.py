"""Each transport through a whole run: users connect, messages are accounted for exactly, and a
mass drop comes back — the same figures whichever WebSocket client carries them."""

from __future__ import annotations

import json

import pytest

from harness.net.transport import TRANSPORTS

from .test_run import chatload, only_report

SCENARIO = '''[scenario]
name = "{name}"
duration = "5s"
ramp = "1s"
drain = "2s"
processes = 1
[run]
transport = "{transport}"
[[population]]
kind = "viewer"
users = 8
[[population]]
kind = "chatter"
users = 2
message_rate = 3.0
[[faults]]
at = "3s"
action = "drop"
fraction = 0.5
seed = 2
[expectations]
rules = ["lost == 0", "duplicates == 0", "unexpected == 0", "reconnects == 5"]
'''


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_run_with_a_drop_is_exact_on_every_transport(tmp_path, transport):
    path = tmp_path / "run.toml"
    path.write_text(SCENARIO.format(name=f"on-{transport}", transport=transport))
    proc = chatload("run", str(path), "--report-dir", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(only_report(tmp_path, f"on-{transport}").read_text())
    assert report["scenario"]["as_run"]["transport"] == transport
    assert report["metadata"]["options"]["chat_transport"] == transport
    totals = report["accounting"]["totals"]
    assert totals["delivered"] == totals["expected"] > 100
