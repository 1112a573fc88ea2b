"""Live metrics from the process that owns the run (the local runner or the master): a Prometheus
endpoint (`--chat-metrics-port`) and OTLP pushes (`--chat-otlp-endpoint`), both reading the merged
stats (`harness/export/live.py` names the families). After the test the endpoint stays up for
`--chat-metrics-linger` seconds, so a scraper collects the final values."""

from __future__ import annotations

import json
import logging

import gevent
from locust import events
from locust.runners import WorkerRunner

from .options import option
from .state import state_of

log = logging.getLogger("chatload")


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    parser.add_argument("--chat-metrics-port", type=int, default=None, include_in_web_ui=False,
                        help="serve Prometheus /metrics on this port while the test runs (0: a free port; "
                             "off by default)")
    parser.add_argument("--chat-metrics-host", default="", include_in_web_ui=False,
                        help="address the metrics endpoint binds to (default: every interface)")
    parser.add_argument("--chat-metrics-linger", type=float, default=15.0, include_in_web_ui=False,
                        help="seconds the endpoint stays up after the test, for the last scrape (default 15)")
    parser.add_argument("--chat-otlp-endpoint", default="", include_in_web_ui=False,
                        help="push OTLP/HTTP metrics here, e.g. http://collector:4318/v1/metrics (needs "
                             "chatload[otel])")
    parser.add_argument("--chat-otlp-interval", type=float, default=5.0, include_in_web_ui=False,
                        help="seconds between OTLP pushes (default 5)")
    parser.add_argument("--chat-scenario", default="", include_in_web_ui=False,
                        help="the scenario name, a label of every live metric (set by chatload run)")


def _labels(environment) -> dict[str, str]:
    raw = option(environment, "chat_target")
    service = json.loads(raw).get("service", "") if raw else ""
    return {"scenario": option(environment, "chat_scenario") or option(environment, "chat_run_name") or "locust",
            "service": service}


def _view(environment):
    from ..export.live import live_view

    return live_view(state_of(environment).stats, _labels(environment))


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    if isinstance(runner, WorkerRunner) or environment.parsed_options is None:
        return
    state = state_of(environment)
    port = option(environment, "chat_metrics_port")
    if port is not None:
        from ..export.prometheus import serve

        host = option(environment, "chat_metrics_host", "")
        try:
            state.metrics_server, _, bound = serve(port, lambda: _view(environment), host or "0.0.0.0")
        except OSError as exc:
            raise SystemExit(f"chatload: cannot serve metrics on port {port}: {exc.strerror or exc}") from None
        log.info("chatload: live metrics at http://%s:%s/metrics", host or "0.0.0.0", bound)
        if option(environment, "chat_progress_file"):
            from .progress import progress_line

            progress_line(environment, {"event": "metrics", "port": bound})
    endpoint = option(environment, "chat_otlp_endpoint")
    if endpoint:
        from ..export.otlp import OtlpPusher

        state.otlp = OtlpPusher(endpoint)
        state.otlp_greenlet = gevent.spawn(_push_forever, environment, state)


def _push_forever(environment, state) -> None:
    interval = option(environment, "chat_otlp_interval", 5.0)
    while True:
        gevent.sleep(interval)
        _push(environment, state)


def _push(environment, state) -> None:
    try:
        if not state.otlp.push(_view(environment)):
            log.warning("chatload: the OTLP collector refused a push")
    except Exception as exc:  # a collector that is down must not end the test
        log.warning("chatload: OTLP push failed: %s", type(exc).__name__)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    state = state_of(environment)
    if state.otlp is not None:
        state.otlp_greenlet.kill(block=False)
        _push(environment, state)  # the final values
    server = state.metrics_server
    if server is not None:
        gevent.sleep(option(environment, "chat_metrics_linger", 15.0))  # for the last scrape
        server.shutdown()
