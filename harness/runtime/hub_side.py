"""The runtime's hub side: what Locust's users hold in each process, owned by the gevent hub's thread.

Handles (what a greenlet holds of each session), Locust's stats, publishes made in greenlets, the
harness-health probes of the hub, and the outbox of interval snapshots. It starts the loop thread
and builds the loop side there (`LoopSide`, which owns sessions, recorder and ledger); from then on
it reaches the loop side only through the boundary (`loop_thread.call` / `ask`), and hears back
through the boundary's inbox. Each second the loop posts an interval snapshot across; Locust code
only ever sees those snapshots, never the live recorder. Service-neutral: the service adapter
(`harness.services.base.ChatService`) says how to reach it and speak its protocol.
"""

from __future__ import annotations

import functools
import gc
import itertools
import os
import secrets
import sys
import time
from collections.abc import Callable

import gevent
import psutil

from ..net.reconnect import make_policy
from ..net.tls import target_context
from ..net.transport import DEFAULT_TRANSPORT
from ..net.transport import load as load_transport
from ..services.base import ChatService, PublishRejected, Target, UserSpec
from ..services.tokens import TokenProvider
from ..session.chat_session import SessionState
from ..threads.boundary import LoopThread
from ..threads.marks import runs_in_greenlet
from .handle import SessionHandle
from .loop_side import LoopSide
from .probes import GcPauseProbe, HubStallProbe

SWITCH_INTERVAL_S = 0.0005


