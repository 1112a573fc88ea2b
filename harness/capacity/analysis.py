"""From step reports to answers: what each step measured, the knee and its margin, the USL fit, how
many load-generator processes a target needs, and what the measured load would cost a month.

Everything here is pure: reports (dicts) in, JSON-ready dicts out. Every derived number carries its
basis — "measured" (read from a step's report), "fitted" (the USL curve inside the measured range),
"extrapolated" (beyond what was measured) or "input" (a price or machine size someone typed in).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from ..gate.rules import evaluate, parse_rule
from ..metrics import saturation
from ..report.figures import counter_sum
from ..results.run_results import SATURATION
from .plan import CapacityPlan, PlannedStep, Prices, Sizing
from .usl import METHOD, UslError, fit_usl

MEASURED, FITTED, EXTRAPOLATED, INPUT = "measured", "fitted", "extrapolated", "input"
LATENCY_KEYS = {"p50": "50", "p90": "90", "p99": "99", "p99.9": "99.9"}
GROWING_FACTOR, GROWING_MIN_US = 2.0, 10_000  # last third's p99 over the first third's: a queue building up


# -- one step ------------------------------------------------------------------------------------------


def measure_step(plan: CapacityPlan, step: PlannedStep, report: Mapping | None, *, interrupted: bool = False,
                 error: str | None = None, links: Mapping | None = None) -> dict:
    """The step table's row: load, objective, latency, accounting, steady rates, harness health."""
    record = {
        "index": step.index, "value": step.value, "load": plan.load_of(step), "room_size": step.room_size,
        "rooms": step.rooms, "users": step.users, "offered_messages_per_s": round(step.offered_messages_per_s, 6),
        **(links or {}),
    }
    if report is None:  # the step failed to run (or was stopped before it wrote a report): not judged
        record.update(complete=False, incomplete_reason=error or "no report", judged=False, objective_met=None,
                      checks=[], error=error or "no report", run_failed=not interrupted)
        return record
    complete = bool(report.get("complete"))
    checks = [check.to_dict() for check in evaluate(report, [parse_rule(rule) for rule in plan.spec.objective])]
    judged = not interrupted
    met = complete and all(check["verdict"] == "pass" for check in checks)
    record.update(
        complete=complete,
        incomplete_reason=None if complete else (report.get("incomplete_reason") or "incomplete"),
        judged=judged,
        objective_met=met if judged else None,
        checks=checks,
        delivery_us=_latency(report, "delivery"),
        ack_us=_latency(report, "ack"),
        accounting=_accounting(report),
        steady=steady_window(report, step.users),
        harness=_harness(report, step.users),
    )
    record["harness"]["saturated_while_measured"] = harness_saturated(record)
    if error:
        record["error"] = error
    steady = record["steady"]
    processes = record["harness"]["processes"]
    if steady.get("deliveries_per_s") is not None:
        record["harness"]["deliveries_per_s_per_process"] = round(steady["deliveries_per_s"] / processes, 1)
    return record


def _latency(report: Mapping, name: str) -> dict | None:
    summary = (report.get("latency_us") or {}).get(name) or {}
    if not summary.get("count"):
        return None
    percentiles = summary.get("percentiles") or {}
    out = {"count": summary["count"], **{key: percentiles.get(p) for key, p in LATENCY_KEYS.items()},
           "max": summary.get("max"), "mean": round(summary["mean"], 1) if summary.get("mean") is not None else None}
    return out


def _accounting(report: Mapping) -> dict | None:
    totals = (report.get("accounting") or {}).get("totals")
    if not totals:
        return None
    keys = ("sent", "accepted", "rejected", "expected", "delivered", "lost", "duplicates", "out_of_order",
            "unconfirmed_at_disconnect")
    out = {key: totals.get(key) for key in keys}
    out["rejected_by_code"] = dict(totals.get("rejected_by_code") or {})
    expected = totals.get("expected")
    out["delivery_ratio"] = round(totals.get("delivered", 0) / expected, 6) if expected else None
    return out


