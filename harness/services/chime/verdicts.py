"""Facts about Chime's limits a run can be judged on, derived from its results: `report.verdicts.chime`.

Data messages (per attendee, a token bucket: soft 100/s burst 200 → throttled; hard 500/s burst
10,000 → hang-up with close 4429), from each meeting's per-second series (offered by intended send
time, accepted by the server's ingest time, throttled by when the sender heard of it):

- `early_throttle_seconds`: seconds in which a meeting's messages were throttled although the
  meeting's whole offered load, over every window ending then, stayed within ONE attendee's bucket
  (burst + rate × the window, less a second for where in a second things fell): throttling before
  the spec allows it. Sound whatever the number of senders in a meeting (a throttled attendee
  offered at least its own bucket's worth, so its meeting did too).
- With one sending attendee in the run (the series is then that attendee's): the throttle's start
  as the bucket predicts it from the offered load (a fluid model, second by second) against where
  it began — within the first second with a throttled message, where the accepted rate changed,
  the load spread evenly (`start_error_us`); `steady_ratio`, accepted per second
  while throttled (the first and last such seconds left out) over the soft rate; `bucket_excess`,
  the most accepted in any window beyond what the bucket allows (burst + rate × length: must be
  ≤ 0); and the hang-up the hard bucket predicts against the second of the close 4429
  (`hard_limit_error_us`).
Control plane (per operation, 10 requests/s, burst 20; ThrottlingException 429 beyond), from the
API calls users timed (`api_*` histograms and their counters, per second in the timeline):
`throttled_ratio`, `peak_accepted_per_s` (≤ burst + rate in the first second, ≤ rate after),
`steady_accepted_per_s` (accepted per second in seconds with a 429, first and last left out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SPEC_LIMITS = {"soft_limit": [100.0, 200.0], "hard_limit": [500.0, 10_000.0], "api_limit": [10.0, 20.0]}
THROTTLED = "THROTTLED"
HARD_LIMIT_CLOSE = "closes.4429"
API_OPERATIONS = ("api_create_meeting", "api_batch_create_attendee", "api_delete_attendee", "api_delete_meeting")
THROTTLING = "ThrottlingException"


def derive(results: Mapping, sending_users: int) -> dict:
    settings = (((results.get("metadata") or {}).get("target") or {}).get("settings") or {})
    limits = {**SPEC_LIMITS, **{k: v for k, v in (settings.get("limits") or {}).items() if v}}
    return {
        "limits": {**limits, "source": settings.get("limits_source", "spec")},
        "throttle": _throttle(results, limits, single_sender=sending_users == 1),
        "api": _api(results),
    }


# -- data messages ------------------------------------------------------------------------------------


def _series(rows: Mapping) -> tuple[list[int], list[int], list[int], list[int]]:
    """(seconds, offered, accepted, throttled), every second from the first to the last (gaps as 0)."""
    by_second = {int(second): row for second, row in rows.items()}
    if not by_second:
        return [], [], [], []
    seconds = list(range(min(by_second), max(by_second) + 1))
    empty = {"offered": 0, "accepted": 0, "rejected": {}}
    picked = [by_second.get(s, empty) for s in seconds]
    return (seconds, [r["offered"] for r in picked], [r["accepted"] for r in picked],
            [r.get("rejected", {}).get(THROTTLED, 0) for r in picked])


def early_throttle_seconds(offered: list[int], throttled: list[int], rate: float, burst: float) -> int:
    """Seconds with throttling although no window ending there offered more than one bucket allows."""
    early = 0
    for s, count in enumerate(throttled):
        if not count:
            continue
        total = 0
        for a in range(s, -1, -1):
            total += offered[a]
            if total >= burst + rate * max(0, s - a - 1):
                break
        else:
            early += 1
    return early


def bucket_start(offered: list[int], rate: float, burst: float, cut_short: bool = False) -> float | None:
    """When a full bucket (rate, burst) would first run dry under this per-second load (seconds from
    the first second, each second's load spread evenly over it); None if it never would.

    `cut_short`: the load ended in its last second because the server hung up then, so that second's
    load came in only part of it: the bucket ran dry in it if that load used at least the tokens
    left at its start, at (load − tokens) / rate into it (the refill until then made up the rest)."""
    tokens = burst
    for s, load in enumerate(offered):
        if cut_short and s == len(offered) - 1:
            return s + min(1.0, (load - tokens) / rate) if load >= tokens else None
        if load > rate and tokens - (load - rate) < 0:
            return s + tokens / (load - rate)
        tokens = min(burst, tokens + rate - load) if load <= rate else tokens - (load - rate)
    return None


def bucket_excess(accepted: list[int], rate: float, burst: float) -> int:
    """The most accepted in any window of whole seconds beyond burst + rate × its length."""
    worst = None
    for a in range(len(accepted)):
        total = 0
        for b in range(a, len(accepted)):
            total += accepted[b]
            excess = total - (burst + rate * (b - a + 1))
            worst = excess if worst is None or excess > worst else worst
    return 0 if worst is None else math.ceil(worst)


def onset_in_second(offered: int, accepted: int, rate: float) -> float:
    """Where in its second throttling began, the load spread evenly over it: before the onset every
    message went through, after it `rate` a second did, so accepted = offered·f + rate·(1 − f)."""
    if offered <= rate:
        return 0.0
    return min(1.0, max(0.0, (accepted - rate) / (offered - rate)))


def _first(values: list[int]) -> int | None:
    return next((i for i, v in enumerate(values) if v), None)


def _error_us(observed: float | None, predicted: float | None) -> int | None:
    if observed is None or predicted is None:
        return None
    return int(abs(observed - predicted) * 1_000_000)


def _throttle(results: Mapping, limits: Mapping, single_sender: bool) -> dict | None:
    soft_rate, soft_burst = limits["soft_limit"]
    hard_rate, hard_burst = limits["hard_limit"]
    meetings = {}
    for meeting, rows in (results.get("rooms") or {}).items():
        seconds, offered, accepted, throttled = _series(rows)
        if not any(offered):
            continue
        facts = {"offered": sum(offered), "accepted": sum(accepted), "throttled": sum(throttled),
                 "early_throttle_seconds": early_throttle_seconds(offered, throttled, soft_rate, soft_burst)}
        if single_sender:
            start = _first(offered)
            load = offered[start:]
            predicted, first = bucket_start(load, soft_rate, soft_burst), _first(throttled[start:])
            observed = None if first is None else first + onset_in_second(
                offered[start + first], accepted[start + first], soft_rate)
            inner = [accepted[start + i] for i, n in enumerate(throttled[start:]) if n][1:-1]
            close_seconds = [row["t"] - seconds[start] for row in results.get("timeline") or ()
                             if row.get("counters", {}).get(HARD_LIMIT_CLOSE)]
            # Hung up in the load's last second (or the next: the close is timed when it was heard)?
            cut_short = bool(close_seconds) and close_seconds[0] - (len(load) - 1) in (0, 1)
            hang_up = bucket_start(load, hard_rate, hard_burst, cut_short)
            facts.update({
                "predicted_start_s": predicted, "observed_start_s": observed,
                "start_error_us": _error_us(observed, predicted),
                "steady_accepted_per_s": sum(inner) / len(inner) if inner else None,
                "steady_ratio": sum(inner) / len(inner) / soft_rate if inner else None,
                "bucket_excess": bucket_excess(accepted[start:], soft_rate, soft_burst),
                "hard_limit_predicted_s": hang_up,
                "hard_limit_observed_s": close_seconds[0] if close_seconds else None,
                # The close is timed by the second it was heard: judged against the predicted second.
                "hard_limit_error_us": _error_us(close_seconds[0] if close_seconds else None,
                                                 None if hang_up is None else int(hang_up)),
            })
        meetings[meeting] = facts
    if not meetings:
        return None
    offered = sum(m["offered"] for m in meetings.values())
    throttled = sum(m["throttled"] for m in meetings.values())
    out = {"offered": offered, "throttled": throttled, "throttled_ratio": throttled / offered if offered else None,
           "early_throttle_seconds": sum(m["early_throttle_seconds"] for m in meetings.values()),
           "per_attendee_judged": single_sender, "meetings": meetings}
    if single_sender:  # one sender: one meeting had load, and its facts are the attendee's
        out.update({k: v for k, v in next(iter(meetings.values())).items() if k not in out})
    return out


# -- control plane ------------------------------------------------------------------------------------


def _api(results: Mapping) -> dict | None:
    counters = results.get("counters") or {}
    calls = {op: counters.get(f"{op}_calls", 0) for op in API_OPERATIONS}
    if not any(calls.values()):
        return None
    throttled = {op: counters.get(f"{op}_failures.{THROTTLING}", 0) for op in API_OPERATIONS}
    peak, steady, operations = 0, [], {}
    for op in API_OPERATIONS:
        per_second = []
        for row in results.get("timeline") or ():
            c = row.get("counters", {})
            failures = sum(n for k, n in c.items() if k.startswith(f"{op}_failures."))
            per_second.append((c.get(f"{op}_calls", 0) - failures, c.get(f"{op}_failures.{THROTTLING}", 0)))
        accepted = [a for a, _ in per_second]
        peak = max(peak, max(accepted, default=0))
        inner = [a for a, t in per_second if t][1:-1]
        steady += inner
        operations[op] = {"calls": calls[op], "throttled": throttled[op],
                          "peak_accepted_per_s": max(accepted, default=0),
                          "steady_accepted_per_s": sum(inner) / len(inner) if inner else None}
    total = sum(calls.values())
    return {"calls": total, "throttled": sum(throttled.values()),
            "throttled_ratio": sum(throttled.values()) / total, "peak_accepted_per_s": peak,
            "steady_accepted_per_s": sum(steady) / len(steady) if steady else None, "operations": operations}
