"""`chatload bench connect [--tls] --connections N`: a connect ramp, chatload against bare picows.

For each repeat, one IVS Chat emulator (with `--tls`: serving wss:// with a CA made for the run) and
one room; then, one after the other (the order reversed every other repeat), each client as a
child process of its own opens N connections as fast as they go (`--connect-concurrency` in flight):

- harness: a `ChatRuntime` whose N Locust users (`BenchViewer`, spawned by Locust's runner) each
  open their session in `on_start`, as under `locust -f`: token, session, transport, the target's
  one TLS context (built before the ramp, off the loop), `connect.tls` timed;
- bare_picows: N `picows.ws_connect` calls with one shared `ssl.SSLContext` trusting the same CA
  (what a competent bare client does).

Each child reports its own CPU over the ramp (user + system, every thread) and the longest stall of
the loop making the connects (a callback due every 2 ms: how late it ran). This process reads the
emulator's CPU over each ramp too. Figures: connects per second, CPU per connect, the loop's
longest stall; the ratio chatload / bare picows of CPU per connect is taken within each repeat.

With `--tls`, a second part measures what TLS session resumption saves on reconnects: in this
process, chatload's transport (the same `connect` sessions call) opens N connections with full
handshakes, closes them, and reconnects each offering its own previous session, as a session does
after a drop: CPU per connect here and on the emulator, and the TLS handshake's median, full
against resumed.

Targets (issue 20, TLS only): the loop's longest stall during a 1,000-connection ramp ≤ 20 ms; CPU
per connect ≤ 1.2× bare picows.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import psutil

from ..common import (
    BenchOptions,
    BenchResult,
    Progress,
    alternating,
    bench_document,
    few_repeats_warnings,
    runs_by,
    summarize,
)
from ..tables import cell, table, two_places, warning_lines, with_verdict
from .rig import (
    CLIENT_LABELS,
    ON_ROOM,
    SERVICE,
    emulator_room,
    harness_transport,
    quick_or,
    ratio_verdict,
    start_child,
)

NAME = "connect"
SUMMARY = (f"a connect ramp {ON_ROOM} (--tls: wss://): connects/s, CPU per connect and the loop's longest stall, chatload "
           "against bare picows; with --tls also what session resumption saves on reconnects")
CLIENTS = ("harness", "bare_picows")
DEFAULT_SIZES = (1000,)
QUICK_SIZES = (100,)
TARGET_STALL_MS = 20.0
TARGET_CPU_RATIO = 1.2


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def ramp(room, kind: str, tokens: list[str], n: int, options: BenchOptions, progress: Progress,
               label: str) -> dict:
    await room.wait_until_empty()
    progress.update(f"{label}: starting the {kind} client")
    child = await start_child(kind, room, tokens, options, locust_users=kind == "harness")
    server = psutil.Process(room.pid)
    try:
        server_before = _cpu(server)
        event = await child.connect(n, progress, label)
        server_cpu = _cpu(server) - server_before
    finally:
        await child.stop()
    return {"client": kind, "n": n, "seconds": event["seconds"], "connects_per_s": n / max(event["seconds"], 1e-9),
            "cpu_us_per_connect": event["cpu_s"] * 1e6 / n, "server_cpu_us_per_connect": server_cpu * 1e6 / n,
            "loop_stall_max_ms": event["loop_stall_max_s"] * 1e3, "gc_pause_max_ms": event["gc_pause_max_s"] * 1e3,
            "gc_pause_generation": event["gc_pause_generation"]}


# -- resumption: chatload's transport, full handshakes, then each connection's own session offered ---------


class _Quiet:
    def on_open(self, transport) -> None:
        pass

    def on_frame(self, payload: bytes, is_text: bool, arrival_ns: int) -> None:
        pass

    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None:
        pass


async def _connect_all(room, tokens: list[str], sessions: list, context, concurrency: int, transport: str) -> dict:
    from ...net.transport import ConnectParams, connect

    server = psutil.Process(room.pid)
    opened: list = [None] * len(tokens)
    indexes = iter(range(len(tokens)))

    async def worker() -> None:
        for i in indexes:
            opened[i] = await connect(ConnectParams(room.endpoint, (tokens[i],)), _Quiet(), timeout=15,
                                      transport=transport, ssl_context=context, tls_session=sessions[i])

    cpu, server_cpu = time.thread_time(), _cpu(server)
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(tokens))))))
    cpu, server_cpu = time.thread_time() - cpu, _cpu(server) - server_cpu
    for ws in opened:
        ws.abort()
    n = len(tokens)
    return {"cpu_us_per_connect": cpu * 1e6 / n, "server_cpu_us_per_connect": server_cpu * 1e6 / n,
            "tls_handshake_p50_ms": statistics.median(ws.tls_ns for ws in opened) / 1e6,
            "resumed": sum(ws.tls_resumed for ws in opened), "sessions": [ws.tls_session for ws in opened]}


async def resumption(room, tokens: list[str], options: BenchOptions) -> dict:
    from ...net.tls import build_context

    context = build_context(room.emulator.ca_file)  # a process's one context, as the runtime's
    n = len(tokens) // 2
    transport = harness_transport(options)
    full = await _connect_all(room, tokens[:n], [None] * n, context, options.connect_concurrency, transport)
    await room.wait_until_empty()
    resumed = await _connect_all(room, tokens[n:], full.pop("sessions"), context, options.connect_concurrency,
                                 transport)
    resumed.pop("sessions")
    await room.wait_until_empty()
    return {"n": n, "full": full, "resumed": resumed}


# -- the benchmark -------------------------------------------------------------------------------------------


def run(options: BenchOptions, progress: Progress) -> BenchResult:
    import uvloop

    tls = bool(options.extra.get("tls"))
    sizes = list(options.sizes or quick_or(options, QUICK_SIZES, DEFAULT_SIZES))
    started = time.time()
    runs: list[dict] = []
    resumptions: list[dict] = []
    for n in sizes:
        for repeat in range(options.repeat):
            order = alternating(CLIENTS, repeat)
            label = f"[connect{' --tls' if tls else ''} N={n:,} repeat {repeat + 1}/{options.repeat}]"
            progress.step(f"{label} starting the emulator")
            with emulator_room(max(20_000, 2 * n + 100), name=f"connect-{n}", tls=tls) as room:
                tokens = room.tokens((len(CLIENTS) + (2 if tls else 0)) * n, "ramp", progress, label)
                for i, kind in enumerate(order):
                    figures = uvloop.run(ramp(room, kind, tokens[i * n:(i + 1) * n], n, options, progress, label))
                    figures["repeat"] = repeat + 1
                    runs.append(figures)
                    progress.note(f"{label} {kind}: {figures['connects_per_s']:.0f} connects/s, "
                                  f"{figures['cpu_us_per_connect']:.0f} µs CPU per connect, loop stall max "
                                  f"{figures['loop_stall_max_ms']:.1f} ms (collector pause max "
                                  f"{figures['gc_pause_max_ms']:.1f} ms, generation {figures['gc_pause_generation']})")
                if tls:
                    progress.update(f"{label}: resumption: {n:,} full handshakes, then {n:,} resumed")
                    figures = uvloop.run(resumption(room, tokens[len(CLIENTS) * n:], options))
                    figures["repeat"] = repeat + 1
                    resumptions.append(figures)
    summary = summarise(runs, sizes, options.repeat, tls)
    passed = all(entry["verdict"] != "SHORT" for entry in summary)
    document = bench_document(
        NAME, SUMMARY, started,
        {"sizes": sizes, "repeat": options.repeat, "tls": tls, "quick": bool(options.extra.get("quick")),
         "connect_concurrency": options.connect_concurrency, "harness_transport": harness_transport(options),
         "harness_locust_users": True},
        target_loop_stall_ms=TARGET_STALL_MS, target_cpu_ratio=TARGET_CPU_RATIO,
        service=SERVICE, verdict="PASS" if passed else "SHORT", summary=summary, runs=runs, resumption=resumptions)
    return BenchResult(NAME, document, render(document), passed if tls else None)


def summarise(runs: list[dict], sizes: list[int], repeats: int, tls: bool) -> list[dict]:
    entries = []
    for n in sizes:
        by_client = runs_by(runs, n, "client", CLIENTS)
        metrics = {kind: {m: summarize([r[m] for r in by_client[kind]])
                          for m in ("connects_per_s", "cpu_us_per_connect", "server_cpu_us_per_connect",
                                    "loop_stall_max_ms")} for kind in CLIENTS}
        ratios = [h["cpu_us_per_connect"] / b["cpu_us_per_connect"] if b["cpu_us_per_connect"] else None
                  for h, b in zip(by_client["harness"], by_client["bare_picows"], strict=True)]
        cpu = ratio_verdict(ratios, TARGET_CPU_RATIO, higher_is_better=False, repeats=repeats)
        stall = metrics["harness"]["loop_stall_max_ms"]
        stall_ok = stall["max"] is not None and stall["max"] <= TARGET_STALL_MS
        verdict = ("PASS" if cpu["verdict"] == "PASS" and stall_ok else "SHORT") if tls else "NO TARGET"
        entries.append({"n": n, "metrics": metrics, "cpu_ratio": cpu["ratio"], "cpu_verdict": cpu["verdict"],
                        "stall_verdict": "PASS" if stall_ok else "SHORT", "verdict": verdict,
                        "warnings": cpu["warnings"] if repeats > 1 else few_repeats_warnings(repeats)})
    return entries


def render(document: dict) -> str:
    tls = document["options"]["tls"]
    lines = [f"chatload bench connect{' --tls' if tls else ''}: {SUMMARY}", ""]
    for entry in document["summary"]:
        n, metrics = entry["n"], entry["metrics"]
        rows = [("client", "connects/s", "CPU µs/connect", "emulator CPU µs/connect", "loop stall max ms")]
        for kind in CLIENTS:
            m = metrics[kind]
            rows.append((CLIENT_LABELS.get(kind, kind), cell(m["connects_per_s"], lambda v: f"{v:,.0f}"),
                         cell(m["cpu_us_per_connect"], lambda v: f"{v:,.0f}"),
                         cell(m["server_cpu_us_per_connect"], lambda v: f"{v:,.0f}"),
                         cell(m["loop_stall_max_ms"], lambda v: f"{v:.1f}")))
        lines += [f"N = {n:,} connections{' over TLS' if tls else ''}", *table(rows)]
        lines.append(f"  CPU per connect, chatload / bare picows: {cell(entry['cpu_ratio'], two_places)}×"
                     + (f" (target ≤ {TARGET_CPU_RATIO:g}×: {entry['cpu_verdict']})" if tls else ""))
        lines.append(f"  chatload's loop, longest stall during the ramp: "
                     f"{cell(metrics['harness']['loop_stall_max_ms'], lambda v: f'{v:.1f}')} ms"
                     + (f" (target ≤ {TARGET_STALL_MS:g} ms: {entry['stall_verdict']})" if tls else ""))
        lines += warning_lines(entry["warnings"])
        lines.append("")
    if document.get("resumption"):
        full = summarize([r["full"]["cpu_us_per_connect"] for r in document["resumption"]])
        resumed = summarize([r["resumed"]["cpu_us_per_connect"] for r in document["resumption"]])
        server_full = summarize([r["full"]["server_cpu_us_per_connect"] for r in document["resumption"]])
        server_resumed = summarize([r["resumed"]["server_cpu_us_per_connect"] for r in document["resumption"]])
        tls_full = summarize([r["full"]["tls_handshake_p50_ms"] for r in document["resumption"]])
        tls_resumed = summarize([r["resumed"]["tls_handshake_p50_ms"] for r in document["resumption"]])
        got = sum(r["resumed"]["resumed"] for r in document["resumption"])
        asked = sum(r["n"] for r in document["resumption"])
        lines += ["Reconnects with TLS session resumption (chatload's transport, each connection offering its own "
                  "previous session)", *table([
                      ("handshake", "client CPU µs/connect", "emulator CPU µs/connect", "TLS handshake p50 ms"),
                      ("full", cell(full, lambda v: f"{v:,.0f}"), cell(server_full, lambda v: f"{v:,.0f}"),
                       cell(tls_full, two_places)),
                      ("resumed", cell(resumed, lambda v: f"{v:,.0f}"), cell(server_resumed, lambda v: f"{v:,.0f}"),
                       cell(tls_resumed, two_places))]),
                  f"  resumed {got:,} of {asked:,} reconnects", ""]
    return with_verdict(lines, document["verdict"] if tls else "no target without --tls (figures only)")
