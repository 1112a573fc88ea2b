"""chatload's Locust integration: options, the target, one runtime per process, the end-of-test
drain, merging across workers, the Chat tab and the results file.

Imported by `harness.users` (so any locustfile using our users gets it). Locust's own table shows
connect, send/ack and errors as "WS" requests; deliveries are far too many for it and live in our
HDR histograms instead.

End of a test, the part that must be right:
- `test_stopping` fires before Locust stops any user. The process that owns the run (local runner
  or master) drains then: senders stop, receivers keep listening until every send is echoed (at
  most `--chat-drain` s), then every process exports its ledger and its last interval.
- With workers, the master asks each worker (`chat_drain`) and waits for every `chat_final`
  answer before letting Locust carry on: a headless master quits its workers right after stopping,
  so the answers must be in by then.
- `test_stop` writes the results document from the merged data.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import gevent
import gevent.lock
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from . import clock
from .results import ChatStats, build_results, write_json_atomic

log = logging.getLogger("chatload")


# -- options ------------------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    # Locust's own parser, not an argument group: only it knows include_in_web_ui. With no endpoint, an
    # embedded IVS Chat emulator is started on free loopback ports.
    group = parser
    group.add_argument("--chat-endpoint", default="", include_in_web_ui=False,
                       help="messaging endpoint: a running emulator's ws://… or wss://edge.ivschat.REGION.amazonaws.com")
    group.add_argument("--chat-control-endpoint", default="", include_in_web_ui=False,
                       help="control plane of a running emulator (http://…); omit for AWS (default credential chain)")
    group.add_argument("--chat-region", default="us-east-1", include_in_web_ui=False, help="AWS region")
    group.add_argument("--chat-room-arn", default="", include_in_web_ui=False,
                       help="existing room ARN(s), comma-separated (required against AWS)")
    group.add_argument("--chat-rooms", type=int, default=1, help="rooms to create on the emulator")
    group.add_argument("--chat-room-rate", type=int, default=100,
                       help="maximumMessageRatePerSecond of emulator rooms (1-100)")
    group.add_argument("--chat-mix", default="",
                       help="user mix as weights, e.g. Viewer=50,Chatter=5,Moderator=1 (overrides the locustfile)")
    group.add_argument("--chat-message-rate", type=float, default=1.0, help="messages per second per chatter")
    group.add_argument("--chat-message-size", type=int, default=32, help="characters per message")
    group.add_argument("--chat-tokens", default="", include_in_web_ui=False,
                       help="file of pre-made tokens (single-use) instead of CreateChatToken")
    group.add_argument("--chat-token-command", default="", include_in_web_ui=False,
                       help="command printing a token (gets CHATLOAD_USER_ID, CHATLOAD_ROOM_ARN, …)")
    group.add_argument("--chat-drain", type=float, default=5.0,
                       help="seconds to keep receiving at stop for messages in flight")
    group.add_argument("--chat-connect-timeout", type=float, default=10.0, help="seconds per connection attempt")
    group.add_argument("--chat-report-dir", default="reports", include_in_web_ui=False,
                       help="where results.json goes (reports/locust/<timestamp>/ by default)")
    group.add_argument("--chat-run-name", default="locust", include_in_web_ui=False,
                       help="name of the run's folder under the report dir")
    group.add_argument("--chat-progress-file", default="", include_in_web_ui=False,
                       help="append one JSON line of progress a second here (used by `chatload run`)")
    group.add_argument("--chat-command-file", default="", include_in_web_ui=False,
                       help="read commands (JSON lines, e.g. a moderator kick) from here during the run")


def _option(environment, name: str, default=None):
    options = environment.parsed_options
    return getattr(options, name, default) if options is not None else default


# -- per-process state ------------------------------------------------------------------------------------


class _ChatState:
    """What this plugin keeps per Locust environment (one per process)."""

    def __init__(self) -> None:
        self.runtime = None
        self.stats = ChatStats()  # used by the process that owns the run
        self.outbox: list[dict] = []  # a worker's interval snapshots not yet shipped
        self.stopping = False
        self.emulator = None
        self.results_path: Path | None = None
        self.expected_finals: set[str] = set()
        self.complete = True
        self.creating = gevent.lock.BoundedSemaphore()
        self.worker_clock = None
        self.progress = None
        self.final_sent = False
        self.clock = clock.LOCAL


def _state(environment) -> _ChatState:
    state = getattr(environment, "_chatload", None)
    if state is None:
        state = environment._chatload = _ChatState()
    return state


def test_is_stopping(environment) -> bool:
    return _state(environment).stopping


def runtime_for(environment):
    """This process's runtime, created on first use: on a worker only the spawn message from the
    master carries the target (the master may have just started an emulator)."""
    state = _state(environment)
    if state.runtime is None:
        # Starting the loop thread yields to other greenlets: without the lock, every user spawned
        # meanwhile would build a runtime (and a loop thread) of its own.
        with state.creating:
            if state.runtime is None:
                from .runtime import ChatRuntime

                is_worker = isinstance(environment.runner, WorkerRunner)
                state.clock = state.worker_clock.measure() if is_worker else clock.LOCAL
                runtime = ChatRuntime(environment, _target_for_users(environment),
                                      connect_timeout=_option(environment, "chat_connect_timeout", 10.0),
                                      clock_offset_ns=state.clock.offset_ns)
                runtime.sink = state.outbox.append if is_worker else state.stats.add_interval
                state.runtime = runtime
    return state.runtime


def _target_for_users(environment):
    from .runtime import Target
    from .tokens import Boto3TokenProvider, CommandTokenProvider, StaticTokenProvider

    endpoint = _option(environment, "chat_endpoint")
    rooms = [r for r in (_option(environment, "chat_room_arn") or "").split(",") if r]
    if not endpoint or not rooms:
        raise RuntimeError("chatload: no chat endpoint or room; the master/local process sets them at init")
    control = _option(environment, "chat_control_endpoint") or None
    region = _option(environment, "chat_region", "us-east-1")
    if _option(environment, "chat_tokens"):
        provider = StaticTokenProvider(_option(environment, "chat_tokens"))
    elif _option(environment, "chat_token_command"):
        provider = CommandTokenProvider(_option(environment, "chat_token_command"))
    else:
        provider = Boto3TokenProvider(region, control)
    return Target(endpoint, rooms, provider, kind="emulator" if control else "ivschat")


# -- init: the target -------------------------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment, runner=None, web_ui=None, **_kwargs) -> None:
    state = _state(environment)
    if isinstance(runner, WorkerRunner):
        runner.register_message("chat_drain", _worker_drain, concurrent=True)
        runner.register_message("chat_kick", lambda environment, msg, **_kw: _kick(environment, msg.data))
        state.worker_clock = clock.WorkerClock(runner)

        def ship_intervals(client_id, data, **_kw) -> None:
            if state.outbox:  # each snapshot leaves exactly once: here or in chat_final
                data["chat_intervals"], state.outbox[:] = list(state.outbox), []

        environment.events.report_to_master.add_listener(ship_intervals)
        return
    _apply_mix(environment)  # a bad option must stop us before anything is started
    if environment.parsed_options is not None:
        _prepare_target(environment, state)
    if isinstance(runner, MasterRunner):
        runner.register_message("chat_final", _master_final)
        clock.register_master(runner)

        def merge_worker_report(client_id, data, **_kw) -> None:
            for snapshot in data.get("chat_intervals", ()):
                state.stats.add_interval(snapshot, client_id)

        environment.events.worker_report.add_listener(merge_worker_report)
    if web_ui is not None:
        _add_chat_tab(environment, web_ui)


def _apply_mix(environment) -> None:
    """`--chat-mix Viewer=50,Chatter=5`: weights by user class name, checked against the locustfile."""
    mix = _option(environment, "chat_mix")
    if not mix:
        return
    classes = {cls.__name__: cls for cls in environment.user_classes}
    for item in mix.split(","):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in classes:
            raise SystemExit(f"chatload: --chat-mix names {name!r}; user classes here: {', '.join(sorted(classes))}")
        if not weight.strip().isdigit():
            raise SystemExit(f"chatload: --chat-mix weight for {name} must be a whole number, not {weight!r}")
        classes[name].weight = int(weight)
        classes[name].fixed_count = 0


def _prepare_target(environment, state: _ChatState) -> None:
    """On the process that owns the run: start the embedded emulator and make rooms if needed.

    Whatever is set on `parsed_options` here reaches the workers with every spawn message.
    """
    options = environment.parsed_options
    if not options.chat_endpoint:
        from .emulator import EmulatorProcess

        state.emulator = EmulatorProcess().start()
        options.chat_endpoint = state.emulator.messaging_endpoint
        options.chat_control_endpoint = state.emulator.control_endpoint
        options.chat_region = state.emulator.region
        events.quitting.add_listener(lambda **_: state.emulator.stop())
        log.info("chatload: embedded emulator at %s", options.chat_endpoint)
    if not options.chat_room_arn:
        if not options.chat_control_endpoint:
            raise SystemExit("chatload: --chat-room-arn is required against AWS (rooms are not created for you)")
        from .ivschat_client import ivschat_client

        client = ivschat_client(options.chat_region, options.chat_control_endpoint)
        rate = options.chat_room_rate
        arns = [client.create_room(name=f"chatload-{i}", maximumMessageRatePerSecond=rate)["arn"]
                for i in range(max(1, options.chat_rooms))]
        options.chat_room_arn = ",".join(arns)


# -- the test's life ---------------------------------------------------------------------------------------


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    state = _state(environment)
    state.stopping = False
    state.final_sent = False
    state.complete = True
    if not isinstance(environment.runner, WorkerRunner):
        state.stats.reset()
        if _option(environment, "chat_progress_file"):
            state.progress = gevent.spawn(_write_progress, environment, state)


def _progress_line(environment, record: dict) -> None:
    with open(_option(environment, "chat_progress_file"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _write_progress(environment, state: _ChatState) -> None:
    """Once a second, what a person watching a long run wants: users, rate, p99, errors."""
    started = time.monotonic()
    _progress_line(environment, {"event": "start", "t_ns": time.time_ns()})
    commands_read = 0
    while not state.stopping:
        gevent.sleep(1.0)
        commands_read = _follow_commands(environment, commands_read)
        everything = state.stats.recorder.summary()  # not totals(): that re-encodes every histogram
        summary, counters = everything["histograms"].get("delivery", {}), everything["counters"]
        last = state.stats.last_interval.values()
        _progress_line(environment, {
            "event": "progress",
            "elapsed_s": round(time.monotonic() - started, 1),
            "users": environment.runner.user_count,
            "connections": sum(s.get("gauges", {}).get("connections_open", 0) for s in last),
            "deliveries_per_s": sum(s.get("counters", {}).get("deliveries", 0) for s in last),
            "delivery_p99_ms": round(summary.get("percentiles", {}).get("99", 0) / 1000, 2),
            "errors": environment.runner.stats.total.num_failures,
            "rejected": sum(v for k, v in counters.items() if k.startswith("rejected.")),
        })


def _follow_commands(environment, offset: int) -> int:
    """Commands from `chatload run` (its fault timeline), one JSON object a line."""
    path = _option(environment, "chat_command_file")
    if not path:
        return offset
    try:
        with open(path, encoding="utf-8") as f:
            f.seek(offset)
            text = f.read()
    except FileNotFoundError:
        return offset
    complete = text[:text.rfind("\n") + 1]
    for line in complete.splitlines():
        command = json.loads(line)
        if command.get("action") == "kick":
            if isinstance(environment.runner, MasterRunner):
                for worker_id in [client.id for client in environment.runner.clients.all]:
                    environment.runner.send_message("chat_kick", command, client_id=worker_id)
            else:
                _kick(environment, command)
    return offset + len(complete.encode())


def _kick(environment, command: dict) -> None:
    """A moderator's kick through the control plane (DisconnectUser with this process's boto3 client,
    so the same path works against AWS and the emulator), for a sample of this process's own users."""
    import random

    state = _state(environment)
    runtime = state.runtime
    client = getattr(runtime.target.token_provider, "client", None) if runtime else None
    if client is None:
        log.error("chatload: a kick needs CreateChatToken/DisconnectUser through boto3 (not a token file or command)")
        return
    prefix = command.get("prefix", "viewer")
    candidates = sorted((s for s in runtime.sessions.values() if s.state == "open" and s.user_id.startswith(prefix)),
                        key=lambda s: s.user_id)
    chosen = random.Random(command.get("seed")).sample(candidates, round(len(candidates) * command.get("fraction", 1.0)))
    runtime.loop_thread.call(runtime.recorder.count, "kicks_requested", len(chosen))

    def kick(session) -> None:
        try:
            client.disconnect_user(roomIdentifier=session.room, userId=session.user_id,
                                   reason="kicked by chatload scenario")
        except Exception as exc:  # counted and logged; a failed kick must not end the user
            log.warning("chatload: DisconnectUser failed: %s", type(exc).__name__)
            runtime.loop_thread.call(runtime.recorder.count, f"kick_failures.{type(exc).__name__}")

    for session in chosen:
        gevent.spawn(kick, session)


