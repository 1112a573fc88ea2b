"""Trace replay inside Locust (`--chat-trace FILE`): one driver per process sends the trace's messages
through the harness's own users, open-loop at the trace's times ÷ speed, and lets listeners join and
leave when the trace's users did. Service-neutral: it only calls `client.send_message` (a connection's
or a publish API's) and makes users connect and leave, as every service's users do.

- **Senders** (users of the classes `--chat-trace-senders` names; default every `SenderUser`) are put
  in the target rooms that have trace senders, evenly, and send nothing of their own: the driver
  sends each message through the user that carries its trace sender (the sender's rank in its room,
  modulo the room's users), with the message's due time as its intended time, so a late driver
  shows in `replay_lag` and in every latency, never as a stretched schedule.
- **Listeners** (`--chat-trace-listeners`; default every other connecting class) each take one
  trace user's presence (by first join) and connect at its joins, leave at its leaves; listeners
  beyond the trace's users connect at once, as without a trace.
- The trace starts on the first whole second `--chat-trace-delay` after the first user (the ramp),
  so trace second k is a wall-clock second of the report's timeline (`replay.start` marks it).

One process only: every process would otherwise send the whole trace (`chatload run` runs a replay
in one process).
"""

from __future__ import annotations

import logging
import math
import time

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from ..trace.plan import Presence, ReplayPlan, build_plan
from ..trace.reader import read_trace
from ..trace.replayreport import LATE_US
from .options import option
from .state import runtime_for, state_of, test_is_stopping
from .target import resolved_target
from .users import SenderUser

BATCH = 200  # messages handed over between two yields to the hub
log = logging.getLogger("chatload")

OPTIONS = (  # --chat-trace-<name>: (type, default, help); all kept out of the web UI
    ("", str, "", "replay this trace (chatload.trace/1 JSON lines; docs/traces.md) instead of the senders' "
                  "own schedules"),
    ("speed", float, 1.0, "time compression: 2 replays the trace twice as fast"),
    ("audience", float, 1.0, "each trace user's joins and leaves this many times over (listeners needed)"),
    ("delay", float, 5.0, "seconds from the first user to the trace's start (let the ramp finish)"),
    ("rooms", str, "", "trace room → target room index, e.g. room-a=0,room-b=1 (default: busiest first)"),
    ("senders", str, "", "user classes that carry the trace's senders, comma-separated (default: senders)"),
    ("listeners", str, "", "user classes that follow the trace's joins and leaves (default: the others)"),
    ("max-size", int, 0, "clip message sizes to this many characters (0: the trace's own)"),
)


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    for name, kind, default, text in OPTIONS:
        parser.add_argument("--chat-trace" + (f"-{name}" if name else ""), type=kind, default=default,
                            include_in_web_ui=False, help=text)


@events.test_start.add_listener
def _check_replay(environment, **_kwargs) -> None:
    """A new test replays the trace anew (a web UI's restart too); its options are checked here, once,
    by the process that holds the target, so a bad one is one line and exit 2, not a traceback in
    every user's `on_start`. Each worker would replay the whole trace: more than one is refused."""
    state = state_of(environment)
    state.replay = None
    # The users ask `state.replay_for`, which makes the driver with this on the first user's start.
    state.make_replay = ReplayDriver if option(environment, "chat_trace", "") and not state.replay_refused else None
    runner = environment.runner
    if not option(environment, "chat_trace", "") or isinstance(runner, WorkerRunner):
        return
    if isinstance(runner, MasterRunner) and runner.worker_count > 1:
        problem = (f"--chat-trace is replayed by one process, and this run has {runner.worker_count} workers: "
                   "run it with one (--processes 1, or no --processes)")
    else:
        try:
            _plan(environment, len(resolved_target(environment)[1].rooms))
            return
        except ValueError as exc:  # TraceError and build_plan's refusals are ValueErrors
            problem = str(exc).replace("\n", "; ")
    log.error("chatload: %s", problem)
    environment.process_exit_code = 2
    state.replay_refused, state.make_replay = True, None
    gevent.spawn_later(0, runner.quit)


