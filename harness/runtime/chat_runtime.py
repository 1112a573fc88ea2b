"""Per process: the loop thread, the loop-owned recorder and ledger, and the way back to Locust.

Ownership is the whole design here:
- loop thread: sessions (registered, iterated and changed only there), `recorder`, `ledger`
  (written on every delivery; nobody else touches them);
- gevent side: Locust events, token fetches (greenlets), session *handles* (what a greenlet holds:
  ids, room and the last state the loop posted), the outbox of interval snapshots.
Each second the loop takes an interval snapshot of the recorder and posts it across; Locust code
only ever sees those snapshots, never the live recorder. Service-neutral: the service adapter
(`harness.services.base.ChatService`) says how to reach it and speak its protocol.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass

import gevent
import psutil

from ..metrics.histograms import Recorder
from ..metrics.ledger_record import DeliveryLedger
from ..metrics.propagation import PropagationLog, SpreadLog
from ..net.boundary import LoopThread
from ..net.reconnect import make_policy
from ..net.session import ChatSession, RequestFailed
from ..net.tls import target_context
from ..net.transport import DEFAULT_TRANSPORT
from ..net.transport import load as load_transport
from ..services.base import ChatService, PublishRejected, Target, TokenWanted, UserSpec, accepted_after
from ..services.tokens import TokenFetchFailed, TokenProvider

log = logging.getLogger(__name__)

TICK_S = 0.1  # loop-lag probe period
SWITCH_INTERVAL_S = 0.0005
INTERVAL_S = 1.0  # snapshot period: the timeline's resolution
FETCH_GRACE_S = 5.0  # beyond a provider's own timeout: a hub under 2x CPU load is seconds late


@dataclass(eq=False)
class SessionHandle:
    """What a greenlet holds of a session: fixed ids, and the state the loop last posted."""

    user: UserSpec
    population: str = "users"  # the Locust user class: connection counts are kept per population
    session: ChatSession | None = None  # the loop's object: call into it with loop_thread.call only
    state: str = "new"

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def room(self) -> str:
        return self.user.room


class HubStallProbe:
    """A greenlet that sleeps 10 ms and measures how late it wakes: the longest gevent hub stall."""

    PERIOD_S = 0.01

    def __init__(self) -> None:
        self.max_stall_s = 0.0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            started = time.perf_counter()
            gevent.sleep(self.PERIOD_S)
            self.max_stall_s = max(self.max_stall_s, time.perf_counter() - started - self.PERIOD_S)

    def take_max(self) -> float:
        value, self.max_stall_s = self.max_stall_s, 0.0
        return value

    def stop(self) -> None:
        self._greenlet.kill(block=False)


class GcPauseProbe:
    """Stop-the-world time of CPython's cyclic collector: it pauses the loop thread and the hub alike,
    so a long collection is harness latency, and the report should say so."""

    def __init__(self) -> None:
        self.max_us = 0
        self.total_us = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = int((time.perf_counter() - self._started) * 1e6)
            self.max_us = max(self.max_us, pause)
            self.total_us += pause

    def take(self) -> tuple[int, int]:
        values = (self.max_us, self.total_us)
        self.max_us = self.total_us = 0
        return values

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


class ChatRuntime:
    def __init__(self, environment, service: ChatService, target: Target, token_provider: TokenProvider, *,
                 connect_timeout: float = 10.0, ack_timeout: float = 15.0, clock_offset_ns: int = 0,
                 process_tag: str | None = None, transport: str = DEFAULT_TRANSPORT) -> None:
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
        self.connect_timeout = connect_timeout
        self.ack_timeout_ns = int(ack_timeout * 1e9)
        self.clock_offset_ns = clock_offset_ns
        # Sender ids are unique across every process of a run without coordination.
        self.process_tag = process_tag or secrets.token_hex(3)
        self.recorder = Recorder()
        # Extra histograms beyond the five standard ones, as attributes for the receive path.
        self.recorder.to_server = self.recorder.histogram("to_server")
        self.recorder.from_server = self.recorder.histogram("from_server")
        self.recorder.histogram("send_lag")
        self.recorder.histogram("reconnect_attempts")  # a count per outage, not µs
        self.recorder.histogram("connect.tls")  # wss://: TCP connected → TLS established
        self.recorder.histogram("connect.tls_wait")  # wss://: queued for a TLS place, before connect's clock
        for name in service.histograms:
            self.recorder.histogram(name)
        self.ledger = DeliveryLedger()
        self.propagation = PropagationLog()  # loop thread only, as the ledger
        self.spread = SpreadLog() if service.measures_spread else None
        self.replay = service.replay_window(target)
        self.sessions: dict[str, ChatSession] = {}  # loop thread only
        self.fetching: set[str] = set()  # loop thread only: sender ids whose token fetch is in flight
        # Loop thread only: sessions their user left on purpose (a replayed trace's leave, a ramp-down):
        # no longer a user of the run, and not a failure to be connected at its end.
        self.left: set[str] = set()
        self.handles: dict[str, SessionHandle] = {}  # gevent side only
        self.sink = None  # gevent-side callable taking each interval snapshot
        self.protocol_error_samples: collections.deque[str] = collections.deque(maxlen=20)
        self._senders = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._rooms = itertools.cycle(target.rooms)
        self._process = psutil.Process(os.getpid())
        self._cpu_mark = (time.monotonic(), sum(self._process.cpu_times()[:2]))
        self._loop_lag_max_us = 0
        self._loop_lag_sum_us = 0
        self._loop_lag_n = 0
        self.ticker_errors = 0
        self.publishes_in_flight = 0  # loop side: publishes not answered yet (the drain waits for them)
        self.publishing_stopped = False  # gevent side
        self.finished_on_loop = False  # set before the loop starts: the ticker reads it
        self.hub = HubStallProbe()
        self.gc = GcPauseProbe()
        # The loop thread and the hub share the GIL. With CPython's default 5 ms switch interval a
        # frame that arrives while the hub runs Python waits up to 5 ms for the loop to get the GIL;
        # at 0.5 ms the loop's mean lag halved (4.5 → 2 ms, max 36 → 12 ms, default scenario).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.loop_thread = LoopThread().start()
        self.inbox = self.loop_thread.inbox
        self.loop_thread.call(self._start_ticker)
        # Everything allocated so far (Locust, boto3, botocore's models, plotly) lives for the whole
        # run; freezing it keeps gen-2 collections from rescanning it. Measured: a 323 ms collector
        # pause during the default scenario's ramp, stopping the loop and the hub alike.
        gc.collect()
        gc.freeze()

    # -- gevent side: users --------------------------------------------------------------------------

    def new_session(self, user_id_prefix: str, capabilities=(), reconnect="sdk", session_minutes=None,
                    attributes=None, population: str = "users", room: str | None = None,
                    rejoining: SessionHandle | None = None) -> SessionHandle:
        """A new connection for a user (gevent side): the session is built, registered and started on
        the loop; the caller gets its handle. `room`: one of the target's (default: the next in turn).
        `rejoining`: the handle of the connection this user left and now comes back after (a replayed
        trace's rejoin): the same user again, so not one more user spawned or connected."""
        sender_id = f"{self.process_tag}{next(self._senders):x}"
        user = UserSpec(sender_id=sender_id, user_id=f"{user_id_prefix}-{sender_id}", room=room or next(self._rooms),
                        capabilities=tuple(capabilities), session_minutes=session_minutes,
                        attributes=dict(attributes) if attributes else None)
        handle = SessionHandle(user, population)
        self.handles[sender_id] = handle
        policy = self.service.sdk_policy() if reconnect == "sdk" else make_policy(reconnect)
        self.loop_thread.call(self._register, handle, policy, rejoining)
        return handle

    def _register(self, handle: SessionHandle, policy, rejoining: SessionHandle | None = None) -> None:  # loop side
        session = handle.session = ChatSession(self, handle, handle.user, policy)
        if rejoining is None:
            self.recorder.count(f"users_spawned.{handle.population}")
        else:
            self.recorder.count(f"users_rejoined.{handle.population}")
            session.ever_connected = rejoining.session is not None and rejoining.session.ever_connected
        self.sessions[handle.user.sender_id] = session
        session.start()

    # -- gevent side: publishers (measured messages through the service's publish API) ----------------

    def new_publisher(self, user_id_prefix: str, population: str = "publishers", room: str | None = None) -> SessionHandle:
        """A user that publishes without a connection of its own: ready at once (no socket to open)."""
        sender_id = f"{self.process_tag}{next(self._senders):x}"
        user = UserSpec(sender_id=sender_id, user_id=f"{user_id_prefix}-{sender_id}", room=room or next(self._rooms))
        handle = SessionHandle(user, population, state="open")
        self.handles[sender_id] = handle
        self.loop_thread.call(self._publisher_started, population)
        return handle

    def publish(self, handle: SessionHandle, seq: int, intended_ns: int, content: str) -> None:
        """Publish one measured message (gevent side): the call runs in a greenlet of its own, so a
        slow answer never delays the publisher's schedule."""
        if self.publishing_stopped:
            self.loop_thread.call(self.recorder.count, "not_sent.stopping")
            return
        sent_ns = time.time_ns() + self.clock_offset_ns
        self.loop_thread.call(self._published, handle.user, seq, intended_ns, sent_ns)
        gevent.spawn(self._publish_in_greenlet, handle.user, seq, intended_ns, content, sent_ns)

    def _publish_in_greenlet(self, user: UserSpec, seq: int, intended_ns: int, content: str, sent_ns: int) -> None:
        try:
            outcome: object = self.service.publish(self.target, user, seq, intended_ns, content)
        except PublishRejected as rejected:
            outcome = rejected
        except Exception as exc:  # the call itself failed: counted by cause, the message stays unconfirmed
            outcome = exc
        self.loop_thread.call(self._publish_answered, user, seq, intended_ns, outcome,
                              time.time_ns() + self.clock_offset_ns, sent_ns)

    # -- loop side: publishers ---------------------------------------------------------------------------

    def _publisher_started(self, population: str) -> None:
        self.recorder.count(f"users_spawned.{population}")
        self.recorder.count(f"users_connected.{population}")

    # -- gevent side: users with no connection at all (a control-plane churn) ------------------------------

    def started_without_connection(self, population: str) -> None:
        """A user that has no connection to open counts as connected once it starts."""
        self.loop_thread.call(self._publisher_started, population)

    def record_call(self, name: str, latency_us: int, failure: str | None = None) -> None:
        """One call of a service API made by a user (gevent side): its latency into the histogram
        `name` (declare it in ChatService.histograms), failures counted by cause, Locust told."""
        self.loop_thread.call(self._record_call, name, latency_us, failure)
        self._fire_request(name, latency_us / 1000, RuntimeError(failure) if failure else None)

    def record_call_started(self, name: str) -> None:
        """A service API call about to go out (gevent side). Counted before the request, so a call the end
        of the run cuts short (its answer never read, whether or not the service acted) still shows:
        `<name>_started` − `<name>_calls` were in flight when the run stopped."""
        self.loop_thread.call(self.recorder.count, f"{name}_started")

    def _record_call(self, name: str, latency_us: int, failure: str | None) -> None:
        self.recorder.record(name, latency_us)
        self.recorder.count(f"{name}_calls")
        if failure:
            self.recorder.count(f"{name}_failures.{failure}")

    def _published(self, user: UserSpec, seq: int, intended_ns: int, now_ns: int) -> None:
        self.publishes_in_flight += 1
        self.recorder.record("send_lag", (now_ns - intended_ns) // 1000)
        self.ledger.sent(user.sender_id, seq, user.room, intended_ns)
        self.recorder.count("sent")

    def _publish_answered(self, user: UserSpec, seq: int, intended_ns: int, outcome, answered_ns: int,
                          sent_ns: int) -> None:
        self.publishes_in_flight -= 1
        latency_us = (answered_ns - intended_ns) // 1000
        if isinstance(outcome, PublishRejected):
            self.ledger.rejected(user.sender_id, seq, outcome.code, answered_ns, outcome.category)
            self.recorder.count(f"rejected.{outcome.category}")
            self.recorder.count(f"errors.{outcome.code}")
            self._fire("publish", latency_us, RequestFailed(outcome.code, outcome.message, outcome.category))
        elif isinstance(outcome, BaseException):
            self.recorder.count(f"publish_failures.{type(outcome).__name__}")
            self._fire("publish", latency_us, ConnectionError(f"{type(outcome).__name__}: {outcome}"))
        else:
            server_ns = accepted_after(outcome, sent_ns) if isinstance(outcome, int) else None
            self.recorder.ack.record(latency_us)
            if server_ns is not None:
                self.recorder.to_server.record((server_ns - intended_ns) // 1000)
            self.ledger.acked(user.sender_id, seq, user.room, server_ns if server_ns is not None else answered_ns)
            self.recorder.count("accepted")
            self._fire("publish", latency_us, None)

    def post_state(self, handle: SessionHandle, state: str) -> None:  # loop side
        self.inbox.post(setattr, handle, "state", state)

    def finish(self, drain_s: float) -> dict:
        """Stop sending, keep receiving for `drain_s`, then close everything and export (gevent side).

        The drain ends early once no send awaits its answer: nothing else can still be in flight.
        """
        self.publishing_stopped = True
        self.loop_thread.ask(self._stop_sending)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.loop_thread.ask(self._awaiting_answers):
            gevent.sleep(0.05)
        # In-flight deliveries to other receivers trail the sender's echo by the fan-out time; one
        # more short wait covers them without stretching every run by the full drain period.
        gevent.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        final = self.loop_thread.ask(self._final_on_loop, int(drain_s * 1e9))
        self._on_interval(final.pop("interval"))  # the last interval goes the way of all others
        return final

    def close(self) -> None:
        if self.token_provider.runs_on_loop:  # its HTTP client lives on the loop
            self.loop_thread.ask(self.token_provider.aclose)
        self.hub.stop()
        self.gc.stop()
        self.loop_thread.stop()

    # -- loop side: called by sessions -----------------------------------------------------------

    @property
    def token_purposes(self) -> frozenset[str]:
        """Tokens beyond the connect's the run's token source serves (a protocol may ask for these)."""
        return self.token_provider.purposes

    def next_connection_id(self) -> int:
        return next(self._connection_ids)

    async def fetch_token(self, session: ChatSession, wanted: TokenWanted | None = None) -> str | None:
        """One token for one connect attempt (loop side), or None after counting why there is none.
        With `wanted`, a token the open connection's protocol asked for (e.g. Hotsock's subscribe
        token), counted apart: `subscribe_token_fetches`, `subscribe_token_fetch_failures.<cause>`.

        Bounded: a fetch that has not answered within the provider's `timeout_s` (plus a grace for a
        loaded hub) ends as `token_fetch_failures.timeout`; the session's reconnect policy takes it
        from there. A final failure (the application's endpoint answered 401) refuses the session.
        Timed here, on the loop: the user waits for the crossing to the hub and back too."""
        provider = self.token_provider
        started = time.perf_counter()
        bound_s = provider.timeout_s + FETCH_GRACE_S
        prefix = "token" if wanted is None else f"{wanted.purpose}_token"
        if wanted is None:
            self.fetching.add(session.sender_id)
        try:
            if wanted is not None:
                fetching = provider.fetch_async(session.user, session.handle.population, wanted)
            elif provider.runs_on_loop:
                fetching = provider.fetch_async(session.user, session.handle.population)
            else:
                fetching = self._fetch_in_greenlet(provider, session.user)
            outcome: object = await asyncio.wait_for(fetching, bound_s)
        except TimeoutError:
            outcome = TokenFetchFailed("timeout", f"no token within {bound_s:g} s")
        except TokenFetchFailed as exc:
            outcome = exc
        except Exception as exc:  # a provider bug must not kill the user silently
            outcome = TokenFetchFailed(type(exc).__name__, str(exc))
        finally:
            if wanted is None:
                self.fetching.discard(session.sender_id)
        elapsed_us = int((time.perf_counter() - started) * 1e6)
        if wanted is None:
            self.recorder.record("token_fetch", elapsed_us)
        if isinstance(outcome, TokenFetchFailed):
            self.recorder.count(f"{prefix}_fetch_failures.{outcome.cause}")
            if outcome.final and wanted is None:
                session.refused = True
            self._fire(prefix, elapsed_us, RuntimeError(f"{outcome.cause}: {outcome}"))
            return None
        self.recorder.count(f"{prefix}_fetches")
        if wanted is not None:
            self._fire(prefix, elapsed_us, None)
        return outcome

    def _fetch_in_greenlet(self, provider: TokenProvider, request: UserSpec) -> asyncio.Future:
        """A blocking provider's fetch in a greenlet of its own; its answer comes back to the loop as
        the returned future's result (a TokenFetchFailed for any failure). Loop side."""
        loop = self.loop_thread.loop
        future = loop.create_future()

        def settle(result) -> None:
            if not future.done():  # not cancelled meanwhile (timed out, or the session stopped)
                future.set_result(result)

        def fetch_in_greenlet() -> None:
            try:
                outcome: object = provider.fetch(request)
            except TokenFetchFailed as exc:
                outcome = exc
            except Exception as exc:  # a provider bug must not kill the user silently
                outcome = TokenFetchFailed(type(exc).__name__, str(exc))
            loop.call_soon_threadsafe(settle, outcome)

        self.inbox.post(gevent.spawn, fetch_in_greenlet)
        return future

    def report_connect(self, session, started_ns: int, cause: str | None, message: str | None, *, reconnect: bool,
                       open_ns: int | None = None, dropped_at_ns: int | None = None) -> None:
        name = "reconnect" if reconnect else "connect"
        if cause is not None:
            self.recorder.count(f"connect_failures.{cause}")
            self._fire(name, (time.time_ns() - started_ns) // 1000, ConnectionError(f"{cause}: {message}"))
            return
        connect_us = (open_ns - started_ns) // 1000
        self.recorder.record("connect", connect_us)
        self.recorder.count("connects")
        if dropped_at_ns is not None:
            # Reconnect time: from noticing the drop to usable again (token fetch and backoff included).
            self.recorder.record("reconnect", (open_ns + self.clock_offset_ns - dropped_at_ns) // 1000)
            self.recorder.count("reconnects")
        self._fire(name, connect_us, None)

    def report_closed(self, session, code: int, reason: str, clean: bool) -> None:
        self.recorder.count(f"closes.{code}")

    def report_gave_up(self, session, cause: str) -> None:
        self.recorder.count(f"gave_up.{cause}")

    def report_ack(self, session, pending, latency_us: int | None, error: Exception | None) -> None:
        if pending.waiter is not None:
            self.resolve(pending.waiter, error if error is not None else latency_us)
        self._fire(pending.kind, latency_us or 0, error)

    def report_not_sent(self, session, kind: str, waiter) -> None:
        error = RequestFailed("disconnected", "not connected")
        if waiter is not None:
            self.resolve(waiter, error)
        self._fire(kind, 0, error)

    def resolve(self, waiter, value) -> None:
        """Hand an answer to a greenlet waiting on a gevent AsyncResult (loop side)."""
        if isinstance(value, BaseException):
            self.inbox.post(waiter.set_exception, value)
        else:
            self.inbox.post(waiter.set, value)

    def note_protocol_error(self, message: str) -> None:
        self.protocol_error_samples.append(message[:200])

    def _fire(self, name: str, response_time_us: int, exception: Exception | None) -> None:
        self.inbox.post(self._fire_request, name, response_time_us / 1000, exception)

    def _fire_request(self, name: str, response_time_ms: float, exception: Exception | None) -> None:
        # gevent side: the only place that touches Locust's stats.
        self.environment.events.request.fire(request_type="WS", name=name, response_time=response_time_ms,
                                             response_length=0, exception=exception, context={})

    # -- loop side: the ticker -------------------------------------------------------------------

    def _start_ticker(self) -> None:
        loop = self.loop_thread.loop
        self._tick_due = loop.time() + TICK_S
        self._interval_due = loop.time() + INTERVAL_S
        loop.call_at(self._tick_due, self._tick)

    def _tick(self) -> None:
        if self.finished_on_loop:
            return
        loop = self.loop_thread.loop
        now = loop.time()
        try:
            lag_us = int((now - self._tick_due) * 1e6)  # how late this callback ran: the loop's own queueing
            self._loop_lag_max_us = max(self._loop_lag_max_us, lag_us)
            self._loop_lag_sum_us += lag_us
            self._loop_lag_n += 1
            if now >= self._interval_due:
                self._interval_due += INTERVAL_S
                self._expire_pending()
                snapshot = self._interval_on_loop()
                self.inbox.post(self._on_interval, snapshot)
        except Exception:
            # The ticker must outlive any bug in what it calls: without it there is no timeline and
            # no expiry of unanswered requests for the rest of the run.
            self.ticker_errors += 1
            self.recorder.count("harness.ticker_errors")
            log.exception("chatload: the loop's ticker failed (it keeps running)")
        finally:
            self._tick_due = now + TICK_S
            loop.call_at(self._tick_due, self._tick)

    def _expire_pending(self) -> None:
        older_than = time.time_ns() - self.ack_timeout_ns
        for session in self.sessions.values():
            session.expire_pending(older_than)

    def _interval_on_loop(self) -> dict:
        arrivals = self.recorder.delivery.count + self.recorder.ack.count  # before the snapshot resets them
        snapshot = self.recorder.interval_snapshot()
        snapshot["t_ns"] = time.time_ns() + self.clock_offset_ns
        snapshot["counters"]["deliveries"] = arrivals
        snapshot["gauges"] = {"connections_open": sum(1 for s in self.sessions.values() if s.state == "open"),
                              # sessions: a listener pool user holds many; one left is no user now
                              "users": len(self.sessions) - len(self.left)}
        snapshot["health"] = {
            "loop_lag_max_us": self._loop_lag_max_us,
            "loop_lag_mean_us": self._loop_lag_sum_us // max(1, self._loop_lag_n),
        }
        self._loop_lag_max_us = self._loop_lag_sum_us = self._loop_lag_n = 0
        return snapshot

    # -- gevent side: interval snapshots -----------------------------------------------------------

    def _on_interval(self, snapshot: dict) -> None:
        now, cpu = time.monotonic(), sum(self._process.cpu_times()[:2])
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        snapshot["health"]["cpu_percent"] = round(100 * (cpu - cpu_then) / max(1e-6, now - then), 1)
        snapshot["health"]["hub_stall_max_us"] = int(self.hub.take_max() * 1e6)
        snapshot["health"]["gc_pause_max_us"], snapshot["health"]["gc_pause_total_us"] = self.gc.take()
        if self.sink is not None:
            self.sink(snapshot)

    # -- loop side: stopping ---------------------------------------------------------------------

    def _stop_sending(self) -> None:
        for session in self.sessions.values():
            session.stop(close=False)

    def _awaiting_answers(self) -> bool:
        return self.publishes_in_flight > 0 or any(session.awaiting_send_answers()
                                                   for session in self.sessions.values())

    def _final_on_loop(self, answer_window_ns: int) -> dict:
        self.finished_on_loop = True  # no interval after the final one
        # Sends unanswered for the whole drain on a connection still open were met with silence.
        answered_by = time.time_ns() - answer_window_ns
        for session in self.sessions.values():
            if session.state == "open":
                session.expire_pending(answered_by)
        end_ns = time.time_ns() + self.clock_offset_ns
        export = self.ledger.export(end_ns)  # before closing: still-open connections count as open to the end
        for session in self.sessions.values():
            if session.state != "open" and session.sender_id not in self.left:  # and why (kicked, gave up, …)
                self.recorder.count(f"not_connected_at_end.{session.end_reason or session.state}")
                if session.sender_id in self.fetching:  # still waiting on its token: the end cut it short
                    self.recorder.count("token_fetch_cut_short")
            session.stop(close=True)
        snapshot = self._interval_on_loop()
        return {"interval": snapshot, "ledger": export, "totals": self.recorder.totals(),
                "protocol_error_samples": list(self.protocol_error_samples), "end_ns": end_ns,
                "propagation": self.propagation.export(),
                "spread": self.spread.export() if self.spread is not None else None,
                # user id (what other users see) → sender id (the ledger's receiver id), for propagation
                "users": {session.user.user_id: session.sender_id for session in self.sessions.values()}}
