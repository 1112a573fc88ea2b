"""`chatload bench hubstall`: how long the gevent hub (Locust's users) stalls while the loop thread
receives a heavy stream.

Locust's users are greenlets on the gevent hub; chatload's sockets are on a uvloop thread in the same
process. Both need the GIL, so a loop thread busy with deliveries can keep the hub — every user's
tasks, Locust's stats and the runtime's own callbacks — waiting. This measures that wait.

For each repeat, one emulator and one room, and a chatload child process (`ChatRuntime`, N sessions,
a greenlet probe that sleeps 10 ms and records how late every wake-up is, with its wall-clock time —
the runtime's `HubStallProbe`, keeping every sample):

1. baseline: the connections open and idle, no messages, for a window;
2. loaded: this process sends 100 msg/s into the room (200 connections: 20,000 deliveries/s) through
   a warm-up and the measured window.

Figures per window: the hub's longest stall (the probe's maximum lateness), its p99, how many
wake-ups were over 5 ms (CPython's default GIL switch interval; the runtime sets its own, shown in
the table's title), and the runtime's own `hub_stall_max_us`, loop lag and GC pause as its health
report shows them. Target: longest stall ≤ 20 ms
under load; the idle figure is the baseline and the ratio loaded/idle is shown.
"""

from __future__ import annotations

import asyncio
import time

from ..common import (
    BenchOptions,
    BenchResult,
    Progress,
    bench_document,
    few_repeats_warnings,
    runs_by,
    summarize,
    summarize_metrics,
)
from ..tables import cell, frames_line, pct, si, table, two_places, warning_lines, with_verdict
from .rig import (
    EMULATOR_ARGS,
    MAX_ROOM_RATE,
    ON_ROOM,
    SERVICE,
    SETTLE_S,
    StreamSender,
    accounting,
    emulator_room,
    measured_stream,
    other_cores,
    others_warning,
    quick_or,
    spread_warning,
    start_child,
    window_figures,
)

NAME = "hubstall"
SUMMARY = f"the gevent hub's longest stall while the loop thread receives 20,000 deliveries/s {ON_ROOM}"

DEFAULT_SIZES = (200,)
QUICK_SIZES = (50,)
DEFAULT_SECONDS = 8.0
DEFAULT_WARMUP = 1.0
IDLE_SECONDS = 3.0
TARGET_MAX_STALL_MS = 20.0
METRICS = ("max_stall_ms", "p99_stall_ms", "wakes_over_5ms", "runtime_hub_stall_max_ms", "loop_lag_max_ms",
           "gc_pause_max_ms", "frames_per_s", "cpu_share", "server_cpu_share", "other_cores")


def window_run(result: dict, condition: str) -> dict:
    hub = result.get("hub") or {}
    health = result.get("health") or {}
    figures = window_figures(result)
    runtime_stall = health.get("hub_stall_max_us")
    lag = health.get("loop_lag_max_us")
    gc_pause = health.get("gc_pause_max_us")
    return {
        "condition": condition,
        "max_stall_ms": hub.get("max_ms"),
        "p99_stall_ms": hub.get("p99_ms"),
        "p50_stall_ms": hub.get("p50_ms"),
        "wakes": hub.get("wakes", 0),
        "wakes_over_5ms": hub.get("over_5ms"),
        "runtime_hub_stall_max_ms": runtime_stall / 1e3 if runtime_stall is not None else None,
        "loop_lag_max_ms": lag / 1e3 if lag is not None else None,
        "gc_pause_max_ms": gc_pause / 1e3 if gc_pause is not None else None,
        "frames_per_s": figures["frames_per_s"],
        "cpu_share": figures["cpu_share"],
        "server_cpu_share": figures["server_cpu_share"],
        "other_cores": other_cores(figures["machine_busy_cores"], figures["cpu_share"], figures["server_cpu_share"],
                                   figures["sender_cpu_share"]),
        "window_seconds": figures["window_seconds"],
    }


async def measure(room, tokens: list[str], n: int, s: dict, options: BenchOptions, progress: Progress,
                  label: str) -> list[dict]:
    child = await start_child("harness", room, tokens, options, hub_probe=True)
    s["gil_switch_interval_s"] = child.ready.get("switch_interval_s")
    sender = StreamSender(s["rate"])
    try:
        await child.connect(n, progress, label)
        await asyncio.sleep(SETTLE_S)
        start = time.time() + 0.2
        await child.send({"cmd": "window", "start": start, "end": start + s["idle_seconds"]})
        progress.update(f"{label}: idle baseline, {s['idle_seconds']:g} s")
        idle = await child.drain(0, s["idle_seconds"] + 10)
        await sender.open(room)
        stream = await measured_stream(room, [child], sender, warmup=s["warmup"], seconds=s["seconds"],
                                       options=options, progress=progress, label=label)
    finally:
        sender.close()
        await child.stop()
    loaded = window_run(stream.results[0], "loaded")
    loaded["frames_accounting"] = accounting(stream.results[0])
    loaded["messages"] = sender.messages()
    loaded["offered_frames_per_s"] = s["rate"] * n
    return [window_run(idle, "idle"), loaded]


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    sizes = list(options.sizes or quick_or(options, QUICK_SIZES, DEFAULT_SIZES))
    s = {"rate": options.rate or MAX_ROOM_RATE,
         "seconds": options.seconds or quick_or(options, 2.0, DEFAULT_SECONDS),
         "warmup": options.warmup if options.warmup is not None else quick_or(options, 0.5, DEFAULT_WARMUP),
         "idle_seconds": quick_or(options, 1.0, IDLE_SECONDS)}
    started = time.time()
    runs: list[dict] = []
    for n in sizes:
        for repeat in range(options.repeat):
            label = f"[hubstall N={n} repeat {repeat + 1}/{options.repeat}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, n + 100), name=f"hubstall-{n}") as room:
                tokens = room.tokens(n, "receiver", progress, label)
                pair = uvloop.run(measure(room, tokens, n, s, options, progress, label))
            for figures in pair:
                figures.update({"n": n, "repeat": repeat + 1})
                runs.append(figures)
            idle, loaded = pair
            progress.note(f"{label} hub stall max {_ms(loaded['max_stall_ms'])} loaded "
                          f"({loaded['frames_per_s'] or 0:,.0f} deliveries/s, loop thread's process at "
                          f"{pct(loaded['cpu_share'])}), {_ms(idle['max_stall_ms'])} idle")
    summary = summarise(runs, sizes, options.repeat)
    passed = all(entry["verdict"] == "PASS" for entry in summary)
    document = bench_document(
        NAME, SUMMARY, started,
        {"sizes": sizes, **s, "repeat": options.repeat, "quick": bool(options.extra.get("quick")),
         "emulator_args": list(EMULATOR_ARGS)},
        target_max_stall_ms=TARGET_MAX_STALL_MS, service=SERVICE, verdict="PASS" if passed else "SHORT", summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), passed)


