"""`chatload bench asrun`: chatload as users run it — a real `locust -f` process — against a bare
picows client, on the same emulator stream, in one run.

For each workload (connections × msg/s) and each repeat, one emulator and one room; then, one after
the other (the order reversed every other repeat), each client as a fresh process:

- asrun: `python -m locust -f locustfiles/ivschat.py --headless -u N -r R Viewer` with the
  emulator's endpoints and room: Locust's stats table every 2 s, chatload's progress line
  (`--chat-progress-file`), the ticker, a token fetched per user through CreateChatToken; web UI
  off (headless). One Locust user per connection;
- asrun_pools: the same with `locustfiles/ivschat_pools.py ViewerPool` (listener pools of 500
  connections per Locust user);
- bare_picows: N `picows.ws_connect` connections with `orjson.loads` per frame, picows' initial read
  buffer set to chatload's own (`READ_BUFFER_INIT`), so memory compares like with like; it stamps
  each frame (`time.time_ns()` and a list append) so its delivery p99 stands beside chatload's.

This process sends open-loop at the workload's rate, stamped like chatload's own sends. Figures:

- CPU per delivery: user + system CPU of the client's whole process tree (psutil, every thread and
  child) from the first publish to `AFTER_LAST_S` after the last, divided by the deliveries it
  received (locust: the delivery count in its results.json; bare: its frame count);
- memory per connection: (peak RSS − RSS before the first connect) / N. Peak RSS is the kernel's
  high-water mark (VmHWM) summed over the tree; "before" is the last RSS sampled (every 50 ms)
  while the emulator had none of this client's connections open (for the bare client: its RSS when
  ready, before connecting);
- delivery p99: from the intended send time (`cl.t`) to the frame's read; at 1 msg/s each message
  reaches all N connections at once, so the 4,000 × 1 workload is the burst the issue names.

Targets (issue 26): CPU per delivery ≤ 1.1× bare picows (as-run); memory per connection ≤ 1.1× bare
picows with the same read buffer (as-run); ≤ 12 KiB per connection with listener pools.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

from ...net.picows_transport import READ_BUFFER_INIT
from ..common import (
    BenchError,
    BenchOptions,
    BenchResult,
    Progress,
    alternating,
    bench_document,
    percentile,
    summarize,
)
from ..tables import cell, table, two_places, warning_lines, with_verdict
from .rig import (
    EMULATOR_ARGS,
    ON_ROOM,
    SERVICE,
    ClientChild,
    StreamSender,
    emulator_room,
    next_start,
    other_cores,
    quick_or,
)

NAME = "asrun"
SUMMARY = ("a real `locust -f locustfiles/ivschat.py --headless` process (and one with listener pools) against a "
           f"bare picows client on the same stream {ON_ROOM}: whole-process-tree CPU per delivery, memory per "
           "connection, p99")
CLIENTS = ("asrun", "asrun_pools", "bare_picows")
LABELS = {"asrun": "locust -f ivschat.py", "asrun_pools": "locust -f ivschat_pools.py",
          "bare_picows": "bare picows (baseline)"}
ROOT = Path(__file__).resolve().parents[3]  # the project: harness/bench/ivschat/ is three below
LOCUSTFILES = {"asrun": (ROOT / "locustfiles" / "ivschat.py", "Viewer"),
               "asrun_pools": (ROOT / "locustfiles" / "ivschat_pools.py", "ViewerPool")}
POOL_SIZE = 500  # --chat-connections-per-user, as locustfiles/ivschat_pools.py has it

WORKLOADS = ((1000, 20.0), (4000, 1.0))  # (connections, messages per second into the room)
QUICK_WORKLOADS = ((40, 5.0),)
DEFAULT_SECONDS = 6.0
# CPU times come in 10 ms kernel ticks: a window of 24,000 deliveries (4,000 × 1 msg/s for 6 s) reads
# ±0.4 µs per delivery from that alone, so a window lasts until at least this many deliveries.
MIN_DELIVERIES = 100_000
AFTER_LAST_S = 3.0  # CPU counted until this long after the last publish: the fan-out's tail
QUICK_AFTER_LAST_S = 1.0  # --quick: 40 connections drain in milliseconds
SAMPLE_S = 0.05
SETTLE_S = 1.0
STALLED_S = 15.0  # no connection opened or closed for this long: the rest failed for good
SPAWN_RATE = 400  # Locust users per second (one per connection; pools: capped at the pool count)
CPU_TARGET = 1.1
MEMORY_TARGET = 1.1
POOL_MEMORY_TARGET = 12 * 1024
METRICS = ("cpu_us_per_delivery", "memory_per_connection_bytes", "delivery_p99_ms", "connect_seconds")


# -- a process tree, measured from outside ----------------------------------------------------------------


class Tree:
    """A client's process and its children: CPU, RSS and the RSS high-water mark."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _sum(self, read) -> int | float:
        total = 0
        for process in self.processes():
            try:
                total += read(process)
            except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                pass
        return total

    def cpu(self) -> float:
        return self._sum(lambda p: sum(p.cpu_times()[:2]))

    def rss(self) -> int:
        return self._sum(lambda p: p.memory_info().rss)

    def peak_rss(self) -> int:
        return self._sum(_vm_hwm)


