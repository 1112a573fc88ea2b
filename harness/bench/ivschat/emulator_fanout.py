"""`chatload bench emulator`: the emulator's fan-out cost against a bare websockets broadcast server.

For each room size N and each repeat, each server under test runs as a fresh child process:

1. the server starts (for the emulator: one room at the maximum rate, N + 1 single-use tokens);
2. a load-client child process (`bench/counting_receivers.py`) opens N receiving connections in bounded batches;
   the server's RSS before and after gives memory per idle connection;
3. this process opens one sender connection and sends the IVS SEND_MESSAGE frame open-loop at a
   fixed rate (100 msg/s, the room maximum) through a warm-up and then the measured window;
4. at the window's two instants the load client reads its frame counter and, at the same moment,
   the CPU time (user + system) of the server, itself and the sender;
5. the sender waits for the echo or ERROR of every message it sent, then the receivers wait for
   every frame the server owes them (accepted messages × N), so loss is an exact count.

Both servers get the same client code, the same payload and the same schedule; the two run back to
back within each repeat, in alternating order, so slow drift of the machine hits both alike.

Figures: deliveries/s, server CPU µs per delivery, deliveries per server CPU-second, and their ratio
emulator/bare (target ≥ 0.8). Each run also says what limited it: a server that could not keep up
at its full core is fine (its deliveries per CPU-second are then its saturated efficiency), but a
load client or sender that fell behind is called out, because then the clients set the pace.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

from ...services.ivschat import codec as ivschat
from ..child_protocol import set_affinity
from ..children import JsonChildProcess, LoadClient
from ..common import (
    UNRELIABLE_SPREAD,
    BenchError,
    BenchOptions,
    BenchResult,
    Progress,
    alternating,
    bench_document,
    few_repeats_warnings,
    percentile,
    runs_by,
    summarize,
    summarize_metrics,
)
from ..counting_connection import Tally, open_counting
from ..tables import CPU_NOTE, cell, frames_line, pct, si, table, two_places, warning_lines, with_verdict
from .rig import EMULATOR_ARGS, MAX_ROOM_RATE, SERVICE
from .sender import OpenLoopSender, request_id

NAME = "emulator"
SUMMARY = "the IVS Chat emulator's fan-out speed against a bare websockets broadcast server (same run, same clients)"

SERVERS = ("emulator", "bare")
DEFAULT_SIZES = (1000, 5000)
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 2.0
TARGET_RATIO = 0.8
CONTENT = "hello from chatload bench"
SETTLE_S = 1.0  # after the last receiver connects, before reading the server's RSS
TAIL_S = 0.25  # keep sending past the window's end so its last instant is under load
STALL_S = 3.0  # receivers stop waiting when nothing arrived for this long
SATURATED = 0.90  # CPU share of one core at which a process counts as saturated
STARVED = 0.10  # share of the window a process spent runnable but waiting for a CPU
KEPT_UP = 0.97  # delivered fraction of the offered load at which the server counts as keeping up


# -- servers under test ----------------------------------------------------------------------------


@dataclass
class ServerHandle:
    kind: str
    pid: int
    endpoint: str  # ws://host:port
    receiver_tokens: list[str] | None  # one single-use token per receiver, or None (no auth)
    sender_token: str | None


@contextmanager
def server_under_test(kind: str, n: int, progress: Progress, label: str) -> Iterator[ServerHandle]:
    if kind == "emulator":
        from ...services.ivschat.emulator import EmulatorProcess

        with EmulatorProcess(*EMULATOR_ARGS, "--max-connections", str(max(20_000, n + 100))) as emulator:
            client = emulator.boto3_client()
            room = client.create_room(name=f"bench-{n}", maximumMessageRatePerSecond=MAX_ROOM_RATE)
            tokens = []
            for i in range(n):
                if i % 250 == 0:
                    progress.update(f"{label}: CreateChatToken {i}/{n}")
                tokens.append(client.create_chat_token(roomIdentifier=room["arn"], userId=f"receiver-{i}",
                                                       capabilities=[])["token"])
            sender = client.create_chat_token(roomIdentifier=room["arn"], userId="sender",
                                              capabilities=["SEND_MESSAGE"])["token"]
            yield ServerHandle(kind, emulator.pid, emulator.messaging_endpoint, tokens, sender)
    elif kind == "bare":
        with JsonChildProcess("harness.bench.bare_server", "--json") as bare:
            yield ServerHandle(kind, bare.pid, bare.info["endpoint"], None, None)
    else:
        raise ValueError(f"unknown server {kind!r}")


# -- the sender ------------------------------------------------------------------------------------


class Sender(OpenLoopSender):
    """Sends at fixed intended times, plain `asyncio.sleep` timing; notes the frames' sizes on the wire."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.sent_frame_bytes = 0

    async def run(self, start: float, stop: float, progress: Progress, label: str) -> None:
        i = 0
        next_note = 0.0
        while True:
            intended = start + i * self.interval
            if intended >= stop:
                return
            delay = intended - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = ivschat.encode_send_message(request_id(i), CONTENT, {"seq": str(i)})
            now = self.send(intended, payload)
            if not self.sent_frame_bytes:
                self.sent_frame_bytes = len(payload) + 6 + (0 if len(payload) < 126 else 2)
            if now >= next_note:
                self.show_sending(progress, label, start, stop, now)
                next_note = now + 0.5
            i += 1


