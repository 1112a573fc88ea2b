"""What the plugin keeps per Locust environment (one per process), and the process's runtime."""

from __future__ import annotations

from pathlib import Path

import gevent.lock
from locust.runners import WorkerRunner

from ..timing import clock
from ..results.run_results import ChatStats
from .options import option


class ChatState:
    def __init__(self) -> None:
        self.runtime = None
        self.stats = ChatStats()  # used by the process that owns the run
        self.outbox: list[dict] = []  # a worker's interval snapshots not yet shipped
        self.stopping = False
        self.emulator = None
        self.results_path: Path | None = None
        self.expected_finals: set[str] = set()
        self.complete = True
        self.lost: list[str] = []  # workers whose final report never came (killed, paused, gone)
        self.creating = gevent.lock.BoundedSemaphore()
        self.worker_clock = None
        self.progress = None
        self.final_sent = False
        self.clock = clock.LOCAL
        self.metrics_server = None  # the live /metrics endpoint (live_metrics)
        self.otlp = None
        self.otlp_greenlet = None


def state_of(environment) -> ChatState:
    state = getattr(environment, "_chatload", None)
    if state is None:
        state = environment._chatload = ChatState()
    return state


def test_is_stopping(environment) -> bool:
    return state_of(environment).stopping


def runtime_for(environment):
    """This process's runtime, created on first use: on a worker only the spawn message from the
    master carries the target (the master may have just started an emulator)."""
    state = state_of(environment)
    if state.runtime is None:
        # Starting the loop thread yields to other greenlets: without the lock, every user spawned
        # meanwhile would build a runtime (and a loop thread) of its own.
        with state.creating:
            if state.runtime is None:
                from ..runtime.hub_side import ChatRuntime
                from .target import resolved_target, token_provider

                is_worker = isinstance(environment.runner, WorkerRunner)
                force_ping = option(environment, "chat_clock_sync", "auto") == "ping"
                state.clock = state.worker_clock.measure(force_ping) if is_worker else clock.LOCAL
                service, target = resolved_target(environment)
                runtime = ChatRuntime(environment, service, target, token_provider(environment, service, target),
                                      connect_timeout=option(environment, "chat_connect_timeout", 10.0),
                                      clock_offset_ns=state.clock.offset_ns,
                                      transport=option(environment, "chat_transport", "websockets"))
                if is_worker:
                    from .drain import ship_interval

                    runtime.sink = lambda snapshot: ship_interval(environment, snapshot)
                else:
                    runtime.sink = state.stats.add_interval
                state.runtime = runtime
    return state.runtime