def steady_window(report: Mapping, users: int) -> dict:
    """Rates over the seconds of the hold: every user spawned, before the stop; the first full second
    (still settling) and the last (cut by the stop) are left out when there is enough to spare."""
    rows = list(report.get("timeline") or [])
    stop = next((i for i, row in enumerate(rows) if counter_sum(row.get("counters") or {}, "not_sent.stopping")),
                len(rows))
    rows = rows[:stop + 1]
    full = [i for i, row in enumerate(rows) if row.get("users", 0) >= users]
    if len(full) >= 3:
        window = rows[full[0] + 1:full[-1]]
    elif full:
        window = [rows[i] for i in full]
    else:
        window = [row for row in rows if _deliveries(row)]
    if not window:
        return {"window_s": 0, "deliveries_per_s": None, "accepted_per_s": None, "sent_per_s": None,
                "rejected_per_s": None, "latency_growing": None}

    def mean(values) -> float:
        return round(sum(values) / len(values), 2)

    p99 = [row["delivery"]["p99_us"] for row in window if (row.get("delivery") or {}).get("p99_us") is not None]
    first = last = None
    growing = None
    if len(p99) >= 3:
        third = max(1, len(p99) // 3)
        first, last = statistics.median(p99[:third]), statistics.median(p99[-third:])
        growing = last > GROWING_FACTOR * first and last - first > GROWING_MIN_US
    return {
        "window_s": len(window),
        "window_health": _window_health(window),
        "deliveries_per_s": mean([_deliveries(row) for row in window]),
        "accepted_per_s": mean([(row.get("counters") or {}).get("accepted", 0) for row in window]),
        "sent_per_s": mean([(row.get("counters") or {}).get("sent", 0) for row in window]),
        "rejected_per_s": mean([counter_sum(row.get("counters") or {}, "rejected") for row in window]),
        "delivery_p99_first_us": first, "delivery_p99_last_us": last, "latency_growing": growing,
    }


def _window_health(window: list[Mapping]) -> dict | None:
    """The harness's worst health over the steady window, when the timeline carries per-second health
    (`timeline[].health`, worst over processes); None when it does not (then only the whole run's is known)."""
    rows = [row["health"] for row in window if isinstance(row.get("health"), Mapping)]
    if not rows:
        return None
    worst = {}
    for key in SATURATION:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)]
        worst[key] = max(values) if values else None
    # The one rule's own limits check (harness/metrics/saturation.py), over the window's worst values.
    worst["saturated"] = bool(saturation.over_limits({key: v for key, v in worst.items() if v is not None}))
    return worst


def harness_saturated(step: Mapping) -> bool:
    """Whether the harness saturated while the step was measured: over the steady window when the
    timeline says, else over the whole run (ramp included, so a spike while users connect counts)."""
    window = (step.get("steady") or {}).get("window_health")
    if window is not None:
        return bool(window["saturated"])
    return bool((step.get("harness") or {}).get("saturated"))


def harness_kept_up(step: Mapping) -> bool:
    """Whether the harness could count every delivery: its CPU stayed under the saturation limit.
    Throughput is counted, not timed, so a loop-lag or hub-stall spike delays deliveries without
    losing them; only a harness out of CPU caps the deliveries per second it sees."""
    window = (step.get("steady") or {}).get("window_health")
    cpu = window.get("cpu_percent") if window is not None else (step.get("harness") or {}).get("cpu_percent_max")
    return cpu is None or cpu <= SATURATION["cpu_percent"]


def _deliveries(row: Mapping) -> int:
    if "deliveries" in row:
        return row["deliveries"]
    counters = row.get("counters") or {}
    if "deliveries" in counters:
        return counters["deliveries"]
    return (row.get("delivery") or {}).get("count", 0) + (row.get("ack") or {}).get("count", 0)