class ChatRuntime:
    """The gevent hub's thread only (every method users call is marked `@runs_in_greenlet`)."""

    @runs_in_greenlet
    def __init__(self, environment, service: ChatService, target: Target, token_provider: TokenProvider, *,
                 connect_timeout: float = 10.0, ack_timeout: float = 15.0, clock_offset_ns: int = 0,
                 process_tag: str | None = None, transport: str = DEFAULT_TRANSPORT,
                 source_addresses: tuple[str, ...] = ()) -> None:
        if not target.rooms:
            raise ValueError(f"no {service.room_noun}s to connect to")
        self.environment = environment
        self.service = service
        self.target = target
        self.token_provider = token_provider
        self.transport = transport
        # One TLS context for every connection of this process, built here (the hub, before any user
        # connects), never per connect on the loop: loading the trust store takes ~20-30 ms.
        self.ssl_context = target_context(target)
        load_transport(transport)  # imported here, not by the loop's first connect
        self.clock_offset_ns = clock_offset_ns
        # Sender ids are unique across every process of a run without coordination.
        self.process_tag = process_tag or secrets.token_hex(3)
        self.handles: dict[str, SessionHandle] = {}
        self.sink: Callable[[dict], None] | None = None  # takes each interval snapshot
        self._senders = itertools.count(1)
        self._rooms = itertools.cycle(target.rooms)
        self._process = psutil.Process(os.getpid())
        self._cpu_mark = (time.monotonic(), sum(self._process.cpu_times()[:2]))
        self.publishing_stopped = False
        self.hub = HubStallProbe()
        self.gc = GcPauseProbe()
        # The loop thread and the hub share the GIL. With CPython's default 5 ms switch interval a
        # frame that arrives while the hub runs Python waits up to 5 ms for the loop to get the GIL;
        # at 0.5 ms the loop's mean lag halved (4.5 → 2 ms, max 36 → 12 ms, default scenario).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.loop_thread = LoopThread().start()
        # Built on the loop, which owns it from its first line: this side keeps the reference only
        # to hand it to `loop_thread.call` / `ask`.
        self.loop_side: LoopSide = self.loop_thread.ask(functools.partial(
            LoopSide, self.loop_thread.inbox, service, target, token_provider, connect_timeout=connect_timeout,
            ack_timeout_ns=int(ack_timeout * 1e9), clock_offset_ns=clock_offset_ns, transport=transport,
            ssl_context=self.ssl_context, tell_locust=self._tell_locust, on_interval=self._on_interval,
            on_state=self.state_posted, source_addresses=source_addresses))
        self.loop_thread.call(self.loop_side.start_ticker)
        # Everything allocated so far (Locust, boto3, botocore's models, plotly) lives for the whole
        # run; freezing it keeps gen-2 collections from rescanning it. Measured: a 323 ms collector
        # pause during the default scenario's ramp, stopping the loop and the hub alike.
        gc.collect()
        gc.freeze()

    @property
    def recorder(self):
        """The loop side's recorder, to hand its methods to `loop_thread.call` / `ask`: it is the
        loop's, never read or written here."""
        return self.loop_side.recorder

    # -- users -----------------------------------------------------------------------------------------

    @runs_in_greenlet
    def new_session(self, user_id_prefix: str, capabilities=(), reconnect="sdk", session_minutes=None,
                    attributes=None, population: str = "users", room: str | None = None,
                    rejoining: SessionHandle | None = None) -> SessionHandle:
        """A new connection for a user: the session is built, registered and started on the loop;
        the caller gets its handle. `room`: one of the target's (default: the next in turn).
        `rejoining`: the handle of the connection this user left and now comes back after (a replayed
        trace's rejoin): the same user again, so not one more user spawned or connected."""
        sender_id = f"{self.process_tag}{next(self._senders):x}"
        user = UserSpec(sender_id=sender_id, user_id=f"{user_id_prefix}-{sender_id}", room=room or next(self._rooms),
                        capabilities=tuple(capabilities), session_minutes=session_minutes,
                        attributes=dict(attributes) if attributes else None)
        handle = SessionHandle(user, population)
        self.handles[sender_id] = handle
        policy = self.service.sdk_policy() if reconnect == "sdk" else make_policy(reconnect)
        self.loop_thread.call(self.loop_side.register, handle, policy,
                              rejoining.sender_id if rejoining is not None else None)
        return handle

    @runs_in_greenlet
    def state_posted(self, handle: SessionHandle, state: SessionState) -> None:
        """The loop's post of a session's new state: the only write to `handle.state`."""
        handle.state = state

    @runs_in_greenlet
    def call_session(self, handle: SessionHandle, method: str, *args) -> None:
        """`session.<method>(*args)` on the loop, soon; never blocks."""
        self.loop_thread.call(self.loop_side.call_session, handle.sender_id, method, args)

    @runs_in_greenlet
    def when_connected(self, handles: list[SessionHandle], waiter) -> None:
        """`waiter.set(True)` (on the hub) once each session is open, `set(False)` once it stopped."""
        self.loop_thread.call(self.loop_side.when_connected, [handle.sender_id for handle in handles], waiter)

    @runs_in_greenlet
    def query(self, handle: SessionHandle, fn: Callable):
        """`fn(protocol)` on the loop against the session's client protocol, waited for; None while not open."""
        return self.loop_thread.ask(self.loop_side.query, handle.sender_id, fn)

    @runs_in_greenlet
    def leave(self, handle: SessionHandle) -> None:
        """The user leaves on purpose (closing its connection): not a failure at the end of the run."""
        self.loop_thread.call(self.loop_side.leave, handle.sender_id)

    @runs_in_greenlet
    def stop_sessions(self, handles: list[SessionHandle]) -> None:
        self.loop_thread.call(self.loop_side.stop_sessions, [handle.sender_id for handle in handles])

    @runs_in_greenlet
    def kick_requested(self, handle: SessionHandle, at_ns: int) -> None:
        """A kick of this user goes out now (`at_ns`, corrected clock): its notice is timed from it."""
        self.loop_thread.call(self.loop_side.kick_requested, handle.sender_id, at_ns)

    @runs_in_greenlet
    def count(self, name: str, n: int = 1) -> None:
        """Add to one of the run's counters (on the loop, which owns them)."""
        self.loop_thread.call(self.loop_side.recorder.count, name, n)

    # -- publishers (measured messages through the service's publish API) ------------------------------

    @runs_in_greenlet
    def new_publisher(self, user_id_prefix: str, population: str = "publishers", room: str | None = None) -> SessionHandle:
        """A user that publishes without a connection of its own: ready at once (no socket to open)."""
        sender_id = f"{self.process_tag}{next(self._senders):x}"
        user = UserSpec(sender_id=sender_id, user_id=f"{user_id_prefix}-{sender_id}", room=room or next(self._rooms))
        handle = SessionHandle(user, population, state=SessionState.OPEN)
        self.handles[sender_id] = handle
        self.loop_thread.call(self.loop_side.publisher_started, population)
        return handle

    @runs_in_greenlet
    def publish(self, handle: SessionHandle, seq: int, intended_ns: int, content: str) -> None:
        """Publish one measured message: the call runs in a greenlet of its own, so a slow answer
        never delays the publisher's schedule."""
        if self.publishing_stopped:
            self.count("not_sent.stopping")
            return
        sent_ns = time.time_ns() + self.clock_offset_ns
        self.loop_thread.call(self.loop_side.published, handle.user, seq, intended_ns, sent_ns)
        gevent.spawn(self._publish_in_greenlet, handle.user, seq, intended_ns, content, sent_ns)

    def _publish_in_greenlet(self, user: UserSpec, seq: int, intended_ns: int, content: str, sent_ns: int) -> None:
        try:
            outcome: object = self.service.publish(self.target, user, seq, intended_ns, content)
        except PublishRejected as rejected:
            outcome = rejected
        except Exception as exc:  # the call itself failed: counted by cause, the message stays unconfirmed
            outcome = exc
        self.loop_thread.call(self.loop_side.publish_answered, user, seq, intended_ns, outcome,
                              time.time_ns() + self.clock_offset_ns, sent_ns)

    # -- users with no connection at all (a control-plane churn) ---------------------------------------

    @runs_in_greenlet
    def started_without_connection(self, population: str) -> None:
        """A user that has no connection to open counts as connected once it starts."""
        self.loop_thread.call(self.loop_side.publisher_started, population)

    @runs_in_greenlet
    def record_call(self, name: str, latency_us: int, failure: str | None = None) -> None:
        """One call of a service API made by a user: its latency into the histogram `name` (declare
        it in ChatService.histograms), failures counted by cause, Locust told."""
        self.loop_thread.call(self.loop_side.record_call, name, latency_us, failure)
        self._tell_locust(name, latency_us / 1000, RuntimeError(failure) if failure else None)

    @runs_in_greenlet
    def record_call_started(self, name: str) -> None:
        """A service API call about to go out. Counted before the request, so a call the end of the
        run cuts short (its answer never read, whether or not the service acted) still shows:
        `<name>_started` − `<name>_calls` were in flight when the run stopped."""
        self.count(f"{name}_started")

    # -- Locust's stats and the interval snapshots -----------------------------------------------------

    @runs_in_greenlet
    def _tell_locust(self, name: str, response_time_ms: float, exception: Exception | None) -> None:
        # The only place that touches Locust's stats.
        self.environment.events.request.fire(request_type="WS", name=name, response_time=response_time_ms,
                                             response_length=0, exception=exception, context={})

    @runs_in_greenlet
    def _on_interval(self, snapshot: dict) -> None:
        now, cpu = time.monotonic(), sum(self._process.cpu_times()[:2])
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        snapshot["health"]["cpu_percent"] = round(100 * (cpu - cpu_then) / max(1e-6, now - then), 1)
        snapshot["health"]["hub_stall_max_us"] = int(self.hub.take_max() * 1e6)
        snapshot["health"]["gc_pause_max_us"], snapshot["health"]["gc_pause_total_us"] = self.gc.take()
        if self.sink is not None:
            self.sink(snapshot)

    # -- stopping --------------------------------------------------------------------------------------

    @runs_in_greenlet
    def finish(self, drain_s: float) -> dict:
        """Stop sending, keep receiving for `drain_s`, then close everything and export.

        The drain ends early once no send awaits its answer: nothing else can still be in flight.
        """
        self.publishing_stopped = True
        self.loop_thread.ask(self.loop_side.stop_sending)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.loop_thread.ask(self.loop_side.awaiting_answers):
            gevent.sleep(0.05)
        # In-flight deliveries to other receivers trail the sender's echo by the fan-out time; one
        # more short wait covers them without stretching every run by the full drain period.
        gevent.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        final = self.loop_thread.ask(self.loop_side.final, int(drain_s * 1e9))
        self._on_interval(final.pop("interval"))  # the last interval goes the way of all others
        return final

    @runs_in_greenlet
    def close(self) -> None:
        if self.token_provider.runs_on_loop:  # its HTTP client lives on the loop
            self.loop_thread.ask(self.token_provider.aclose)
        self.hub.stop()
        self.gc.stop()
        self.loop_thread.stop()