def _plan(environment, room_count: int) -> ReplayPlan:
    """The replay plan the --chat-trace options describe; ValueError naming the option otherwise."""
    try:
        trace = read_trace(option(environment, "chat_trace"))
    except ValueError as exc:
        raise ValueError(f"--chat-trace: {exc}") from None
    mapping = parse_room_mapping(option(environment, "chat_trace_rooms", ""))
    for name in ("speed", "audience"):
        if not option(environment, f"chat_trace_{name}", 1.0) > 0:
            raise ValueError(f"--chat-trace-{name}: must be more than 0")
    plan = build_plan(trace, speed=option(environment, "chat_trace_speed", 1.0), room_count=room_count,
                      mapping=mapping, audience=option(environment, "chat_trace_audience", 1.0))
    used = {send.room for send in plan.sends} | {p.room for p in plan.presences}
    outside = sorted(used - set(range(room_count)))
    if outside:
        raise ValueError(f"--chat-trace-rooms: room index {outside[0]} is not one of the target's "
                         f"{room_count} rooms (0 to {room_count - 1})")
    return plan


def parse_room_mapping(text: str) -> dict[str, int] | None:
    if not text:
        return None
    mapping = {}
    for item in text.split(","):
        room, _, index = item.rpartition("=")
        if not room or not index.strip().isdigit():
            raise ValueError(f"--chat-trace-rooms: {item!r} is not TRACE_ROOM=INDEX")
        mapping[room.strip()] = int(index)
    return mapping


