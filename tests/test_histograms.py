"""LatencyHistogram and Recorder: exact encode/decode and merge, clamping, interval snapshots."""

from __future__ import annotations

import random

import orjson
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics import (
    ACK,
    CONNECT,
    DELIVERY,
    HISTOGRAM_NAMES,
    RECONNECT,
    TOKEN_FETCH,
    LatencyHistogram,
    Recorder,
)
from harness.metrics.histograms import HIGHEST_US, counts_index

PS = (0, 1, 25, 50, 90, 99, 99.9, 99.99, 100)


def hist_of(values) -> LatencyHistogram:
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    return hist


def facts(hist: LatencyHistogram) -> tuple:
    return hist.count, hist.min, hist.max, hist.mean, hist.percentiles(PS)


def test_fast_index_matches_hdrh_over_the_whole_range():
    reference = HdrHistogram(1, HIGHEST_US, 3)
    rng = random.Random(7)
    values = {1, 2, 2047, 2048, 2049, 4095, 4096, HIGHEST_US - 1, HIGHEST_US}
    values |= {2**k + d for k in range(32) for d in (-1, 0, 1) if 1 <= 2**k + d <= HIGHEST_US}
    values |= {rng.randint(1, HIGHEST_US) for _ in range(5000)}
    for v in sorted(values):
        assert counts_index(v) == reference._counts_index_for(v), v


def test_same_results_as_hdrh_record_value():
    rng = random.Random(1)
    values = [int(rng.lognormvariate(8, 2)) + 1 for _ in range(20_000)]
    values = [min(v, HIGHEST_US) for v in values]
    reference = HdrHistogram(1, HIGHEST_US, 3)
    for v in values:
        reference.record_value(v)
    hist = hist_of(values)
    assert hist.count == reference.get_total_count() == len(values)
    assert hist.min == reference.get_min_value()
    assert hist.max == reference.get_max_value()
    assert hist.mean == reference.get_mean_value()
    for p in PS:
        assert hist.percentile(p) == reference.get_value_at_percentile(p)
    assert hist.encode() == reference.encode().decode()


def test_percentiles_are_within_three_significant_digits():
    hist = hist_of(range(1, 100_001))
    for p, v in hist.percentiles((50, 90, 99, 99.9, 100)).items():
        exact = p * 1000
        assert abs(v - exact) <= exact / 1000, (p, v)
    assert hist.min == 1
    assert set(hist.percentiles()) == {50, 90, 99, 99.9, 99.99, 100}


def test_empty_histogram_reads_zeros_and_round_trips():
    hist = LatencyHistogram()
    assert (hist.count, hist.min, hist.max, hist.mean, hist.percentile(99)) == (0, 0, 0, 0.0, 0)
    assert hist.percentiles((50, 99)) == {50: 0, 99: 0}
    back = LatencyHistogram.decode(hist.encode())
    assert back.count == 0 and back.max == 0


def test_encode_decode_round_trip():
    rng = random.Random(2)
    hist = hist_of(rng.randint(1, 5_000_000) for _ in range(10_000))
    encoded = hist.encode()
    assert isinstance(encoded, str)
    back = LatencyHistogram.decode(encoded)
    assert facts(back) == facts(hist)
    assert back.encode() == encoded
    # and a decoded histogram keeps recording
    back.record(7)
    assert back.count == hist.count + 1


def test_merge_equals_one_histogram_that_recorded_everything():
    rng = random.Random(3)
    a_values = [rng.randint(1, 1_000) for _ in range(5_000)]
    b_values = [rng.randint(500, 9_000_000) for _ in range(3_000)]
    a, b = hist_of(a_values), hist_of(b_values)
    a.merge(b)
    everything = hist_of(a_values + b_values)
    assert a.count == 8_000
    assert facts(a) == facts(everything)
    # the same through the wire format
    c = LatencyHistogram()
    c.merge(LatencyHistogram.decode(hist_of(a_values).encode()))
    c.merge_encoded(hist_of(b_values).encode())
    assert facts(c) == facts(everything)


def test_merge_into_empty_keeps_the_minimum():
    # hdrh's own add() reports min 0 after adding into an empty histogram
    empty = LatencyHistogram()
    empty.merge(hist_of([150, 900]))
    assert empty.min == 150
    assert empty.merge(LatencyHistogram()) is None and empty.count == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=-10, max_value=HIGHEST_US + 10), max_size=200),
    st.lists(st.integers(min_value=-10, max_value=HIGHEST_US + 10), max_size=200),
)
def test_merge_property(a_values, b_values):
    a, b = hist_of(a_values), hist_of(b_values)
    a.merge(b)
    assert facts(a) == facts(hist_of(a_values + b_values))
    assert facts(LatencyHistogram.decode(a.encode())) == facts(a)