@events.test_stopping.add_listener
def _on_test_stopping(environment, **_kwargs) -> None:
    state = _state(environment)
    if state.stopping:
        return
    state.stopping = True
    runner = environment.runner
    drain = _option(environment, "chat_drain", 5.0)
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
    state = _state(environment)
    state.stopping = True
    if state.final_sent:
        return
    state.final_sent = True
    final = state.runtime.finish(drain) if state.runtime is not None else {}
    final["clock"] = state.clock.to_dict()
    intervals, state.outbox[:] = list(state.outbox), []
    environment.runner.send_message("chat_final", {"intervals": intervals, "final": final})


def _master_final(environment, msg, **_kwargs) -> None:
    state = _state(environment)
    for snapshot in msg.data["intervals"]:
        state.stats.add_interval(snapshot, msg.node_id)
    state.stats.add_final(msg.node_id, msg.data["final"])


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    state = _state(environment)
    if not state.stats.finals:
        return  # nothing ran (e.g. stopped before any user started)
    options = environment.parsed_options
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(_option(environment, "chat_report_dir", "reports")) / _option(environment, "chat_run_name",
                                                                                "locust") / stamp
    metadata = {"locustfile": getattr(options, "locustfile", None), "target": _public_target(options),
                "options": _public_options(options)}
    document = build_results(state.stats, metadata=metadata, complete=state.complete)
    state.results_path = write_json_atomic(folder / "results.json", document)
    _log_summary(document, state.results_path)
    if _option(environment, "chat_progress_file"):
        _progress_line(environment, {"event": "results", "path": str(state.results_path)})


