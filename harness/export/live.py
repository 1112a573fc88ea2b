"""What a live dashboard sees of a running test: the families both exporters (Prometheus and OTLP)
publish, read from the run owner's merged stats at the moment they are asked for.

Names (label sets in braces; every family also carries `scenario` and `service`):

    chatload_latency_seconds{measure}          histogram: delivery, ack, connect, reconnect,
                                               token_fetch, send_lag, kick and the service's own
    chatload_messages_sent_total               counter
    chatload_messages_accepted_total           counter
    chatload_deliveries_total                  counter: arrivals timed (delivery + ack samples)
    chatload_rejections_total{category}        counter: sends refused, by neutral category
    chatload_errors_total{kind}                counter: error answers, connect and token failures,
                                               timeouts, protocol errors, give-ups (their sum is the
                                               report's "errors (all kinds)")
    chatload_connects_total, chatload_reconnects_total, chatload_protocol_errors_total
    chatload_users_started_total{population}, chatload_users_connected_total{population}  counters
    chatload_users, chatload_connections_open                   gauges
    chatload_loop_lag_seconds{process}, chatload_cpu_percent{process}  gauges, the last second

Histogram buckets are computed from the merged HDR histograms, so they are exact counts at HDR's
resolution (0.1 %): a sample counts in the bucket whose bound its HDR slot starts at or below.
No label ever holds a user id, a token or anything else unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..metrics.histograms import LatencyHistogram
from ..report.numbers import ERROR_PREFIXES

# Chat latency: from half a millisecond (loopback) to 30 s (a reconnect storm), roughly 1-2-5.
BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# Histograms of counts, not µs, are not latencies: they stay out of the latency family.
NOT_LATENCY = {"reconnect_attempts"}
COUNTERS = {  # recorder counter → (family, help)
    "sent": ("chatload_messages_sent_total", "Measured messages sent."),
    "accepted": ("chatload_messages_accepted_total", "Measured messages the service accepted."),
    "deliveries": ("chatload_deliveries_total", "Arrivals timed (deliveries to others and senders' echoes)."),
    "connects": ("chatload_connects_total", "Connections opened (first connects and reconnects)."),
    "reconnects": ("chatload_reconnects_total", "Reconnections after a drop."),
    "protocol_errors": ("chatload_protocol_errors_total", "Server frames the client could not read."),
}
ERROR_KINDS = {"errors": "error_answer", "connect_failures": "connect_failure",
               "token_fetch_failures": "token_fetch_failure",
               "subscribe_token_fetch_failures": "subscribe_token_fetch_failure", "timeouts": "timeout",
               "protocol_errors": "protocol_error", "gave_up": "gave_up"}
assert set(ERROR_KINDS) == set(ERROR_PREFIXES), "every kind the report counts as an error"


@dataclass
class HistogramView:
    measure: str
    bucket_counts: list[int]  # cumulative, one per bound in BUCKETS_S, then +Inf
    count: int
    sum_s: float
    min_s: float
    max_s: float


@dataclass
class LiveView:
    labels: dict[str, str]
    histograms: list[HistogramView] = field(default_factory=list)
    counters: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)  # family, help, labels, n
    gauges: list[tuple[str, str, dict[str, str], float]] = field(default_factory=list)


def histogram_view(measure: str, histogram: LatencyHistogram) -> HistogramView:
    """Cumulative bucket counts of an HDR histogram (µs) at BUCKETS_S, in one pass over its counts."""
    bounds_us = [round(b * 1e6) for b in BUCKETS_S]
    counts = [0] * (len(bounds_us) + 1)
    total_us = 0
    h = histogram._h
    for index, count in histogram._nonzero():
        low = h.get_lowest_equivalent_value(h.get_value_from_index(index))
        total_us += count * h._hdr_median_equiv_value(h.get_value_from_index(index))
        slot = next((i for i, bound in enumerate(bounds_us) if low <= bound), len(bounds_us))
        counts[slot] += count
    for i in range(1, len(counts)):
        counts[i] += counts[i - 1]
    return HistogramView(measure, counts, histogram.count, total_us / 1e6, histogram.min / 1e6, histogram.max / 1e6)


def live_view(stats, labels: dict[str, str]) -> LiveView:
    """The families, from a `harness.results.run_results.ChatStats` (read on the gevent side that owns it)."""
    view = LiveView(labels=dict(labels))
    histograms, counters = stats.recorder.cumulative()
    view.histograms = [histogram_view(name, h) for name, h in sorted(histograms.items())
                       if name not in NOT_LATENCY and h.count]
    for name, (family, help_text) in COUNTERS.items():
        view.counters.append((family, help_text, {}, counters.get(name, 0)))
    for name, n in sorted(counters.items()):
        head, _, rest = name.partition(".")
        if head == "rejected" and rest:
            view.counters.append(("chatload_rejections_total", "Sends refused, by neutral category.",
                                  {"category": rest}, n))
    for prefix, kind in ERROR_KINDS.items():
        total = sum(n for name, n in counters.items() if name == prefix or name.startswith(prefix + "."))
        view.counters.append(("chatload_errors_total", "Errors of every kind the report counts.", {"kind": kind},
                              total))
    for prefix, family, help_text in (("users_spawned.", "chatload_users_started_total", "Users started."),
                                      ("users_connected.", "chatload_users_connected_total",
                                       "Users that connected at least once.")):
        for name, n in sorted(counters.items()):
            if name.startswith(prefix):
                view.counters.append((family, help_text, {"population": name[len(prefix):]}, n))
    last = stats.last_interval
    for gauge, family, help_text in (("users", "chatload_users", "Connections held (open or reopening), every process."),
                                     ("connections_open", "chatload_connections_open",
                                      "Open connections, every process.")):
        view.gauges.append((family, help_text, {}, sum(s.get("gauges", {}).get(gauge, 0) for s in last.values())))
    for process, snapshot in sorted(last.items()):
        health = snapshot.get("health", {})
        view.gauges.append(("chatload_loop_lag_seconds", "The event loop's worst lag in the last second.",
                            {"process": process}, health.get("loop_lag_max_us", 0) / 1e6))
        view.gauges.append(("chatload_cpu_percent", "CPU of the process in the last second (100 = one core).",
                            {"process": process}, health.get("cpu_percent", 0.0)))
    return view
