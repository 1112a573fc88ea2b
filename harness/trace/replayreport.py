"""The `replay` section of a report: the trace's per-second rates against the replayed ones, how much
of the trace was replayed, and how late the harness's own schedule ran (docs/report-format.md).

The trace starts on a whole wall-clock second, so trace second k is wall second start + k. The rates
come from the run's own per-room series (`rooms` in the report): each message is offered in the
second of its intended time — its due time, the trace's rate exactly when everything was sent — and
accepted in the second the service stamped it (its SendTime), which is the replayed rate. The start
second is where the first message was offered, less its due second (the `replay.start` count, taken
at the start, dates it only to the nearest interval snapshot).
A trace too fast for the machine shows as lag — a message dispatched `LATE_US` or more after its
due time — and is flagged, never silently stretched: every message keeps its due time as its
intended send time, so the lateness is in every latency too.
"""

from __future__ import annotations

from pathlib import Path

from .model import Trace
from .plan import ReplayPlan

LATE_US = 50_000  # the driver's threshold (harness/locust/replay.py counts `replay.late` by it)
TOO_FAST_LATE_SHARE = 0.01  # flagged when more than this share of the replayed messages went late


def replay_section(trace: Trace, plan: ReplayPlan, results: dict, *, trace_file: str, audience: float = 1.0) -> dict:
    counters = results.get("counters") or {}
    offered: dict[int, int] = {}
    accepted: dict[int, int] = {}
    for seconds in (results.get("rooms") or {}).values():
        for second, row in seconds.items():
            offered[int(second)] = offered.get(int(second), 0) + row.get("offered", 0)
            accepted[int(second)] = accepted.get(int(second), 0) + row.get("accepted", 0)
    started = counters.get("replay.start", 0) > 0
    start = min((s for s, n in offered.items() if n), default=None) if started and plan.sends else None
    if start is not None:
        start -= int(plan.sends[0].due_s)
    replayed_per_second = [0] * len(plan.trace_per_second)
    for second, n in accepted.items():
        k = second - start if start is not None else -1
        if k >= 0 and n:
            replayed_per_second.extend([0] * (k + 1 - len(replayed_per_second)))
            replayed_per_second[k] += n
    total = len(trace.messages)
    replayed = counters.get("replay.sent", 0)
    late = counters.get("replay.late", 0)
    lag = (results.get("latency_us") or {}).get("replay_lag") or {}
    percentiles = lag.get("percentiles") or {}
    # The driver hands each message to the loop thread, which writes it: `send_lag` (intended → written)
    # includes the driver's own lag and the loop's queue, so a trace too fast for the loop shows there.
    send_lag = (results.get("latency_us") or {}).get("send_lag") or {}
    send_lag = send_lag if send_lag.get("count") else {}
    send_p99 = (send_lag.get("percentiles") or {}).get("99")
    reasons = []
    if not started:
        reasons.append("the trace never started (the run ended before its start)")
    if replayed and late > TOO_FAST_LATE_SHARE * replayed:
        reasons.append(f"{late:,} of {replayed:,} messages went out {LATE_US // 1000} ms or more after their "
                       f"due time (worst {lag.get('max', 0) / 1000:,.1f} ms): the trace at speed {plan.speed:g} is "
                       "faster than this machine sends")
    if replayed and send_p99 is not None and send_p99 >= LATE_US:
        reasons.append(f"messages were written to their sockets {send_p99 / 1000:,.1f} ms after their due time at "
                       f"p99 (send_lag): the trace at speed {plan.speed:g} is faster than this machine sends")
    return {
        "trace": Path(trace_file).name,
        "speed": plan.speed,
        "audience": audience,
        "trace_duration_s": round(trace.duration_s, 3),
        "replay_duration_s": round(plan.duration_s, 3),
        "messages_total": total,
        "messages_planned": len(plan.sends),
        "excluded_by_room_mapping": plan.excluded,
        "replayed": replayed,
        "replayed_ratio": round(replayed / total, 4) if total else 0.0,
        "not_sent": {name.split(".", 2)[2]: n for name, n in counters.items() if name.startswith("replay.not_sent.")},
        "late": late,
        "lag_us": {"p50": percentiles.get("50"), "p99": percentiles.get("99"), "max": lag.get("max"),
                   "count": lag.get("count", 0)},
        "send_lag_us": {"p50": (send_lag.get("percentiles") or {}).get("50"), "p99": send_p99,
                        "max": send_lag.get("max")},
        "too_fast": bool(reasons) and started,
        "problems": reasons,
        "presences": len(plan.presences),
        "presences_after_end": counters.get("replay.presences_after_end", 0),
        "leaves": counters.get("replay.leaves", 0),
        "rejoins": counters.get("replay.rejoins", 0),
        "malformed_lines": len(trace.skipped),
        "reordered": trace.reordered,
        "start_s": start,  # the wall-clock second (Unix time) trace second 0 fell on
        "per_second": {"trace": plan.trace_per_second, "replayed": replayed_per_second},
    }


def replay_lines(report: dict) -> list[str]:
    """The replay in a few lines of text (console summary and the HTML section)."""
    replay = report.get("replay") or {}
    if not replay:
        return []
    lag, sent = replay.get("lag_us") or {}, replay.get("send_lag_us") or {}

    def ms(us) -> str:
        return "—" if us is None else f"{us / 1000:,.2f} ms"

    lines = [f"replayed {replay['replayed']:,} of the trace's {replay['messages_total']:,} messages "
             f"({replay['replayed_ratio']:.1%}) at speed {replay['speed']:g}"
             + (f", audience ×{replay['audience']:g}" if replay.get("audience", 1) != 1 else ""),
             f"schedule lag (the harness's own): dispatched p50 {ms(lag.get('p50'))}, p99 {ms(lag.get('p99'))}, "
             f"max {ms(lag.get('max'))}; written to the socket p99 {ms(sent.get('p99'))}, max {ms(sent.get('max'))}; "
             f"{replay.get('late', 0):,} messages dispatched {LATE_US // 1000} ms late or more"]
    not_sent = replay.get("not_sent") or {}
    if not_sent or replay.get("excluded_by_room_mapping"):
        parts = [f"{n:,} {reason.replace('_', ' ')}" for reason, n in sorted(not_sent.items())]
        if replay.get("excluded_by_room_mapping"):
            parts.append(f"{replay['excluded_by_room_mapping']:,} in rooms the mapping leaves out")
        lines.append("not replayed: " + ", ".join(parts))
    if replay.get("presences"):
        after = replay.get("presences_after_end", 0)
        lines.append(f"listeners followed {replay['presences'] - after:,} trace users' presence: "
                     f"{replay.get('leaves', 0):,} leaves, {replay.get('rejoins', 0):,} rejoins"
                     + (f" ({after:,} more join only after the run's end)" if after else ""))
    lines += [f"TOO FAST: {problem}" for problem in replay.get("problems") or ()]
    return lines
