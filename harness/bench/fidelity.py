"""`chatload bench fidelity`: does chatload report the delivery latency a bare client measures?

Two receiving child processes in one room of one emulator: chatload (a `ChatRuntime` with N_h
sessions; its delivery histogram is what a run reports) and the bare picows client with N_b
connections that stamps `time.time_ns()` as it enters `on_ws_frame`, before parsing, minus the
intended send time in `Attributes["cl.t"]` — the same messages, the same definition, another
process. The baseline is picows, not websockets, because a websockets client can only stamp after
its queue and a task switch: against it chatload read ~0.9 ms *lower*, which said more about the
baseline than about chatload. Both now stamp at the earliest point a client can.

The emulator writes each message to the room's members in the order they joined, so a member's
place in that order adds up to a fan-out's duration to its latency. The two clients therefore join
interleaved — rounds of a few connections each, alternating which client goes first — so both see
the same spread of places.

Each phase: a warm-up, then a quiet moment in which every frame owed has arrived and both clients
forget their latencies, then the measured stream; afterwards each client must hold exactly
accepted messages × its connections samples.

- low load: 1 msg/s, 100 receivers each (15 s);
- high load: 80 % of the measured receive capacity: first a probe (chatload alone, a stream more
  than it can take) measures the frames/s it receives; then the room gets enough receivers that
  the emulator delivers 80 % of that at 100 msg/s, the bare client holding 3 % of them.

Figures: p50, p99, p99.9 of each, and the added latency harness − bare at p50 and p99.
Target: within ±200 µs of the bare client at p50 at low load (negative would mean chatload reports
less latency than a client that stamps as early as it can: as wrong as reporting more).
"""

from __future__ import annotations

import asyncio
import time

from ..metrics.histograms import LatencyHistogram
from .common import (
    BenchError,
    BenchOptions,
    BenchResult,
    Progress,
    bench_document,
    few_repeats_warnings,
    summarize,
)
from .emulator_fanout import EMULATOR_ARGS, MAX_ROOM_RATE
from .rig import (
    CLIENT_LABELS,
    CLIENTS,
    SETTLE_S,
    ClientChild,
    StreamSender,
    accounting,
    emulator_room,
    measured_stream,
    other_cores,
    others_warning,
    quick_or,
    quiet_phase,
    spread_warning,
    start_child,
    window_figures,
)
from .tables import cell, pct, si, table, two_places, warning_lines, with_verdict

NAME = "fidelity"
SUMMARY = "delivery latency chatload reports against a bare client timing the same messages (low and 80 % load)"

TARGET_ADDED_P50_US = 200  # either way: |harness − bare| at p50
BASELINE = "bare_picows"  # the rig's child that plays "bare" here (its results keep the key "bare")
PERCENTILES = (50, 99, 99.9)
LOW = {"rate": 1.0, "receivers": 100, "seconds": 15.0, "warmup": 2.0}
LOW_QUICK = {"rate": 2.0, "receivers": 20, "seconds": 3.0, "warmup": 1.0}
# The bare client gets few receivers at high load: enough samples for p99.9, little CPU taken from a
# machine that is already 80 % busy (on 2 cores a 10 % share cost it ~30 % of a core).
HIGH = {"rate": float(MAX_ROOM_RATE), "share": 0.8, "seconds": 4.0, "warmup": 2.0, "bare_share": 0.03}
HIGH_QUICK = {"rate": float(MAX_ROOM_RATE), "share": 0.8, "seconds": 1.0, "warmup": 0.5, "bare_share": 0.25}
PROBE = {"receivers": 2000, "seconds": 2.0, "warmup": 0.5}
PROBE_QUICK = {"receivers": 100, "seconds": 1.0, "warmup": 0.5}
ROUNDS = 100  # interleaving rounds when the clients join


async def interleaved_connect(harness: ClientChild, bare: ClientChild, n_h: int, n_b: int,
                              progress: Progress, label: str) -> None:
    rounds = max(1, min(ROUNDS, max(n_h, n_b)))
    for r in range(rounds):
        h = n_h * (r + 1) // rounds - n_h * r // rounds
        b = n_b * (r + 1) // rounds - n_b * r // rounds
        pairs = ((harness, h), (bare, b)) if r % 2 == 0 else ((bare, b), (harness, h))
        for child, k in pairs:
            if k:
                await child.connect(k, progress, f"{label} round {r + 1}/{rounds}")


# -- the capacity probe -----------------------------------------------------------------------------


