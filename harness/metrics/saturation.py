"""When the harness itself saturated: one rule, stated here once and carried into the report's JSON
(`health.rule`), its HTML, the console and the docs, so none of them can judge otherwise.

A saturated harness queues work itself, and its latencies then include that queueing. Each process
reports its worst event-loop lag, gevent hub stall and CPU every second; the run saturated if any
second of the *judged window* passed a limit. Which seconds are judged depends on what the run
measures:

- `steady` (the default): every user started, from the second after the ramp's last to the second
  before the run's last. Start-up (a crowd of handshakes and token fetches at once) stalls the hub
  for a moment without touching the measurements that follow; the final second is drain and export.
- `ramp`: the scenario measures its ramp (a join storm: its joins and roster changes happen while
  users start), so every second but the last is judged, the ramp included.

The whole run's worst values stay in `health.per_process`, shown as such and never judged. A window
with no second in it (a run too short, or whose users gauge never held still) judges nothing: its
`verdict` says so, never "within limits".
"""

from __future__ import annotations

from collections.abc import Sequence

LIMITS = {"loop_lag_max_us": 50_000, "hub_stall_max_us": 100_000, "cpu_percent": 90.0}
WINDOWS = {
    "steady": "the steady part of the run (every user started; the ramp and the last second left out)",
    "ramp": "the whole run but its last second, ramp included (the scenario measures its ramp)",
}
DEFAULT_WINDOW = "steady"
NOT_JUDGED = "not judged (0 seconds in the judged window)"


def rule(window: str = DEFAULT_WINDOW) -> str:
    """The rule in words, as the report, the console and the docs state it."""
    return (f"The harness saturated if, in any second of {WINDOWS[window]}, a process's event-loop lag "
            f"passed {LIMITS['loop_lag_max_us'] / 1000:g} ms, its gevent hub stalled longer than "
            f"{LIMITS['hub_stall_max_us'] / 1000:g} ms, or its CPU passed {LIMITS['cpu_percent']:g} %.")


def judged_rows(rows: Sequence[dict], window: str) -> list[dict]:
    """The timeline rows the rule judges."""
    if window == "ramp":
        return list(rows[:-1])
    users = max((row.get("users", 0) for row in rows), default=0)
    # The first interval at full strength still covers the end of the ramp: start one later.
    return [row for previous, row in zip(rows, rows[1:-1], strict=False)
            if users and previous.get("users", 0) == users and row.get("users", 0) == users]


def over_limits(health: dict) -> list[str]:
    """The limits one second's health (of the run, or of one process) passed, in words."""
    return [f"{key} reached {health.get(key, 0)} (limit {limit})" for key, limit in LIMITS.items()
            if health.get(key, 0) > limit]


def judge(rows: Sequence[dict], window: str = DEFAULT_WINDOW) -> dict:
    """`health`'s verdict over a per-second timeline (rows with `t`, `users`, `health`): the window,
    the rule, the worst judged values, whether they saturated and where."""
    judged = judged_rows(rows, window)
    reasons = []
    for row in judged:
        reasons += [f"second {row['t'] - rows[0]['t']}: {reason}" for reason in over_limits(row.get("health", {}))]
    worst = {key: max((row.get("health", {}).get(key, 0) for row in judged), default=None) for key in LIMITS}
    verdict = "saturated" if reasons else "within limits" if judged else NOT_JUDGED
    return {"window": window, "rule": rule(window), "judged_seconds": len(judged), "judged": worst,
            "saturated": bool(reasons), "verdict": verdict,
            "reasons": reasons[:10] + ([f"… and {len(reasons) - 10} more"] if len(reasons) > 10 else [])}
