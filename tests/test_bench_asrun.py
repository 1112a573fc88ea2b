"""`chatload bench asrun --quick`: real `locust -f` processes and a bare picows client on one stream."""

from __future__ import annotations

import pytest

from .test_bench import _quick


@pytest.mark.timeout(240)
def test_bench_asrun_quick(tmp_path, capsys):
    code, out, document = _quick(tmp_path, capsys, "asrun")
    assert code in (0, 1), out
    assert "locust -f ivschat.py" in out and "locust -f ivschat_pools.py" in out and "bare picows (baseline)" in out
    runs = {r["client"]: r for r in document["runs"]}
    assert set(runs) == {"asrun", "asrun_pools", "bare_picows"}
    for run in runs.values():
        # Every client received everything the emulator owed it: the figures divide by real deliveries.
        assert run["deliveries"] == run["deliveries_expected"] > 0, run
        assert run["cpu_seconds"] > 0 and run["cpu_us_per_delivery"] > 0
        assert run["peak_rss_bytes"] > run["rss_before_bytes"] > 0
        assert run["delivery_p99_ms"] is not None and run["delivery_p99_ms"] > 0
    (entry,) = document["summary"]
    (ratio,) = entry["ratios"]["asrun"]["cpu"]["values"]
    assert ratio == pytest.approx(runs["asrun"]["cpu_us_per_delivery"] / runs["bare_picows"]["cpu_us_per_delivery"])
    assert set(entry["verdicts"]) == {"asrun cpu", "asrun memory", "pools memory per connection"}
