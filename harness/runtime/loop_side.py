"""The runtime's loop side: what the loop thread owns in each process.

Sessions (registered, iterated and changed only here), the recorder and the ledger (written on
every delivery), token fetches, publish accounting and the ticker (loop lag, expiry of unanswered
requests, the interval snapshot each second). It is built on the loop and only the loop reads or
writes it: the hub side reaches it through `LoopThread.call` / `ask`, and everything it tells the
hub (Locust's stats, a session's state, an answer a greenlet waits for) goes back through the
boundary's inbox. Sessions call it as their `runtime`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable

import gevent

from ..metrics.histograms import Recorder
from ..metrics.ledger_record import DeliveryLedger
from ..metrics.propagation import PropagationLog, SpreadLog
from ..services.base import ChatService, PublishRejected, Target, TokenWanted, UserSpec
from ..services.tokens import TokenFetchFailed, TokenProvider
from ..session import send_accounting
from ..session.chat_session import ChatSession, RequestFailed, SessionState
from ..threads.boundary import GeventInbox
from ..threads.marks import runs_on_loop
from .handle import SessionHandle

log = logging.getLogger(__name__)

TICK_S = 0.1  # loop-lag probe period
INTERVAL_S = 1.0  # snapshot period: the timeline's resolution
FETCH_GRACE_S = 5.0  # beyond a provider's own timeout: a hub under 2x CPU load is seconds late


class LoopSide:
    """Loop thread only (every method others call is marked `@runs_on_loop`)."""

    @runs_on_loop
    def __init__(self, inbox: GeventInbox, service: ChatService, target: Target, token_provider: TokenProvider, *,
                 connect_timeout: float, ack_timeout_ns: int, clock_offset_ns: int, transport: str, ssl_context,
                 tell_locust: Callable, on_interval: Callable, on_state: Callable,
                 source_addresses: tuple[str, ...] = ()) -> None:
        self.inbox = inbox
        self.loop = asyncio.get_running_loop()
        self.service = service
        self.target = target
        self.token_provider = token_provider
        self.connect_timeout = connect_timeout
        self.ack_timeout_ns = ack_timeout_ns
        self.clock_offset_ns = clock_offset_ns
        self.transport = transport
        self.ssl_context = ssl_context
        # Local addresses connections are made from, in turn (empty: the system's choice each time).
        self._sources = itertools.cycle(source_addresses) if source_addresses else None
        # The hub side's callables: posted through the inbox, never called here.
        self._tell_locust, self._on_interval, self._on_state = tell_locust, on_interval, on_state
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
        self.propagation = PropagationLog()
        self.spread = SpreadLog() if service.measures_spread else None
        self.replay = service.replay_window(target)
        self.sessions: dict[str, ChatSession] = {}  # sender id → session
        self.fetching: set[str] = set()  # sender ids whose token fetch is in flight
        # Sessions their user left on purpose (a replayed trace's leave, a ramp-down): no longer a
        # user of the run, and not a failure to be connected at its end.
        self.left: set[str] = set()
        self.protocol_error_samples: collections.deque[str] = collections.deque(maxlen=20)
        self._membership_ids = itertools.count(1)
        self._loop_lag_max_us = 0
        self._loop_lag_sum_us = 0
        self._loop_lag_n = 0
        self.ticker_errors = 0
        self.publishes_in_flight = 0  # publishes not answered yet (the drain waits for them)
        self.finished = False  # the final interval was taken: the ticker stops
        self._tick_due = self._interval_due = 0.0

    # -- sessions, for the hub side's users ----------------------------------------------------------

    @runs_on_loop
    def register(self, handle: SessionHandle, policy, rejoining: str | None = None) -> None:
        """Build and start the session of a new handle; `rejoining`: the sender id of the connection
        this user left and now comes back after (the same user again, not one more spawned)."""
        session = ChatSession(self, handle, handle.user, policy)
        if rejoining is None:
            self.recorder.count(f"users_spawned.{handle.population}")
        else:
            self.recorder.count(f"users_rejoined.{handle.population}")
            before = self.sessions.get(rejoining)
            session.ever_connected = before is not None and before.ever_connected
        self.sessions[handle.sender_id] = session
        session.start()

    @runs_on_loop
    def call_session(self, sender_id: str, method: str, args: tuple) -> None:
        getattr(self.sessions[sender_id], method)(*args)

    @runs_on_loop
    def when_connected(self, sender_ids: list[str], waiter) -> None:
        """`waiter.set(True)` once each session is open, `set(False)` once stopped; at once if it is."""
        for sender_id in sender_ids:
            session = self.sessions.get(sender_id)
            if session is None or session.state is SessionState.STOPPED:
                self.resolve(waiter, False)
            elif session.state is SessionState.OPEN:
                self.resolve(waiter, True)
            else:
                session.connected_waiters.append(waiter)

    @runs_on_loop
    def query(self, sender_id: str, fn: Callable):
        """`fn(protocol)` against an open session's client protocol; None while not open."""
        session = self.sessions.get(sender_id)
        if session is None or session.state is not SessionState.OPEN or session.protocol is None:
            return None
        return fn(session.protocol)

    @runs_on_loop
    def leave(self, sender_id: str) -> None:
        self.left.add(sender_id)
        self.sessions[sender_id].stop(True)

    @runs_on_loop
    def stop_sessions(self, sender_ids: list[str]) -> None:
        for sender_id in sender_ids:
            session = self.sessions.get(sender_id)
            if session is not None:
                session.stop(True)

    @runs_on_loop
    def kick_requested(self, sender_id: str, at_ns: int) -> None:
        session = self.sessions.get(sender_id)
        if session is not None:
            session.kick_requested_ns = at_ns

    # -- publishers and API calls, for the hub side ---------------------------------------------------

    @runs_on_loop
    def publisher_started(self, population: str) -> None:
        self.recorder.count(f"users_spawned.{population}")
        self.recorder.count(f"users_connected.{population}")

    @runs_on_loop
    def record_call(self, name: str, latency_us: int, failure: str | None) -> None:
        self.recorder.record(name, latency_us)
        self.recorder.count(f"{name}_calls")
        if failure:
            self.recorder.count(f"{name}_failures.{failure}")

    @runs_on_loop
    def published(self, user: UserSpec, seq: int, intended_ns: int, now_ns: int) -> None:
        self.publishes_in_flight += 1
        send_accounting.sent(self.recorder, self.ledger, user.sender_id, seq, user.room, intended_ns, now_ns)

    @runs_on_loop
    def publish_answered(self, user: UserSpec, seq: int, intended_ns: int, outcome, answered_ns: int,
                         sent_ns: int) -> None:
        self.publishes_in_flight -= 1
        latency_us = (answered_ns - intended_ns) // 1000
        if isinstance(outcome, PublishRejected):
            send_accounting.rejected(self.recorder, self.ledger, user.sender_id, seq, outcome.code, answered_ns,
                                     outcome.category)
            self.recorder.count(f"errors.{outcome.code}")
            self._fire("publish", latency_us, RequestFailed(outcome.code, outcome.message, outcome.category))
        elif isinstance(outcome, BaseException):
            self.recorder.count(f"publish_failures.{type(outcome).__name__}")
            self._fire("publish", latency_us, ConnectionError(f"{type(outcome).__name__}: {outcome}"))
        else:
            send_accounting.accepted(self.recorder, self.ledger, user.sender_id, seq, user.room, intended_ns,
                                     answered_ns, outcome if isinstance(outcome, int) else None, sent_ns)
            self._fire("publish", latency_us, None)

    # -- called by sessions --------------------------------------------------------------------------

    @runs_on_loop
    def post_state(self, handle: SessionHandle, state: SessionState) -> None:
        self.inbox.post(self._on_state, handle, state)

    @property
    def token_purposes(self) -> frozenset[str]:
        """Tokens beyond the connect's the run's token source serves (a protocol may ask for these)."""
        return self.token_provider.purposes

    @runs_on_loop
    @runs_on_loop
    def next_source(self) -> str | None:
        """The local address the next connection is made from (`--chat-source-addresses`), or None."""
        return next(self._sources) if self._sources is not None else None

    def next_membership_id(self) -> int:
        return next(self._membership_ids)

    @runs_on_loop
    async def fetch_token(self, session: ChatSession, wanted: TokenWanted | None = None) -> str | None:
        """One token for one connect attempt, or None after counting why there is none. With
        `wanted`, a token the open connection's protocol asked for (e.g. Hotsock's subscribe token),
        counted apart: `subscribe_token_fetches`, `subscribe_token_fetch_failures.<cause>`.

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
        the returned future's result (a TokenFetchFailed for any failure)."""
        loop = self.loop
        future = loop.create_future()

        def settle(result) -> None:  # on the loop
            if not future.done():  # not cancelled meanwhile (timed out, or the session stopped)
                future.set_result(result)

        def fetch_in_greenlet() -> None:  # in a greenlet of its own
            try:
                outcome: object = provider.fetch(request)
            except TokenFetchFailed as exc:
                outcome = exc
            except Exception as exc:  # a provider bug must not kill the user silently
                outcome = TokenFetchFailed(type(exc).__name__, str(exc))
            loop.call_soon_threadsafe(settle, outcome)

        self.inbox.post(gevent.spawn, fetch_in_greenlet)
        return future

    @runs_on_loop
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

    @runs_on_loop
    def report_closed(self, session, code: int, reason: str, clean: bool) -> None:
        self.recorder.count(f"closes.{code}")

    @runs_on_loop
    def report_gave_up(self, session, cause: str) -> None:
        self.recorder.count(f"gave_up.{cause}")

    @runs_on_loop
    def report_ack(self, session, pending, latency_us: int | None, error: Exception | None) -> None:
        if pending.waiter is not None:
            self.resolve(pending.waiter, error if error is not None else latency_us)
        self._fire(pending.kind, latency_us or 0, error)

    @runs_on_loop
    def report_not_sent(self, session, kind: str, waiter) -> None:
        error = RequestFailed("disconnected", "not connected")
        if waiter is not None:
            self.resolve(waiter, error)
        self._fire(kind, 0, error)

    @runs_on_loop
    def resolve(self, waiter, value) -> None:
        """Hand an answer to a greenlet waiting on a gevent AsyncResult (or anything with `set`)."""
        if isinstance(value, BaseException):
            self.inbox.post(waiter.set_exception, value)
        else:
            self.inbox.post(waiter.set, value)

    @runs_on_loop
    def note_protocol_error(self, message: str) -> None:
        self.protocol_error_samples.append(message[:200])

    def _fire(self, name: str, response_time_us: int, exception: Exception | None) -> None:
        self.inbox.post(self._tell_locust, name, response_time_us / 1000, exception)

    # -- the ticker ----------------------------------------------------------------------------------

    @runs_on_loop
    def start_ticker(self) -> None:
        self._tick_due = self.loop.time() + TICK_S
        self._interval_due = self.loop.time() + INTERVAL_S
        self.loop.call_at(self._tick_due, self._tick)

    def _tick(self) -> None:
        if self.finished:
            return
        now = self.loop.time()
        try:
            lag_us = int((now - self._tick_due) * 1e6)  # how late this callback ran: the loop's own queueing
            self._loop_lag_max_us = max(self._loop_lag_max_us, lag_us)
            self._loop_lag_sum_us += lag_us
            self._loop_lag_n += 1
            if now >= self._interval_due:
                self._interval_due += INTERVAL_S
                self._expire_pending()
                self.inbox.post(self._on_interval, self._interval())
        except Exception:
            # The ticker must outlive any bug in what it calls: without it there is no timeline and
            # no expiry of unanswered requests for the rest of the run.
            self.ticker_errors += 1
            self.recorder.count("harness.ticker_errors")
            log.exception("chatload: the loop's ticker failed (it keeps running)")
        finally:
            self._tick_due = now + TICK_S
            self.loop.call_at(self._tick_due, self._tick)

    def _expire_pending(self) -> None:
        older_than = time.time_ns() - self.ack_timeout_ns
        for session in self.sessions.values():
            session.expire_pending(older_than)

    def _interval(self) -> dict:
        """This interval's snapshot (the recorder's interval counts restart): the hub side completes
        it with what only the hub knows (CPU, hub stalls, collector pauses)."""
        arrivals = self.recorder.delivery.count + self.recorder.ack.count  # before the snapshot resets them
        snapshot = self.recorder.interval_snapshot()
        snapshot["t_ns"] = time.time_ns() + self.clock_offset_ns
        snapshot["counters"]["deliveries"] = arrivals
        snapshot["gauges"] = {"connections_open": sum(1 for s in self.sessions.values()
                                                      if s.state is SessionState.OPEN),
                              # sessions: a listener pool user holds many; one left is no user now
                              "users": len(self.sessions) - len(self.left)}
        snapshot["health"] = {
            "loop_lag_max_us": self._loop_lag_max_us,
            "loop_lag_mean_us": self._loop_lag_sum_us // max(1, self._loop_lag_n),
        }
        self._loop_lag_max_us = self._loop_lag_sum_us = self._loop_lag_n = 0
        return snapshot

    # -- stopping ------------------------------------------------------------------------------------

    @runs_on_loop
    def stop_sending(self) -> None:
        for session in self.sessions.values():
            session.stop(close=False)

    @runs_on_loop
    def awaiting_answers(self) -> bool:
        return self.publishes_in_flight > 0 or any(session.awaiting_send_answers()
                                                   for session in self.sessions.values())

    @runs_on_loop
    def final(self, answer_window_ns: int) -> dict:
        """Close everything and export: the last interval, the ledger, the totals."""
        self.finished = True  # no interval after the final one
        # Sends unanswered for the whole drain on a connection still open were met with silence.
        answered_by = time.time_ns() - answer_window_ns
        for session in self.sessions.values():
            if session.state is SessionState.OPEN:
                session.expire_pending(answered_by)
        end_ns = time.time_ns() + self.clock_offset_ns
        export = self.ledger.export(end_ns)  # before closing: still-open connections count as open to the end
        for session in self.sessions.values():
            if session.state is not SessionState.OPEN and session.sender_id not in self.left:  # and why
                self.recorder.count(f"not_connected_at_end.{session.end_reason or session.state}")
                if session.sender_id in self.fetching:  # still waiting on its token: the end cut it short
                    self.recorder.count("token_fetch_cut_short")
            session.stop(close=True)
        snapshot = self._interval()
        return {"interval": snapshot, "ledger": export, "totals": self.recorder.totals(),
                "protocol_error_samples": list(self.protocol_error_samples), "end_ns": end_ns,
                "propagation": self.propagation.export(),
                "spread": self.spread.export() if self.spread is not None else None,
                # user id (what other users see) → sender id (the ledger's receiver id), for propagation
                "users": {session.user.user_id: session.sender_id for session in self.sessions.values()}}
