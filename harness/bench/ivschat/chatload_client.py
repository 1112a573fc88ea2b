"""chatload's own receive path as a benchmark child process: one `ChatRuntime`, N sessions.

The process is set up the way a Locust process is: gevent monkey-patching first, a real
`locust.env.Environment`, the runtime's uvloop thread holding the sockets. Config options beyond
the rig's (see `rig.ClientChild`):

- `transport`: the runtime's transport (`picows` or `websockets`; the default is chatload's own);
- `locust_users`: each connection is a real Locust user — `BenchViewer`, a `ViewerUser` as a
  locustfile's `Viewer` is — spawned by Locust's `LocalRunner`, its greenlet opening its session in
  `on_start` through `ChatClient` as under `locust -f`. Without it, `runtime.new_session(...)` per
  connection (what `ChatClient` calls), and no user objects or greenlets.

It is not a WebSocket client of the benchmarks' own: it is what they measure, chatload's runtime,
sessions and transports exactly as `locust -f` runs them.

Deliveries go through the real receive path: the transport's read (arrival stamped before parsing)
→ `ChatSession.on_frame` → IVS Chat client protocol → ledger + HDR histogram.

Tokens come from the parent (made with CreateChatToken) through a `TokenProvider` that hands them
out once each. Bare sessions never retry: a benchmark connection that fails is a failed run, not
something to paper over (Locust users retry as the SDK would, with the next token, so a failure
still leaves some user short of one and the run fails).

Same stdin/stdout JSON-lines protocol as `bare_websockets_client` (see `rig.ClientChild`). The window's two
snapshots are taken by a sampler thread at the exact instants; the frame count it reads only grows.
A greenlet probe records how late every 10 ms sleep wakes up (the gevent hub's stalls), with
wall-clock times, so any window can be judged afterwards.
"""

from gevent import monkey

monkey.patch_all()

import collections  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from locust.event import Events  # noqa: E402

from ...locust.state import state_of  # noqa: E402
from ...metrics.histograms import DELIVERY  # noqa: E402
from ...net.reconnect import SdkLike  # noqa: E402
from ...net.transport import DEFAULT_TRANSPORT  # noqa: E402
from ...services import registry  # noqa: E402
from ...services.base import KIND_RUNNING_EMULATOR, Target, UserSpec  # noqa: E402
from ...services.ivschat.users import ViewerUser  # noqa: E402
from ...services.tokens import TokenFetchFailed, TokenProvider  # noqa: E402
from ..child_protocol import apply_config, emit, watched_processes  # noqa: E402
from ..connect_phase import ConnectPhase, LoopStallProbe  # noqa: E402
from ..counting_connection import reset  # noqa: E402
from ..window_sampler import WindowSampler  # noqa: E402

STALL_PERIOD_S = 0.01  # the runtime's HubStallProbe period


class HandedOutTokens(TokenProvider):
    """Tokens made by the parent, each handed out once (they are single-use)."""

    name = "bench"

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = collections.deque(tokens)

    def fetch(self, request: UserSpec) -> str:
        if not self._tokens:
            raise TokenFetchFailed("exhausted", "no benchmark tokens left")
        return self._tokens.popleft()


class BenchViewer(ViewerUser):
    """The listener a chatload locustfile runs (`class Viewer(ViewerUser)`), as Locust spawns it."""


