"""Locust user classes for chat load: one Locust user is one chat connection. Service-neutral.

A service's package builds its users on these (`harness/services/ivschat/users.py`), and a
locustfile subclasses those and stays short:

    class Viewer(ViewerUser):
        weight = 20

    class Chatter(ChatterUser):
        weight = 2
        wait_time = open_loop(per_second=1)

`self.client` calls return at once (the socket work happens on the loop thread); pass `wait=True`
to block this user — only this greenlet — until the server answers.
"""

from __future__ import annotations

import math
import random
import string
import time
from typing import TYPE_CHECKING

import gevent.event
from locust import User, constant, task

from ..session.chat_session import RequestFailed, SessionState
from ..threads.marks import runs_in_greenlet
from ..timing.schedule import OpenLoopSchedule
from .state import replay_for, runtime_for, test_is_stopping

if TYPE_CHECKING:
    from ..runtime.handle import SessionHandle

_ALPHABET = string.ascii_letters + string.digits + " "
LISTENER_WAKE_S = 60.0


def _schedule(user, per_second: float) -> OpenLoopSchedule:
    schedule = user.__dict__.get("_open_loop")
    if schedule is None:
        schedule = user.__dict__["_open_loop"] = OpenLoopSchedule(per_second)
    return schedule


def open_loop(per_second: float):
    """A Locust `wait_time`: run the task `per_second` times a second on a fixed schedule."""

    def wait_time(user) -> float:
        return _schedule(user, per_second).wait_after_task()

    return wait_time


class ChatClient:
    """What a chat user's tasks call. Lives in the user's greenlet and holds the session's handle; the
    session itself lives on the loop, reached only through the runtime's crossings (`call_session`,
    `when_connected`, `query`, `leave`)."""

    def __init__(self, runtime, user: ChatUser, rejoining: SessionHandle | None = None) -> None:
        self._runtime = runtime
        self._user = user
        self.handle = runtime.new_session(user.user_id_prefix, user.capabilities, user.reconnect,
                                          user.session_minutes, user.token_attributes,
                                          population=type(user).__name__, room=user.room_choice,
                                          rejoining=rejoining)

    @property
    def user_id(self) -> str:
        return self.handle.user_id

    @property
    def room(self) -> str:
        return self.handle.room

    @property
    def connected(self) -> bool:
        return self.handle.state is SessionState.OPEN

    @runs_in_greenlet
    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block this user until the connection is open (True) or failed for good / timed out (False)."""
        if self.connected:
            return True
        waiter = gevent.event.AsyncResult()
        self._runtime.when_connected([self.handle], waiter)
        try:
            return bool(waiter.get(timeout=timeout))
        except gevent.Timeout:
            return False

    @runs_in_greenlet
    def send_message(self, content: str, attributes: dict[str, str] | None = None, *, wait: bool = False,
                     timeout: float = 10.0, intended_ns: int | None = None):
        """Send a measured message stamped with its intended send time (the user's open-loop slot, or
        `intended_ns`, or now); with `wait`, return the ack latency in µs or raise `RequestFailed`
        (e.g. code 429, category rate_limited)."""
        if intended_ns is None:
            schedule = self._user.__dict__.get("_open_loop")
            intended_ns = schedule.current_ns() if schedule else time.time_ns()
        intended_ns += self._runtime.clock_offset_ns
        waiter = gevent.event.AsyncResult() if wait else None
        self._runtime.call_session(self.handle, "send_message", content, intended_ns, attributes, waiter)
        return self._wait(waiter, timeout)

    @runs_in_greenlet
    def request(self, name: str, *args, wait: bool = False, timeout: float = 10.0):
        """A service-specific request (IVS Chat: "delete", "disconnect"), encoded by the service's
        client protocol; with `wait`, return the answer's latency in µs or raise `RequestFailed`."""
        waiter = gevent.event.AsyncResult() if wait else None
        self._runtime.call_session(self.handle, "request", name, args, waiter)
        return self._wait(waiter, timeout)

    def query(self, fn):
        """Run `fn(protocol)` on the loop against this connection's client protocol and return its
        result (None while not connected): how a user reads service state, e.g. recent message ids.
        `fn` runs on the loop thread: it must only read the protocol and return what it read."""
        return self._runtime.query(self.handle, fn)

    @staticmethod
    def _wait(waiter, timeout: float):
        if waiter is None:
            return None
        try:
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise RequestFailed("timeout", f"no answer within {timeout} s") from None

    def leave(self) -> None:
        self._runtime.leave(self.handle)