def summarise(runs: list[dict], sizes: list[int], repeats: int) -> list[dict]:
    entries = []
    for n in sizes:
        by = runs_by(runs, n, "condition", ("idle", "loaded"))
        conditions = {c: summarize_metrics(rs, METRICS) for c, rs in by.items()}
        ratio = summarize([lo["max_stall_ms"] / i["max_stall_ms"] if lo["max_stall_ms"] and i["max_stall_ms"] else None
                           for i, lo in zip(by["idle"], by["loaded"], strict=False)])
        worst = conditions["loaded"]["max_stall_ms"]
        verdict = "PASS" if worst["median"] is not None and worst["median"] <= TARGET_MAX_STALL_MS else "SHORT"
        values = [v for v in worst["values"] if v is not None]
        reliable = bool(values) and (max(values) <= TARGET_MAX_STALL_MS or min(values) > TARGET_MAX_STALL_MS)
        warnings = [w for w in (spread_warning("loaded max stall", worst),
                                others_warning(conditions["loaded"]["other_cores"])) if w]
        if not reliable:
            warnings.append(f"repeats fall on both sides of the {TARGET_MAX_STALL_MS:g} ms target: the verdict is "
                            "unreliable")
        missing = sum(r["frames_accounting"]["missing"] for r in by["loaded"])
        if missing:
            warnings.append(f"{missing:,} expected frames never arrived")
        warnings += few_repeats_warnings(repeats)
        entries.append({"n": n, "conditions": conditions, "ratio": ratio, "verdict": verdict, "reliable": reliable,
                        "worst_ms": max(values, default=None), "warnings": warnings,
                        "frames_received": sum(r["frames_accounting"]["received"] for r in by["loaded"]),
                        "frames_expected": sum(r["frames_accounting"]["expected"] for r in by["loaded"])})
    return entries


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def render(document: dict) -> str:
    o = document["options"]
    lines = [
        f"chatload bench hubstall — {ON_ROOM}: a greenlet sleeping 10 ms, how late it wakes; {o['seconds']:g} s loaded window "
        f"after {o['warmup']:g} s warm-up, {o['idle_seconds']:g} s idle baseline; median [min–max] of "
        f"{o['repeat']} repeat(s); GIL switch interval in the chatload process: "
        + (f"{o['gil_switch_interval_s'] * 1e3:g} ms" if o.get("gil_switch_interval_s") else "–"),
        "",
    ]
    rows = [("N", "condition", "deliveries/s", "max stall", "p99 stall", "wakes > 5 ms", "runtime's probe max",
             "loop lag max", "GC pause max", "process CPU", "other load")]
    for entry in document["summary"]:
        for condition in ("idle", "loaded"):
            c = entry["conditions"][condition]
            rows.append((str(entry["n"]), condition + (" (baseline)" if condition == "idle" else ""),
                         cell(c["frames_per_s"], si), cell(c["max_stall_ms"], _ms), cell(c["p99_stall_ms"], _ms),
                         cell(c["wakes_over_5ms"], lambda v: f"{v:.0f}"), cell(c["runtime_hub_stall_max_ms"], _ms),
                         cell(c["loop_lag_max_ms"], _ms), cell(c["gc_pause_max_ms"], _ms), cell(c["cpu_share"], pct),
                         cell(c["other_cores"], two_places)))
    lines += table(rows)
    lines.append("")
    for entry in document["summary"]:
        worst = entry["conditions"]["loaded"]["max_stall_ms"]
        lines.append(f"N={entry['n']}: longest hub stall under load = {cell(worst, _ms)}  (target ≤ "
                     f"{TARGET_MAX_STALL_MS:g} ms; loaded/idle = {cell(entry['ratio'], lambda v: f'{v:.1f}')})  "
                     f"{entry['verdict']}" + ("" if entry["reliable"] else "  (UNRELIABLE)"))
        lines.append(f"    {frames_line(entry['frames_received'], entry['frames_expected'])}")
        lines += warning_lines(entry["warnings"])
    return with_verdict(lines, document["verdict"])
