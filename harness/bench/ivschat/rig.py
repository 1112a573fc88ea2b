"""The test rig the client-side benchmarks share: an emulator room, receiving child processes
(chatload's or the bare baseline), an open-loop sender, and one measured stream.

Receiving children (`chatload_client`, `bare_websockets_client`, `bare_picows_client`) speak JSON lines:

    parent → stdin   config {"endpoint", "room", "tokens", "concurrency", "connect_timeout",
                             "pids": {"server": pid}, "stamp": bool, "cpus": [...] | null,
                             harness only: "transport", "locust_users": bool, "hub_probe": bool}
    stdout → parent  {"event": "ready", "rss", "uss", "connections"}
    parent → stdin   {"cmd": "connect", "count": k}         → progress…, {"event": "connected", …}
                     {"cmd": "rss"}                          → {"event": "rss", "rss", "uss", "connections"}
                     {"cmd": "window", "start", "end"}       (snapshots at those wall-clock instants)
                     {"cmd": "reset"}                        → {"event": "reset"}  (forget latencies so far)
                     {"cmd": "drain", "expected", "timeout"} → {"event": "result", "window", "totals", …}
                     {"cmd": "close"} or EOF: reset every connection and exit

The sender lives in the parent (as in `emulator_fanout`) and stamps each message exactly as
chatload's own senders do — `cl.s`, `cl.n`, `cl.t` (intended send time, µs) in `Attributes` — so
chatload's receivers do their full work for every frame (parse, ledger, histogram) and the bare
client can time the same messages from the same `cl.t`.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

from ...net.transport import DEFAULT_TRANSPORT
from ...services.ivschat import codec as ivschat
from ...services.ivschat.client import identity_attributes
from ..children import LoadClient
from ..common import (
    UNRELIABLE_SPREAD,
    BenchError,
    BenchOptions,
    Progress,
    few_repeats_warnings,
    percentile,
    summarize,
)
from ..counting_connection import Tally, open_counting
from .chat_tokens import create_chat_tokens
from .sender import OpenLoopSender, request_id

SERVICE = "ivschat"  # the registry's name for the service every benchmark here runs on (in each report)
ON_ROOM = "on an IVS Chat emulator room"  # what each benchmark's help and report header say
MAX_ROOM_RATE = 100  # CreateRoom's maximumMessageRatePerSecond ceiling, so the most the emulator accepts
# The room limit stays at 100 msg/s, but as a token bucket: the default fixed window counts the
# server's processing instants, so a server that fell a little behind and then catches up processes
# a burst that straddles a second boundary and gets 429s the sender never caused.
EMULATOR_ARGS = ("--rate-limit", "token-bucket")
CLIENTS = ("harness", "bare")
# "bare" is the bare websockets client, the baseline every benchmark has had; receive and memory add
# the bare picows client beside it.
CHILD_MODULES = {"harness": "harness.bench.ivschat.chatload_client", "bare": "harness.bench.ivschat.bare_websockets_client",
                 "bare_picows": "harness.bench.ivschat.bare_picows_client"}
CLIENT_LABELS = {"harness": "harness", "bare": "bare websockets", "bare_picows": "bare picows"}
CONTENT = "hello from chatload bench"
SENDER_ID = "benchsender"
TAIL_S = 0.25  # keep sending past the window's end so its last instant is under load
STALL_S = 3.0
SETTLE_S = 0.5
SATURATED = 0.90
OTHER_LOAD_WARNING = 0.25  # cores used by other processes in a window above which figures are flagged
PRECISE_S = 0.002  # the sender's last stretch before an intended time is a blocking sleep
COVER_MARGIN = 0.7  # a truncated stream's backlog must last 1/0.7 ≈ 1.4× the time left to cover


def cores() -> int:
    return len(os.sched_getaffinity(0))


# -- the emulator and its room ----------------------------------------------------------------------


@dataclass
class BenchRoom:
    emulator: object  # EmulatorProcess
    arn: str
    boto3: object

    @property
    def endpoint(self) -> str:
        return self.emulator.messaging_endpoint

    @property
    def pid(self) -> int:
        return self.emulator.pid

    def tokens(self, count: int, prefix: str, progress: Progress | None = None, label: str = "") -> list[str]:
        note = (lambda done, total: progress.update(f"{label}: CreateChatToken {done:,}/{total:,}")) \
            if progress else None
        return create_chat_tokens(self.emulator.control_endpoint, self.arn,
                                  [f"{prefix}-{i}" for i in range(count)], progress=note)

    def sender_token(self) -> str:
        return self.boto3.create_chat_token(roomIdentifier=self.arn, userId=SENDER_ID,
                                            capabilities=["SEND_MESSAGE"])["token"]

    def ssl_context(self):
        """A client context trusting the emulator's own CA when it serves wss:// (`--tls`), else None."""
        from ...net.tls import client_context

        return client_context(self.emulator.ca_file) if self.emulator.ca_file else None

    def open_connections(self) -> int:
        return int(self.emulator.admin.health()["connections"])

    async def wait_until_empty(self, timeout: float = 15.0) -> None:
        """Between two clients on one emulator: the previous client's connections must be gone."""
        deadline = time.monotonic() + timeout
        while self.open_connections() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