def _harness(report: Mapping, users: int) -> dict:
    health = report.get("health") or {}
    per_process = health.get("per_process") or {}
    processes = len((report.get("metadata") or {}).get("processes") or per_process) or 1

    def worst(key):
        values = [p[key] for p in per_process.values() if isinstance(p.get(key), int | float)]
        return max(values) if values else None

    return {
        "processes": processes,
        "saturated": bool(health.get("saturated")),
        "reasons": list(health.get("reasons") or []),
        "cpu_percent_max": worst("cpu_percent"),
        "loop_lag_max_us": worst("loop_lag_max_us"),
        "hub_stall_max_us": worst("hub_stall_max_us"),
        "connections_per_process": round(users / processes, 1),
    }


# -- the knee -------------------------------------------------------------------------------------------


def find_knee(plan: CapacityPlan, steps: list[dict]) -> dict:
    """The last step meeting every objective rule before the first that does not, with its margin.

    outcome: "knee" (a step met it, a later one broke it), "ceiling" (every planned step met it),
    "first_step_failed", or "undecided" (stopped before any step broke the objective: interrupted or
    failed)."""
    judged = [s for s in steps if s.get("judged")]
    breaking = next((s for s in judged if not s.get("objective_met")), None)
    passing = [s for s in judged if s.get("objective_met") and (breaking is None or s["index"] < breaking["index"])]
    knee = passing[-1] if passing else None
    if breaking is not None and knee is None:
        outcome = "first_step_failed"
    elif breaking is not None:
        outcome = "knee"
    elif len(judged) == len(plan.steps) and knee is not None:
        outcome = "ceiling"
    else:
        outcome = "undecided"
    out: dict = {"outcome": outcome, "knee": None, "breaking": None}
    if knee is not None:
        out["knee"] = {"index": knee["index"], "value": knee["value"], "load": knee["load"],
                       "room_size": knee["room_size"], "margins": [margin(c) for c in knee.get("checks", [])]}
    if breaking is not None:
        failed = [c for c in breaking.get("checks", []) if c.get("verdict") != "pass"]
        out["breaking"] = {"index": breaking["index"], "value": breaking["value"], "load": breaking["load"],
                           "room_size": breaking["room_size"], "checks": failed,
                           "reason": None if failed else (breaking.get("incomplete_reason") or breaking.get("error")
                                                          or "the step did not complete")}
    if knee is not None and breaking is not None:
        out["limit_between"] = [knee["load"], breaking["load"]]
    out.update(_limited_by(outcome, steps, knee, breaking))
    return out


def margin(check: Mapping) -> dict:
    """How far a passing rule's observed value is from its threshold, in the rule's unit and relative."""
    op, expected, observed = check.get("op"), check.get("expected"), check.get("observed")
    out = {key: check.get(key) for key in ("rule", "metric", "op", "expected", "observed", "unit", "verdict")}
    headroom = None
    if isinstance(observed, int | float) and isinstance(expected, int | float):
        if op in ("<", "<="):
            headroom = expected - observed
        elif op in (">", ">="):
            headroom = observed - expected
    elif isinstance(observed, int | float) and isinstance(expected, list | tuple) and len(expected) == 2:
        headroom = min(observed - expected[0], expected[1] - observed)
    out["headroom"] = None if headroom is None else round(headroom, 6)
    reference = expected if isinstance(expected, int | float) else None
    out["headroom_ratio"] = (round(headroom / abs(reference), 6)
                             if headroom is not None and reference not in (None, 0) else None)
    if headroom is None and op in ("==", "!="):
        out["note"] = "an exact rule: met or not, no margin"
    return out


