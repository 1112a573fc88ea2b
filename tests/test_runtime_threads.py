"""Thread ownership in the runtime: sessions live on the loop thread, the ticker never dies."""

from __future__ import annotations

import json
import subprocess
import sys

from .locust_run import ROOT


def _race(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.runtime_race", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_ramping_many_users_while_ticking_fast_keeps_the_ticker_alive():
    # On the old layout (sessions inserted from the gevent hub) this died within the ramp, every time:
    # the ticker stopped and no snapshot came after it.
    result = _race("3000")
    assert result["registered"] == 3000, result
    assert result["ticker_errors"] == 0, result
    assert result["snapshots_after"] >= result["snapshots_during_ramp"] + 5, result
    assert result["handles_with_posted_state"] == 3000, "every handle learnt its session's state from the loop"


def test_the_ticker_survives_an_exception_and_counts_it():
    result = _race("50", "--break-once")
    assert result["ticker_errors"] == 1, result
    assert result["snapshots_after"] >= result["snapshots_during_ramp"] + 5, result
