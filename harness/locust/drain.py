"""The end of a test, the part that must be right, and the results file.

- `test_stopping` fires before Locust stops any user. The process that owns the run (local runner
  or master) drains then: senders stop, receivers keep listening until every send is answered (at
  most `--chat-drain` s), then every process exports its ledger and its last interval.
- With workers, the master asks each worker (`chat_drain`) and waits for every `chat_final`
  answer before letting Locust carry on: a headless master quits its workers right after stopping,
  so the answers must be in by then.
- On Ctrl-C Locust fires `quitting` before it stops the runner: drain then, while the loop is alive.
- `test_stop` writes the results document from the merged data.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from .. import clock
from ..results import build_results, write_json_atomic
from .options import option
from .progress import progress_line, start_progress
from .state import state_of
from .target import public_target

log = logging.getLogger("chatload")


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    state = state_of(environment)
    if isinstance(runner, WorkerRunner):
        runner.register_message("chat_drain", _worker_drain, concurrent=True)
        state.worker_clock = clock.WorkerClock(runner)

        def ship_intervals(client_id, data, **_kw) -> None:
            if state.outbox:  # each snapshot leaves exactly once: here or in chat_final
                data["chat_intervals"], state.outbox[:] = list(state.outbox), []

        environment.events.report_to_master.add_listener(ship_intervals)
    elif isinstance(runner, MasterRunner):
        runner.register_message("chat_final", _master_final)
        clock.register_master(runner)

        def merge_worker_report(client_id, data, **_kw) -> None:
            for snapshot in data.get("chat_intervals", ()):
                state.stats.add_interval(snapshot, client_id)

        environment.events.worker_report.add_listener(merge_worker_report)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    state = state_of(environment)
    state.stopping = False
    state.final_sent = False
    state.complete = True
    if not isinstance(environment.runner, WorkerRunner):
        state.stats.reset()
        start_progress(environment, state)


@events.test_stopping.add_listener
def _on_test_stopping(environment, **_kwargs) -> None:
    state = state_of(environment)
    if state.stopping:
        return
    state.stopping = True
    runner = environment.runner
    drain = option(environment, "chat_drain", 5.0)
    if isinstance(runner, WorkerRunner):
        return  # the master's chat_drain message does the work
    if isinstance(runner, MasterRunner):
        state.expected_finals = {client.id for client in runner.clients.all}
        for worker_id in state.expected_finals:
            runner.send_message("chat_drain", {"drain": drain}, client_id=worker_id)
        deadline = time.monotonic() + drain + 30
        while not state.expected_finals <= set(state.stats.finals) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = state.expected_finals - set(state.stats.finals)
        if missing:
            state.complete = False
            log.error("chatload: no final report from worker(s) %s; results are incomplete", sorted(missing))
        return
    if state.runtime is not None:
        final = state.runtime.finish(drain)
        final["clock"] = state.clock.to_dict()
        state.stats.add_final("local", final)


def _worker_drain(environment, msg, **_kwargs) -> None:
    _send_final(environment, msg.data["drain"])


def _send_final(environment, drain: float) -> None:
    """Drain this worker and send its ledger and last intervals to the master (once)."""
    state = state_of(environment)
    state.stopping = True
    if state.final_sent:
        return
    state.final_sent = True
    final = state.runtime.finish(drain) if state.runtime is not None else {}
    final["clock"] = state.clock.to_dict()
    intervals, state.outbox[:] = list(state.outbox), []
    environment.runner.send_message("chat_final", {"intervals": intervals, "final": final})


def _master_final(environment, msg, **_kwargs) -> None:
    state = state_of(environment)
    for snapshot in msg.data["intervals"]:
        state.stats.add_interval(snapshot, msg.node_id)
    state.stats.add_final(msg.node_id, msg.data["final"])


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    state = state_of(environment)
    if not state.stats.finals:
        return  # nothing ran (e.g. stopped before any user started)
    options = environment.parsed_options
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(option(environment, "chat_report_dir", "reports")) / option(environment, "chat_run_name",
                                                                               "locust") / stamp
    metadata = {"locustfile": getattr(options, "locustfile", None), "target": public_target(environment),
                "options": _public_options(options)}
    document = build_results(state.stats, metadata=metadata, complete=state.complete)
    state.results_path = write_json_atomic(folder / "results.json", document)
    _log_summary(document, state.results_path)
    if option(environment, "chat_progress_file"):
        progress_line(environment, {"event": "results", "path": str(state.results_path)})


def _public_options(options) -> dict:
    # Token sources are named, never their content; the command line of a token command may hold secrets.
    hidden = {"chat_tokens", "chat_token_command"}
    return {k: (bool(v) if k in hidden else v) for k, v in sorted(vars(options).items())
            if (k.startswith("chat_") and k != "chat_target") or k in ("num_users", "spawn_rate", "run_time",
                                                                     "processes")}


def _log_summary(document: dict, path: Path) -> None:
    latency = document["latency_us"].get("delivery", {})
    accounting = document["accounting"] or {}
    totals = accounting.get("totals", {})
    log.info("chatload: %s deliveries, delivery p50 %s µs p99 %s µs; lost %s, duplicates %s; results: %s",
             latency.get("count", 0), latency.get("percentiles", {}).get("50"),
             latency.get("percentiles", {}).get("99"), totals.get("lost"), totals.get("duplicates"), path)
    if document["health"]["saturated"]:
        log.warning("chatload: the harness itself saturated: %s", "; ".join(document["health"]["reasons"]))


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    # On Ctrl-C Locust fires `quitting` before it stops the runner: drain now, while the loop is alive,
    # or the messages in flight and every ledger would be lost with it.
    state = state_of(environment)
    if isinstance(environment.runner, WorkerRunner):
        if state.runtime is not None:
            _send_final(environment, option(environment, "chat_drain", 5.0))
    elif not state.stopping and environment.runner is not None and environment.runner.state != "stopped":
        _on_test_stopping(environment)
    if state.runtime is not None:
        state.runtime.close()