def test_clamping_never_raises_and_is_counted():
    hist = LatencyHistogram()
    for v in (0, -5, 10, HIGHEST_US + 1, 10**15):
        hist.record(v)
    assert hist.count == 5
    assert hist.clamped_low == 2
    assert hist.clamped_high == 2
    assert hist.min == 1
    assert hist.max >= HIGHEST_US
    assert hist.percentile(100) == hist.max
    hist.reset()
    assert (hist.count, hist.clamped_low, hist.clamped_high, hist.max) == (0, 0, 0, 0)
    hist.record(42)
    assert hist.min == 42 and hist.count == 1


def test_recorder_has_named_histograms_and_direct_attributes():
    rec = Recorder()
    assert HISTOGRAM_NAMES == ("delivery", "ack", "connect", "reconnect", "token_fetch")
    assert (DELIVERY, ACK, CONNECT, RECONNECT, TOKEN_FETCH) == HISTOGRAM_NAMES
    rec.delivery.record(100)
    rec.record(DELIVERY, 200)
    rec.ack.record(5)
    rec.connect.record(1)
    rec.reconnect.record(2)
    rec.token_fetch.record(3)
    rec.record("custom_phase", 9)
    summary = rec.summary()
    assert summary["histograms"]["delivery"]["count"] == 2
    assert set(summary["histograms"]) == {*HISTOGRAM_NAMES, "custom_phase"}
    assert summary["histograms"]["delivery"]["percentiles"]["99.9"] == 200


def test_interval_snapshots_reset_while_totals_accumulate():
    rec = Recorder()
    for v in range(1, 101):
        rec.delivery.record(v)
    rec.count("sent", 100)
    rec.count("rejected.429")
    first = rec.interval_snapshot()
    orjson.dumps(first)  # JSON-serialisable
    assert LatencyHistogram.decode(first["histograms"]["delivery"]).count == 100
    assert first["counters"] == {"sent": 100, "rejected.429": 1}

    for v in range(1000, 1050):
        rec.delivery.record(v)
    rec.count("sent", 50)
    second = rec.interval_snapshot()
    interval = LatencyHistogram.decode(second["histograms"]["delivery"])
    assert interval.count == 50 and interval.min == 1000
    assert second["counters"] == {"sent": 50}

    rec.delivery.record(5000)  # not snapshotted yet: still part of the totals
    rec.count("protocol_errors")
    totals = rec.totals()
    total = LatencyHistogram.decode(totals["histograms"]["delivery"])
    assert total.count == 151
    assert facts(total) == facts(hist_of([*range(1, 101), *range(1000, 1050), 5000]))
    assert totals["counters"] == {"sent": 150, "rejected.429": 1, "protocol_errors": 1}
    # totals() resets nothing
    third = rec.interval_snapshot()
    assert LatencyHistogram.decode(third["histograms"]["delivery"]).count == 1
    assert third["counters"] == {"protocol_errors": 1}
    assert LatencyHistogram.decode(rec.interval_snapshot()["histograms"]["delivery"]).count == 0


def test_master_merges_workers_snapshots_into_the_sum():
    rng = random.Random(4)
    workers = [Recorder(), Recorder()]
    everything = {name: [] for name in HISTOGRAM_NAMES}
    for i, worker in enumerate(workers):
        for name in HISTOGRAM_NAMES:
            values = [rng.randint(1, 2_000_000) for _ in range(500 + 100 * i)]
            everything[name] += values
            for v in values:
                worker.record(name, v)
        worker.count("sent", 10 * (i + 1))
        worker.count("token_fetch_failures.ThrottlingException", i)

    master = Recorder()
    for worker in workers:
        # shipped in two intervals, through JSON
        half = orjson.loads(orjson.dumps(worker.interval_snapshot()))
        worker.delivery.record(77)
        everything[DELIVERY].append(77)
        worker.count("sent")
        master.merge_snapshot(half)
        master.merge_snapshot(orjson.loads(orjson.dumps(worker.interval_snapshot())))

    totals = master.totals()
    for name in HISTOGRAM_NAMES:
        assert facts(LatencyHistogram.decode(totals["histograms"][name])) == facts(hist_of(everything[name]))
    assert totals["counters"] == {"sent": 32, "token_fetch_failures.ThrottlingException": 1}
    summary = master.summary()
    assert summary["histograms"][DELIVERY]["count"] == len(everything[DELIVERY])
    assert summary["counters"]["sent"] == 32


def test_clamps_travel_as_counters():
    worker, master = Recorder(), Recorder()
    worker.delivery.record(0)
    worker.ack.record(HIGHEST_US * 2)
    assert worker.totals()["counters"] == {
        "histogram_clamped_low.delivery": 1,
        "histogram_clamped_high.ack": 1,
    }
    master.merge_snapshot(worker.interval_snapshot())
    assert master.totals()["counters"] == {
        "histogram_clamped_low.delivery": 1,
        "histogram_clamped_high.ack": 1,
    }
    assert worker.interval_snapshot()["counters"] == {}


def test_a_float_does_not_break_recording():
    hist = LatencyHistogram()
    hist.record(12.7)
    hist.record(0.2)
    assert hist.count == 2 and hist.clamped_low == 1
    assert hist.max == 12 and hist.min == 1
    assert LatencyHistogram.decode(hist.encode()).count == 2
