"""What the plugin keeps per Locust environment (one per process), and the process's runtime.

Low in the plugin: the users, the listeners and the services' users reach their runtime (and a
trace replay's driver) from here, and this module reaches only the resolved target below it.
"""

from __future__ import annotations

from pathlib import Path

import gevent.lock
from locust.runners import WorkerRunner

from ..results.run_results import ChatStats
from ..timing import clock
from .options import option, source_addresses_of
from .target import resolved_target, token_provider


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
        self.replay = None  # this test's trace replay driver (harness.locust.replay), made on first use
        self.make_replay = None  # how to make it: set at test start when this process replays a trace
        self.replay_refused = False


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

                is_worker = isinstance(environment.runner, WorkerRunner)
                force_ping = option(environment, "chat_clock_sync", "auto") == "ping"
                state.clock = state.worker_clock.measure(force_ping) if is_worker else clock.LOCAL
                service, target = resolved_target(environment)
                runtime = ChatRuntime(environment, service, target, token_provider(environment, service, target),
                                      connect_timeout=option(environment, "chat_connect_timeout", 10.0),
                                      clock_offset_ns=state.clock.offset_ns,
                                      transport=option(environment, "chat_transport", "websockets"),
                                      source_addresses=source_addresses_of(environment))
                if is_worker:
                    runtime.sink = lambda snapshot: ship_interval(environment, snapshot)
                else:
                    runtime.sink = state.stats.add_interval
                state.runtime = runtime
    return state.runtime


def ship_interval(environment, snapshot: dict) -> None:
    """A worker's runtime sink (gevent side): send each interval snapshot to the master now. Snapshots
    taken while no master can hear (before the runner connects) wait in the outbox for chat_final."""
    state = state_of(environment)
    try:
        environment.runner.send_message("chat_interval", snapshot)
    except Exception:  # the master is gone or not there yet: keep it, it leaves with chat_final
        state.outbox.append(snapshot)


def replay_for(environment):
    """This process's trace replay driver (a `harness.locust.replay.ReplayDriver`), or None without a
    trace. Made on first use — the first user's start begins the trace's clock — by what the replay's
    test-start listener left in `make_replay`: the users above ask here, the replay above them makes it."""
    state = state_of(environment)
    if state.replay is None and state.make_replay is not None:
        runtime_for(environment)  # takes `state.creating` itself: not from inside it
        with state.creating:
            if state.replay is None:
                state.replay = state.make_replay(environment)
    return state.replay
