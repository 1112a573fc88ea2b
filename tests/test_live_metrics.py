"""Live metrics checked against the real thing: Debian's Prometheus server scrapes a running
`chatload run`, and its HTTP API must agree with the report (counters exactly, p99 within the bucket
it falls in); OTLP pushes decode as the OpenTelemetry protocol with the same families."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from harness.export.live import BUCKETS_S
from harness.services.ivschat.emulator import EmulatorProcess

from .debian import debian_program
from .locust_run import ROOT, run_locust
from .test_run import only_report

PROMETHEUS = Path("/usr/bin/prometheus")
pytestmark = pytest.mark.timeout(600)  # the first run may install Prometheus

SCENARIO = '''[scenario]
name = "live"
duration = "8s"
ramp = "1s"
drain = "2s"
processes = 1
[run]
metrics_port = {port}
[target]
kind = "running-emulator"
endpoint = "{endpoint}"
control_endpoint = "{control}"
[rooms]
maximum_message_rate_per_second = 4
[[population]]
kind = "viewer"
users = 6
[[population]]
kind = "chatter"
users = 2
message_rate = 3.0
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus() -> Path:
    return debian_program(PROMETHEUS, "prometheus")


def _query(api: str, expression: str) -> list:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def _value(api: str, expression: str) -> float | None:
    result = _query(api, expression)
    return float(result[0]["value"][1]) if result else None


DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


def test_prometheus_scrapes_what_the_report_says(prometheus, tmp_path):
    emulator = EmulatorProcess().start()  # scraped too: its counts sit beside the client's
    control = urllib.parse.urlsplit(emulator.control_endpoint).netloc
    metrics_port, web_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
                      f"  - job_name: chatload\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
                      f"  - job_name: emulator\n    static_configs:\n      - targets: ['{control}']\n")
    server = subprocess.Popen([str(prometheus), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{web_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    api = f"http://127.0.0.1:{web_port}"
    try:
        scenario = tmp_path / "live.toml"
        scenario.write_text(SCENARIO.format(port=metrics_port, endpoint=emulator.messaging_endpoint,
                                            control=emulator.control_endpoint))
        run = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario), "--report-dir", str(tmp_path),
                              "--metrics-linger", "4"], cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"live metrics: http://127.0.0.1:{metrics_port}/metrics" in run.stderr
        report = json.loads(only_report(tmp_path, "live").read_text())
        counters = report["counters"]

        def last(metric: str) -> float | None:
            return _value(api, f"last_over_time({metric}[5m])")

        # Prometheus has the final values once a scrape after the drain is in (the endpoint lingers 4 s).
        deadline = time.monotonic() + 30
        while last('chatload_messages_sent_total{scenario="live",service="ivschat"}') != counters["sent"]:
            assert time.monotonic() < deadline, "Prometheus never scraped the final values"
            time.sleep(0.5)
        for metric, key in (("chatload_messages_accepted_total", "accepted"), ("chatload_deliveries_total", "deliveries"),
                            ("chatload_connects_total", "connects")):
            assert last(metric) == counters.get(key, 0), metric
        assert counters.get("rejected.rate_limited", 0) > 0, "the room's limit of 4/s should refuse some"
        assert last('chatload_rejections_total{category="rate_limited"}') == counters["rejected.rate_limited"]
        errors = _value(api, "sum(last_over_time(chatload_errors_total[5m]))")
        from harness.metrics.counters import error_total
        assert errors == error_total(counters)
        # p99 from the buckets lies in the very bucket that holds the report's exact p99.
        p99_s = report["latency_us"]["delivery"]["percentiles"]["99"] / 1e6
        quantile = _value(api, 'histogram_quantile(0.99, last_over_time(chatload_latency_seconds_bucket'
                               '{measure="delivery"}[5m]))')
        bounds = (0.0, *BUCKETS_S)
        index = next(i for i in range(1, len(bounds)) if p99_s <= bounds[i] * 1.001)  # HDR slots: 0.1 %
        assert bounds[index - 1] <= quantile <= bounds[index], (p99_s, quantile)
        assert last('chatload_latency_seconds_count{measure="delivery"}') == report["latency_us"]["delivery"]["count"]
        # Labels are bounded: nothing per user, no token.
        series = _query(api, "count by (__name__) ({job='chatload'})")
        labels = _query(api, "group by (population, process, measure, category, kind) ({job='chatload'})")
        assert series and not any("user" in json.dumps(s["metric"]) for s in labels)
        everything = json.dumps(_query(api, "last_over_time({job=~'chatload|emulator'}[5m])"))
        from harness.report.document import SECRET_PATTERNS
        assert not [what for what, pattern in SECRET_PATTERNS if pattern.search(everything)], "a secret in a label"
        # The emulator's own count, under the shared name, equals what the client saw accepted.
        assert _value(api, "sum(last_over_time(chatload_emulator_messages_accepted_total[5m]))") == counters["accepted"]
        # Every panel of the shipped Grafana dashboard is a query Prometheus answers.
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "5m").replace("$scenario", "live")
                _query(api, expr)  # status "success", or the assertion inside fails
        delivery_p99 = 'histogram_quantile(0.99, sum by (le) (increase(chatload_latency_seconds_bucket' \
                       '{scenario="live",measure="delivery"}[5m])))'
        assert _query(api, delivery_p99), "the dashboard's latency query has data"
    finally:
        server.terminate()
        server.wait(timeout=20)
        emulator.stop()


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_otlp_pushes_the_same_families(tmp_path):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_port}/v1/metrics"
        proc = run_locust(tmp_path, "-u", "4", "-r", "4", "-t", "4s", "--chat-drain", "1",
                          "--chat-otlp-endpoint", url, "--chat-otlp-interval", "1")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        receiver.shutdown()
    assert len(_Receiver.bodies) >= 3, "a push a second, and the final one"
    final = ExportMetricsServiceRequest.FromString(_Receiver.bodies[-1])
    metrics = {m.name: m for rm in final.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"chatload_latency_seconds", "chatload_messages_sent_total", "chatload_connections_open"} <= set(metrics)
    results = json.loads(next(tmp_path.glob("*/*/results.json")).read_text())
    sent = metrics["chatload_messages_sent_total"].sum.data_points[0].as_int
    assert sent == results["counters"]["sent"] > 0
    delivery = next(p for p in metrics["chatload_latency_seconds"].histogram.data_points
                    if any(a.key == "measure" and a.value.string_value == "delivery" for a in p.attributes))
    assert delivery.count == results["latency_us"]["delivery"]["count"] and sum(delivery.bucket_counts) == delivery.count
    assert list(delivery.explicit_bounds) == list(BUCKETS_S)
