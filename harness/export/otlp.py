"""The same families as OTLP metrics (opentelemetry-sdk's OTLP/HTTP exporter), pushed every few
seconds to an OpenTelemetry collector. Optional: `pip install chatload[otel]`.

The histograms are built as OTLP data points directly from the merged HDR counts (the SDK's own
instruments would re-aggregate values one by one), cumulative from the start of the test."""

from __future__ import annotations

import time

from .live import BUCKETS_S, LiveView


def metrics_data(view: LiveView, start_ns: int, now_ns: int):
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    base = dict(view.labels)
    points = [HistogramDataPoint(attributes={**base, "measure": h.measure}, start_time_unix_nano=start_ns,
                                 time_unix_nano=now_ns, count=h.count, sum=h.sum_s,
                                 bucket_counts=[b - a for a, b in zip([0, *h.bucket_counts], h.bucket_counts,
                                                                      strict=False)],
                                 explicit_bounds=list(BUCKETS_S), min=h.min_s, max=h.max_s)
              for h in view.histograms]
    metrics = [Metric("chatload_latency_seconds", "Chat latencies (HDR-merged).", "s",
                      Histogram(points, AggregationTemporality.CUMULATIVE))]
    by_family: dict[str, list] = {}
    for family, _help, labels, value in view.counters:
        by_family.setdefault(family, []).append(NumberDataPoint({**base, **labels}, start_ns, now_ns, value))
    metrics += [Metric(family, "", "1", Sum(rows, AggregationTemporality.CUMULATIVE, True))
                for family, rows in by_family.items()]
    by_family = {}
    for family, _help, labels, value in view.gauges:
        by_family.setdefault(family, []).append(NumberDataPoint({**base, **labels}, start_ns, now_ns, value))
    metrics += [Metric(family, "", "1", Gauge(rows)) for family, rows in by_family.items()]
    scope = ScopeMetrics(InstrumentationScope("chatload"), metrics, None)
    return MetricsData([ResourceMetrics(Resource.create({"service.name": "chatload"}), [scope], None)])


class OtlpPusher:
    """Push the view to `endpoint` (an OTLP/HTTP metrics URL, e.g. http://collector:4318/v1/metrics)."""

    def __init__(self, endpoint: str) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        except ImportError:
            raise SystemExit("chatload: --chat-otlp-endpoint needs the OpenTelemetry exporter: "
                             "pip install 'chatload[otel]'") from None
        self.exporter = OTLPMetricExporter(endpoint=endpoint)
        self.start_ns = time.time_ns()

    def push(self, view: LiveView) -> bool:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        return self.exporter.export(metrics_data(view, self.start_ns, time.time_ns())) is MetricExportResult.SUCCESS
