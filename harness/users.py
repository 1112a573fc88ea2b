"""Locust user classes for chat load: one Locust user is one chat connection.

A locustfile subclasses these and stays short:

    class Viewer(ViewerUser):
        weight = 20

    class Chatter(ChatterUser):
        weight = 2
        wait_time = open_loop(per_second=1)

        @task
        def chat(self):
            self.client.send_message(self.message_text())

`self.client` calls return at once (the socket work happens on the loop thread); pass `wait=True`
to block this user — only this greenlet — until the server answers.
"""

from __future__ import annotations

import math
import random
import string
import time

import gevent.event
from locust import User, between, constant, task

from . import locust_plugin  # noqa: F401 - registers the options and event listeners with Locust
from .locust_plugin import runtime_for, test_is_stopping
from .net.session import RequestFailed
from .schedule import OpenLoopSchedule

_ALPHABET = string.ascii_letters + string.digits + " "


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
    """What a chat user's tasks call. Lives on the gevent side; the session lives on the loop."""

    def __init__(self, runtime, user: ChatUser) -> None:
        self._runtime = runtime
        self._user = user
        self._call = runtime.loop_thread.call
        self.session = runtime.new_session(user.user_id_prefix, user.capabilities, user.reconnect,
                                           user.session_minutes, user.token_attributes)

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def room(self) -> str:
        return self.session.room

    @property
    def connected(self) -> bool:
        return self.session.state == "open"

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block this user until the connection is open (True) or failed for good / timed out (False)."""
        if self.connected:
            return True
        waiter = gevent.event.AsyncResult()
        self._call(self._register_connected_waiter, waiter)
        try:
            return bool(waiter.get(timeout=timeout))
        except gevent.Timeout:
            return False

    def _register_connected_waiter(self, waiter) -> None:  # loop side
        if self.session.state == "open":
            self._runtime.resolve(waiter, True)
        elif self.session.state == "stopped":
            self._runtime.resolve(waiter, False)
        else:
            self.session.connected_waiters.append(waiter)

    def send_message(self, content: str, attributes: dict[str, str] | None = None, *, wait: bool = False,
                     timeout: float = 10.0, intended_ns: int | None = None):
        """Send a chat message stamped with its intended send time (the user's open-loop slot, or
        `intended_ns`, or now); with `wait`, return the ack latency in µs or raise `RequestFailed`
        (e.g. code 429)."""
        if intended_ns is None:
            schedule = self._user.__dict__.get("_open_loop")
            intended_ns = schedule.current_ns() if schedule else time.time_ns()
        intended_ns += self._runtime.clock_offset_ns
        waiter = gevent.event.AsyncResult() if wait else None
        self._call(self.session.send_message, content, intended_ns, attributes, waiter)
        return self._wait(waiter, timeout)

    def delete_message(self, message_id: str, reason: str | None = None, *, wait: bool = False,
                       timeout: float = 10.0):
        waiter = gevent.event.AsyncResult() if wait else None
        self._call(self.session.delete_message, message_id, reason, waiter)
        return self._wait(waiter, timeout)

    def disconnect_user(self, user_id: str, reason: str | None = None, *, wait: bool = False,
                        timeout: float = 10.0):
        waiter = gevent.event.AsyncResult() if wait else None
        self._call(self.session.disconnect_user, user_id, reason, waiter)
        return self._wait(waiter, timeout)

    def recent_message_ids(self) -> list[str]:
        """Ids of the last messages this connection received (what a moderator would delete)."""
        return self._runtime.loop_thread.ask(lambda: list(self.session.recent_ids or ()))

    @staticmethod
    def _wait(waiter, timeout: float):
        if waiter is None:
            return None
        try:
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise RequestFailed("timeout", f"no answer within {timeout} s") from None

    def leave(self) -> None:
        self._call(self.session.stop, True)


class ChatUser(User):
    """One chat connection. Subclasses set capabilities, reconnect policy and tasks."""

    abstract = True
    capabilities: tuple[str, ...] = ()
    reconnect: str = "sdk"  # or "backoff"; see harness.net.reconnect
    session_minutes: int | None = None  # CreateChatToken sessionDurationInMinutes (None: service default)
    token_attributes: dict[str, str] | None = None
    user_id_prefix = "user"
    wait_for_connection = True  # on_start blocks this user until connected, so tasks start connected

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client: ChatClient | None = None

    def on_start(self) -> None:
        self.client = ChatClient(runtime_for(self.environment), self)
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


class ViewerUser(ChatUser):
    """Only listens: the bulk of a real room."""

    abstract = True
    user_id_prefix = "viewer"
    wait_time = constant(5)

    @task
    def idle(self) -> None:
        self.wait()


class ChatterUser(ChatUser):
    """Sends messages on an open-loop schedule (`--chat-message-rate` per user per second)."""

    abstract = True
    capabilities = ("SEND_MESSAGE",)
    user_id_prefix = "chatter"

    message_rate: float | None = None  # messages per second; None: --chat-message-rate
    burst: int = 0  # > 0: instead, send this many at once at every whole second (+ burst_offset_ms)
    burst_offset_ms: float = 0.0  # negative: just before the boundary, so bursts straddle rate windows

    def wait_time(self) -> float:
        if self.burst:
            now = time.time()
            due = math.floor(now - self.burst_offset_ms / 1000) + 1 + self.burst_offset_ms / 1000
            self._burst_due_ns = int(due * 1e9)
            return due - now
        rate = self.message_rate or self.environment.parsed_options.chat_message_rate
        return _schedule(self, rate).wait_after_task()

    @task
    def chat(self) -> None:
        if self.burst:
            due = getattr(self, "_burst_due_ns", None)
            for _ in range(self.burst):
                self.client.send_message(self.message_text(), intended_ns=due)
            return
        self.client.send_message(self.message_text())


class ModeratorUser(ChatUser):
    """Can send, delete and kick; by default it deletes one recent message now and then."""

    abstract = True
    capabilities = ("SEND_MESSAGE", "DELETE_MESSAGE", "DISCONNECT_USER")
    user_id_prefix = "moderator"
    wait_time = between(5, 10)

    @task
    def moderate(self) -> None:
        ids = self.client.recent_message_ids()
        if ids:
            self.client.delete_message(random.choice(ids), "moderated by chatload")