class ReplayDriver:
    """Gevent side, one per process: assigns users their part and runs the send schedule."""

    def __init__(self, environment) -> None:
        self.environment = environment
        self.runtime = runtime_for(environment)
        rooms = list(self.runtime.target.rooms)
        self.plan: ReplayPlan = _plan(environment, len(rooms))  # checked at test start (`_check_replay`)
        self.rooms = rooms
        self.max_size = option(environment, "chat_trace_max_size", 0) or None
        self.sender_classes = _names(option(environment, "chat_trace_senders", ""))
        self.listener_classes = _names(option(environment, "chat_trace_listeners", ""))
        delay = option(environment, "chat_trace_delay", 5.0)
        self.start_s = math.ceil(time.time() + delay)  # a whole second: trace second k is a timeline second
        self.users: dict[int, list] = {room: [] for room in self.plan.senders_per_room}
        # A listener waiting for a join that comes after the run's end would never connect, and count
        # as a user that failed to: those presences are not handed out (`replay.presences_after_end`).
        run_time = option(environment, "run_time", None)
        end_s = time.time() + run_time if run_time else math.inf
        self.presences: list[Presence] = [p for p in self.plan.presences if self.start_s + p.intervals[0][0] < end_s]
        late = len(self.plan.presences) - len(self.presences)
        if late:
            self.runtime.loop_thread.call(self.runtime.recorder.count, "replay.presences_after_end", late)
        self._greenlet = gevent.spawn(self._run)

    # -- users ----------------------------------------------------------------------------------------

    def role(self, user) -> str | None:
        name = type(user).__name__
        if self.sender_classes is not None:
            if name in self.sender_classes:
                return "sender"
        elif isinstance(user, SenderUser):
            return "sender"
        if self.listener_classes is not None:
            return "listener" if name in self.listener_classes else None
        return None if isinstance(user, SenderUser) else "listener"

    def admit(self, user) -> bool:
        """Called by a user before it connects (gevent side): sets `user.room_choice`, and for a
        listener waits for its trace user's first join (keeping its later leaves and joins in a
        greenlet of its own). False: do not connect (the run stopped before the join)."""
        role = self.role(user)
        if role == "sender":
            user.replaying = True  # the trace's senders only: never a schedule of its own
            if self.users:
                room = min(self.users, key=lambda r: len(self.users[r]) / self.plan.senders_per_room[r])
                self.users[room].append(user)
                user.room_choice = self.rooms[room]
        elif role == "listener" and self.presences:
            presence = self.presences.pop(0)
            user.room_choice = self.rooms[presence.room]
            join, leave = presence.intervals[0]
            if not self._sleep_until(join):
                return False
            if leave is not None or len(presence.intervals) > 1:
                gevent.spawn(self._come_and_go, user, presence)
        return True

    def _come_and_go(self, user, presence: Presence) -> None:
        for index, (_, leave) in enumerate(presence.intervals):
            if leave is None or not self._sleep_until(leave):
                return
            if user.client is not None:
                user.client.leave()
                self.runtime.loop_thread.call(self.runtime.recorder.count, "replay.leaves")
            if index + 1 == len(presence.intervals) or not self._sleep_until(presence.intervals[index + 1][0]):
                return
            user.rejoin()
            self.runtime.loop_thread.call(self.runtime.recorder.count, "replay.rejoins")

    def _sleep_until(self, offset_s: float) -> bool:
        delay = self.start_s + offset_s - time.time()
        if delay > 0:
            gevent.sleep(delay)
        return not test_is_stopping(self.environment) and not self.runtime.publishing_stopped

    # -- the schedule ---------------------------------------------------------------------------------

    def _run(self) -> None:
        call = self.runtime.loop_thread.call
        if not self._sleep_until(0.0):
            return
        call(self.runtime.recorder.count, "replay.start")
        sends = self.plan.sends
        index = 0
        while index < len(sends):
            # In ns, as `due <= now` below: a float-seconds wait could be <= 0 while the send is not
            # yet due, and the loop would spin without sleeping.
            wait_ns = self._due_ns(sends[index]) - time.time_ns()
            if wait_ns > 0:
                gevent.sleep(wait_ns / 1e9)
            if test_is_stopping(self.environment) or self.runtime.publishing_stopped:
                call(self.runtime.recorder.count, "replay.not_sent.run_ended", len(sends) - index)
                return
            # Everything already due goes now, each with its own intended time, in batches that yield
            # to the other greenlets between them (a late schedule must not stall the hub) and are
            # counted with one call to the loop each.
            now_ns = time.time_ns()
            lags: list[int] = []
            unsent = 0
            while index < len(sends) and len(lags) + unsent < BATCH and self._due_ns(sends[index]) <= now_ns:
                lag_us = self._send(sends[index], now_ns)
                if lag_us is None:
                    unsent += 1
                else:
                    lags.append(lag_us)
                index += 1
            if lags or unsent:  # woken a little early, nothing was due: nothing to count
                call(self._account, lags, unsent)
            if len(lags) + unsent == BATCH:
                gevent.sleep(0)

    def _due_ns(self, send) -> int:
        return int((self.start_s + send.due_s) * 1e9)

    def _account(self, lags: list[int], unsent: int) -> None:  # loop side: the recorder is the loop's
        recorder = self.runtime.recorder
        for lag_us in lags:
            recorder.record("replay_lag", lag_us)
        late = sum(lag_us >= LATE_US for lag_us in lags)
        for name, n in (("replay.sent", len(lags)), ("replay.late", late), ("replay.not_sent.no_sender", unsent)):
            if n:
                recorder.count(name, n)

    def _send(self, send, now_ns: int) -> int | None:
        """Hand one message to its user's client (it returns at once): its lag in µs, or None when its
        room has no sender user."""
        users = self.users.get(send.room)
        user = users[send.sender % len(users)] if users else None
        if user is None or user.client is None:
            return None
        due_ns = self._due_ns(send)
        size = max(1, min(send.size, self.max_size) if self.max_size else send.size)
        user.client.send_message(user.message_text(size), intended_ns=due_ns)
        return max(0, (now_ns - due_ns) // 1000)


def _names(text: str) -> set[str] | None:
    names = {name.strip() for name in text.split(",") if name.strip()}
    return names or None
