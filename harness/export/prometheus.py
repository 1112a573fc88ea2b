"""The run owner's `/metrics` in Prometheus text format (prometheus_client, a custom collector that
reads the merged stats at each scrape: nothing is kept twice, nothing is sampled)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .live import BUCKETS_S, LiveView


class LiveCollector(Collector):
    def __init__(self, view: Callable[[], LiveView]) -> None:
        self.view = view

    def collect(self):
        view = self.view()
        base = list(view.labels)
        values = list(view.labels.values())
        latency = HistogramMetricFamily("chatload_latency_seconds", "Chat latencies (HDR-merged, exact per bucket).",
                                        labels=[*base, "measure"], unit="")
        for h in view.histograms:
            buckets = [(f"{bound:g}", n) for bound, n in zip(BUCKETS_S, h.bucket_counts, strict=False)]
            buckets.append(("+Inf", h.bucket_counts[-1]))
            latency.add_metric([*values, h.measure], buckets, h.sum_s)
        yield latency
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for kind, rows in ((CounterMetricFamily, view.counters), (GaugeMetricFamily, view.gauges)):
            for family, help_text, labels, value in rows:
                name = family.removesuffix("_total") if kind is CounterMetricFamily else family
                metric = families.get(name)
                if metric is None:
                    metric = families[name] = kind(name, help_text, labels=[*base, *labels])
                metric.add_metric([*values, *labels.values()], value)
        yield from families.values()


def serve(port: int, view: Callable[[], LiveView], host: str = "0.0.0.0"):
    """Start serving /metrics on `port` (0: a free one); returns (server, thread, the port)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(view))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread, server.server_port
