"""Did the run measure anything? A built-in check of every run and of the gate.

A load test whose users never connected, whose messages were never accepted, or whose accepted
messages reached none of the receivers that were there, has measured nothing: every rule about
loss or duplicates holds vacuously, and a latency rule has no samples. Such a run is an error
(exit 2), never a pass, and the reason names the cause (connect failures grouped by cause, at which
endpoint).

The facts come from the results document alone (counters and accounting), so `chatload run`, the
gate (on any report, even one written before this check existed: it judges what the report holds)
and a plain `locust -f` run reach the same answer:

- every population: `users_connected.<population>` / `users_spawned.<population>` is at least
  `min_connected` (default 0.9; a scenario may state its own);
- senders: if the run has sending populations, something was sent; if anything was sent,
  something was accepted;
- deliveries: if something was accepted while receivers were connected, something was delivered;
- the load itself: every user the run was asked for was started (`users_spawned` against the counts
  Locust was given, `metadata.planned_users`), or at least `min_spawned` of each population when a
  scenario states that lower bound. A ramp that had not finished when the run ended applied a
  fraction of the load: whatever its rules say, it did not measure what it claims. An incomplete
  run (Ctrl-C, a lost worker) is already not a pass, and its counts are not the whole run's: this
  part judges complete runs only.
"""

from __future__ import annotations

from collections.abc import Mapping

from .populations import population_class_name

DEFAULT_MIN_CONNECTED = 0.9
DEFAULT_MIN_SPAWNED = 1.0


def _family(counters: Mapping, prefix: str) -> dict[str, int]:
    return {name[len(prefix):]: n for name, n in counters.items() if name.startswith(prefix) and n}


def failure_causes(counters: Mapping) -> str:
    """Connect and token failures grouped by cause, most frequent first ("" if none)."""
    causes = {**{f"connect {k}": n for k, n in _family(counters, "connect_failures.").items()},
              **{f"token {k}": n for k, n in _family(counters, "token_fetch_failures.").items()}}
    return ", ".join(f"{cause} ×{n:,}" for cause, n in sorted(causes.items(), key=lambda item: -item[1]))


def judge_report(report: Mapping) -> list[str]:
    """`problems` for a report or results document alone (the gate): the fraction a scenario stated,
    and its sending populations, come from the document itself."""
    stated = report.get("measured") or {}
    as_run = (report.get("scenario") or {}).get("as_run")

    def fraction(key: str, default: float) -> float:
        return stated[key] if isinstance(stated.get(key), int | float) else default

    return problems(report, min_connected=fraction("min_connected", DEFAULT_MIN_CONNECTED),
                    min_spawned=fraction("min_spawned", DEFAULT_MIN_SPAWNED),
                    sending_populations=_sending_populations(as_run) if isinstance(as_run, Mapping) else None)


def _sending_populations(as_run: Mapping) -> list[str] | None:
    from ..services import registry

    try:
        service = registry.get(((as_run.get("target") or {}).get("service")) or registry.DEFAULT)
        return [population_class_name(p["kind"], index) for index, p in enumerate(as_run.get("populations") or ())
                if service.populations[p["kind"]].sends]
    except (registry.UnknownService, KeyError, TypeError):
        return None  # a report of another version: judge without knowing who sends


def problems(results: Mapping, *, min_connected: float = DEFAULT_MIN_CONNECTED,
             sending_populations: list[str] | None = None, min_spawned: float = DEFAULT_MIN_SPAWNED) -> list[str]:
    """Why the run measured nothing (or not the load it was asked for); an empty list when it did."""
    counters = results.get("counters") or {}
    totals = (results.get("accounting") or {}).get("totals") or {}
    endpoint = ((results.get("metadata") or {}).get("target") or {}).get("endpoint") or "the target"
    causes = failure_causes(counters)
    why = f" ({causes}; endpoint {endpoint})" if causes else ""
    found: list[str] = []

    spawned = _family(counters, "users_spawned.")
    connected = _family(counters, "users_connected.")
    # Results written before per-population counts existed still say how many connections opened.
    anyone = sum(connected.values()) if spawned else counters.get("connects", 0)
    if not anyone:
        who = ", ".join(f"{population} 0 of {users:,}" for population, users in sorted(spawned.items()))
        found.append(f"no user connected{': ' + who if who else ''}{why}")
    else:
        for population, users in sorted(spawned.items()):
            ok = connected.get(population, 0)
            if ok < min_connected * users:
                found.append(f"{population}: {ok:,} of {users:,} users connected (at least {min_connected:.0%} "
                             f"must){why}")

    sent = counters.get("sent", 0)
    accepted = totals.get("accepted", counters.get("accepted", 0))
    if sending_populations and sent == 0 and any(connected.get(p, 0) for p in sending_populations):
        found.append(f"the senders ({', '.join(sending_populations)}) connected but sent nothing")
    if sent and not accepted:
        rejected = _family(counters, "rejected.")
        detail = ", ".join(f"{k} ×{n:,}" for k, n in sorted(rejected.items(), key=lambda item: -item[1]))
        found.append(f"none of the {sent:,} messages sent was accepted"
                     + (f" (rejected: {detail})" if detail else " (no answer came)"))
    if accepted and totals.get("connections", 0) and not totals.get("delivered", 0):
        found.append(f"{accepted:,} messages were accepted while {totals['connections']:,} receiving connections "
                     "were open, yet none was delivered")
    if results.get("complete", True):
        found += _unspawned(spawned, (results.get("metadata") or {}).get("planned_users"), min_spawned)
    return found


def _unspawned(spawned: Mapping[str, int], planned, min_spawned: float) -> list[str]:
    """Each population (or the whole run, when Locust was given only a total) that started fewer
    users than it was asked for."""
    if not isinstance(planned, Mapping):
        return []  # a document written before the plan was recorded
    by_population = planned.get("by_population") or {}
    asked = dict(by_population) if by_population else {"users": planned.get("total") or 0}
    started = spawned if by_population else {"users": sum(spawned.values())}
    bound = f"at least {min_spawned:.0%} must" if min_spawned < 1 else "all must"
    short = [f"{who} {started.get(who, 0):,} of {n:,}" for who, n in sorted(asked.items())
             if isinstance(n, int) and started.get(who, 0) < min_spawned * n]
    if not short:
        return []
    return [f"the load was not all applied: {', '.join(short)} users started before the run ended ({bound}; "
            "the ramp did not finish within the duration — lengthen duration or shorten ramp, or state "
            "[expectations] min_spawned)"]