class PublishClient:
    """What a publisher's tasks call: measured messages through the service's publish API (e.g. an
    HTTP endpoint of the customer's backend), timed from their intended send time."""

    def __init__(self, runtime, user: ChatUser) -> None:
        self._runtime = runtime
        self._user = user
        self.handle = runtime.new_publisher(user.user_id_prefix, population=type(user).__name__,
                                            room=user.room_choice)
        self._seq = 0

    @property
    def connected(self) -> bool:
        return True  # no connection to lose

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return True

    def send_message(self, content: str, attributes: dict[str, str] | None = None, *, wait: bool = False,
                     timeout: float = 10.0, intended_ns: int | None = None):
        if intended_ns is None:
            schedule = self._user.__dict__.get("_open_loop")
            intended_ns = schedule.current_ns() if schedule else time.time_ns()
        self._seq += 1
        self._runtime.publish(self.handle, self._seq, intended_ns + self._runtime.clock_offset_ns, content)

    def leave(self) -> None:
        pass


class ChatUser(User):
    """One chat connection. A service's subclasses set `service`, capabilities, reconnect and tasks."""

    abstract = True
    service: str = ""  # registry name of the service these users speak
    capabilities: tuple[str, ...] = ()  # in the service's own vocabulary (token permissions)
    reconnect: str = "sdk"  # the service's own client's behaviour, or "backoff"; see harness.net.reconnect
    session_minutes: int | None = None  # requested session length (None: the service's default)
    token_attributes: dict[str, str] | None = None
    user_id_prefix = "user"
    wait_for_connection = True  # on_start blocks this user until connected, so tasks start connected
    room_choice: str | None = None  # the room to join (a trace replay sets it); None: the next in turn
    replaying = False  # a trace replay sends for this user (harness/locust/replay.py): no schedule of its own

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client: ChatClient | None = None

    def on_start(self) -> None:
        replay = replay_for(self.environment)
        if replay is not None and not replay.admit(self):  # a listener may wait for its trace user's join
            return
        self.open_connections()

    def open_connections(self) -> None:
        """Open this user's connection (a listener pool opens many: `harness.locust.pool`)."""
        self.rejoin()

    def rejoin(self) -> None:
        """Open a connection (a new one after `client.leave()`, when a replayed trace says so)."""
        left = self.client.handle if self.client is not None else None
        self.client = ChatClient(runtime_for(self.environment), self, rejoining=left)
        if self.wait_for_connection:
            self.client.wait_connected(timeout=30)

    def on_stop(self) -> None:
        # At the end of a test the plugin drains and closes every connection itself (messages in
        # flight must still be counted); a user leaving mid-test (ramp-down) closes now.
        if self.client is not None and not test_is_stopping(self.environment):
            self.client.leave()

    message_size: tuple[int, int] | None = None  # (min, max) characters; None: --chat-message-size

    def message_text(self, size: int | None = None) -> str:
        if size is None and self.message_size is not None:
            size = random.randint(*self.message_size)
        size = size or getattr(self.environment.parsed_options, "chat_message_size", 32) or 32
        return "".join(random.choices(_ALPHABET, k=size))


class ListenerUser(ChatUser):
    """Only listens: the bulk of a real room."""

    abstract = True
    user_id_prefix = "listener"
    # Nothing to do but let Locust stop it, so it wakes once a minute: each wake-up is hub work and a
    # GIL hand-off the receiving loop thread pays for (10,000 listeners each waking twice in 10 s were
    # 2,000 wake-ups a second). Locust stops a waiting user at once, however long its wait.
    wait_time = constant(LISTENER_WAKE_S)

    @task
    def idle(self) -> None:
        pass


class SenderUser(ChatUser):
    """Sends measured messages on an open-loop schedule (`--chat-message-rate` per user per second)."""

    abstract = True
    user_id_prefix = "sender"

    message_rate: float | None = None  # messages per second; None: --chat-message-rate
    burst: int = 0  # > 0: instead, send this many at once at every whole second (+ burst_offset_ms)
    burst_offset_ms: float = 0.0  # negative: just before the boundary, so bursts straddle rate windows

    def wait_time(self) -> float:
        if self.replaying:
            return LISTENER_WAKE_S
        if self.burst:
            now = time.time()
            due = math.floor(now - self.burst_offset_ms / 1000) + 1 + self.burst_offset_ms / 1000
            self._burst_due_ns = int(due * 1e9)
            return due - now
        rate = self.message_rate or self.environment.parsed_options.chat_message_rate
        return _schedule(self, rate).wait_after_task()

    @task
    def chat(self) -> None:
        if self.replaying:
            return
        if self.burst:
            due = getattr(self, "_burst_due_ns", None)
            for _ in range(self.burst):
                self.client.send_message(self.message_text(), intended_ns=due)
            return
        self.client.send_message(self.message_text())


class PublisherUser(SenderUser):
    """Publishes measured messages through the service's publish API, with no connection of its own,
    on a sender's open-loop schedule (or bursts); the service's subscribers receive them
    (`ChatService.publish`)."""

    abstract = True
    user_id_prefix = "publisher"

    def on_start(self) -> None:
        replay = replay_for(self.environment)
        if replay is not None:
            replay.admit(self)
        self.client = PublishClient(runtime_for(self.environment), self)