def _public_target(options) -> dict:
    return {"endpoint": options.chat_endpoint, "rooms": [r for r in options.chat_room_arn.split(",") if r],
            "kind": "emulator" if options.chat_control_endpoint else "ivschat"}


def _public_options(options) -> dict:
    # Token sources are named, never their content; the command line of a token command may hold secrets.
    hidden = {"chat_tokens", "chat_token_command"}
    return {k: (bool(v) if k in hidden else v) for k, v in sorted(vars(options).items())
            if k.startswith("chat_") or k in ("num_users", "spawn_rate", "run_time", "processes")}


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
    state = _state(environment)
    if isinstance(environment.runner, WorkerRunner):
        if state.runtime is not None:
            _send_final(environment, _option(environment, "chat_drain", 5.0))
    elif not state.stopping and environment.runner is not None and environment.runner.state != "stopped":
        _on_test_stopping(environment)
    if state.runtime is not None:
        state.runtime.close()


# -- web UI -------------------------------------------------------------------------------------------------


def _add_chat_tab(environment, web_ui) -> None:
    from flask import json as flask_json
    from flask import request

    web_ui.template_args["extendedTabs"] = [{"title": "Chat", "key": "chat"}]
    web_ui.template_args["extendedTables"] = [{"key": "chat", "structure": [
        {"key": "metric", "title": "Metric"}, {"key": "delivery", "title": "Delivery"}, {"key": "ack", "title": "Ack"},
    ]}]

    @web_ui.app.after_request
    def _extend_stats(response):
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            body["extendedStats"] = [{"key": "chat", "data": _state(environment).stats.live_rows()}]
            response.set_data(flask_json.dumps(body))
        return response