async def probe_capacity(room, tokens: list[str], n: int, probe: dict, options: BenchOptions,
                         progress: Progress, label: str) -> dict:
    child = await start_child("harness", room, tokens, options)
    sender = StreamSender(MAX_ROOM_RATE)
    try:
        await child.connect(n, progress, label)
        await asyncio.sleep(SETTLE_S)
        await sender.open(room)
        stream = await measured_stream(room, [child], sender, warmup=probe["warmup"], seconds=probe["seconds"],
                                       options=options, progress=progress, label=label, truncate=True)
    finally:
        sender.close()
        await child.stop()
    figures = window_figures(stream.results[0])
    offered = MAX_ROOM_RATE * n
    figures.update({"n": n, "offered_frames_per_s": offered,
                    "other_cores": other_cores(figures["machine_busy_cores"], figures["cpu_share"],
                                               figures["server_cpu_share"], figures["sender_cpu_share"]),
                    "saturated": figures["frames_per_s"] is not None and figures["frames_per_s"] < 0.97 * offered,
                    "frames_accounting": accounting(stream.results[0])})
    return figures


# -- one phase --------------------------------------------------------------------------------------


async def measure_phase(room, phase: str, n_h: int, n_b: int, settings: dict, options: BenchOptions,
                        progress: Progress, label: str) -> dict:
    tokens = room.tokens(n_h + n_b, f"{phase}-receiver", progress, label)
    harness = await start_child("harness", room, tokens[:n_h], options, stamp=True)
    bare = await start_child(BASELINE, room, tokens[n_h:], options, stamp=True)
    sender = StreamSender(settings["rate"])
    children = [harness, bare]
    try:
        await interleaved_connect(harness, bare, n_h, n_b, progress, label)
        await asyncio.sleep(SETTLE_S)
        await sender.open(room)
        await quiet_phase(children, sender, seconds=settings["warmup"], options=options, progress=progress,
                          label=f"{label} warm-up")
        first_seq = len(sender.intended)
        stream = await measured_stream(room, children, sender, warmup=0.0, seconds=settings["seconds"],
                                       options=options, progress=progress, label=label)
    finally:
        sender.close()
        for child in children:
            await child.stop()
    h_result, b_result = stream.results
    accepted = sender.accepted(first_seq)
    harness_hist = LatencyHistogram.decode(h_result["delivery_hdr"])
    bare_hist = LatencyHistogram()
    for value in b_result["latency_us"]:
        bare_hist.record(value)
    h_p = harness_hist.percentiles(PERCENTILES)
    b_p = bare_hist.percentiles(PERCENTILES)
    h_window, b_window = window_figures(h_result), window_figures(b_result)
    return {
        "phase": phase,
        "rate": settings["rate"],
        "receivers": {"harness": n_h, "bare": n_b},
        "messages": {**sender.messages(), "accepted_measured": accepted},
        "samples": {"harness": harness_hist.count, "bare": bare_hist.count,
                    "expected_harness": accepted * n_h, "expected_bare": accepted * n_b},
        "latency_us": {
            "harness": {**{f"p{p:g}": h_p[p] for p in PERCENTILES}, "max": harness_hist.max, "min": harness_hist.min},
            "bare": {**{f"p{p:g}": b_p[p] for p in PERCENTILES}, "max": bare_hist.max, "min": bare_hist.min},
        },
        "added_p50_us": h_p[50] - b_p[50],
        "added_p99_us": h_p[99] - b_p[99],
        "added_p99_9_us": h_p[99.9] - b_p[99.9],
        "frames_per_s": (h_window["frames_per_s"] or 0) + (b_window["frames_per_s"] or 0),
        "harness_cpu_share": h_window["cpu_share"],
        "harness_cpu_us_per_frame": h_window["cpu_us_per_frame"],
        "bare_cpu_share": b_window["cpu_share"],
        "emulator_cpu_share": h_window["server_cpu_share"],
        "other_cores": other_cores(h_window["machine_busy_cores"], h_window["cpu_share"], b_window["cpu_share"],
                                   h_window["server_cpu_share"], h_window["sender_cpu_share"]),
        "harness_health": health_verdict(h_result.get("health") or {}),
        "frames_accounting": {"harness": accounting(h_result), "bare": accounting(b_result)},
        "harness_counters": {k: v for k, v in (h_result.get("counters") or {}).items()
                             if k.startswith(("protocol_errors", "foreign", "histogram_clamped"))},
        "bare_unreadable": b_result["totals"].get("unreadable", 0),
        "sender_lateness_ms": sender.lateness_ms(),
    }


def health_verdict(health: dict) -> dict:
    """What chatload's own health check (results.SATURATION) says about this window."""
    from ..results.run_results import SATURATION

    worst = {"loop_lag_max_us": health.get("loop_lag_max_us"), "hub_stall_max_us": health.get("hub_stall_max_us"),
             "cpu_percent": max(health.get("cpu_percent") or [0.0])}
    reasons = [f"{key} {value:g} > {SATURATION[key]:g}" for key, value in worst.items()
               if value is not None and value > SATURATION[key]]
    return {**worst, "saturated": bool(reasons), "reasons": reasons}