def _limited_by(outcome: str, steps: list[dict], knee: dict | None, breaking: dict | None) -> dict:
    saturated = harness_saturated
    upto = knee["index"] if knee else 0
    early = [s["index"] for s in steps if s["index"] <= upto and saturated(s)]
    if early:
        return {"limited_by": "harness", "limit_note": (
            f"the harness saturated at step(s) {', '.join(map(str, early))}, at or before the knee: the knee may be "
            "the load generator's limit, not the service's. Run again with more processes (--processes) or "
            "machines, then trust the knee.")}
    if breaking is not None and saturated(breaking):
        return {"limited_by": "unclear", "limit_note": (
            f"the harness was healthy up to the knee but saturated at the breaking step ({breaking['index']}): "
            "the objective may have broken in the harness's own queueing; check that step's harness health.")}
    if outcome == "ceiling":
        return {"limited_by": "ceiling", "limit_note": (
            "every step met the objective: the service's limit is above the schedule's ceiling.")}
    if outcome == "knee":
        return {"limited_by": "service", "limit_note": (
            "the harness stayed within its limits through the breaking step: the knee is the service's.")}
    return {"limited_by": None, "limit_note": None}


# -- Universal Scalability Law ----------------------------------------------------------------------------


def usl_section(plan: CapacityPlan, steps: list[dict]) -> dict:
    """Fit throughput (steady deliveries/s) against load. Steps whose harness ran out of CPU counted
    only what the harness could keep up with, so they are left out — unless fewer than three would
    remain, in which case they are used and the section says so."""
    out: dict = {"method": METHOD, "load": plan.load_label, "throughput": "deliveries per second (steady window)",
                 "model": "X(N) = λN / (1 + σ(N−1) + κN(N−1))", "points": []}
    candidates = [s for s in steps if s.get("complete") and (s.get("steady") or {}).get("deliveries_per_s") is not None
                  and s["load"] > 0]
    healthy = [s for s in candidates if harness_kept_up(s)]
    use = healthy if len({s["load"] for s in healthy}) >= 3 else candidates
    out["includes_saturated_steps"] = use is candidates and len(healthy) < len(candidates)
    for s in steps:
        used = s in use
        why = None
        if not used:
            why = ("the harness ran out of CPU" if s in candidates else "no steady throughput (incomplete step)")
        out["points"].append({"step": s["index"], "load": s["load"],
                              "throughput": (s.get("steady") or {}).get("deliveries_per_s"),
                              "harness_saturated": harness_saturated(s), "harness_kept_up": harness_kept_up(s),
                              "used": used, "why_not": why})
    try:
        fit = fit_usl([s["load"] for s in use], [s["steady"]["deliveries_per_s"] for s in use])
    except UslError as exc:
        out["error"] = f"no fit: {exc}"
        return out
    low, high = min(fit.loads), max(fit.loads)
    out["measured_range"] = [low, high]
    out["parameters"] = {"lambda": fit.lam, "sigma": fit.sigma, "kappa": fit.kappa, "basis": FITTED}
    note = None
    if fit.dof <= 0:
        note = "three points: any three-parameter curve passes through them, so R² = 1 says nothing"
    elif fit.dof == 1:
        note = "one degree of freedom: treat the fit as a sketch"
    out["quality"] = {"r2": _round(fit.r2), "rmse": _round(fit.rmse), "points": fit.points, "dof": fit.dof,
                      "note": note}
    peak = fit.peak_load
    if peak is not None:
        out["shape"] = "peak"
        out["peak"] = {"load": _round(peak), "throughput": _round(fit.peak_throughput),
                       "basis": FITTED if peak <= high else EXTRAPOLATED}
    elif fit.asymptote is not None:
        out["shape"] = "plateau"
        out["asymptote"] = {"throughput": _round(fit.asymptote), "basis": EXTRAPOLATED}
    else:
        out["shape"] = "linear"
    out["linear_capacity_per_unit"] = _round(fit.lam)
    return out