def _vm_hwm(process: psutil.Process) -> int:
    with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# -- one client's run -----------------------------------------------------------------------------------


class LocustClient:
    """`locust -f` exactly as a user starts it, against the bench's emulator room."""

    def __init__(self, kind: str, room, n: int, workdir: Path) -> None:
        locustfile, user_class = LOCUSTFILES[kind]
        self.kind, self.room, self.n, self.workdir = kind, room, n, workdir
        pool = POOL_SIZE if n % POOL_SIZE == 0 else n  # N connections exactly, in pools of 500 where N allows
        self.users = n // pool if kind == "asrun_pools" else n
        self.argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
                     "-u", str(self.users), "-r", str(min(SPAWN_RATE, self.users)),
                     *(["--chat-connections-per-user", str(pool)] if kind == "asrun_pools" else []),
                     "--chat-endpoint", room.endpoint, "--chat-control-endpoint", room.emulator.control_endpoint,
                     "--chat-room", room.arn, "--chat-drain", "3", "--chat-report-dir", str(workdir / "reports"),
                     "--chat-progress-file", str(workdir / "progress.jsonl"), user_class]
        self.proc: asyncio.subprocess.Process | None = None
        self.log = open(workdir / "locust.log", "wb")  # noqa: SIM115 (closed in stop)

    async def start(self) -> Tree:
        self.proc = await asyncio.create_subprocess_exec(*self.argv, cwd=ROOT, stdout=self.log, stderr=self.log,
                                                         start_new_session=True)
        return Tree(self.proc.pid)

    async def deliveries_and_p99(self, timeout: float) -> tuple[int, float | None]:
        """Ctrl-C as a user would (Locust drains and writes results.json), then read the results."""
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise BenchError(f"locust did not exit within {timeout:.0f} s of Ctrl-C:\n{self.log_tail()}") from None
        paths = sorted((self.workdir / "reports").glob("*/*/results.json"))
        if not paths:
            raise BenchError(f"locust wrote no results.json (exit {self.proc.returncode}):\n{self.log_tail()}")
        delivery = orjson.loads(paths[-1].read_bytes())["latency_us"]["delivery"]
        p99 = (delivery.get("percentiles") or {}).get("99")
        return delivery["count"], p99 / 1000 if p99 is not None else None

    def log_tail(self) -> str:
        self.log.flush()
        return (self.workdir / "locust.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what this bench started
        self.log.close()


async def _wait_open(room, n: int, tree: Tree, timeout: float, progress: Progress,
                     label: str) -> tuple[int, float, int]:
    """Sample RSS until the emulator holds `n` connections, or holds a steady count short of it for
    `STALLED_S` (connections that failed for good: the run goes on with those open and says so);
    (RSS before the first connect, seconds to open, connections open)."""
    started = time.monotonic()
    before = 0
    opened_at = None
    last, changed_at = -1, started
    while True:
        rss = tree.rss()
        open_now = room.open_connections()
        now = time.monotonic()
        if open_now == 0:
            before = rss
        elif opened_at is None:
            opened_at = now
        if open_now != last:
            last, changed_at = open_now, now
        if open_now >= n or (open_now and now - changed_at > STALLED_S):
            return before, changed_at - (opened_at or started), open_now
        if now - started > timeout:
            raise BenchError(f"{label}: only {open_now:,} of {n:,} connections open after {timeout:.0f} s")
        if not tree.processes() or tree.root.status() == psutil.STATUS_ZOMBIE:
            raise BenchError(f"{label}: the client exited with {open_now:,} of {n:,} connections open")
        progress.update(f"{label}: {open_now:,}/{n:,} connections open")
        await asyncio.sleep(SAMPLE_S)


async def _stream(room, tree: Tree, rate: float, seconds: float, after_last: float, progress: Progress,
                  label: str) -> dict:
    """Send for `seconds`; CPU of `tree` from the first publish to `after_last` seconds after the last."""
    sender = StreamSender(rate)
    await sender.open(room)
    try:
        start = next_start(rate)
        stop = start + seconds
        marks: dict = {}

        async def mark_first() -> None:
            await asyncio.sleep(max(0.0, start - time.time() - 0.001))
            marks["cpu0"], marks["t0"] = tree.cpu(), time.time()
            marks["machine0"] = psutil.cpu_times()

        marker = asyncio.ensure_future(mark_first())
        await sender.run(start, stop, progress, label)
        await marker
        await asyncio.sleep(after_last)
        cpu1, t1, machine1 = tree.cpu(), time.time(), psutil.cpu_times()
        await sender.wait_for_replies(30.0, progress, label)
        busy = _busy(machine1) - _busy(marks["machine0"])
        return {"cpu_seconds": cpu1 - marks["cpu0"], "elapsed": t1 - marks["t0"], "peak_rss": tree.peak_rss(),
                "accepted": sender.accepted(), "sent": len(sender.intended),
                "machine_busy_cores": busy / (t1 - marks["t0"])}
    finally:
        sender.close()


def _busy(times) -> float:
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


async def measure(room, kind: str, tokens: list[str], n: int, rate: float, seconds: float, options: BenchOptions,
                  progress: Progress, label: str) -> dict:
    await room.wait_until_empty(timeout=60)
    with tempfile.TemporaryDirectory(prefix="chatload-asrun-") as workdir:
        if kind == "bare_picows":
            child = ClientChild(kind)
            await child.start({"endpoint": room.endpoint, "room": room.arn, "tokens": tokens,
                               "concurrency": options.connect_concurrency, "connect_timeout": 15.0,
                               "pids": {"server": room.pid}, "stamp": True, "read_buffer": READ_BUFFER_INIT})
            try:
                tree = Tree(child.pid)
                before = child.ready["rss"]
                connected = await child.connect(n, progress, label)
                await asyncio.sleep(SETTLE_S)
                stream = await _stream(room, tree, rate, seconds, after_last(options), progress, f"{label} {kind}")
                result = await child.drain(stream["accepted"] * n, options.drain_timeout, window=False)
                latencies = sorted(result.get("latency_us") or [])
                deliveries, p99 = result["totals"]["frames"], percentile(latencies, 0.99)
                p99 = p99 / 1000 if p99 is not None else None
                connections, connect_s = n, connected["seconds"]
            finally:
                await child.stop()
        else:
            client = LocustClient(kind, room, n, Path(workdir))
            try:
                tree = await client.start()
                before, connect_s, connections = await _wait_open(room, n, tree, 120 + n / 20, progress,
                                                                  f"{label} {kind}")
                await asyncio.sleep(SETTLE_S)
                stream = await _stream(room, tree, rate, seconds, after_last(options), progress, f"{label} {kind}")
                deliveries, p99 = await client.deliveries_and_p99(60 + connections / 100)
            finally:
                client.stop()
    expected = stream["accepted"] * connections
    cpu_share = stream["cpu_seconds"] / stream["elapsed"]
    return {
        "client": kind, "n": n, "connections_open": connections, "rate": rate, "seconds": seconds,
        "deliveries": deliveries, "deliveries_expected": expected,
        "cpu_seconds": stream["cpu_seconds"], "cpu_share": cpu_share,
        "cpu_us_per_delivery": stream["cpu_seconds"] / deliveries * 1e6 if deliveries else None,
        "rss_before_bytes": before, "peak_rss_bytes": stream["peak_rss"],
        "memory_per_connection_bytes": (stream["peak_rss"] - before) / connections,
        "delivery_p99_ms": p99, "connect_seconds": round(connect_s, 3),
        "other_cores": other_cores(stream["machine_busy_cores"], cpu_share),
        "messages": {"sent": stream["sent"], "accepted": stream["accepted"]},
    }


# -- the benchmark --------------------------------------------------------------------------------------


def after_last(options: BenchOptions) -> float:
    return quick_or(options, QUICK_AFTER_LAST_S, AFTER_LAST_S)


def workloads(options: BenchOptions) -> list[tuple[int, float]]:
    if options.sizes:
        rate = options.rate
        return [(n, rate or (20.0 if n <= 1000 else 1.0)) for n in options.sizes]
    return list(quick_or(options, QUICK_WORKLOADS, WORKLOADS))


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    loads = workloads(options)
    started = time.time()
    runs: list[dict] = []
    for n, rate in loads:
        seconds = options.seconds or quick_or(options, 2.0, max(DEFAULT_SECONDS, MIN_DELIVERIES / (n * rate)))
        for repeat in range(options.repeat):
            label = f"[asrun {n:,} × {rate:g} msg/s repeat {repeat + 1}/{options.repeat}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, 4 * n + 100), name=f"asrun-{n}") as room:
                tokens = room.tokens(n, "bare", progress, label)
                for kind in alternating(CLIENTS, repeat):
                    figures = uvloop.run(measure(room, kind, tokens if kind == "bare_picows" else [], n, rate,
                                                 seconds, options, progress, label))
                    figures["repeat"] = repeat + 1
                    runs.append(figures)
                    progress.note(f"{label} {kind}: {two_places(figures['cpu_us_per_delivery'])} µs CPU/delivery, "
                                  f"{figures['memory_per_connection_bytes'] / 1024:.1f} KiB/connection, "
                                  f"p99 {two_places(figures['delivery_p99_ms'])} ms, deliveries "
                                  f"{figures['deliveries']:,}/{figures['deliveries_expected']:,}")
    summary = summarise(runs, loads)
    passed = all(entry["verdict"] == "PASS" for entry in summary)
    document = bench_document(
        NAME, SUMMARY, started,
        {"workloads": [list(w) for w in loads], "repeat": options.repeat,
         "quick": bool(options.extra.get("quick")), "emulator_args": list(EMULATOR_ARGS), "web_ui": False,
         "pool_size": POOL_SIZE, "read_buffer_bytes": READ_BUFFER_INIT, "after_last_s": after_last(options),
         "cpu_measured": "the client's whole process tree: psutil user + system, first publish to "
                         f"{after_last(options):g} s after the last"},
        targets={"cpu_ratio": CPU_TARGET, "memory_ratio": MEMORY_TARGET, "pool_memory_bytes": POOL_MEMORY_TARGET},
        service=SERVICE, verdict="PASS" if passed else "SHORT", summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), passed)