class HubStallRecorder:
    """The runtime's HubStallProbe, keeping every wake-up's lateness with its wall-clock time."""

    def __init__(self) -> None:
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=200_000)
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            started = time.perf_counter()
            gevent.sleep(STALL_PERIOD_S)
            late = time.perf_counter() - started - STALL_PERIOD_S
            self.samples.append((time.time(), late))

    def between(self, start: float, end: float) -> dict:
        late = sorted(lateness for wall, lateness in self.samples if start <= wall <= end)
        if not late:
            return {"wakes": 0, "max_ms": None, "p99_ms": None, "p50_ms": None}
        return {"wakes": len(late), "max_ms": late[-1] * 1e3, "p99_ms": late[int(0.99 * (len(late) - 1))] * 1e3,
                "p50_ms": late[(len(late) - 1) // 2] * 1e3, "over_5ms": sum(1 for v in late if v > 0.005)}

    def stop(self) -> None:
        self._greenlet.kill(block=False)


class HarnessReceivers:
    def __init__(self, config: dict) -> None:
        from locust.env import Environment

        from ...runtime.hub_side import ChatRuntime

        self.concurrency = int(config.get("concurrency", 200))
        self.stamp = bool(config.get("stamp"))
        self.transport = config.get("transport") or DEFAULT_TRANSPORT
        target = Target("ivschat", KIND_RUNNING_EMULATOR, config["endpoint"], rooms=(config["room"],),
                        ca_file=config.get("ca_file") or "")
        # Locust's events of its own: the chatload plugin's listeners (emulator, drain, results)
        # belong to a `chatload run`, not to this measurement; users and runner are Locust's own.
        self.environment = Environment(user_classes=[BenchViewer], events=Events())
        self.runtime = ChatRuntime(self.environment, registry.get("ivschat"), target,
                                   HandedOutTokens(list(config.get("tokens") or [])),
                                   connect_timeout=float(config.get("connect_timeout", 15.0)),
                                   transport=self.transport)
        self.locust_users = bool(config.get("locust_users"))
        self.runner = None
        if self.locust_users:
            state_of(self.environment).runtime = self.runtime  # what every user's on_start picks up
            self.runner = self.environment.create_local_runner()
        self.intervals: list[dict] = []
        self.runtime.sink = self._on_interval
        # A second hub probe only when a benchmark asks: it wakes the hub thread 100 times a second,
        # which takes the GIL from the loop thread each time (the runtime's own probe already does).
        self.hub = HubStallRecorder() if config.get("hub_probe") else None
        self.opened = []
        self.failed = 0
        self.watched = watched_processes(config.get("pids") or {})
        self.sampler = WindowSampler(self.frames, self.watched,
                                     start_thread=monkey.get_original("_thread", "start_new_thread"),
                                     sleep=monkey.get_original("time", "sleep"))

    def _on_interval(self, snapshot: dict) -> None:  # gevent side, once a second
        self.intervals.append({"t": snapshot["t_ns"] / 1e9, **snapshot["health"]})

    # -- any thread --------------------------------------------------------------------------------

    def frames(self) -> int:
        """Frames delivered so far, read from the ledger's per-connection counts.

        Safe from any thread and at any instant: those counts only grow (the recorder's histogram
        counts move from interval to cumulative once a second, and a reader from another thread
        could catch them counted twice). Costs nothing on the receive path: the ledger counts anyway.
        """
        connections = self.runtime.loop_side.ledger._connections  # a benchmark may read internals
        return sum(entry[1] for conn in list(connections.values()) for entry in list(conn.by_sender.values()))

    # -- loop side ---------------------------------------------------------------------------------

    def _abort_all(self) -> None:
        for session in self.runtime.loop_side.sessions.values():
            session.stopping = True
            if session.ws is not None:
                reset(session.ws)
            if session._task is not None:
                session._task.cancel()

    # -- gevent side -------------------------------------------------------------------------------

    def ask(self, fn, *args, timeout: float | None = 30.0):
        return self.runtime.loop_thread.ask(fn, *args, timeout=timeout)

    def connect_more(self, count: int) -> None:
        phase, probe = ConnectPhase(), LoopStallProbe()
        phase.begin()
        self.ask(probe.start)  # on the loop thread, which makes the connects
        started = time.monotonic()
        in_flight: list = []
        made = 0
        next_note = 0.0
        spawn = self._spawn_users if self.locust_users else self._new_sessions
        while made < count or in_flight:
            new = spawn(min(count - made, self.concurrency - len(in_flight)))
            in_flight += new
            made += len(new)
            gevent.sleep(0.005)
            waiting = []
            for session in in_flight:
                state = session.state
                if state == "open":
                    self.opened.append(session)
                elif state in ("new", "connecting"):
                    waiting.append(session)
                else:  # "stopped" (gave up) or "closed" (dropped at once)
                    self.failed += 1
            in_flight = waiting
            now = time.monotonic()
            if now >= next_note:
                emit({"event": "progress", "connected": len(self.opened), "failed": self.failed,
                      "of": len(self.opened) + self.failed + count - made + len(in_flight)})
                next_note = now + 0.5
        errors = []
        if self.failed:
            counters = self.ask(self.runtime.recorder.totals)["counters"]
            errors = [f"{name}: {n}" for name, n in sorted(counters.items())
                      if name.startswith(("connect_failures.", "token_fetch_failures.", "gave_up."))][:5]
        seconds = time.monotonic() - started
        emit({"event": "connected", "connected": len(self.opened), "failed": self.failed, "errors": errors,
              "seconds": round(seconds, 3), **phase.figures(self.ask(probe.stop))})

    def _new_sessions(self, k: int) -> list:
        """`k` bare sessions, as a Locust user's `ChatClient` makes them (no retry: see above)."""
        return [self.runtime.new_session("bench", (), SdkLike(max_attempts=0), None, None) for _ in range(k)]

    def _spawn_users(self, k: int) -> list:
        """`k` more real Locust users (each opens its session in `on_start`): their handles."""
        if k <= 0:
            return []
        before = len(self.runtime.handles)
        self.runner.start(self.runner.user_count + k, spawn_rate=k, wait=False)
        deadline = time.monotonic() + 30
        while len(self.runtime.handles) < before + k and time.monotonic() < deadline:
            gevent.sleep(0.005)  # the spawner greenlet starts them; each makes its handle at once
        return list(self.runtime.handles.values())[before:]

    def schedule_window(self, start: float, end: float) -> None:
        self.sampler.schedule(start, end)

    @property
    def window(self) -> tuple[float, float] | None:
        return self.sampler.window

    @property
    def snapshots(self) -> dict:
        return self.sampler.snapshots

    def drain(self, expected: int, timeout: float, stall: float, window: bool = True) -> dict:
        started = last_change = time.monotonic()
        last = self.frames()
        reason = "complete"
        while True:
            window_done = not window or not self.sampler.pending
            if last >= expected and window_done:
                break
            gevent.sleep(0.05)
            now, current = time.monotonic(), self.frames()
            if current != last:
                last, last_change = current, now
            elif now - last_change >= stall and window_done:
                reason = "stalled"
                break
            if now - started >= timeout:
                reason = "timeout"
                break
        open_now = sum(1 for s in self.opened if s.state == "open")
        return {"frames": last, "expected": expected, "drain": reason, "open": open_now,
                "connections_lost": len(self.opened) - open_now}

    def result(self, totals: dict) -> dict:
        result = {"event": "result", "window": self.snapshots, "totals": totals}
        if self.window is not None:
            start, end = self.window
            if self.hub is not None:
                result["hub"] = self.hub.between(start, end)
            # an interval reported at t covers (t - 1 s, t]: keep those whose middle is in the window
            inside = [i for i in self.intervals if start <= i["t"] - 0.5 <= end]
            result["health"] = {
                "intervals": len(inside),
                "loop_lag_max_us": max((i["loop_lag_max_us"] for i in inside), default=None),
                "hub_stall_max_us": max((i["hub_stall_max_us"] for i in inside), default=None),
                "gc_pause_max_us": max((i.get("gc_pause_max_us", 0) for i in inside), default=None),
                "cpu_percent": [i["cpu_percent"] for i in inside],
            }
            if "end" in self.snapshots:
                lag = result["health"]["loop_lag_max_us"]
                self.snapshots["end"]["max_loop_lag_s"] = lag / 1e6 if lag is not None else None
        if self.stamp:
            summary = self.ask(self.runtime.recorder.totals)
            result["delivery_hdr"] = summary["histograms"][DELIVERY]
            result["counters"] = summary["counters"]
        return result

    def rss(self) -> dict:
        gc.collect()
        info = psutil.Process().memory_full_info()
        return {"rss": info.rss, "uss": info.uss, "connections": sum(1 for s in self.opened if s.state == "open")}

    def close(self) -> None:
        try:
            if self.runner is not None:
                state_of(self.environment).stopping = True  # the users must not close one by one
                self.runner.quit()
            self.ask(self._abort_all, timeout=10)
        finally:
            if self.hub is not None:
                self.hub.stop()
            self.runtime.close()


def main() -> int:
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    line = stdin.readline()
    if not line:
        return 2
    receivers = HarnessReceivers(apply_config(line))
    emit({"event": "ready", "pid": os.getpid(), "switch_interval_s": sys.getswitchinterval(), **receivers.rss()})
    try:
        while line := stdin.readline():
            command = orjson.loads(line)
            cmd = command["cmd"]
            if cmd == "connect":
                receivers.connect_more(int(command["count"]))
            elif cmd == "rss":
                emit({"event": "rss", **receivers.rss()})
            elif cmd == "window":
                receivers.schedule_window(command["start"], command["end"])
            elif cmd == "reset":
                receivers.ask(receivers.runtime.recorder.reset)  # latencies so far are forgotten
                emit({"event": "reset", "frames": receivers.frames()})
            elif cmd == "drain":
                totals = receivers.drain(int(command["expected"]), float(command["timeout"]),
                                         float(command.get("stall", 3.0)), bool(command.get("window", True)))
                emit(receivers.result(totals))
            elif cmd == "close":
                break
    except KeyboardInterrupt:
        return 130
    finally:
        receivers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
