"""Listener pools: one Locust user holding many listening connections.

A `ListenerUser` is one greenlet per connection (7.2 KiB on CPython 3.11 for the greenlet alone,
plus the `User` and its `ChatClient`). A listener has nothing to do but receive, and receiving
happens on the loop thread, so a pool user opens `connections_per_user` sessions from its one
greenlet and keeps only their handles. Every connection is still its own session: its own token,
user id, ledger receiver, reconnect policy and per-population counts (`users_spawned.<population>`
counts connections), so the accounting is the same as with one user per connection.

    class ViewerPool(ListenerPool, Viewer):   # any service's listener class
        connections_per_user = 500

Gevent side only (the user's greenlet); sessions are reached through the runtime's crossings.
"""

from __future__ import annotations

import gevent.event
import gevent.lock

from ..threads.marks import runs_in_greenlet
from .options import option
from .state import runtime_for, test_is_stopping
from .users import ChatUser

# Connections a pool opens together, and batches in flight in the whole process (every pool user):
# no more token fetches at once than the token provider's HTTP pool holds (IVS Chat: 50). 8 pools
# each opening 200 at once put 1,600 fetches in flight and the emulator's control plane closed 265
# of those HTTP connections; 4 × 50 in flight still lost 208 of 4,000 (`chatload bench asrun`).
OPEN_BATCH = 50
BATCHES_IN_FLIGHT = 1
_gate: gevent.lock.BoundedSemaphore | None = None  # gevent side; made on first use (one hub per process)


class _Countdown:
    """Set (through the boundary's inbox, on the hub) once per connection of a batch: a waiter for
    `ChatRuntime.when_connected`. Gevent hub's thread only."""

    __slots__ = ("left", "opened", "done")

    def __init__(self, n: int) -> None:
        self.left, self.opened, self.done = n, 0, gevent.event.Event()
        if n == 0:
            self.done.set()

    @runs_in_greenlet
    def set(self, opened: bool) -> None:
        self.opened += bool(opened)
        self.left -= 1
        if self.left == 0:
            self.done.set()


class ListenerPool(ChatUser):
    """Mixin placed before a service's listener class: this user holds `connections_per_user`
    listening connections instead of one. `self.client` stays None (a pool has nothing to send)."""

    abstract = True
    connections_per_user = 100

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.handles: list = []

    def open_connections(self) -> None:
        runtime = runtime_for(self.environment)
        population = type(self).__name__
        size = option(self.environment, "chat_connections_per_user") or self.connections_per_user
        for start in range(0, size, OPEN_BATCH):
            if test_is_stopping(self.environment):
                return
            count = min(OPEN_BATCH, size - start)
            with _opening_gate():
                batch = [runtime.new_session(self.user_id_prefix, self.capabilities, self.reconnect,
                                             self.session_minutes, self.token_attributes, population=population)
                         for _ in range(count)]
                self.handles.extend(batch)
                countdown = _Countdown(count)
                runtime.when_connected(batch, countdown)
                countdown.done.wait(timeout=30)

    def on_stop(self) -> None:
        # As ChatUser.on_stop: at the end of a test the plugin drains and closes every connection.
        if self.handles and not test_is_stopping(self.environment):
            runtime_for(self.environment).stop_sessions(list(self.handles))


def _opening_gate() -> gevent.lock.BoundedSemaphore:
    global _gate
    if _gate is None:
        _gate = gevent.lock.BoundedSemaphore(BATCHES_IN_FLIGHT)
    return _gate