# -- one measured run ------------------------------------------------------------------------------


async def measure(server: ServerHandle, n: int, options: BenchOptions, progress: Progress, label: str) -> dict:
    seconds = options.seconds or DEFAULT_SECONDS
    warmup = DEFAULT_WARMUP if options.warmup is None else options.warmup
    rate = options.rate or MAX_ROOM_RATE
    server_process = psutil.Process(server.pid)
    rss_before = server_process.memory_info().rss
    client = LoadClient("harness.bench.counting_receivers")
    sender = Sender(rate)
    own_cpus = os.sched_getaffinity(0)
    server_cpus, client_cpus = pin_plan(options.pin)
    try:
        if server_cpus:
            set_affinity(server.pid, server_cpus)
            os.sched_setaffinity(0, client_cpus)  # the sender (this thread) stays off the server's core
        await client.start()
        await client.send({
            "endpoint": server.endpoint, "count": n, "tokens": server.receiver_tokens,
            "concurrency": options.connect_concurrency, "connect_timeout": 15.0,
            "pids": {"server": server.pid, "sender": os.getpid()},
            "cpus": sorted(client_cpus) if client_cpus else None,
        })
        connected = await client.wait_event(
            "connected", timeout=60 + n / 20,
            on_progress=lambda e: progress.update(f"{label}: connecting {e['connected']}/{e['of']}"
                                                  + (f", {e['failed']} failed" if e["failed"] else "")))
        if connected["failed"]:
            raise BenchError(f"{label}: {connected['failed']} of {n} receivers failed to connect: "
                             + "; ".join(connected["errors"]))
        progress.update(f"{label}: {n} receivers connected in {connected['seconds']:.1f} s; settling")
        await asyncio.sleep(SETTLE_S)
        rss_after = server_process.memory_info().rss

        sender.client = await open_counting(server.endpoint, Tally(), token=server.sender_token,
                                            on_text=sender.on_frame)
        # Intended send times sit mid-slot within each wall-clock second, so the emulator's fixed
        # one-second rate window sees exactly `rate` messages per second despite small jitter.
        start = float(int(time.time() + 0.5) + 1) + 0.5 / rate
        window_start = start + warmup
        window_end = window_start + seconds
        await client.send({"cmd": "window", "start": window_start, "end": window_end})
        await sender.run(start, window_end + TAIL_S, progress, label)
        drain_started = time.monotonic()
        all_replied = await sender.wait_for_replies(options.drain_timeout, progress, label)
        accepted = len(sender.echo_latency)
        expected = accepted * n
        progress.update(f"{label}: receivers draining, expecting {expected:,} frames")
        remaining = max(5.0, options.drain_timeout - (time.monotonic() - drain_started))
        await client.send({"cmd": "drain", "expected": expected, "timeout": remaining, "stall": STALL_S})
        result = await client.wait_event("result", timeout=remaining + 30)
    finally:
        if sender.client is not None:
            sender.client.abort()
        await client.stop()
        os.sched_setaffinity(0, own_cpus)
    figures = analyse(server.kind, n, rate, seconds, window_start, window_end, connected,
                      rss_before, rss_after, sender, all_replied, result)
    figures["cpu_pinning"] = ({"server": sorted(server_cpus), "clients": sorted(client_cpus)}
                              if server_cpus else None)
    return figures