def summarise(runs: list[dict], loads: list[tuple[int, float]]) -> list[dict]:
    entries = []
    for n, rate in loads:
        mine = [r for r in runs if r["rate"] == rate and r["client"] == "bare_picows" and r["n"] == n]
        repeats = sorted({r["repeat"] for r in mine})
        by = {kind: {r["repeat"]: r for r in runs if r["client"] == kind and r["rate"] == rate and r["n"] == n}
              for kind in CLIENTS}
        clients = {kind: {m: summarize([by[kind].get(k, {}).get(m) for k in repeats]) for m in METRICS}
                   for kind in CLIENTS}

        ratios = {kind: {"cpu": _ratio(by, repeats, kind, "cpu_us_per_delivery"),
                         "memory": _ratio(by, repeats, kind, "memory_per_connection_bytes")}
                  for kind in ("asrun", "asrun_pools")}
        checks = {
            "asrun cpu": (ratios["asrun"]["cpu"]["median"], CPU_TARGET),
            "asrun memory": (ratios["asrun"]["memory"]["median"], MEMORY_TARGET),
            "pools memory per connection": (clients["asrun_pools"]["memory_per_connection_bytes"]["median"],
                                            POOL_MEMORY_TARGET),
        }
        verdicts = {name: "PASS" if value is not None and value <= target else "SHORT"
                    for name, (value, target) in checks.items()}
        warnings = []
        for r in runs:
            if r["rate"] == rate and r["connections_open"] != r["n"]:
                warnings.append(f"{r['client']} repeat {r['repeat']}: {r['n'] - r['connections_open']:,} of "
                                f"{r['n']:,} connections never opened (measured on the {r['connections_open']:,} open)")
            if r["rate"] == rate and r["deliveries"] != r["deliveries_expected"]:
                warnings.append(f"{r['client']} repeat {r['repeat']}: {r['deliveries']:,} deliveries of "
                                f"{r['deliveries_expected']:,} owed")
        others = summarize([r["other_cores"] for r in runs if r["rate"] == rate])
        if others["median"] is not None and others["median"] >= 0.25:
            warnings.append(f"other processes used {others['median']:.2f} cores (median) during the windows: "
                            "the machine was not quiet, figures are disturbed")
        if len(repeats) < 3:
            warnings.append(f"only {len(repeats)} repeat(s): figures are indicative")
        entries.append({"n": n, "rate": rate, "clients": clients, "ratios": ratios, "verdicts": verdicts,
                        "verdict": "PASS" if all(v == "PASS" for v in verdicts.values()) else "SHORT",
                        "warnings": warnings})
    return entries


