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
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from ..report.console import accounting_lines, latency_table, saturation_line
from ..results import measured
from ..results.run_results import build_results, write_json_atomic
from ..timing import clock
from .admission import host_facts
from .options import option
from .progress import progress_line, start_progress
from .state import state_of
from .target import public_target
from .target_setup import service_of

log = logging.getLogger("chatload")


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    state = state_of(environment)
    if isinstance(runner, WorkerRunner):
        runner.register_message("chat_drain", _worker_drain, concurrent=True)
        state.worker_clock = clock.WorkerClock(runner)
    elif isinstance(runner, MasterRunner):
        runner.register_message("chat_final", _master_final)
        # Each worker's interval snapshot travels on its own message as soon as it is taken (once a
        # second), not with Locust's worker report (every 3 s): progress and the web UI stay per second.
        runner.register_message("chat_interval", lambda environment, msg, **_kw: state.stats.add_interval(
            msg.data, msg.node_id))
        clock.register_master(runner)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    state = state_of(environment)
    state.stopping = False
    state.final_sent = False
    state.complete = True
    if not isinstance(environment.runner, WorkerRunner):
        service = service_of(environment)
        state.stats.reset(tuple(service.histograms) if service is not None else ())
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
        # Every worker that took part: those Locust knows now, and those that sent intervals and have
        # since gone (killed, paused past the heartbeat timeout). Only the living are asked; a worker
        # that goes missing while draining is not waited for either.
        def alive() -> set[str]:
            return {client.id for client in runner.clients.all if client.state != STATE_MISSING}

        state.expected_finals = alive() | {client.id for client in runner.clients.all} | state.stats.sources()
        for worker_id in alive():
            runner.send_message("chat_drain", {"drain": drain}, client_id=worker_id)
        deadline = time.monotonic() + drain + 30
        while not alive() <= set(state.stats.finals) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        state.lost = sorted(state.expected_finals - set(state.stats.finals))
        if state.lost:
            state.complete = False
            log.error("chatload: no final report from worker(s) %s; results are incomplete", state.lost)
        return
    if state.runtime is not None:
        users = runner.user_count
        final = state.runtime.finish(drain)
        final["clock"] = state.clock.to_dict()
        final["process"] = {**host_facts(), "users": users}
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
    users = environment.runner.user_count  # before the runtime stops: its share of the users
    final = state.runtime.finish(drain) if state.runtime is not None else {}
    final["clock"] = state.clock.to_dict()
    final["process"] = {**host_facts(), "users": users}
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
                "options": _public_options(options), "planned_users": planned_users(environment)}
    document = build_results(state.stats, metadata=metadata, complete=state.complete, lost=state.lost,
                             health_window=option(environment, "chat_health_window", "steady"))
    state.results_path = write_json_atomic(folder / "results.json", document)
    _log_summary(document, state.results_path)
    if not document["complete"] and environment.process_exit_code is None:
        environment.process_exit_code = 1  # incomplete: not a pass (measured nothing, below, is 2)
    problems = measured.problems(document)
    if problems:
        # A run that measured nothing is an error, never a pass: Locust exits 2 with the cause.
        for problem in problems:
            log.error("chatload: the run measured nothing: %s", problem)
        environment.process_exit_code = 2
    if option(environment, "chat_progress_file"):
        progress_line(environment, {"event": "results", "path": str(state.results_path)})


def planned_users(environment) -> dict:
    """The load Locust was asked for, read at the end (the web UI may have changed it): the total,
    and each user class's count when the classes have fixed counts that make up that total (as
    `chatload run`'s do). `harness.results.measured` judges the users started against it."""
    total = getattr(environment.runner, "target_user_count", 0) or 0
    fixed = {cls.__name__: cls.fixed_count for cls in environment.user_classes or ()}
    whole = all(fixed.values()) and sum(fixed.values()) == total
    return {"total": total, "by_population": fixed if whole else {}}


def _public_options(options) -> dict:
    # Token sources are named, never their content; the command line of a token command may hold secrets.
    hidden = {"chat_tokens", "chat_token_command"}
    return {k: (bool(v) if k in hidden else v) for k, v in sorted(vars(options).items())
            if (k.startswith("chat_") and k != "chat_target") or k in ("num_users", "spawn_rate", "run_time",
                                                                     "processes")}


_summary: list[str] = []  # printed after Locust's own tables, when the process quits


def _log_summary(document: dict, path: Path) -> None:
    log.info("chatload: results: %s", path)
    if document["health"]["saturated"]:
        log.warning("chatload: %s", saturation_line(document["health"]))
    _summary[:] = ["", "Chat (chatload)", *latency_table(document), *accounting_lines(document),
                   f"results: {path}"]


@events.quit.add_listener
def _print_summary(**_kwargs) -> None:
    # `quit` fires after Locust has printed its own tables: ours come last, where a reader looks.
    for line in _summary:
        logging.getLogger("locust.stats_logger").info(line)


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
