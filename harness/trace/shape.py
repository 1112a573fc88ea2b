"""A trace's shape — rate over time, bursts, sender skew, sizes — and traces of the same shape made
longer (`repeat`) or larger (`audience`): what `chatload trace summary` and `chatload trace scale` do.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from .model import MESSAGE, Trace, TraceEvent

BURST_FACTOR = 3.0  # a second is a burst when it holds at least this many times the mean rate


def _quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0


def summary(trace: Trace, *, bin_s: float = 1.0) -> dict:
    messages = trace.messages
    bins = [0] * (math.floor(trace.duration_s / bin_s) + 1)
    for event in messages:
        bins[math.floor(event.t / bin_s)] += 1
    mean = len(messages) / len(bins) if bins else 0.0
    bursts = [{"at_s": round(i * bin_s, 3), "messages": n, "times_mean": round(n / mean, 1)}
              for i, n in enumerate(bins) if mean and n >= BURST_FACTOR * mean]
    by_sender = Counter(event.sender for event in messages)
    ranked = [n for _, n in by_sender.most_common()]

    def share(fraction: float) -> float:
        top = max(1, math.ceil(fraction * len(ranked)))
        return round(sum(ranked[:top]) / len(messages), 3) if messages else 0.0

    sizes = [event.size for event in messages]
    kinds = Counter(event.kind for event in trace.events)
    return {
        "duration_s": round(trace.duration_s, 3),
        "messages": len(messages),
        "rooms": len(trace.rooms()),
        "events": dict(kinds),
        "rate": {"bin_s": bin_s, "mean_per_s": round(mean / bin_s, 3), "peak_per_s": max(bins, default=0) / bin_s,
                 "p99_per_s": _quantile(bins, 0.99) / bin_s, "per_bin": bins},
        "bursts": {"factor": BURST_FACTOR, "count": len(bursts), "largest": sorted(bursts, key=lambda b: -b["messages"])[:5]},
        "senders": {"count": len(ranked), "top_1pct_share": share(0.01), "top_10pct_share": share(0.10),
                    "busiest_share": round(ranked[0] / len(messages), 3) if ranked else 0.0},
        "sizes": {"min": min(sizes, default=0), "p50": _quantile(sizes, 0.5), "p90": _quantile(sizes, 0.9),
                  "p99": _quantile(sizes, 0.99), "max": max(sizes, default=0)},
        "malformed_lines": len(trace.skipped),
        "reordered": trace.reordered,
    }


def summary_text(facts: dict) -> str:
    rate, senders, sizes = facts["rate"], facts["senders"], facts["sizes"]
    spark = _sparkline(rate["per_bin"])
    lines = [
        f"{facts['messages']:,} messages in {facts['rooms']} room(s) over {facts['duration_s']:g} s; other events: "
        + (", ".join(f"{n:,} {kind}" for kind, n in sorted(facts["events"].items()) if kind != MESSAGE) or "none"),
        f"rate: mean {rate['mean_per_s']:g}/s, p99 {rate['p99_per_s']:g}/s, peak {rate['peak_per_s']:g}/s "
        f"(per {rate['bin_s']:g} s)",
        f"  {spark}",
        f"bursts (≥ {facts['bursts']['factor']:g}× the mean): {facts['bursts']['count']}"
        + "".join(f"; at {b['at_s']:g} s {b['messages']} ({b['times_mean']:g}×)" for b in facts["bursts"]["largest"]),
        f"senders: {senders['count']:,}; the busiest wrote {senders['busiest_share']:.1%}, the top 1 % "
        f"{senders['top_1pct_share']:.1%}, the top 10 % {senders['top_10pct_share']:.1%}",
        f"sizes (characters): min {sizes['min']}, p50 {sizes['p50']}, p90 {sizes['p90']}, p99 {sizes['p99']}, "
        f"max {sizes['max']}",
    ]
    if facts["malformed_lines"] or facts["reordered"]:
        lines.append(f"input: {facts['malformed_lines']} malformed lines skipped, {facts['reordered']} events "
                     "out of time order sorted")
    return "\n".join(lines)


def _sparkline(values: list[int], width: int = 72) -> str:
    if not values:
        return ""
    step = max(1, math.ceil(len(values) / width))
    cells = [max(values[i:i + step]) for i in range(0, len(values), step)]
    top = max(cells) or 1
    return "".join(" ▁▂▃▄▅▆▇█"[round(8 * v / top)] for v in cells)


def scale(trace: Trace, *, repeat: int = 1, audience: float = 1.0, seed: int = 1) -> list[TraceEvent]:
    """The same shape, longer and/or larger.

    `repeat`: the trace played `repeat` times end to end (its gaps kept, one mean gap between plays).
    `audience`: every user `audience` times over (a fraction: that share of them once more), each copy
    a new id doing what the original did, its times moved by up to 5 ms so that copies do not arrive
    in lockstep. Rates and burst heights scale by `audience`;
    where they fall in time, the sender skew and the size distribution stay the trace's."""
    if repeat < 1 or audience <= 0:
        raise ValueError("repeat must be at least 1 and audience positive")
    rng = random.Random(seed)
    users = sorted({event.sender for event in trace.events})
    whole, part = divmod(audience, 1.0)
    extra = set(rng.sample(users, round(part * len(users))))
    copies = {user: int(whole) + (user in extra) for user in users}
    gap = trace.duration_s / max(1, len(trace.events) - 1)
    period = trace.duration_s + gap
    out = []
    for play in range(repeat):
        for event in trace.events:
            for copy in range(copies[event.sender]):
                shift = 0.0 if copy == 0 else rng.uniform(-0.005, 0.005)
                t = max(0.0, play * period + event.t + shift)
                sender = event.sender if copy == 0 else f"{event.sender}-{copy}"
                out.append(TraceEvent(round(t, 6), event.room, sender, event.size, event.kind))
    out.sort(key=lambda e: e.t)
    return out