def pin_plan(pin: bool) -> tuple[set[int], set[int]]:
    """The server's core and the load clients' cores, or two empty sets when not pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return set(), set()
    return {cpus[0]}, set(cpus[1:])


def analyse(kind, n, rate, seconds, window_start, window_end, connected, rss_before, rss_after,
            sender: Sender, all_replied: bool, result: dict) -> dict:
    snapshots = result["window"]
    if "start" not in snapshots or "end" not in snapshots:
        raise BenchError(f"{kind} N={n}: the load client took no window snapshot")
    s0, s1 = snapshots["start"], snapshots["end"]
    elapsed = s1["wall"] - s0["wall"]
    frames = s1["frames"] - s0["frames"]

    def cpu(who: str) -> float | None:
        a, b = s0["cpu"].get(who), s1["cpu"].get(who)
        return None if a is None or b is None else b - a

    def share(seconds_used: float | None) -> float | None:
        return seconds_used / elapsed if seconds_used is not None and elapsed > 0 else None

    def waited(who: str) -> float | None:
        a, b = s0.get("wait", {}).get(who), s1.get("wait", {}).get(who)
        return None if a is None or b is None else share(b - a)

    server_cpu = cpu("server")
    a, b = s0.get("cpu_system", {}).get("server"), s1.get("cpu_system", {}).get("server")
    server_system = None if a is None or b is None else b - a
    client_cpu = cpu("client")
    sender_cpu = cpu("sender")
    machine_total = s1["machine_total"] - s0["machine_total"]
    machine_util = (s1["machine_busy"] - s0["machine_busy"]) / machine_total if machine_total > 0 else None
    ncpu = psutil.cpu_count() or 1
    ours = sum(share(c) or 0.0 for c in (server_cpu, client_cpu, sender_cpu))
    others = max(0.0, machine_util * ncpu - ours) if machine_util is not None else None
    steal = (s1.get("machine_steal", 0.0) - s0.get("machine_steal", 0.0)) / machine_total * ncpu \
        if machine_total > 0 else None

    in_window = [i for i, t in enumerate(sender.intended) if window_start <= t < window_end]
    accepted_in_window = sum(1 for i in in_window if i in sender.echo_latency)
    offered_per_s = accepted_in_window * n / seconds
    deliveries_per_s = frames / elapsed if elapsed > 0 else 0.0
    delivered_fraction = deliveries_per_s / offered_per_s if offered_per_s else None
    echo = sorted(sender.echo_latency[i] for i in in_window if i in sender.echo_latency)
    lateness = sorted(sender.lateness)
    totals = result["totals"]
    received = totals["frames"]
    expected = totals["expected"]

    run = {
        "server": kind,
        "n": n,
        "window_seconds": round(elapsed, 4),
        "deliveries": frames,
        "deliveries_per_s": deliveries_per_s,
        "server_cpu_seconds": server_cpu,
        "server_cpu_share": share(server_cpu),
        "cpu_us_per_delivery": server_cpu / frames * 1e6 if server_cpu and frames else None,
        "deliveries_per_cpu_second": frames / server_cpu if server_cpu else None,
        # kernel time is mostly the loopback send path (it runs the receiver's TCP input too)
        "system_us_per_delivery": server_system / frames * 1e6 if server_system is not None and frames else None,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_per_idle_connection_bytes": (rss_after - rss_before) / n,
        "client_cpu_share": share(client_cpu),
        "sender_cpu_share": share(sender_cpu),
        "server_cpu_wait_share": waited("server"),
        "client_cpu_wait_share": waited("client"),
        "machine_cpu_share": machine_util,
        "other_processes_cores": others,
        "steal_cores": steal,
        "client_max_loop_lag_ms": result.get("max_loop_lag_s", 0.0) * 1e3,
        "offered_deliveries_per_s": offered_per_s,
        "delivered_fraction": delivered_fraction,
        "connect_seconds": connected["seconds"],
        "messages": {
            "sent": len(sender.intended),
            "accepted": len(sender.echo_latency),
            "rejected": dict(sender.rejected),
            "unanswered": len(sender.intended) - sender.replies,
            "duplicate_echoes": sender.duplicates,
            "sent_in_window": len(in_window),
            "accepted_in_window": accepted_in_window,
            "all_replied": all_replied,
        },
        "echo_latency_ms": {
            "p50": _ms(percentile(echo, 0.5)), "p99": _ms(percentile(echo, 0.99)), "max": _ms(echo[-1] if echo else None),
        },
        "sender_lateness_ms": {"p99": _ms(percentile(lateness, 0.99)), "max": _ms(lateness[-1] if lateness else None)},
        "frames": {
            "expected": expected,
            "received": received,
            "missing": max(0, expected - received),
            "extra": max(0, received - expected),
            "drain": totals["drain"],
            "drain_seconds": totals["drain_seconds"],
            "per_receiver_min": totals["per_receiver_min"],
            "per_receiver_max": totals["per_receiver_max"],
            "connections_lost": totals["connections_lost"],
        },
        "frame_bytes": {"sent": sender.sent_frame_bytes, "delivered": sender.echo_frame_bytes},
    }
    run["limited_by"], run["client_bound"] = diagnose(run, rate)
    return run


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def diagnose(run: dict, rate: float) -> tuple[str, bool]:
    """What set the pace of this run, in words, and whether the clients (not the server) did."""
    share = run["server_cpu_share"] or 0.0
    server_wait = run["server_cpu_wait_share"] or 0.0
    client_share = run["client_cpu_share"] or 0.0
    client_wait = run["client_cpu_wait_share"] or 0.0
    lag = run["client_max_loop_lag_ms"] or 0.0
    late = run["sender_lateness_ms"]["p99"] or 0.0
    fraction = run["delivered_fraction"] or 0.0
    echo_max = run["echo_latency_ms"]["max"] or 0.0
    others = run["other_processes_cores"] or 0.0
    saturated = share >= SATURATED
    client_busy = client_share >= SATURATED or client_wait >= STARVED or lag >= 100
    notes = []
    client_bound = False
    if fraction >= KEPT_UP and echo_max < 100:
        notes.append(f"nothing: the server kept up with {rate:g} msg/s at {share:.0%} of a core")
    elif fraction >= KEPT_UP:
        notes.append(f"server near saturation: kept up on average at {share:.0%} of a core, "
                     f"but ran up to {echo_max:.0f} ms behind")
    elif saturated:
        notes.append(f"server CPU ({share:.0%} of a core; delivered {fraction:.0%} of the offered load, "
                     "so deliveries/CPU-s is its saturated efficiency)")
    elif server_wait >= STARVED:
        notes.append(f"server starved of CPU: runnable but waiting {server_wait:.0%} of the window "
                     f"(other processes used {others:.2f} cores)")
    elif client_busy:
        client_bound = True
    else:
        notes.append(f"unclear: delivered {fraction:.0%} of the offered load with the server at {share:.0%} "
                     "of a core")
    if client_busy:
        notes.append(f"load client busy ({client_share:.0%} of a core, waited for a CPU {client_wait:.0%}, "
                     f"loop up to {lag:.0f} ms late)" + ("; it, not the server, set the pace" if client_bound else ""))
    if others >= 0.25 and not (server_wait >= STARVED and not saturated):
        notes.append(f"other processes used {others:.2f} cores")
    if late >= 20:
        notes.append(f"sender fell behind schedule (p99 {late:.0f} ms late)")
        client_bound = client_bound or not saturated
    if run["frames"]["missing"]:
        notes.append(f"{run['frames']['missing']:,} frames missing (receivers' drain: {run['frames']['drain']})")
    if run["messages"]["unanswered"]:
        notes.append(f"{run['messages']['unanswered']} messages never echoed (not counted as expected)")
    if run["messages"]["rejected"]:
        notes.append(f"server rejected messages: {run['messages']['rejected']}")
    return "; ".join(notes), client_bound


# -- the benchmark ---------------------------------------------------------------------------------


METRICS = ("deliveries_per_s", "cpu_us_per_delivery", "system_us_per_delivery", "deliveries_per_cpu_second", "rss_per_idle_connection_bytes",
           "server_cpu_share", "client_cpu_share", "server_cpu_wait_share", "machine_cpu_share",
           "other_processes_cores")


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    sizes = list(options.sizes or DEFAULT_SIZES)
    rate = options.rate or MAX_ROOM_RATE
    if not 0 < rate <= MAX_ROOM_RATE:
        raise BenchError(f"--rate must be between 0 and {MAX_ROOM_RATE} msg/s (the emulator's room maximum)")
    import uvloop

    started = time.time()
    runs: list[dict] = []
    for n in sizes:
        for repeat in range(options.repeat):
            order = alternating(SERVERS, repeat)
            for kind in order:
                label = f"[{kind} N={n} repeat {repeat + 1}/{options.repeat}]"
                progress.step(f"{label} starting the server")
                with server_under_test(kind, n, progress, label) as server:
                    figures = uvloop.run(measure(server, n, options, progress, label))
                figures["repeat"] = repeat + 1
                runs.append(figures)
                progress.note(f"{label} {figures['deliveries_per_s']:,.0f} deliveries/s, "
                              f"{_fmt(figures['cpu_us_per_delivery'], '.2f')} µs CPU/delivery "
                              f"({_fmt(figures['system_us_per_delivery'], '.2f')} in the kernel), "
                              f"frames {figures['frames']['received']:,}/{figures['frames']['expected']:,}; "
                              f"limited by {figures['limited_by']}")
    summary = summarise(runs, sizes, options.repeat)
    passed = all(entry["verdict"] == "PASS" for entry in summary)
    document = bench_document(
        NAME, SUMMARY, started,
        {"sizes": sizes, "seconds": options.seconds or DEFAULT_SECONDS,
         "warmup": DEFAULT_WARMUP if options.warmup is None else options.warmup,
         "repeat": options.repeat, "rate": rate, "content": CONTENT,
         "connect_concurrency": options.connect_concurrency, "drain_timeout": options.drain_timeout,
         "pin": options.pin, "emulator_args": list(EMULATOR_ARGS)},
        target_ratio=TARGET_RATIO, service=SERVICE, verdict="PASS" if passed else "SHORT", summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), passed)


def summarise(runs: list[dict], sizes: list[int], repeats: int) -> list[dict]:
    entries = []
    for n in sizes:
        by_server = runs_by(runs, n, "server", SERVERS)
        servers = {}
        for kind, kind_runs in by_server.items():
            servers[kind] = summarize_metrics(kind_runs, METRICS)
            servers[kind]["limited_by"] = [r["limited_by"] for r in kind_runs]
            servers[kind]["client_bound_runs"] = sum(r["client_bound"] for r in kind_runs)
            servers[kind]["frames_expected"] = sum(r["frames"]["expected"] for r in kind_runs)
            servers[kind]["frames_received"] = sum(r["frames"]["received"] for r in kind_runs)
        ratios = []
        for emulator_run, bare_run in zip(by_server["emulator"], by_server["bare"], strict=False):
            a, b = emulator_run["deliveries_per_cpu_second"], bare_run["deliveries_per_cpu_second"]
            ratios.append(a / b if a and b else None)
        ratio = summarize(ratios)
        medians = [servers[k]["deliveries_per_cpu_second"]["median"] for k in SERVERS]
        ratio["of_medians"] = medians[0] / medians[1] if all(medians) else None
        verdict = "PASS" if ratio["median"] is not None and ratio["median"] >= TARGET_RATIO else "SHORT"
        warnings = []
        noisy = False
        biased = False
        for kind in SERVERS:
            spread = servers[kind]["deliveries_per_cpu_second"]["spread"]
            if spread is not None and spread > UNRELIABLE_SPREAD:
                noisy = True
                warnings.append(f"{kind} deliveries/CPU-s spread {spread:.0%} across repeats (> {UNRELIABLE_SPREAD:.0%})")
            if servers[kind]["client_bound_runs"]:
                biased = True
                warnings.append(f"{kind}: {servers[kind]['client_bound_runs']} run(s) paced by the clients, "
                                "not the server: its figures are biased")
            missing = servers[kind]["frames_expected"] - servers[kind]["frames_received"]
            if missing > 0:
                warnings.append(f"{kind}: {missing:,} of {servers[kind]['frames_expected']:,} expected frames "
                                "never reached the receivers")
        if ratio["spread"] is not None and ratio["spread"] > UNRELIABLE_SPREAD:
            noisy = True
            warnings.append(f"ratio spread {ratio['spread']:.0%} across repeats (> {UNRELIABLE_SPREAD:.0%})")
        straddles = ratio["min"] is not None and ratio["min"] < TARGET_RATIO <= ratio["max"]
        # Noise makes the verdict unreliable only when it reaches the target: a ratio whose every
        # repeat, and its median less its spread, sit on one side of the target still decides.
        near = (ratio["median"] is not None and ratio["spread"] is not None
                and ratio["median"] * (1 - ratio["spread"]) < TARGET_RATIO <= ratio["median"] * (1 + ratio["spread"]))
        reliable = ratio["median"] is not None and not straddles and not biased and not (noisy and near)
        if straddles:
            warnings.append(f"repeats fall on both sides of the {TARGET_RATIO} target")
        if not reliable:
            warnings.append("the verdict is unreliable: rerun on a quieter machine or with more --repeat")
        elif noisy:
            warnings.append(f"figures are noisy, but every repeat is on the same side of the {TARGET_RATIO} "
                            "target with room to spare, so the verdict stands")
        warnings += few_repeats_warnings(repeats)
        entries.append({"n": n, "servers": servers, "ratio": ratio, "verdict": verdict, "reliable": reliable,
                        "warnings": warnings})
    return entries


# -- the table -------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _kib(value: float | None) -> str:
    return "–" if value is None else f"{value / 1024:.1f}K"


def render(document: dict) -> str:
    options = document["options"]
    lines = [
        f"chatload bench emulator — IVS Chat emulator, one room, SEND_MESSAGE at {options['rate']:g} msg/s, "
        f"{options['seconds']:g} s window after {options['warmup']:g} s warm-up; "
        f"median [min–max] of {options['repeat']} repeat(s)",
        CPU_NOTE,
        "",
    ]
    rows = [("N", "server", "deliveries/s", "CPU µs/delivery", "deliveries/CPU-s", "RSS/idle conn",
             "server CPU", "client CPU", "other load")]
    for entry in document["summary"]:
        for kind in SERVERS:
            s = entry["servers"][kind]
            rows.append((
                str(entry["n"]), kind,
                cell(s["deliveries_per_s"], si),
                cell(s["cpu_us_per_delivery"], two_places),
                cell(s["deliveries_per_cpu_second"], si),
                cell(s["rss_per_idle_connection_bytes"], _kib),
                cell(s["server_cpu_share"], pct),
                cell(s["client_cpu_share"], pct),
                cell(s["other_processes_cores"], two_places),
            ))
    lines += table(rows)
    lines.append("")
    for entry in document["summary"]:
        r = entry["ratio"]
        lines.append(f"N={entry['n']}: emulator/bare deliveries per CPU-second = {cell(r, two_places)}"
                     f"  (target ≥ {TARGET_RATIO})  {entry['verdict']}"
                     + ("" if entry["reliable"] else "  (UNRELIABLE, see warnings)"))
        for kind in SERVERS:
            s = entry["servers"][kind]
            lines.append(f"    {kind:<8} {frames_line(s['frames_received'], s['frames_expected'])}; "
                         f"limited by: {' | '.join(dict.fromkeys(s['limited_by']))}")
        lines += warning_lines(entry["warnings"])
    return with_verdict(lines, document["verdict"])
