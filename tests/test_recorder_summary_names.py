"""`Recorder.summary(names=…)` summarises only the histograms asked for, with the same figures as a
full summary: the once-a-second progress line needs one histogram and no longer copies them all."""

from __future__ import annotations

from harness.metrics.histograms import Recorder


def test_summary_of_named_histograms_equals_the_full_summary_for_them():
    recorder = Recorder()
    for us in (100, 200, 300):
        recorder.record("delivery", us)
        recorder.record("ingest", us * 10)
    recorder.interval_snapshot()  # some cumulative, some still in the interval
    recorder.record("delivery", 400)
    recorder.count("sent", 4)
    full = recorder.summary()
    only = recorder.summary(names=("delivery", "not-recorded"))
    assert set(only["histograms"]) == {"delivery"}
    assert only["histograms"]["delivery"] == full["histograms"]["delivery"]
    assert only["histograms"]["delivery"]["count"] == 4
    assert only["counters"] == full["counters"] == {"sent": 4}
