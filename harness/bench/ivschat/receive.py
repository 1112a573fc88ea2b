"""`chatload bench receive`: CPU per delivered frame of chatload's receive path against bare
picows and bare websockets clients, on the same emulator stream.

For each size N and each repeat, one emulator and one room (100 msg/s, token bucket); then, one
after the other (the order reversed every other repeat), each client as a child process of its own:

- harness: a `ChatRuntime` (gevent-patched process, uvloop thread) with N sessions as N Locust
  users (`ViewerUser`, spawned by Locust's runner), on chatload's default transport (`--transport`
  picks another), every frame going through the full receive path (stamp, the transport's frame
  parser, codec, ledger, HDR);
- bare_picows: N `picows.ws_connect` connections whose `on_ws_frame` does `orjson.loads`;
- bare (websockets): N `websockets.asyncio.client.connect` connections, one `async for message in
  ws: orjson.loads(message)` task each (on uvloop too).

This process sends open-loop at the room's rate through a warm-up and the measured window; when the
emulator falls behind (5,000 receivers × 100 msg/s is more than one emulator core fans out), it
stops sending once the emulator's backlog covers the window, so the receivers still get a full
stream through the window without minutes of drain afterwards. At the window's two instants a
sampler thread in the receiving child reads its frame count and its own CPU time (user + system,
psutil, the whole process: every thread). CPU µs per frame = CPU / frames over the window.
Afterwards every client must have received exactly accepted messages × N frames.

Ratios harness/bare picows and harness/bare websockets per repeat (all measured within minutes on
the same emulator); the verdict is on harness/bare picows, target ≤ 1.0 (issue 15: chatload with
full accounting costs no more per delivery than a bare picows client). A client that saturates its core reads more frames per wake-up and so pays less per
frame: the table shows each client's CPU share and delivered fraction so that is visible.
"""

from __future__ import annotations

import asyncio
import time

from ..common import (
    BenchError,
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
    CLIENT_LABELS,
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
    harness_transport,
    measured_stream,
    other_cores,
    others_warning,
    quick_or,
    ratio_verdict,
    spread_warning,
    start_child,
    window_figures,
)

NAME = "receive"
SUMMARY = ("chatload's receive-path CPU per frame against bare picows and websockets clients, same stream, "
           f"{ON_ROOM}")
CLIENTS = ("harness", "bare_picows", "bare")
BASELINES = ("bare_picows", "bare")  # the first one carries the verdict

DEFAULT_SIZES = (1000, 5000)
QUICK_SIZES = (50,)
DEFAULT_SECONDS = 4.0
DEFAULT_WARMUP = 1.0
TARGET_RATIO = 1.0
TLS_TARGET_RATIO = 1.1  # issue 20: over wss://, against bare picows over wss://


def target_ratio(tls: bool) -> float:
    return TLS_TARGET_RATIO if tls else TARGET_RATIO
METRICS = ("frames_per_s", "cpu_us_per_frame", "system_us_per_frame", "cpu_share", "server_cpu_share",
           "delivered_fraction", "cpu_wait_share", "other_cores")


def settings(options: BenchOptions) -> dict:
    return {
        "sizes": list(options.sizes or quick_or(options, QUICK_SIZES, DEFAULT_SIZES)),
        "seconds": options.seconds or quick_or(options, 1.0, DEFAULT_SECONDS),
        "warmup": options.warmup if options.warmup is not None else quick_or(options, 0.5, DEFAULT_WARMUP),
        "rate": options.rate or MAX_ROOM_RATE,
        "repeat": options.repeat,
    }


