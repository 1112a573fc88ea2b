"""Run `locust` headless as a user would, in a subprocess, and read the results document it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASIC = ROOT / "tests" / "locustfiles" / "chat_basic.py"


def run_locust(report_dir: Path, *args: str, locustfile: Path = BASIC, timeout: float = 120,
               background: bool = False, env: dict[str, str] | None = None):
    """`env`: variables added to this process's environment for the run."""
    env = {**os.environ, **env} if env else None
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
            "--chat-report-dir", str(report_dir), *args]
    if background:
        return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def results_of(report_dir: Path) -> dict:
    paths = sorted(report_dir.glob("*/*/results.json"))
    assert paths, f"no results.json under {report_dir}"
    return json.loads(paths[-1].read_text())


def assert_accounting_adds_up(results: dict) -> dict:
    accounting = results["accounting"]
    for receiver, counts in accounting["per_receiver"].items():
        assert counts["delivered"] + counts["lost"] + counts["unconfirmed_at_disconnect"] == counts["expected"], (
            receiver, counts)
    return accounting["totals"]


def metric(metrics_text: str, name: str, room_id: str) -> int:
    prefix = f'{name}{{room="{room_id}"}} '
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            return int(float(line[len(prefix):]))
    return 0


def arrivals(totals: dict) -> int:
    """Every message frame that reached a receiver, however the ledger judged it: expected, sent while the
    receiver's handshake was still completing (under load a frame can race the handshake), unexpected, a
    duplicate, or a replay (services that replay to late joiners)."""
    return sum(totals.get(k, 0) for k in ("delivered", "during_handshake", "unexpected", "duplicates", "replayed"))
