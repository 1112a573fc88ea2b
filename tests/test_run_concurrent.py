"""Two multi-process runs at once on one machine (CI jobs, colleagues' runs) must not meet: each
Locust master listens on a port of its own, so its workers are its own."""

from __future__ import annotations

import json
import subprocess
import sys

from .test_run import ROOT, only_report

TOY = '''[scenario]
name = "{name}"
duration = "4s"
ramp = "1s"
drain = "2s"
processes = 2
[target]
service = "toy"
[[population]]
kind = "listener"
users = {listeners}
[[population]]
kind = "sender"
users = 2
[expectations]
rules = ["lost == 0"]
'''


def test_two_multi_process_runs_at_the_same_time_keep_their_own_workers(tmp_path):
    runs = {}
    for name, listeners in (("left", 3), ("right", 5)):
        scenario = tmp_path / f"{name}.toml"
        scenario.write_text(TOY.format(name=name, listeners=listeners))
        runs[name] = (listeners, subprocess.Popen(
            [sys.executable, "-m", "harness", "run", str(scenario), "--report-dir", str(tmp_path)], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL))
    for name, (listeners, proc) in runs.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        counters = json.loads(only_report(tmp_path, name).read_text())["counters"]
        spawned = {key: n for key, n in counters.items() if key.startswith("users_spawned.")}
        assert spawned == {"users_spawned.Listener0": listeners, "users_spawned.Sender1": 2}, (name, spawned)