def usl_curve(section: Mapping, points: int = 120) -> dict | None:
    """The fitted curve for plotting, split at the largest measured load: {"fitted": (x, y), "extrapolated": …}."""
    params = section.get("parameters")
    if not params:
        return None
    high = section["measured_range"][1]
    peak = (section.get("peak") or {}).get("load")
    end = max(high * 1.5, (peak or 0) * 1.3)
    lam, sigma, kappa = params["lambda"], params["sigma"], params["kappa"]

    def series(a, b):
        xs = [a + (b - a) * i / (points - 1) for i in range(points)]
        return xs, [lam * x / (1 + sigma * (x - 1) + kappa * x * (x - 1)) for x in xs]

    return {"fitted": series(min(1.0, high / 100), high), "extrapolated": series(high, end)}


# -- load generator sizing -----------------------------------------------------------------------------


def sizing_section(plan: CapacityPlan, steps: list[dict], knee: Mapping, options: Sizing,
                   default_cores: int) -> dict:
    """Processes and machines a target room size needs, from deliveries per process measured."""
    cores = options.cores_per_machine or default_cores
    target = options.target_room_size or max(math.ceil(s.room_size) for s in plan.steps)
    out: dict = {"inputs": {"target_room_size": target, "cores_per_machine": cores,
                            "cpu_budget_percent": options.cpu_budget_percent,
                            "target_room_size_given": options.target_room_size is not None,
                            "cores_per_machine_given": options.cores_per_machine is not None, "basis": INPUT}}
    # A process is measured by what it kept up with: CPU under the limit (a hub-stall or loop-lag spike
    # delays deliveries, it does not stop a process from counting them).
    healthy = [s for s in steps if s.get("complete") and harness_kept_up(s)
               and (s["harness"].get("deliveries_per_s_per_process") or 0) > 0
               and (s["harness"].get("cpu_percent_max") or 0) > 0]
    if not healthy:
        out["error"] = "no complete step where the harness kept up (CPU under the limit) and counted deliveries"
        return out
    ref = max(healthy, key=lambda s: s["harness"]["deliveries_per_s_per_process"])
    per_process = ref["harness"]["deliveries_per_s_per_process"]
    cpu = ref["harness"]["cpu_percent_max"]
    capacity = per_process * options.cpu_budget_percent / cpu
    out["measured"] = {"step": ref["index"], "deliveries_per_s_per_process": per_process,
                       "cpu_percent_max": cpu, "connections_per_process": ref["harness"]["connections_per_process"],
                       "processes": ref["harness"]["processes"], "saturation_reasons": ref["harness"]["reasons"],
                       "basis": MEASURED}
    out["per_process_capacity"] = {
        "deliveries_per_s": round(capacity, 1),
        "basis": EXTRAPOLATED if capacity > per_process else MEASURED,
        "how": (f"{per_process:,.0f} deliveries/s at {cpu:.1f} % CPU (the worst sample), scaled linearly to the "
                f"{options.cpu_budget_percent:g} % budget"),
    }
    # The target room gets the message rate of the knee (or, without one, of the reference step).
    rate_step = next((s for s in steps if knee.get("knee") and s["index"] == knee["knee"]["index"]), ref)
    accepted = (rate_step.get("steady") or {}).get("accepted_per_s") or rate_step["offered_messages_per_s"]
    per_room = accepted / max(1, rate_step["rooms"])
    needed = target * per_room * rate_step["rooms"]
    processes = max(1, math.ceil(needed / capacity)) if capacity > 0 else None
    out["target"] = {
        "room_size": target, "rooms": rate_step["rooms"], "messages_per_s_per_room": round(per_room, 3),
        "rate_from_step": rate_step["index"], "deliveries_per_s": round(needed, 1),
        "connections": target * rate_step["rooms"], "processes": processes,
        "machines": None if processes is None else math.ceil(processes / cores),
        "connections_per_process": None if not processes else math.ceil(target * rate_step["rooms"] / processes),
        "basis": MEASURED if needed <= per_process * ref["harness"]["processes"] else EXTRAPOLATED,
    }
    out["target"]["reach"] = reach(needed, target * rate_step["rooms"], processes, ref)
    return out