@contextmanager
def emulator_room(max_connections: int, name: str = "bench", rate: int = MAX_ROOM_RATE,
                  tls: bool = False) -> Iterator[BenchRoom]:
    """An IVS Chat emulator and one room; `tls`: wss:// and https:// with the run's own CA."""
    from ...services.ivschat.emulator import EmulatorProcess

    tls_args = ("--tls",) if tls else ()
    with EmulatorProcess(*EMULATOR_ARGS, *tls_args, "--max-connections", str(max_connections)) as emulator:
        client = emulator.boto3_client()
        room = client.create_room(name=name, maximumMessageRatePerSecond=rate)
        yield BenchRoom(emulator, room["arn"], client)


# -- receiving children -----------------------------------------------------------------------------


class ClientChild(LoadClient):
    """One receiving child process (one of `CHILD_MODULES`)."""

    def __init__(self, kind: str) -> None:
        super().__init__(CHILD_MODULES[kind], line_limit=1 << 26)
        self.kind = kind
        self.count = 0  # connections open
        self.frames_seen = 0  # frames the child had received at the end of its last drain
        self.ready: dict = {}

    async def start(self, config: dict | None = None) -> None:
        await super().start()
        await self.send(config or {})
        self.ready = await self.wait_event("ready", timeout=60)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def connect(self, count: int, progress: Progress, label: str) -> dict:
        await self.send({"cmd": "connect", "count": count})
        event = await self.wait_event(
            "connected", timeout=60 + count / 20,
            on_progress=lambda e: progress.update(f"{label}: {self.kind} connecting {e['connected']:,}/{e['of']:,}"
                                                  + (f", {e['failed']} failed" if e["failed"] else "")))
        if event["failed"]:
            raise BenchError(f"{label}: {event['failed']} {self.kind} connections failed: "
                             + "; ".join(event["errors"]) + f"\nchild log:\n{self.log_text()}")
        self.count = event["connected"]
        return event

    async def rss(self) -> dict:
        await self.send({"cmd": "rss"})
        return await self.wait_event("rss", timeout=60)

    async def reset(self) -> dict:
        await self.send({"cmd": "reset"})
        return await self.wait_event("reset", timeout=30)

    async def drain(self, owed: int, timeout: float, *, window: bool = True) -> dict:
        """Wait for the `owed` frames beyond those already seen (and for the window's end snapshot)."""
        await self.send({"cmd": "drain", "expected": self.frames_seen + owed, "timeout": timeout, "stall": STALL_S,
                         "window": window})
        result = await self.wait_event("result", timeout=timeout + 30)
        self.frames_seen = result["totals"]["frames"]
        return result


