"""The short locustfiles shipped for Hotsock and IVS Real-Time (locustfiles/) run as a Locust user
expects: `locust -f locustfiles/X.py` against the embedded emulator, every user connected, and the
service's own traffic measured (Hotsock: chat delivered exactly; IVS Real-Time: every join timed and
the roster's changes observed; its first PING comes 15 s in, as the web SDK's, so a short run has none)."""

from __future__ import annotations

import pytest

from .locust_run import ROOT, assert_accounting_adds_up, results_of, run_locust

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("name", ["hotsock", "ivsrealtime"])
def test_a_shipped_locustfile_runs_against_its_embedded_emulator(tmp_path, name):
    # Locust spawns the fixed-count Presenters first; at 3 users a second the second one joins ~0.33 s
    # after the first is on the stage, so its arrival is owed to (and judged at) the first. Spawned all
    # at once, every join began before anyone was there to owe it: all "extra", none judged.
    rate = "3" if name == "ivsrealtime" else "6"
    proc = run_locust(tmp_path, "-u", "6", "-r", rate, "-t", "3s", "--chat-drain", "1",
                      locustfile=ROOT / "locustfiles" / f"{name}.py", timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = results_of(tmp_path)
    assert results["metadata"]["target"]["service"] == name
    assert results["latency_us"]["connect"]["count"] == 6, results["latency_us"].keys()
    if name == "hotsock":
        totals = assert_accounting_adds_up(results)
        assert totals["lost"] == 0 and totals["delivered"] == totals["expected"] > 0, totals
    else:
        assert results["latency_us"]["join"]["count"] == 6, "each participant's first roster was timed"
        roster = results["propagation"]["roster"]
        assert roster["observed"] > 0 and roster["missed"] == 0, roster
