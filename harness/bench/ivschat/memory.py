"""`chatload bench memory`: resident memory per idle connection, chatload (with its Locust users)
against bare picows and bare websockets clients.

For each repeat, one emulator (`--max-connections 20000`) and one room; then, one after the other
(the order reversed every other repeat), each client as a fresh child process:

- harness: a gevent-patched process with a `ChatRuntime` (loop thread, recorder, ledger) on
  chatload's default transport, and a Locust `Environment` whose `LocalRunner` spawns N real
  Locust users — `BenchViewer`, a `ViewerUser` exactly as a locustfile's `Viewer` — each opening
  its connection in `on_start` through `ChatClient`, as under `locust -f`;
- bare_picows: N `picows.ws_connect` connections with a listener each (picows' defaults);
- bare (websockets): N `websockets.asyncio.client.connect` connections, each with its `async for`
  reader task.

Why a runner in the child rather than `locust -f` itself: the child must report RSS before and
after, idle, at instants the parent chooses, and hand out the parent's single-use tokens; Locust's
own runner spawning the real user class gives the same objects per connection (the `User`, its
greenlet and stack, `ChatClient`, the session handle) without the CLI around it. What the issue
counts as "the Locust user's own per-connection cost" is therefore in the harness figure; what a
`locust -f` process holds once (web UI, stats, the plugin) is in "RSS before" and not per connection.

The child reports its RSS (after `gc.collect()`) once it is ready and before connecting, and again
once all N connections are open and idle for a moment. (RSS after − RSS before) / N is the memory one
idle connection costs in that process; socket buffers are kernel memory and not in it. Tokens come
from CreateChatToken, made in bulk before the clients start (see `chat_tokens`).

Target (issue 15): ≤ 12 KiB per harness connection including its Locust user, at 10,000
connections; the bare clients' figures are baselines and the ratios are shown, but the verdict is on
the absolute target.
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
    few_repeats_warnings,
    runs_by,
    summarize,
    summarize_metrics,
)
from ..tables import cell, table, two_places, warning_lines, with_verdict
from .rig import (
    CLIENT_LABELS,
    EMULATOR_ARGS,
    ON_ROOM,
    SERVICE,
    emulator_room,
    harness_transport,
    quick_or,
    spread_warning,
    start_child,
)

NAME = "memory"
SUMMARY = ("RSS per idle connection: 10,000 chatload connections with their Locust users in one process against "
           f"10,000 bare picows and bare websockets clients, {ON_ROOM}")
CLIENTS = ("harness", "bare_picows", "bare")
BASELINES = ("bare_picows", "bare")

DEFAULT_SIZES = (10_000,)
QUICK_SIZES = (200,)
TARGET_BYTES = 12 * 1024
IDLE_S = 2.0  # after the last connection opens: let token greenlets, handshake buffers and timers settle
METRICS = ("rss_per_connection_bytes", "uss_per_connection_bytes", "rss_before_bytes", "rss_after_bytes",
           "connect_seconds")


def kib(value: float | None) -> str:
    return "–" if value is None else f"{value / 1024:.1f} KiB"


def mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:.0f} MiB"


async def measure(room, kind: str, tokens: list[str], n: int, options: BenchOptions, progress: Progress,
                  label: str) -> dict:
    await room.wait_until_empty()
    progress.update(f"{label}: starting the {kind} client")
    child = await start_child(kind, room, tokens, options, locust_users=True)
    try:
        before = await child.rss()
        connected = await child.connect(n, progress, label)
        progress.update(f"{label}: {kind}: {n:,} connections open; idle {IDLE_S:g} s")
        await asyncio.sleep(IDLE_S)
        after = await child.rss()
    finally:
        await child.stop()
    return {
        "client": kind,
        "n": n,
        "connections_open": after["connections"],
        "connect_seconds": connected["seconds"],
        "rss_before_bytes": before["rss"],
        "rss_after_bytes": after["rss"],
        "uss_before_bytes": before["uss"],
        "uss_after_bytes": after["uss"],
        "rss_per_connection_bytes": (after["rss"] - before["rss"]) / n,
        "uss_per_connection_bytes": (after["uss"] - before["uss"]) / n,
    }


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    sizes = list(options.sizes or quick_or(options, QUICK_SIZES, DEFAULT_SIZES))
    started = time.time()
    runs: list[dict] = []
    for n in sizes:
        for repeat in range(options.repeat):
            order = alternating(CLIENTS, repeat)
            label = f"[memory N={n:,} repeat {repeat + 1}/{options.repeat}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, n + 100), name=f"memory-{n}",
                               tls=bool(options.extra.get("tls"))) as room:
                tokens = room.tokens(len(CLIENTS) * n, "idle", progress, label)
                for i, kind in enumerate(order):
                    figures = uvloop.run(measure(room, kind, tokens[i * n:(i + 1) * n], n, options, progress, label))
                    figures["repeat"] = repeat + 1
                    runs.append(figures)
                    progress.note(f"{label} {kind}: {kib(figures['rss_per_connection_bytes'])} RSS per connection "
                                  f"({mib(figures['rss_before_bytes'])} → {mib(figures['rss_after_bytes'])}), "
                                  f"{figures['connections_open']:,} open")
    summary = summarise(runs, sizes, options.repeat)
    passed = all(entry["verdict"] == "PASS" for entry in summary)
    document = bench_document(
        NAME, SUMMARY, started,
        {"sizes": sizes, "repeat": options.repeat, "idle_seconds": IDLE_S, "quick": bool(options.extra.get("quick")),
         "emulator_args": list(EMULATOR_ARGS), "connect_concurrency": options.connect_concurrency,
         "harness_transport": harness_transport(options), "harness_locust_users": True,
         "tls": bool(options.extra.get("tls"))},
        target_bytes_per_connection=TARGET_BYTES, service=SERVICE, verdict="PASS" if passed else "SHORT", summary=summary, runs=runs)
    return BenchResult(NAME, document, render(document), passed)


def summarise(runs: list[dict], sizes: list[int], repeats: int) -> list[dict]:
    entries = []
    for n in sizes:
        by_client = runs_by(runs, n, "client", CLIENTS)
        clients = {kind: summarize_metrics(kind_runs, METRICS) for kind, kind_runs in by_client.items()}
        ratios = {baseline: summarize([h["rss_per_connection_bytes"] / b["rss_per_connection_bytes"]
                                       if h["rss_per_connection_bytes"] and b["rss_per_connection_bytes"] > 0 else None
                                       for h, b in zip(by_client["harness"], by_client[baseline], strict=False)])
                  for baseline in BASELINES}
        per_conn = clients["harness"]["rss_per_connection_bytes"]
        values = [v for v in per_conn["values"] if v is not None]
        verdict = "PASS" if per_conn["median"] is not None and per_conn["median"] <= TARGET_BYTES else "SHORT"
        warnings = [w for w in (spread_warning(f"{kind} RSS per connection", clients[kind]["rss_per_connection_bytes"])
                                for kind in CLIENTS) if w]
        straddles = bool(values) and min(values) <= TARGET_BYTES < max(values)
        reliable = per_conn["median"] is not None and not straddles
        if straddles:
            warnings.append(f"repeats fall on both sides of the {kib(TARGET_BYTES)} target")
            warnings.append("the verdict is unreliable: rerun on a quieter machine or with more --repeat")
        warnings += few_repeats_warnings(repeats)
        opened = {kind: min((r["connections_open"] for r in by_client[kind]), default=0) for kind in CLIENTS}
        for kind in CLIENTS:
            if opened[kind] < n:
                warnings.append(f"{kind}: only {opened[kind]:,} of {n:,} connections were open at the second reading")
        entries.append({"n": n, "clients": clients, "ratio": ratios[BASELINES[0]], "ratios": ratios,
                        "verdict": verdict, "reliable": reliable,
                        "warnings": warnings})
    return entries


def render(document: dict) -> str:
    o = document["options"]
    lines = [
        f"chatload bench memory{' over TLS (wss://)' if o.get('tls') else ''} — idle connections in one process {ON_ROOM}, RSS after − before connecting (after "
        f"gc.collect, {o['idle_seconds']:g} s idle); median [min–max] of {o['repeat']} repeat(s)",
        "",
    ]
    rows = [("N", "client", "RSS/connection", "USS/connection", "RSS before", "RSS after", "connect time")]
    for entry in document["summary"]:
        for kind in CLIENTS:
            c = entry["clients"][kind]
            rows.append((f"{entry['n']:,}", (f"harness ({o['harness_transport']}) + Locust user" if kind == "harness"
                                             else CLIENT_LABELS[kind] + " (baseline)"),
                         cell(c["rss_per_connection_bytes"], kib), cell(c["uss_per_connection_bytes"], kib),
                         cell(c["rss_before_bytes"], mib), cell(c["rss_after_bytes"], mib),
                         cell(c["connect_seconds"], lambda v: f"{v:.1f} s")))
    lines += table(rows)
    lines.append("")
    for entry in document["summary"]:
        per_conn = entry["clients"]["harness"]["rss_per_connection_bytes"]
        lines.append(f"N={entry['n']:,}: harness RSS per connection incl. its Locust user = {cell(per_conn, kib)}  "
                     f"(target ≤ {kib(TARGET_BYTES)}; harness/bare picows = {cell(entry['ratios']['bare_picows'], two_places)}, "
                     f"harness/bare websockets = {cell(entry['ratios']['bare'], two_places)})  "
                     f"{entry['verdict']}" + ("" if entry["reliable"] else "  (UNRELIABLE, see warnings)"))
        lines += warning_lines(entry["warnings"])
    return with_verdict(lines, document["verdict"])