async def start_child(kind: str, room: BenchRoom, tokens: list[str], options: BenchOptions, *,
                      stamp: bool = False, hub_probe: bool = False, locust_users: bool = False) -> ClientChild:
    child = ClientChild(kind)
    await child.start({"endpoint": room.endpoint, "room": room.arn, "tokens": tokens, "ca_file": room.emulator.ca_file,
                       "concurrency": options.connect_concurrency, "connect_timeout": 15.0,
                       "pids": {"server": room.pid, "sender": os.getpid()}, "stamp": stamp,
                       "hub_probe": hub_probe, "transport": harness_transport(options),
                       "locust_users": locust_users})
    return child


def harness_transport(options: BenchOptions) -> str:
    """The transport chatload's child runs on: `--transport`, else chatload's default."""
    return options.extra.get("transport") or DEFAULT_TRANSPORT


# -- the sender -------------------------------------------------------------------------------------


class StreamSender(OpenLoopSender):
    """Open-loop SEND_MESSAGE at fixed intended times, stamped like chatload's own sends; reads its
    echoes and ERRORs back. `run` may be called again: sequence numbers carry on."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.truncated_at: float | None = None

    async def open(self, room: BenchRoom) -> None:
        self.client = await open_counting(room.endpoint, Tally(), token=room.sender_token(), on_text=self.on_frame,
                                          ssl_context=room.ssl_context())

    def close(self) -> None:
        if self.client is not None:
            self.client.abort()

    def server_rate(self, now: float, over: float = 1.0) -> float | None:
        """Messages the server fanned out per second lately (its echoes), or None if too early to say."""
        times = self.echo_times
        if len(times) < 5 or now - times[0] < over:
            return None
        recent = len(times) - bisect.bisect_left(times, now - over)
        return recent / over

    async def run(self, start: float, stop: float, progress: Progress, label: str, *,
                  cover_until: float | None = None) -> None:
        """Send at `rate` from `start` until `stop`.

        With `cover_until`, stop early once the messages the server has not fanned out yet will keep
        it busy past that instant at its current pace (its echoes show how far it got): a server
        that cannot keep up then works through a backlog of seconds, not of minutes, and the
        receivers still get a full stream until `cover_until`. Open-loop timing is kept while sending.
        """
        first = len(self.intended)
        k = 0
        next_note = 0.0
        while True:
            intended = start + k * self.interval
            if intended >= stop:
                return
            if cover_until is not None and k and k % 10 == 0:
                now = time.time()
                pace = self.server_rate(now)
                backlog = len(self.intended) - self.replies
                if pace and now + COVER_MARGIN * backlog / pace >= cover_until:
                    self.truncated_at = now
                    return
            delay = intended - time.time()
            if delay > PRECISE_S:
                await asyncio.sleep(delay - PRECISE_S)
            # The loop's timers have 1 ms resolution and read a clock cached at the start of the
            # iteration, so they may fire early: the last stretch is a plain sleep, and never early
            # (a message sent before its intended time would show a latency below the truth).
            delay = intended - time.time()
            if delay > 0:
                time.sleep(delay)
            i = first + k
            attributes = identity_attributes(SENDER_ID, i + 1, int(intended * 1e6))
            now = self.send(intended, ivschat.encode_send_message(request_id(i), CONTENT, attributes))
            if now >= next_note:
                self.show_sending(progress, label, start, stop, now)
                next_note = now + 0.5
            k += 1

    def accepted(self, since: int = 0) -> int:
        return sum(1 for seq in self.echo_latency if seq >= since)

    def messages(self) -> dict:
        return {"sent": len(self.intended), "accepted": len(self.echo_latency), "rejected": dict(self.rejected),
                "unanswered": len(self.intended) - self.replies, "duplicate_echoes": self.duplicates}

    def lateness_ms(self) -> dict:
        late = sorted(self.lateness)
        return {"p99": _ms(percentile(late, 0.99)), "max": _ms(late[-1] if late else None)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def next_start(rate: float, lead: float = 0.5) -> float:
    """Intended times mid-slot within each wall-clock second (so any one-second window sees `rate`)."""
    return float(int(time.time() + lead) + 1) + 0.5 / rate


# -- one measured stream ----------------------------------------------------------------------------


@dataclass
class Stream:
    """What one measured stream produced: the window, and each child's result document."""

    window_start: float
    window_end: float
    seconds: float
    results: list[dict] = field(default_factory=list)
    all_replied: bool = True
    first_seq: int = 0


