"""`chatload bench scaleout`: deliveries/s with one chatload process and with two splitting the
connections, at a load meant to saturate one process.

As with Locust's `--processes 2`, each process is a separate `ChatRuntime` (its own loop thread and
GIL). For each repeat, one emulator and one room, N receivers, 100 msg/s (N × 100 frames/s offered);
in alternating order: one harness child process with N sessions, then two with N/2 each. This
process sends; when the emulator falls behind it stops sending once the backlog covers the window
(see `StreamSender.run`). Every child snapshots its frame count and CPU at the same wall-clock
instants, so the processes' frames add up over one window.

Figure: total deliveries/s with 2 processes ÷ with 1. Target ≥ 1.6 *when the machine has the
cores*: the emulator, the sender and each harness process each need a core, so a verdict needs at
least processes + 1 cores (and the one process must have saturated, or there was nothing to scale).
Otherwise the figures are printed with "no verdict".
"""

from __future__ import annotations

import asyncio
import time

from ..common import (
    BenchOptions,
    BenchResult,
    Progress,
    alternating,
    bench_document,
    runs_by,
    summarize,
    summarize_metrics,
)
from ..tables import CPU_NOTE, cell, frames_line, pct, si, table, two_places, warning_lines, with_verdict
from .rig import (
    EMULATOR_ARGS,
    MAX_ROOM_RATE,
    ON_ROOM,
    SATURATED,
    SERVICE,
    SETTLE_S,
    StreamSender,
    accounting,
    cores,
    emulator_room,
    measured_stream,
    other_cores,
    others_warning,
    quick_or,
    ratio_verdict,
    spread_warning,
    start_child,
    window_figures,
)

NAME = "scaleout"
SUMMARY = ("deliveries/s with 1 and 2 chatload processes splitting the connections, at a load that saturates one, "
           f"{ON_ROOM}")

DEFAULT_SIZES = (2000,)
QUICK_SIZES = (100,)
DEFAULT_SECONDS = 3.0
DEFAULT_WARMUP = 1.0
PROCESS_COUNTS = (1, 2)
TARGET_RATIO = 1.6
METRICS = ("frames_per_s", "harness_cpu_share_total", "harness_cpu_share_max", "server_cpu_share",
           "cpu_us_per_frame", "delivered_fraction", "other_cores")


async def measure(room, tokens: list[str], n: int, processes: int, s: dict, options: BenchOptions,
                  progress: Progress, label: str) -> dict:
    await room.wait_until_empty()
    shares = [n * (i + 1) // processes - n * i // processes for i in range(processes)]
    children = []
    sender = StreamSender(s["rate"])
    try:
        offset = 0
        for share in shares:
            children.append(await start_child("harness", room, tokens[offset:offset + share], options))
            offset += share
        for i, (child, share) in enumerate(zip(children, shares, strict=True)):
            await child.connect(share, progress, f"{label} process {i + 1}")
        await asyncio.sleep(SETTLE_S)
        await sender.open(room)
        stream = await measured_stream(room, children, sender, warmup=s["warmup"], seconds=s["seconds"],
                                       options=options, progress=progress, label=label, truncate=True)
    finally:
        sender.close()
        for child in children:
            await child.stop()
    per_process = [window_figures(result) for result in stream.results]
    frames = sum(p["frames"] for p in per_process)
    elapsed = max(p["window_seconds"] for p in per_process)
    cpu = sum(p["cpu_seconds"] or 0.0 for p in per_process)
    offered = s["rate"] * n
    accounts = [accounting(result) for result in stream.results]
    return {
        "processes": processes,
        "n": n,
        "connections_per_process": shares,
        "frames": frames,
        "frames_per_s": frames / elapsed if elapsed else None,
        "delivered_fraction": frames / elapsed / offered if elapsed and offered else None,
        "harness_cpu_share_total": sum(p["cpu_share"] or 0.0 for p in per_process),
        "harness_cpu_share_max": max(p["cpu_share"] or 0.0 for p in per_process),
        "cpu_us_per_frame": cpu / frames * 1e6 if frames else None,
        "server_cpu_share": per_process[0]["server_cpu_share"],
        "other_cores": other_cores(per_process[0]["machine_busy_cores"], per_process[0]["server_cpu_share"],
                                   per_process[0]["sender_cpu_share"], *(p["cpu_share"] for p in per_process)),
        "per_process": per_process,
        "frames_accounting": {"expected": sum(a["expected"] for a in accounts),
                              "received": sum(a["received"] for a in accounts),
                              "missing": sum(a["missing"] for a in accounts)},
        "messages": sender.messages(),
        "sending_truncated_s": round(sender.truncated_at - stream.window_start, 3) if sender.truncated_at else None,
    }


def machine_verdict(max_processes: int) -> tuple[bool, str]:
    have = cores()
    need = max_processes + 1
    if have >= need:
        return True, f"{have} cores ≥ {need} (processes + 1 for the emulator and sender)"
    return False, f"{have} cores < {need} needed (processes + 1 for the emulator and sender)"


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    sizes = list(options.sizes or quick_or(options, QUICK_SIZES, DEFAULT_SIZES))
    s = {"rate": options.rate or MAX_ROOM_RATE,
         "seconds": options.seconds or quick_or(options, 1.0, DEFAULT_SECONDS),
         "warmup": options.warmup if options.warmup is not None else quick_or(options, 0.5, DEFAULT_WARMUP)}
    started = time.time()
    runs: list[dict] = []
    for n in sizes:
        for repeat in range(options.repeat):
            order = alternating(PROCESS_COUNTS, repeat)
            label = f"[scaleout N={n} repeat {repeat + 1}/{options.repeat}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, 2 * n + 100), name=f"scaleout-{n}") as room:
                tokens = room.tokens(2 * n, "receiver", progress, label)
                for i, processes in enumerate(order):
                    figures = uvloop.run(measure(room, tokens[i * n:(i + 1) * n], n, processes, s, options,
                                                 progress, f"{label} {processes} process(es)"))
                    figures["repeat"] = repeat + 1
                    runs.append(figures)
                    progress.note(f"{label} {processes} process(es): {figures['frames_per_s'] or 0:,.0f} deliveries/s, "
                                  f"harness CPU {pct(figures['harness_cpu_share_total'])} of a core in all, emulator "
                                  f"{pct(figures['server_cpu_share'])}; frames {figures['frames_accounting']['received']:,}/"
                                  f"{figures['frames_accounting']['expected']:,}")
    summary = summarise(runs, sizes, options.repeat)
    decided = [entry["verdict"] for entry in summary if entry["verdict"] in ("PASS", "SHORT")]
    passed = None if not decided else all(v == "PASS" for v in decided)
    document = bench_document(
        NAME, SUMMARY, started,
        {"sizes": sizes, **s, "repeat": options.repeat, "quick": bool(options.extra.get("quick")),
         "process_counts": list(PROCESS_COUNTS), "emulator_args": list(EMULATOR_ARGS)},
        target_ratio=TARGET_RATIO, service=SERVICE, verdict="PASS" if passed else "SHORT" if passed is False else "no verdict",
        summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), passed)


