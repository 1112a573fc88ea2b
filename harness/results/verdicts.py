"""Facts a run's checks are judged on, derived once the run is over: rate limits and reconnects.

They land in the report under `verdicts`, and the gate reads them by name (`rate_limit.peak_ratio`,
`token_fetch.peak_per_s`, …; see harness/gate/metrics.py), so a scenario states its expectations as
ordinary rules.

Rate limits, per room with a known limit (the scenario's, or GetRoom's for a room given by ARN):
- accepted per second is counted by the server's own SendTime, so on one machine the seconds are
  exactly the server's rate window (a fixed window must never exceed the limit in any second);
- `peak_ratio`: the busiest second's accepted count over the limit (max over rooms);
- `steady_ratio`: mean accepted per second over the limit, over the seconds the room was offered at
  least 1.2 × its limit, the first and last second of traffic left out (min over rooms): the
  tolerance of a rule on it is the tolerance of the verdict, stated in the scenario;
- `untied_rejections`: rate-limit rejections that matched no pending request (every rejection must
  be tied to its request; IVS Chat: an ERROR 429 with its RequestId); `non_rate_limited_rejections`:
  sends rejected for any other reason (reports before it had IVS Chat's name, `non_429_rejections`,
  which the gate still reads as an alias: harness/gate/metrics.py ALIASES).
Reconnects: the peak of token fetches in any second (a mass drop is N CreateChatToken calls at
once), tries per outage, kicks (and rejoins after a kick, which must stay 0), and who was not
connected at the end, by reason.
"""

from __future__ import annotations

from collections import Counter

OVERLOAD = 1.2  # a second counts as overloaded when offered ≥ 1.2 × the limit


def derive(results: dict, room_limits: dict[str, int] | None = None, faults: list[dict] | None = None,
           limit_words: str | None = None) -> dict:
    """`limit_words`: how the service limits messages when its rooms have no limit of their own
    (Chime: per sender), kept beside each such room so the report never says "unknown" for it."""
    return {"rate_limit": _rate_limit(results, room_limits or {}, limit_words),
            "reconnect": _reconnect(results, faults or [])}


def _rate_limit(results: dict, room_limits: dict[str, int], limit_words: str | None = None) -> dict:
    counters = results.get("counters", {})
    totals = (results.get("accounting") or {}).get("totals", {})
    by_category = totals.get("rejected_by_category", {})
    rooms = {}
    for room, seconds in (results.get("rooms") or {}).items():
        limit = room_limits.get(room)
        rows = [seconds[key] for key in sorted(seconds, key=int)]
        busy = [row for row in rows if row["offered"] or row["accepted"]]
        accepted = [row["accepted"] for row in busy]
        inner = busy[1:-1]
        overloaded = [row["accepted"] for row in inner if limit and row["offered"] >= OVERLOAD * limit]
        rooms[room] = {
            "limit": limit,
            **({"limit_words": limit_words} if limit is None and limit_words else {}),
            "offered": sum(row["offered"] for row in rows),
            "accepted": sum(accepted),
            "rejected": dict(sum((Counter(row["rejected"]) for row in rows), Counter())),
            "peak_accepted_per_s": max(accepted, default=0),
            "peak_ratio": max(accepted, default=0) / limit if limit else None,
            "overloaded_seconds": len(overloaded),
            "steady_ratio": sum(overloaded) / len(overloaded) / limit if overloaded else None,
        }
    judged = [r for r in rooms.values() if r["limit"]]
    other = sum(n for category, n in by_category.items() if category != "rate_limited")
    return {
        "rooms": rooms,
        "peak_ratio": max((r["peak_ratio"] for r in judged), default=None),
        "steady_ratio": min((r["steady_ratio"] for r in judged if r["steady_ratio"] is not None), default=None),
        "overloaded_seconds": sum(r["overloaded_seconds"] for r in judged),
        "untied_rejections": counters.get("untied_rejections.rate_limited", 0),
        "non_rate_limited_rejections": other,
        "overload_threshold": OVERLOAD,
    }


def _reconnect(results: dict, faults: list[dict]) -> dict:
    counters = results.get("counters", {})
    timeline = results.get("timeline", [])

    def fetches(row: dict) -> int:
        c = row.get("counters", {})
        return c.get("token_fetches", 0) + sum(v for k, v in c.items() if k.startswith("token_fetch_failures."))

    attempts = results.get("latency_us", {}).get("reconnect_attempts", {})
    # The storm: from the second of the first fault on, so the start-up ramp's connects don't count.
    first_fault_s = min((f["applied_at_ns"] // 1_000_000_000 for f in faults if "applied_at_ns" in f), default=None)
    storm = [fetches(row) for row in timeline if first_fault_s is not None and row["t"] >= first_fault_s]
    return {
        "token_fetch_peak_per_s": max((fetches(row) for row in timeline), default=0),
        "storm_token_fetch_peak_per_s": max(storm, default=0) if first_fault_s is not None else None,
        "attempts_max": attempts.get("max", 0) if attempts.get("count") else 0,
        "reconnects": counters.get("reconnects", 0),
        "kicked": counters.get("kicked", 0),
        "kicked_rejoined": counters.get("kicked_rejoined", 0),
        "not_connected_at_end": {k.split(".", 1)[1]: v for k, v in counters.items()
                                 if k.startswith("not_connected_at_end.")},
        "timeline": [{"t": row["t"], "connections_open": row.get("connections_open", 0),
                      "reconnects": row.get("counters", {}).get("reconnects", 0), "token_fetches": fetches(row)}
                     for row in timeline],
    }