async def measured_stream(room: BenchRoom, children: list[ClientChild], sender: StreamSender, *,
                          warmup: float, seconds: float, options: BenchOptions, progress: Progress,
                          label: str, truncate: bool = False) -> Stream:
    """Send through a warm-up and the window, then let every child drain what the server owes it.

    `truncate`: stop sending once the server's backlog covers the window (see `StreamSender.run`).
    """
    first_seq = len(sender.intended)
    start = next_start(sender.rate)
    window_start = start + warmup
    window_end = window_start + seconds
    for child in children:
        await child.send({"cmd": "window", "start": window_start, "end": window_end})
    await sender.run(start, window_end + TAIL_S, progress, label,
                     cover_until=window_end + TAIL_S if truncate else None)
    drain_started = time.monotonic()
    all_replied = await sender.wait_for_replies(options.drain_timeout, progress, label)
    accepted = sender.accepted(first_seq)
    progress.update(f"{label}: receivers draining, expecting {accepted * sum(c.count for c in children):,} frames")
    remaining = max(5.0, options.drain_timeout - (time.monotonic() - drain_started))
    results = await asyncio.gather(*(child.drain(accepted * child.count, remaining) for child in children))
    stream = Stream(window_start, window_end, seconds, list(results), all_replied, first_seq)
    for child, result in zip(children, results, strict=True):
        if "start" not in result["window"] or "end" not in result["window"]:
            raise BenchError(f"{label}: the {child.kind} client took no window snapshot")
    return stream


async def quiet_phase(children: list[ClientChild], sender: StreamSender, *, seconds: float,
                      options: BenchOptions, progress: Progress, label: str) -> None:
    """Send for `seconds` (warm-up), wait until every frame owed has arrived, then `reset` every child."""
    first_seq = len(sender.intended)
    start = next_start(sender.rate, lead=0.2)
    await sender.run(start, start + seconds, progress, label)
    await sender.wait_for_replies(options.drain_timeout, progress, label)
    accepted = sender.accepted(first_seq)
    await asyncio.gather(*(child.drain(accepted * child.count, options.drain_timeout, window=False)
                           for child in children))
    await asyncio.gather(*(child.reset() for child in children))


def window_figures(result: dict, *, who: str = "client") -> dict:
    """Frames, elapsed time and CPU of one child over its window."""
    s0, s1 = result["window"]["start"], result["window"]["end"]
    elapsed = s1["wall"] - s0["wall"]
    frames = s1["frames"] - s0["frames"]

    def delta(section: str, name: str) -> float | None:
        a, b = s0[section].get(name), s1[section].get(name)
        return None if a is None or b is None else b - a

    cpu = delta("cpu", who)
    system = delta("cpu_system", who)
    server = delta("cpu", "server")
    sender = delta("cpu", "sender")
    waited = delta("wait", who)
    machine_total = s1.get("machine_total", 0.0) - s0.get("machine_total", 0.0)
    machine_busy = (s1.get("machine_busy", 0.0) - s0.get("machine_busy", 0.0)) / machine_total * cores_online() \
        if machine_total > 0 else None
    return {
        "window_seconds": round(elapsed, 4),
        "frames": frames,
        "frames_per_s": frames / elapsed if elapsed > 0 else None,
        "cpu_seconds": cpu,
        "cpu_share": cpu / elapsed if cpu is not None and elapsed > 0 else None,
        "cpu_us_per_frame": cpu / frames * 1e6 if cpu is not None and frames else None,
        "system_us_per_frame": system / frames * 1e6 if system is not None and frames else None,
        "cpu_wait_share": waited / elapsed if waited is not None and elapsed > 0 else None,
        "server_cpu_share": server / elapsed if server is not None and elapsed > 0 else None,
        "sender_cpu_share": sender / elapsed if sender is not None and elapsed > 0 else None,
        "machine_busy_cores": machine_busy,
        "max_loop_lag_ms": (s1.get("max_loop_lag_s") or 0.0) * 1e3 if s1.get("max_loop_lag_s") is not None else None,
    }