def reach(deliveries_per_s: float, connections: int, processes: int | None, ref: Mapping) -> dict:
    """How far the sizing reaches beyond what was measured: the target's deliveries/s, connections and
    processes against the reference step's. Linear scaling holds only as far as nothing but the
    number of processes changes; the further out, the more it is a guess, and the words say so."""
    harness = ref["harness"]
    measured = {"deliveries_per_s": harness["deliveries_per_s_per_process"] * harness["processes"],
                "connections": harness["connections_per_process"] * harness["processes"],
                "processes": harness["processes"]}
    factors = {"deliveries_per_s": deliveries_per_s / measured["deliveries_per_s"] if measured["deliveries_per_s"]
               else None,
               "connections": connections / measured["connections"] if measured["connections"] else None,
               "processes": (processes or 0) / measured["processes"] if measured["processes"] else None}
    furthest = max((f for f in factors.values() if f is not None), default=None)
    if furthest is None or furthest <= 1:
        words = "within the measured load: no extrapolation"
    else:
        words = (f"{furthest:,.0f}× beyond the measured step {ref['index']} ({measured['deliveries_per_s']:,.0f} "
                 f"deliveries/s, {measured['connections']:,} connections, {measured['processes']} process(es) on one "
                 "machine), by linear scaling: it assumes every added process and machine does what the measured "
                 "one did, and measures neither the network between machines nor the service at that size. Measure "
                 "a step near the target (docs/distributed.md) before relying on it")
    return {"measured": measured, "factors": {k: None if f is None else round(f, 2) for k, f in factors.items()},
            "furthest": None if furthest is None else round(furthest, 2), "words": words}


# -- cost -----------------------------------------------------------------------------------------------


def monthly(accepted_per_s: float | None, deliveries_per_s: float | None, prices: Prices) -> dict | None:
    if accepted_per_s is None or deliveries_per_s is None:
        return None
    seconds = prices.hours_per_month * 3600
    sent, delivered = accepted_per_s * seconds, deliveries_per_s * seconds
    cost_sent = sent / 1e6 * prices.per_million_sent
    cost_delivered = delivered / 1e6 * prices.per_million_delivered
    return {"messages_sent": round(sent), "messages_delivered": round(delivered),
            "cost_sent": round(cost_sent, 2), "cost_delivered": round(cost_delivered, 2),
            "cost_total": round(cost_sent + cost_delivered, 2)}


def cost_section(steps: list[dict], knee: Mapping, prices: Prices) -> dict:
    out: dict = {"prices": {"per_million_sent": prices.per_million_sent,
                            "per_million_delivered": prices.per_million_delivered, "currency": prices.currency,
                            "hours_per_month": prices.hours_per_month, "basis": INPUT,
                            "given": prices.given,
                            "note": ("prices from the capacity file: inputs, not quotes" if prices.given else
                                     "illustrative default prices: inputs, not quotes — set [capacity.prices] "
                                     "from your provider's current price list")}}
    if not knee.get("knee"):
        out["error"] = "no step met the objective, so there is no load to cost"
        return out
    step = next(s for s in steps if s["index"] == knee["knee"]["index"])
    steady = step.get("steady") or {}
    projection = monthly(steady.get("accepted_per_s"), steady.get("deliveries_per_s"), prices)
    if projection is None:
        out["error"] = "the knee step has no steady rates"
        return out
    out["at_knee"] = {"step": step["index"], "load": step["load"],
                      "accepted_per_s": steady["accepted_per_s"], "deliveries_per_s": steady["deliveries_per_s"],
                      "rates_basis": MEASURED, **projection, "cost_basis": INPUT,
                      "deliveries_note": "deliveries count every receiver, the sender's own echo included"}
    return out


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")