# -- the benchmark ----------------------------------------------------------------------------------


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    quick = bool(options.extra.get("quick"))
    low = dict(quick_or(options, LOW_QUICK, LOW))
    high = dict(quick_or(options, HIGH_QUICK, HIGH))
    probe = dict(quick_or(options, PROBE_QUICK, PROBE))
    if options.sizes:
        low["receivers"] = options.sizes[0]
    if options.seconds:
        low["seconds"] = high["seconds"] = options.seconds
    started = time.time()

    label = "[fidelity capacity probe]"
    progress.step(f"{label} starting the emulator")
    with emulator_room(max(20_000, probe["receivers"] + 100), name="fidelity-probe") as room:
        tokens = room.tokens(probe["receivers"], "probe", progress, label)
        capacity = uvloop.run(probe_capacity(room, tokens, probe["receivers"], probe, options, progress, label))
    if not capacity["frames_per_s"]:
        raise BenchError(f"{label}: no frames received in the probe window")
    progress.note(f"{label} chatload received {capacity['frames_per_s']:,.0f} frames/s at "
                  f"{pct(capacity['cpu_share'])} of a core (emulator at {pct(capacity['server_cpu_share'])}); "
                  + ("saturated" if capacity["saturated"] else "NOT saturated: a lower bound"))
    total = max(2, round(high["share"] * capacity["frames_per_s"] / high["rate"]))
    n_b_high = max(1, round(total * high["bare_share"]))
    n_h_high = max(1, total - n_b_high)
    phases = [("low", low["receivers"], low["receivers"], low), ("high", n_h_high, n_b_high, high)]

    runs: list[dict] = []
    for repeat in range(options.repeat):
        for phase, n_h, n_b, settings in phases:
            label = f"[fidelity {phase} load repeat {repeat + 1}/{options.repeat}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, n_h + n_b + 100), name=f"fidelity-{phase}") as room:
                figures = uvloop.run(measure_phase(room, phase, n_h, n_b, settings, options, progress, label))
            figures["repeat"] = repeat + 1
            runs.append(figures)
            lat = figures["latency_us"]
            progress.note(f"{label} p50 harness {lat['harness']['p50']} µs, bare {lat['bare']['p50']} µs "
                          f"(added {figures['added_p50_us']:+d}); p99 {lat['harness']['p99']} / {lat['bare']['p99']} µs "
                          f"(added {figures['added_p99_us']:+d}); samples {figures['samples']['harness']:,}/"
                          f"{figures['samples']['expected_harness']:,} and {figures['samples']['bare']:,}/"
                          f"{figures['samples']['expected_bare']:,}")
    summary = summarise(runs, options.repeat)
    verdict = summary["low"]["verdict"]
    document = bench_document(
        NAME, SUMMARY, started,
        {"low": low, "high": high, "probe": probe, "repeat": options.repeat, "quick": quick,
         "emulator_args": list(EMULATOR_ARGS), "connect_concurrency": options.connect_concurrency},
        capacity=capacity,
        high_load={"receivers_harness": n_h_high, "receivers_bare": n_b_high,
                   "offered_frames_per_s": (n_h_high + n_b_high) * high["rate"],
                   "share_of_capacity": (n_h_high + n_b_high) * high["rate"] / capacity["frames_per_s"]},
        baseline=CLIENT_LABELS[BASELINE], target_added_p50_us_low_load=TARGET_ADDED_P50_US, verdict=verdict,
        summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), verdict == "PASS")


STATS = ("added_p50_us", "added_p99_us", "added_p99_9_us", "frames_per_s", "harness_cpu_share", "harness_cpu_us_per_frame",
         "bare_cpu_share", "emulator_cpu_share", "other_cores")


def summarise(runs: list[dict], repeats: int) -> dict:
    out = {}
    for phase in ("low", "high"):
        phase_runs = [r for r in runs if r["phase"] == phase]
        entry = {name: summarize([r[name] for r in phase_runs]) for name in STATS}
        for kind in CLIENTS:
            for key in ("p50", "p99", "p99.9", "max"):
                entry[f"{kind}_{key}_us"] = summarize([r["latency_us"][kind][key] for r in phase_runs])
        warnings = []
        for r in phase_runs:
            s = r["samples"]
            if s["harness"] != s["expected_harness"] or s["bare"] != s["expected_bare"]:
                warnings.append(f"repeat {r['repeat']}: samples harness {s['harness']:,}/{s['expected_harness']:,}, "
                                f"bare {s['bare']:,}/{s['expected_bare']:,} (expected = accepted × receivers)")
        if phase == "low":
            added = entry["added_p50_us"]
            verdict = ("PASS" if added["median"] is not None and abs(added["median"]) <= TARGET_ADDED_P50_US
                       else "SHORT")
            within = [abs(v) <= TARGET_ADDED_P50_US for v in added["values"] if v is not None]
            reliable = bool(within) and (all(within) or not any(within))
            if not reliable:
                warnings.append(f"repeats fall on both sides of the ±{TARGET_ADDED_P50_US} µs target: the verdict "
                                "is unreliable")
            entry["verdict"], entry["reliable"] = verdict, reliable
        else:
            entry["verdict"], entry["reliable"] = None, True
        for kind in CLIENTS:
            w = spread_warning(f"{kind} p50", entry[f"{kind}_p50_us"])
            if w:
                warnings.append(w)
        if others_warning(entry["other_cores"]):
            warnings.append(others_warning(entry["other_cores"]))
        warnings += few_repeats_warnings(repeats)
        entry["warnings"] = warnings
        entry["receivers"] = phase_runs[0]["receivers"] if phase_runs else None
        entry["rate"] = phase_runs[0]["rate"] if phase_runs else None
        out[phase] = entry
    return out


