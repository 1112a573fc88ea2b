"""What `chatload run` reads and writes while Locust runs: a progress line a second, and commands.

Progress (`--chat-progress-file`): one JSON line a second with what a person watching a long run
wants — users, connections, deliveries/s, p99, errors, rejections. Commands (`--chat-command-file`):
JSON lines the runner appends while playing its fault timeline; a `kick` is done by Locust's own
processes through the service's control plane, for a sample of their connected users, so it works
against a real service too.
"""

from __future__ import annotations

import json
import logging
import random
import time

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from ..metrics.counters import error_total
from .options import option
from .state import state_of

log = logging.getLogger("chatload")


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    if isinstance(runner, WorkerRunner):
        runner.register_message("chat_kick", lambda environment, msg, **_kw: kick(environment, msg.data))


def progress_line(environment, record: dict) -> None:
    with open(option(environment, "chat_progress_file"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def start_progress(environment, state) -> None:
    if option(environment, "chat_progress_file"):
        state.progress = gevent.spawn(_write_progress, environment, state)


def _write_progress(environment, state) -> None:
    """Once a second, what a person watching a long run wants: users, rate, p99, errors."""
    started = time.monotonic()
    progress_line(environment, {"event": "start", "t_ns": time.time_ns()})
    commands_read = 0
    # Imported here, not at the top: importing target_setup registers its init listener, and the
    # listeners run in import order. Admission (which imports this module) must wrap the master's
    # message handler before target_setup's init can yield to a worker's hello.
    from .target_setup import service_of

    service = service_of(environment)
    own = tuple(service.histograms) if service is not None else ()  # join, ping, subscribe, replay, …
    while not state.stopping:
        gevent.sleep(1.0)
        commands_read = _follow_commands(environment, commands_read)
        # The merged recorder's own cumulative histogram, read in place, and only its p99: a summary
        # (copy, mean, every percentile) each second was 28 of the ~180 Python-level py-spy samples of
        # a `locust -f` process at 1,000 receivers × 20 msg/s, a fifth of the receive path's own 127.
        histograms, counters = state.stats.recorder.cumulative()
        delivery = histograms.get("delivery")
        last = state.stats.last_interval.values()
        progress_line(environment, {
            "event": "progress",
            "elapsed_s": round(time.monotonic() - started, 1),
            # The newest interval merged from every process: per second, whatever the process count.
            "interval_t_ns": max((s.get("t_ns", 0) for s in last), default=0),
            "users": environment.runner.user_count,
            "connections": sum(s.get("gauges", {}).get("connections_open", 0) for s in last),
            "deliveries_per_s": sum(s.get("counters", {}).get("deliveries", 0) for s in last),
            "delivery_p99_ms": round(delivery.percentile(99) / 1000, 2) if delivery is not None else 0.0,
            "errors": error_total(counters),  # as the report counts them (Locust's table counts requests)
            "rejected": sum(v for k, v in counters.items() if k.startswith("rejected.")),
            # The service's own measures so far (cumulative p99), so a join storm shows its joins.
            "measures": {name: {"count": h.count, "p99_ms": round(h.percentile(99) / 1000, 2)}
                         for name in own if (h := histograms.get(name)) is not None and h.count},
            "failures": {f"{kind} {k.split('.', 1)[1]}": v for k, v in counters.items()
                         for kind, prefix in (("connect", "connect_failures."), ("token", "token_fetch_failures."))
                         if k.startswith(prefix)},
        })


def _follow_commands(environment, offset: int) -> int:
    """Commands from `chatload run` (its fault timeline), one JSON object a line."""
    path = option(environment, "chat_command_file")
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
                kick(environment, command)
    return offset + len(complete.encode())


def kick(environment, command: dict) -> None:
    """A moderator's kick through the service's control plane, for a sample of this process's own
    connected users (by handle: the gevent side's view of each session)."""
    runtime = state_of(environment).runtime
    if runtime is None:
        return
    prefix = command.get("prefix", "viewer")
    candidates = sorted((h for h in runtime.handles.values() if h.state == "open" and h.user_id.startswith(prefix)),
                        key=lambda h: h.user_id)
    chosen = random.Random(command.get("seed")).sample(candidates, round(len(candidates) * command.get("fraction", 1.0)))
    runtime.loop_thread.call(runtime.recorder.count, "kicks_requested", len(chosen))

    def one(handle) -> None:
        runtime.kick_requested(handle, time.time_ns() + runtime.clock_offset_ns)
        try:
            runtime.service.kick(runtime.token_provider, runtime.target, handle.user)
        except Exception as exc:  # counted and logged; a failed kick must not end the user
            log.warning("chatload: kick failed: %s", type(exc).__name__)
            runtime.loop_thread.call(runtime.recorder.count, f"kick_failures.{type(exc).__name__}")

    for handle in chosen:
        gevent.spawn(one, handle)