async def measure(room, kind: str, tokens: list[str], n: int, s: dict, options: BenchOptions,
                  progress: Progress, label: str) -> dict:
    await room.wait_until_empty()
    progress.update(f"{label}: starting the {kind} client")
    child = await start_child(kind, room, tokens, options, locust_users=True)
    sender = StreamSender(s["rate"])
    try:
        connected = await child.connect(n, progress, label)
        await asyncio.sleep(SETTLE_S)
        await sender.open(room)
        stream = await measured_stream(room, [child], sender, warmup=s["warmup"], seconds=s["seconds"],
                                       options=options, progress=progress, label=f"{label} {kind}", truncate=True)
    finally:
        sender.close()
        await child.stop()
    (result,) = stream.results
    figures = window_figures(result)
    offered = s["rate"] * n  # what the room carries when the emulator keeps up
    figures.update({
        "client": kind,
        "n": n,
        "connect_seconds": connected["seconds"],
        "offered_frames_per_s": offered,
        "delivered_fraction": figures["frames_per_s"] / offered if offered and figures["frames_per_s"] else None,
        "frames_accounting": accounting(result),
        "messages": sender.messages(),
        "sender_lateness_ms": sender.lateness_ms(),
        "sending_truncated_s": round(sender.truncated_at - stream.window_start, 3) if sender.truncated_at else None,
        "client_max_loop_lag_ms": figures.pop("max_loop_lag_ms"),
        "other_cores": other_cores(figures["machine_busy_cores"], figures["cpu_share"], figures["server_cpu_share"],
                                   figures["sender_cpu_share"]),
    })
    figures["limit"], figures["limited_by"] = diagnose(figures)
    return figures


def diagnose(run: dict) -> tuple[str, str]:
    """What set the pace: a short name for the table, and a sentence for the JSON."""
    client, server = run["cpu_share"] or 0.0, run["server_cpu_share"] or 0.0
    fraction = run["delivered_fraction"] or 0.0
    others = run["other_cores"] or 0.0
    if fraction >= 0.97:
        limit = "nothing"
        note = f"nothing: the stream arrived in full (client at {client:.0%}, emulator at {server:.0%} of a core)"
    elif client >= SATURATED:
        limit = "client CPU"
        note = f"client CPU ({client:.0%} of a core; {fraction:.0%} of the offered frames/s)"
    elif server >= SATURATED:
        limit = "emulator CPU"
        note = (f"the emulator's CPU ({server:.0%} of a core; {fraction:.0%} of the offered frames/s); "
                f"client at {client:.0%}")
    else:
        limit = "shared cores"
        note = (f"shared cores: client {client:.0%}, emulator {server:.0%}, other processes {others:.2f} cores, "
                f"{fraction:.0%} of the offered frames/s on {cores()} cores")
    notes = [note]
    missing = run["frames_accounting"]["missing"]
    if missing:
        notes.append(f"{missing:,} frames missing (drain: {run['frames_accounting']['drain']})")
    if run["messages"]["rejected"]:
        notes.append(f"emulator rejected messages: {run['messages']['rejected']}")
    return limit, "; ".join(notes)


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    s = settings(options)
    if not 0 < s["rate"] <= MAX_ROOM_RATE:
        raise BenchError(f"--rate must be between 0 and {MAX_ROOM_RATE} msg/s (the emulator's room maximum)")
    started = time.time()
    runs: list[dict] = []
    for n in s["sizes"]:
        for repeat in range(s["repeat"]):
            order = alternating(CLIENTS, repeat)
            label = f"[receive N={n} repeat {repeat + 1}/{s['repeat']}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, 2 * n + 100), name=f"receive-{n}",
                               tls=bool(options.extra.get("tls"))) as room:
                tokens = room.tokens(len(CLIENTS) * n, "receiver", progress, label)
                for i, kind in enumerate(order):
                    figures = uvloop.run(measure(room, kind, tokens[i * n:(i + 1) * n], n, s, options,
                                                 progress, label))
                    figures["repeat"] = repeat + 1
                    runs.append(figures)
                    acc = figures["frames_accounting"]
                    progress.note(f"{label} {kind}: {figures['frames_per_s']:,.0f} frames/s, "
                                  f"{two_places(figures['cpu_us_per_frame'])} µs CPU/frame at {pct(figures['cpu_share'])} "
                                  f"of a core; frames {acc['received']:,}/{acc['expected']:,}; "
                                  f"limited by {figures['limited_by']}")
    summary = summarise(runs, s["sizes"], s["repeat"], target_ratio(bool(options.extra.get("tls"))))
    passed = all(entry["verdict"] == "PASS" for entry in summary)
    document = bench_document(
        NAME, SUMMARY, started,
        {**s, "quick": bool(options.extra.get("quick")), "emulator_args": list(EMULATOR_ARGS),
         "harness_transport": harness_transport(options), "harness_locust_users": True,
         "tls": bool(options.extra.get("tls")),
         "connect_concurrency": options.connect_concurrency, "drain_timeout": options.drain_timeout,
         "cpu_measured": "the receiving process only: psutil user + system, all its threads"},
        target_ratio=target_ratio(bool(options.extra.get("tls"))), service=SERVICE, verdict="PASS" if passed else "SHORT",
        summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), passed)