def _ratio(by: dict, repeats: list[int], kind: str, metric: str) -> dict:
    """`kind`'s figure over bare picows', repeat by repeat (both from the same emulator and room)."""
    values = []
    for k in repeats:
        a, b = by[kind].get(k, {}).get(metric), by["bare_picows"][k].get(metric)
        values.append(a / b if a is not None and b else None)
    return summarize(values)


def _kib(value: float | None) -> str:
    return "–" if value is None else f"{value / 1024:.1f} KiB"


def render(document: dict) -> str:
    o = document["options"]
    lines = [f"chatload bench asrun — {ON_ROOM}: `locust -f` as users run it (headless, web UI off) against bare picows "
             f"(read buffer {o['read_buffer_bytes']} B) on the same stream; CPU of each client's process tree "
             f"from the first publish to {o['after_last_s']:g} s after the last; median [min–max] of "
             f"{o['repeat']} repeat(s)", ""]
    rows = [("workload", "client", "CPU µs/delivery", "memory/connection", "delivery p99 ms", "connect s")]
    for entry in document["summary"]:
        for kind in CLIENTS:
            c = entry["clients"][kind]
            rows.append((f"{entry['n']:,} × {entry['rate']:g}/s", LABELS[kind],
                         cell(c["cpu_us_per_delivery"], two_places), cell(c["memory_per_connection_bytes"], _kib),
                         cell(c["delivery_p99_ms"], two_places), cell(c["connect_seconds"], two_places)))
    lines += table(rows)
    lines.append("")
    for entry in document["summary"]:
        r = entry["ratios"]
        lines.append(f"{entry['n']:,} × {entry['rate']:g}/s: as-run/bare picows CPU = {cell(r['asrun']['cpu'], two_places)}"
                     f" (target ≤ {CPU_TARGET}) {entry['verdicts']['asrun cpu']}; memory = "
                     f"{cell(r['asrun']['memory'], two_places)} (≤ {MEMORY_TARGET}) {entry['verdicts']['asrun memory']}; "
                     f"pools: CPU {cell(r['asrun_pools']['cpu'], two_places)}, memory "
                     f"{cell(entry['clients']['asrun_pools']['memory_per_connection_bytes'], _kib)} per connection "
                     f"(≤ 12 KiB) {entry['verdicts']['pools memory per connection']}")
        lines += warning_lines(entry["warnings"])
    return with_verdict(lines, document["verdict"])