def summarise(runs: list[dict], sizes: list[int], repeats: int) -> list[dict]:
    has_cores, cores_note = machine_verdict(max(PROCESS_COUNTS))
    entries = []
    for n in sizes:
        by = runs_by(runs, n, "processes", PROCESS_COUNTS)
        configs = {p: summarize_metrics(rs, METRICS) for p, rs in by.items()}
        ratios = [two["frames_per_s"] / one["frames_per_s"] if one["frames_per_s"] and two["frames_per_s"] else None
                  for one, two in zip(by[1], by[2], strict=False)]
        noisy = [w for w in (spread_warning(f"{p} process(es) deliveries/s", configs[p]["frames_per_s"])
                             for p in PROCESS_COUNTS) if w]
        others = others_warning(summarize([r["other_cores"] for p in PROCESS_COUNTS for r in by[p]]))
        if others:
            noisy.append(others)
        judged = ratio_verdict(ratios, TARGET_RATIO, higher_is_better=True, repeats=repeats, noisy_inputs=noisy)
        one_saturated = (configs[1]["harness_cpu_share_max"]["median"] or 0.0) >= SATURATED
        reasons = []
        if not has_cores:
            reasons.append(f"machine too small: {cores_note}")
        if not one_saturated:
            reasons.append(f"one process did not saturate (median {pct(configs[1]['harness_cpu_share_max']['median'])} "
                           "of a core): the load, not the process, set the pace")
        if reasons:
            judged["verdict"] = "no verdict"
            judged["no_verdict_reasons"] = reasons
            # remarks about how firm a PASS/SHORT would be make no sense without one
            judged["warnings"] = [w for w in judged["warnings"]
                                  if not any(k in w for k in ("verdict stands", "verdict is unreliable", "both sides"))]
        missing = sum(r["frames_accounting"]["missing"] for p in PROCESS_COUNTS for r in by[p])
        if missing:
            judged["warnings"].append(f"{missing:,} expected frames never arrived")
        entries.append({"n": n, "configs": {str(p): c for p, c in configs.items()}, **judged,
                        "has_cores": has_cores, "cores_note": cores_note, "one_process_saturated": one_saturated,
                        "frames_received": sum(r["frames_accounting"]["received"] for p in PROCESS_COUNTS for r in by[p]),
                        "frames_expected": sum(r["frames_accounting"]["expected"] for p in PROCESS_COUNTS for r in by[p])})
    return entries


def render(document: dict) -> str:
    o = document["options"]
    lines = [
        f"chatload bench scaleout — {ON_ROOM} at {o['rate']:g} msg/s, {o['seconds']:g} s window after "
        f"{o['warmup']:g} s warm-up; harness CPU summed over its processes; median [min–max] of {o['repeat']} repeat(s)",
        CPU_NOTE,
        "",
    ]
    rows = [("N", "processes", "deliveries/s", "delivered/offered", "harness CPU (sum)", "busiest process",
             "CPU µs/frame", "emulator CPU", "other load")]
    for entry in document["summary"]:
        for p in (str(p) for p in o["process_counts"]):
            c = entry["configs"][p]
            rows.append((f"{entry['n']:,}", p + (" (baseline)" if p == "1" else ""), cell(c["frames_per_s"], si),
                         cell(c["delivered_fraction"], pct), cell(c["harness_cpu_share_total"], pct),
                         cell(c["harness_cpu_share_max"], pct),
                         cell(c["cpu_us_per_frame"], two_places), cell(c["server_cpu_share"], pct),
                         cell(c["other_cores"], two_places)))
    lines += table(rows)
    lines.append("")
    for entry in document["summary"]:
        lines.append(f"N={entry['n']:,}: deliveries/s 2 processes ÷ 1 = {cell(entry['ratio'], two_places)}"
                     f"  (target ≥ {TARGET_RATIO} when the machine has the cores)  {entry['verdict']}"
                     + ("" if entry["reliable"] or entry["verdict"] == "no verdict" else "  (UNRELIABLE)"))
        lines += warning_lines(entry.get("no_verdict_reasons", ()), "no verdict")
        lines.append(f"    {frames_line(entry['frames_received'], entry['frames_expected'])}")
        lines += warning_lines(entry["warnings"])
    return with_verdict(lines, document["verdict"])