def cores_online() -> int:
    return psutil.cpu_count() or 1


def other_cores(machine_busy_cores: float | None, *shares: float | None) -> float | None:
    """Cores used during the window by processes outside the benchmark (other users of the machine,
    and kernel threads such as ksoftirqd doing loopback work for us)."""
    if machine_busy_cores is None:
        return None
    return max(0.0, machine_busy_cores - sum(share or 0.0 for share in shares))


def others_warning(stats: dict) -> str | None:
    median = stats.get("median")
    if median is not None and median >= OTHER_LOAD_WARNING:
        return (f"other processes used {median:.2f} cores (median) during the windows: the machine was not "
                "quiet, figures are disturbed")
    return None


def accounting(result: dict) -> dict:
    totals = result["totals"]
    return {"expected": totals["expected"], "received": totals["frames"],
            "missing": max(0, totals["expected"] - totals["frames"]),
            "extra": max(0, totals["frames"] - totals["expected"]),
            "drain": totals["drain"], "connections_lost": totals.get("connections_lost", 0)}


# -- verdicts ----------------------------------------------------------------------------------------


def ratio_verdict(ratios: list[float | None], target: float, *, higher_is_better: bool, repeats: int,
                  noisy_inputs: list[str] | None = None) -> dict:
    """Median ratio against a target, with the spread conventions of `emulator_fanout`."""
    ratio = summarize(ratios)
    median = ratio["median"]
    ok = (lambda v: v >= target) if higher_is_better else (lambda v: v <= target)
    verdict = "PASS" if median is not None and ok(median) else "SHORT"
    warnings = list(noisy_inputs or [])
    noisy = bool(noisy_inputs)
    if ratio["spread"] is not None and ratio["spread"] > UNRELIABLE_SPREAD:
        noisy = True
        warnings.append(f"ratio spread {ratio['spread']:.0%} across repeats (> {UNRELIABLE_SPREAD:.0%})")
    present = [v for v in ratios if v is not None]
    straddles = bool(present) and any(ok(v) for v in present) and not all(ok(v) for v in present)
    near = (median is not None and ratio["spread"] is not None
            and median * (1 - ratio["spread"]) <= target <= median * (1 + ratio["spread"]))
    reliable = median is not None and not straddles and not (noisy and near)
    if straddles:
        warnings.append(f"repeats fall on both sides of the {target:g} target")
    if not reliable:
        warnings.append("the verdict is unreliable: rerun on a quieter machine or with more --repeat")
    elif noisy:
        warnings.append(f"figures are noisy, but every repeat is on the same side of the {target:g} target "
                        "with room to spare, so the verdict stands")
    warnings += few_repeats_warnings(repeats)
    return {"ratio": ratio, "verdict": verdict, "reliable": reliable, "warnings": warnings}


def spread_warning(name: str, stats: dict) -> str | None:
    spread = stats.get("spread")
    if spread is not None and spread > UNRELIABLE_SPREAD:
        return f"{name} spread {spread:.0%} across repeats (> {UNRELIABLE_SPREAD:.0%})"
    return None


def quick_or(options: BenchOptions, quick, full):
    return quick if options.extra.get("quick") else full