def summarise(runs: list[dict], sizes: list[int], repeats: int, target: float = TARGET_RATIO) -> list[dict]:
    entries = []
    for n in sizes:
        by_client = runs_by(runs, n, "client", CLIENTS)
        clients = {}
        noisy = []
        for kind, kind_runs in by_client.items():
            clients[kind] = summarize_metrics(kind_runs, METRICS)
            clients[kind]["frames_expected"] = sum(r["frames_accounting"]["expected"] for r in kind_runs)
            clients[kind]["frames_received"] = sum(r["frames_accounting"]["received"] for r in kind_runs)
            clients[kind]["limited_by"] = [r["limited_by"] for r in kind_runs]
            clients[kind]["limits"] = [r["limit"] for r in kind_runs]
            warning = spread_warning(f"{kind} CPU µs/frame", clients[kind]["cpu_us_per_frame"])
            if warning:
                noisy.append(warning)
        others = summarize([r["other_cores"] for r in runs if r["n"] == n])
        ratios = {baseline: [h["cpu_us_per_frame"] / b["cpu_us_per_frame"]
                             if h["cpu_us_per_frame"] and b["cpu_us_per_frame"] else None
                             for h, b in zip(by_client["harness"], by_client[baseline], strict=False)]
                  for baseline in BASELINES}
        judged = ratio_verdict(ratios[BASELINES[0]], target, higher_is_better=False, repeats=repeats,
                               noisy_inputs=noisy)
        judged["ratios"] = {baseline: summarize(values) for baseline, values in ratios.items()}
        if others_warning(others):
            judged["warnings"].append(others_warning(others))
        for kind in CLIENTS:
            missing = clients[kind]["frames_expected"] - clients[kind]["frames_received"]
            if missing:
                judged["warnings"].append(f"{kind}: {missing:,} of {clients[kind]['frames_expected']:,} expected "
                                          "frames never arrived")
        entries.append({"n": n, "clients": clients, **judged})
    return entries


def label(kind: str, options: dict) -> str:
    if kind == "harness":
        return f"harness ({options['harness_transport']})"
    return CLIENT_LABELS[kind] + " (baseline)"


def render(document: dict) -> str:
    o = document["options"]
    lines = [
        f"chatload bench receive{' over TLS (wss://)' if o.get('tls') else ''} — {ON_ROOM} at {o['rate']:g} msg/s, {o['seconds']:g} s window after "
        f"{o['warmup']:g} s warm-up; CPU of the receiving process only; median [min–max] of {o['repeat']} repeat(s)",
        CPU_NOTE,
        "",
    ]
    rows = [("N", "client", "frames/s", "CPU µs/frame", "kernel µs/frame", "client CPU", "emulator CPU",
             "other load", "delivered/offered")]
    for entry in document["summary"]:
        for kind in CLIENTS:
            c = entry["clients"][kind]
            rows.append((str(entry["n"]), label(kind, o),
                         cell(c["frames_per_s"], si), cell(c["cpu_us_per_frame"], two_places),
                         cell(c["system_us_per_frame"], two_places), cell(c["cpu_share"], pct),
                         cell(c["server_cpu_share"], pct), cell(c["other_cores"], two_places),
                         cell(c["delivered_fraction"], pct)))
    lines += table(rows)
    lines.append("")
    for entry in document["summary"]:
        lines.append(f"N={entry['n']}: harness/bare picows CPU per frame = {cell(entry['ratio'], two_places)}"
                     f"  (target ≤ {document['target_ratio']})  {entry['verdict']}"
                     + ("" if entry["reliable"] else "  (UNRELIABLE, see warnings)")
                     + f";  harness/bare websockets = {cell(entry['ratios']['bare'], two_places)}")
        for kind in CLIENTS:
            c = entry["clients"][kind]
            limits = ", ".join(f"{name} ×{c['limits'].count(name)}" for name in dict.fromkeys(c["limits"]))
            lines.append(f"    {CLIENT_LABELS[kind]:<16} {frames_line(c['frames_received'], c['frames_expected'])}; "
                         f"limited by: {limits} (details in the JSON)")
        lines += warning_lines(entry["warnings"])
    return with_verdict(lines, document["verdict"])