def _us(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.0f}"


def render(document: dict) -> str:
    o = document["options"]
    cap = document["capacity"]
    hl = document["high_load"]
    lines = [
        "chatload bench fidelity — delivery latency (intended send → arrival) reported by chatload vs a bare "
        f"websockets client timing the same messages; median [min–max] of {o['repeat']} repeat(s), µs",
        f"capacity probe: chatload alone received {cap['frames_per_s']:,.0f} frames/s "
        f"({cap['n']:,} receivers × {MAX_ROOM_RATE} msg/s offered; chatload at {pct(cap['cpu_share'])} of a core, "
        f"emulator at {pct(cap['server_cpu_share'])}, other processes {cell(summarize([cap['other_cores']]), two_places)} "
        "cores; " + ("saturated" if cap["saturated"] else "not saturated: capacity is a lower bound") + ")",
        f"high load = {hl['share_of_capacity']:.0%} of it: {hl['receivers_harness']:,} chatload + "
        f"{hl['receivers_bare']:,} bare receivers × {o['high']['rate']:g} msg/s",
        "",
    ]
    rows = [("load", "receivers", "client", "p50", "p99", "p99.9", "max", "CPU")]
    for phase in ("low", "high"):
        e = document["summary"][phase]
        label = f"{phase} ({e['rate']:g} msg/s)" if e["rate"] is not None else phase
        for kind in CLIENTS:
            rows.append((label, f"{e['receivers'][kind]:,}" if e["receivers"] else "–",
                         CLIENT_LABELS[BASELINE] + " (baseline)" if kind == "bare" else kind,
                         cell(e[f"{kind}_p50_us"], _us), cell(e[f"{kind}_p99_us"], _us),
                         cell(e[f"{kind}_p99.9_us"], _us), cell(e[f"{kind}_max_us"], _us),
                         cell(e[f"{kind}_cpu_share"], pct)))
        rows.append((label, "", "added (harness − bare)", cell(e["added_p50_us"], _signed),
                     cell(e["added_p99_us"], _signed), cell(e["added_p99_9_us"], _signed), "", ""))
    lines += table(rows)
    lines.append("")
    low = document["summary"]["low"]
    lines.append(f"low load: added latency at p50 = {cell(low['added_p50_us'], _signed)} µs  (target within ±"
                 f"{TARGET_ADDED_P50_US} µs)  {low['verdict']}" + ("" if low["reliable"] else "  (UNRELIABLE)"))
    high = document["summary"]["high"]
    lines.append(f"high load: added latency at p50 = {cell(high['added_p50_us'], _signed)} µs, at p99 = "
                 f"{cell(high['added_p99_us'], _signed)} µs  (no target; {cell(high['frames_per_s'], si)} "
                 f"frames/s delivered, emulator at {cell(high['emulator_cpu_share'], pct)} of a core, other "
                 f"processes {cell(high['other_cores'], two_places)} cores; chatload at "
                 f"{cell(high['harness_cpu_share'], pct)} of a core, "
                 f"{cell(high['harness_cpu_us_per_frame'], lambda v: f'{v:.1f}')} µs CPU/frame against "
                 f"{cell(summarize([cap['cpu_us_per_frame']]), lambda v: f'{v:.1f}')} in the probe)")
    for phase in ("low", "high"):
        flagged = [r for r in document["runs"] if r["phase"] == phase and r["harness_health"]["saturated"]]
        if flagged:
            lines.append(f"    {phase} load: chatload's own health check flagged {len(flagged)} of "
                         f"{sum(1 for r in document['runs'] if r['phase'] == phase)} run(s) as saturated "
                         f"({'; '.join(flagged[0]['harness_health']['reasons'])}): its report would say so")
    for phase in ("low", "high"):
        lines += warning_lines(document["summary"][phase]["warnings"], f"warning ({phase})")
    return with_verdict(lines, document["verdict"])
