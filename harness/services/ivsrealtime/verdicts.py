"""IVS Real-Time's own verdict: participant tokens against the 50 TPS CreateParticipantToken quota.

Derived after a run from the results alone (per-second counters and the retry_wait histogram), so
it reads the same from a run against the emulator or AWS. Under `report["verdicts"]["ivsrealtime"]`:

- `requests`, `issued`, `throttled` (answered 429 ThrottlingException), `other_failures`;
- `offered_peak_per_s` / `issued_peak_per_s`: the busiest second's token requests / tokens issued;
- `throttled_seconds`: seconds with at least one 429;
- `quota_ratio`: tokens issued from the first second with a 429 to the last, over what the quota
  allows in that span plus one second (the burst a full bucket, or a window straddling a second,
  lets through): at most 1 when the quota holds, a little over only from the per-second rows'
  edges; None when nothing was throttled. `steady_issued_per_s` is the mean over those seconds;
- `peak_ratio`: the busiest second's issued tokens over the quota (a token bucket that starts full,
  like the emulator's, lets up to twice the quota through in the first second);
- `retries`, `retry_wait_min_ms`, `retry_wait_p50_ms`: the waits the harness chose before trying
  again after a failed token fetch (or connect); `backs_off` is 1 when every retry waited at least
  `MIN_BACKOFF_S` (a harness that retried throttled fetches at once would hammer the quota), None
  when nothing was retried.

Self-signed tokens make no CreateParticipantToken call: the same facts, with `source` saying so.
"""

from __future__ import annotations

QUOTA_TPS = 50  # CreateParticipantToken, per account and region (not adjustable)
THROTTLED = "token_fetch_failures.ThrottlingException"
MIN_BACKOFF_S = 0.5

# Gate metrics (ChatService.verdict_metrics): name → (path under verdicts.ivsrealtime, kind, direction, words)
VERDICT_METRICS = {
    "token_rate.requests": (("token_rate", "requests"), "count", "higher_is_better",
                            "participant token requests made (CreateParticipantToken calls or self-signed)"),
    "token_rate.throttled": (("token_rate", "throttled"), "count", "lower_is_better",
                             "token requests answered 429 ThrottlingException"),
    "token_rate.throttled_seconds": (("token_rate", "throttled_seconds"), "count", "lower_is_better",
                                     "seconds with at least one throttled token request"),
    "token_rate.offered_peak_per_s": (("token_rate", "offered_peak_per_s"), "count", "higher_is_better",
                                      "most token requests in any one second"),
    "token_rate.issued_peak_per_s": (("token_rate", "issued_peak_per_s"), "count", "lower_is_better",
                                     "most tokens issued in any one second"),
    "token_rate.peak_ratio": (("token_rate", "peak_ratio"), "ratio", "lower_is_better",
                              "busiest second's issued tokens / the 50 TPS quota"),
    "token_rate.quota_ratio": (("token_rate", "quota_ratio"), "ratio", "lower_is_better",
                               "tokens issued while throttling / what the 50 TPS quota allows then (plus a "
                               "second's burst): at most 1 when the quota holds"),
    "token_rate.backs_off": (("token_rate", "backs_off"), "flag", "higher_is_better",
                             f"1 when every retry after a failed token fetch waited at least {MIN_BACKOFF_S:g} s"),
}


def _requests(counters: dict) -> int:
    return counters.get("token_fetches", 0) + sum(n for name, n in counters.items()
                                                  if name.startswith("token_fetch_failures."))


def token_rate(results: dict, source: str, quota_tps: float = QUOTA_TPS) -> dict:
    counters = results.get("counters") or {}
    seconds = [row.get("counters") or {} for row in results.get("timeline") or ()]
    requests = _requests(counters)
    issued, throttled = counters.get("token_fetches", 0), counters.get(THROTTLED, 0)
    throttled_at = [index for index, row in enumerate(seconds) if row.get(THROTTLED)]
    span = seconds[throttled_at[0]:throttled_at[-1] + 1] if throttled_at else []
    issued_in_span = sum(row.get("token_fetches", 0) for row in span)
    steady = issued_in_span / len(span) if span else None
    issued_peak = max((row.get("token_fetches", 0) for row in seconds), default=0)
    waits = (results.get("latency_us") or {}).get("retry_wait") or {}
    retries = waits.get("count", 0)
    wait_min = waits.get("min") if retries else None
    return {
        "source": source,
        "quota_tps": quota_tps,
        "requests": requests,
        "issued": issued,
        "throttled": throttled,
        "other_failures": requests - issued - throttled,
        "throttled_seconds": len(throttled_at),
        "offered_peak_per_s": max((_requests(row) for row in seconds), default=0),
        "issued_peak_per_s": issued_peak,
        "peak_ratio": issued_peak / quota_tps,
        "steady_issued_per_s": steady,
        "quota_ratio": issued_in_span / (quota_tps * (len(span) + 1)) if span else None,
        "retries": retries,
        "retry_wait_min_ms": wait_min / 1000 if wait_min is not None else None,
        "retry_wait_p50_ms": (waits.get("percentiles") or {}).get("50", 0) / 1000 if retries else None,
        "backs_off": int(wait_min >= MIN_BACKOFF_S * 1e6) if wait_min is not None else None,
    }
