"""`capacity.html`: the capacity search as one self-contained page (the report's page shell: inline
CSS and plotly.js, no network), with the step table and three charts — latency, throughput with the
USL curve, and the harness's own CPU and loop lag, each against load.

Every number that is not read straight from a step's report wears its basis: *fitted* (the USL
curve inside the measured range), *extrapolated* (beyond it, or scaled past what was measured) or
*input* (prices, machine sizes).
"""

from __future__ import annotations

import math

from ..report import figures
from ..report.html import Html, badge, chart, join, no_data, pretty_json, sectioned_page, table, tag, when
from ..report.numbers import format_value
from ..results.run_results import SATURATION

OUTCOME_BADGE = {"knee": ("pass", "knee found"), "ceiling": ("pass", "ceiling met"),
                 "first_step_failed": ("fail", "first step failed"), "undecided": ("error", "no answer")}
BASIS_BADGE = {"measured": "pass", "fitted": "none", "extrapolated": "warning", "input": "none"}
UNIT_TO_MS = {"ms": 1.0, "µs": 1e-3, "s": 1e3}


def basis(kind: str | None) -> Html:
    return badge(BASIS_BADGE.get(kind or "", "none"), kind or "—") if kind else Html("")


def render_capacity_html(doc: dict) -> str:
    charts: dict[str, dict] = {}
    sections = [
        ("answer", "Answer", answer_section(doc)),
        ("steps", "Steps", steps_section(doc)),
        ("latency", "Latency against load", tag("div", [
            chart("latency-vs-load", latency_figure(doc), charts, empty="no step recorded deliveries"),
            _note("Delivery p50, p99 and p99.9 (and ack p99) of each step's whole run, from its merged HDR histogram; "
                  "red dashed lines are the objective's latency thresholds, the green line marks the knee.")])),
        ("throughput", "Throughput against load", throughput_section(doc, charts)),
        ("harness", "Harness against load", tag("div", [
            chart("harness-vs-load", harness_figure(doc), charts, empty="no harness health recorded"),
            _note(f"Worst CPU sample of any load-generator process (left), and the worst event-loop lag and gevent hub "
                  f"stall (right). Saturation limits: CPU {SATURATION['cpu_percent']:g} %, loop lag "
                  f"{SATURATION['loop_lag_max_us'] / 1000:g} ms, hub stall {SATURATION['hub_stall_max_us'] / 1000:g} ms. "
                  "A saturated harness measures its own queueing, not the service.")])),
        ("sizing", "Load generator sizing", sizing_section(doc)),
        ("cost", "Cost projection", cost_section(doc)),
        ("plan", "Capacity file as run", plan_section(doc)),
    ]
    return sectioned_page(f"{doc['scenario']['name']} — chatload capacity", header(doc), banners(doc), sections,
                          footer(doc), charts)


def header(doc: dict) -> Html:
    meta = doc.get("metadata") or {}
    load = doc.get("load") or {}
    target = doc.get("target") or {}
    kind, text = OUTCOME_BADGE.get(doc.get("outcome"), ("none", doc.get("outcome") or "?"))
    cost = target.get("delivery_cost_us")
    facts = [
        ("target", f"{target.get('kind', '?')} · {target.get('endpoint') or '—'}"
                   + (f" · artificial cost {cost:g} µs per delivery" if cost else "")),
        ("varies", f"{load.get('vary')} — a step is {load.get('step_value')}"),
        ("load N", load.get("load")),
        ("steps planned", ", ".join(str(s["value"]) for s in load.get("planned_steps", [])) or "—"),
        ("each step", f"ramp {format_value(load.get('ramp_s'))} s + hold {format_value(load.get('hold_s'))} s"),
        ("objective", " · ".join(doc.get("objective") or []) or "—"),
        ("started", when(meta.get("started_at"))),
        ("duration", f"{meta.get('duration_s', 0):,.0f} s"),
        ("host", f"{meta.get('host', '—')} ({meta.get('cpu_count', '?')} CPUs)"),
        ("capacity file", (doc.get("scenario") or {}).get("file") or "—"),
    ]
    return tag("header", [tag("div", [
        tag("div", [
            tag("div", [tag("div", "chatload capacity", class_="eyebrow"), tag("h1", doc["scenario"]["name"]),
                        tag("p", doc.get("headline"), class_="desc")]),
            tag("div", [badge(kind, text, large=True),
                        badge("complete" if doc.get("complete") else "incomplete", large=True)], class_="verdicts"),
        ], class_="headline"),
        tag("dl", [tag("div", [tag("dt", k), tag("dd", v)]) for k, v in facts], class_="facts"),
    ], class_="wrap")], class_="top")


def banners(doc: dict) -> Html:
    parts = []
    knee = doc.get("knee") or {}
    if knee.get("limited_by") in ("harness", "unclear"):
        parts.append(tag("div", [tag("strong", "WARNING: the harness saturated — "), knee.get("limit_note")],
                         class_="banner warn", id="banner-harness", role="alert"))
    if not doc.get("complete"):
        parts.append(tag("div", [tag("strong", "INCOMPLETE search: "), doc.get("incomplete_reason") or "—",
                                 ". Only the steps below were measured."], class_="banner warn", id="banner-incomplete"))
    return join(parts)


def footer(doc: dict) -> Html:
    versions = (doc.get("metadata") or {}).get("versions") or {}
    return tag("footer", tag("div", f"chatload {versions.get('chatload') or ''} · {doc.get('schema')} · "
                                    "capacity.json holds every figure shown here; each step links to its own report",
                             class_="wrap"))


# -- sections ---------------------------------------------------------------------------------------------


def answer_section(doc: dict) -> Html:
    knee = doc.get("knee") or {}
    label = (doc.get("load") or {}).get("load", "load")
    vary = (doc.get("load") or {}).get("vary")
    k, b = knee.get("knee"), knee.get("breaking")
    parts = [tag("p", doc.get("headline"), class_="strong")]
    tiles = []
    if k:
        tiles.append(("knee", f"{k['load']:,g}", f"{label} · step {k['index']}: {vary} = {k['value']}", "good"))
    if b:
        rules = "; ".join(c["rule"] for c in b.get("checks", [])) or b.get("reason") or "—"
        tiles.append(("breaks at", f"{b['load']:,g}", f"{label} · step {b['index']}: {vary} = {b['value']} · {rules}",
                      "bad"))
    if knee.get("limit_between"):
        low, high = knee["limit_between"]
        tiles.append(("limit lies between", f"{low:,g} and {high:,g}", label, ""))
    if knee.get("limited_by"):
        tiles.append(("limited by", knee["limited_by"], "", "bad" if knee["limited_by"] in ("harness", "unclear")
                      else ""))
    if tiles:
        parts.append(tag("div", [tag("div", [tag("div", name, class_="label"), tag("div", value, class_="value"),
                                             tag("div", sub, class_="sub")], class_=f"tile {state}".strip())
                                 for name, value, sub, state in tiles], class_="tiles"))
    if knee.get("limit_note"):
        parts.append(_note(knee["limit_note"]))
    if k and k.get("margins"):
        rows = []
        for m in k["margins"]:
            ratio = m.get("headroom_ratio")
            rows.append([tag("code", m.get("rule")), f"{_num(m.get('observed'))} {m.get('unit') or ''}".strip(),
                         f"{m.get('op')} {_num(m.get('expected'))} {m.get('unit') or ''}".strip(),
                         "—" if m.get("headroom") is None else f"{_num(m['headroom'])} {m.get('unit') or ''}".strip(),
                         "—" if ratio is None else f"{ratio:.0%}", m.get("note") or ""])
        parts += [tag("h3", f"Margin at the knee (step {k['index']})"),
                  table(["rule", "observed", "threshold", "headroom", "headroom %", ""], rows, numeric={1, 2, 3, 4})]
    if b and b.get("checks"):
        rows = [[badge(c.get("verdict", "none")), tag("code", c.get("rule")),
                 f"{_num(c.get('observed'))} {c.get('unit') or ''}".strip(), tag("span", c.get("detail") or "",
                                                                                class_="muted")]
                for c in b["checks"]]
        parts += [tag("h3", f"What broke at step {b['index']}"),
                  table(["verdict", "rule", "observed", "detail"], rows, numeric={2})]
    return join(parts)


def steps_section(doc: dict) -> Html:
    steps = doc.get("steps") or []
    if not steps:
        return no_data("No step was measured.")
    currency = ((doc.get("cost") or {}).get("prices") or {}).get("currency", "")
    many_rooms = any((s.get("rooms") or 1) > 1 for s in steps)
    rows = []
    for s in steps:
        d, a = s.get("delivery_us") or {}, s.get("ack_us") or {}
        acc, steady, h = s.get("accounting") or {}, s.get("steady") or {}, s.get("harness") or {}
        if not s.get("judged"):
            verdict = badge("incomplete", "not judged")
        else:
            verdict = badge("pass" if s.get("objective_met") else "fail", "meets" if s.get("objective_met") else "breaks")
        ratio = acc.get("delivery_ratio")
        growing = " ↗" if steady.get("latency_growing") else ""
        link = tag("a", "report", href=s["report_html"]) if s.get("report_html") else "—"
        cost = (s.get("monthly") or {}).get("cost_total")
        rows.append([
            str(s["index"]), format_value(s["value"]), format_value(s.get("room_size")),
            *([format_value(s.get("rooms")), format_value(s.get("users"))] if many_rooms else []),
            f"{s.get('offered_messages_per_s', 0):,.4g}", _rate(steady.get("deliveries_per_s")),
            _ms(d.get("p50")), (_ms(d.get("p99")) + growing, "strong"), _ms(a.get("p99")),
            "—" if ratio is None else ("100 %" if ratio == 1 else f"{100 * ratio:.4g} %"),
            (format_value(acc.get("lost")), "bad strong" if acc.get("lost") else ""),
            format_value(acc.get("rejected")),
            ("—" if h.get("cpu_percent_max") is None else f"{h['cpu_percent_max']:.0f} %",
             "bad strong" if _saturated(h) else ""),
            _ms(h.get("loop_lag_max_us")),
            "—" if cost is None else f"{cost:,.2f} {currency}",
            verdict, link,
        ])
    headers = ["step", "value", "room size", *(["rooms", "users"] if many_rooms else []), "msg/s offered",
               "deliveries/s", "delivery p50", "delivery p99", "ack p99", "delivery ratio", "lost", "rejected",
               "harness CPU", "loop lag", "cost / month", "objective", ""]
    notes = [_note("Latency percentiles are each step's whole run (ramp included) from its merged HDR histogram; rates "
                   "are the mean over the steady window (all users connected, before the stop). ↗: p99 kept growing "
                   "during the hold (a queue building up: not steady). Harness CPU in red: the harness saturated "
                   "while the step was measured (see Harness against load). Cost per month: the step's measured rates around the clock at the input prices.")]
    incomplete = [s for s in steps if not s.get("complete")]
    if incomplete:
        notes.append(_note("Incomplete steps: " + "; ".join(
            f"step {s['index']}: {s.get('incomplete_reason') or s.get('error')}" for s in incomplete)))
    compact = tag("style", "#steps th, #steps td { padding: 6px 7px; font-size: 12px; }")
    return join([compact, tag("div", table(headers, rows, numeric=set(range(1, len(headers) - 2))),
                              style="overflow-x:auto"), *notes])


def throughput_section(doc: dict, charts: dict) -> Html:
    usl = doc.get("usl") or {}
    parts = [chart("throughput-vs-load", throughput_figure(doc), charts, empty="no steady throughput was measured")]
    parts.append(_note("Dots: measured steady deliveries/s (hollow: not used in the fit — the harness ran out of CPU, "
                       "so it counted only what it kept up with). "
                       "Solid line: the USL fit over the measured range; dashed: extrapolated beyond the largest "
                       "measured load; dotted: linear scaling λN."))
    if usl.get("error"):
        parts.append(no_data(f"Universal Scalability Law: {usl['error']}."))
        return join(parts)
    p, q = usl["parameters"], usl["quality"]
    rows = [
        ["λ (throughput per unit of load, no contention)", f"{p['lambda']:,.6g}", basis("fitted")],
        ["σ (contention)", f"{p['sigma']:.6g}", basis("fitted")],
        ["κ (coherency)", f"{p['kappa']:.6g}", basis("fitted")],
        ["R²", "—" if q.get("r2") is None else f"{q['r2']:.5f}", tag("span", q.get("note") or "", class_="muted")],
        ["RMSE (deliveries/s)", f"{q['rmse']:,.4g}", ""],
        ["points · degrees of freedom", f"{q['points']} · {q['dof']}", ""],
        ["measured load range", f"{usl['measured_range'][0]:,g} – {usl['measured_range'][1]:,g}", basis("measured")],
    ]
    if usl.get("peak"):
        peak = usl["peak"]
        rows += [["predicted peak load N* = √((1−σ)/κ)", f"{peak['load']:,.4g}", basis(peak["basis"])],
                 ["predicted peak throughput X(N*)", f"{peak['throughput']:,.4g} /s", basis(peak["basis"])]]
    elif usl.get("asymptote"):
        rows.append(["plateau λ/σ (no coherency cost: no peak)", f"{usl['asymptote']['throughput']:,.4g} /s",
                     basis("extrapolated")])
    else:
        rows.append(["shape", "linear over the measured range: no contention measured", ""])
    parts += [tag("h3", f"Universal Scalability Law: {usl.get('model')}"),
              table(["", "value", "basis"], rows, numeric={1}),
              _note(f"N is {usl.get('load')}; X is {usl.get('throughput')}. Fit: {usl.get('method')}."
                    + (" Too few steps where the harness kept up: steps where it ran out of CPU were used." if
                       usl.get("includes_saturated_steps") else ""))]
    return join(parts)


def sizing_section(doc: dict) -> Html:
    sizing = doc.get("sizing") or {}
    inputs = sizing.get("inputs") or {}
    if sizing.get("error"):
        return no_data(f"No sizing: {sizing['error']}.")
    m, cap, t = sizing["measured"], sizing["per_process_capacity"], sizing["target"]
    rows = [
        ["deliveries/s per process measured", f"{m['deliveries_per_s_per_process']:,.0f}",
         basis("measured"), f"step {m['step']}, {m['processes']} process(es)"
         + (f"; note: {'; '.join(m['saturation_reasons'])}" if m.get("saturation_reasons") else "")],
        ["CPU of a process at that rate", f"{m['cpu_percent_max']:.1f} %", basis("measured"), "worst sample"],
        ["connections per process measured", f"{m['connections_per_process']:,.0f}", basis("measured"), ""],
        ["deliveries/s a process can take", f"{cap['deliveries_per_s']:,.0f}", basis(cap["basis"]), cap["how"]],
        ["target room size", f"{t['room_size']:,}", basis("input"),
         "given" if inputs.get("target_room_size_given") else "default: the schedule's largest room"],
        ["messages/s into each room", f"{t['messages_per_s_per_room']:,.4g}", basis("measured"),
         f"accepted at step {t['rate_from_step']}"],
        ["deliveries/s the target needs", f"{t['deliveries_per_s']:,.0f}", basis(t["basis"]),
         f"{t['room_size']:,} members × {t['messages_per_s_per_room']:,.4g} msg/s × {t['rooms']} room(s)"],
        ["load-generator processes", format_value(t["processes"]), basis(t["basis"]),
         f"≈ {format_value(t['connections_per_process'])} connections each"],
        ["machines", format_value(t["machines"]), basis(t["basis"]),
         f"{inputs.get('cores_per_machine')} cores each (one process per core"
         + (", input)" if inputs.get("cores_per_machine_given") else ", default: this machine's)")],
    ]
    reached = t.get("reach") or {}
    return join([table(["", "value", "basis", "how"], rows, numeric={1}),
                 *([tag("p", [tag("strong", "How far this reaches: "), reached["words"]],
                        class_="banner warn inline" if (reached.get("furthest") or 0) > 1 else "muted")]
                   if reached.get("words") else []),
                 _note(f"A process is planned at {inputs.get('cpu_budget_percent'):g} % CPU at most (the harness counts "
                       f"itself saturated at {SATURATION['cpu_percent']:g} %). The service under test is not on these "
                       "machines.")])


def cost_section(doc: dict) -> Html:
    cost = doc.get("cost") or {}
    prices = cost.get("prices") or {}
    currency = prices.get("currency", "")
    price_rows = [["price per million messages sent", f"{prices.get('per_million_sent'):,.4g} {currency}", basis("input")],
                  ["price per million messages delivered", f"{prices.get('per_million_delivered'):,.4g} {currency}",
                   basis("input")],
                  ["hours a month at this load", f"{prices.get('hours_per_month'):,g}", basis("input")]]
    parts = [tag("div", [tag("strong", "Prices are inputs, not quotes. "), prices.get("note") or ""],
                 class_="banner warn inline")]
    if cost.get("error"):
        return join([*parts, table(["input", "value", "basis"], price_rows, numeric={1}),
                     no_data(f"No projection: {cost['error']}.")])
    k = cost["at_knee"]
    rows = [
        ["messages accepted per second", f"{k['accepted_per_s']:,.2f}", basis("measured"), ""],
        ["deliveries per second", f"{k['deliveries_per_s']:,.1f}", basis("measured"), k.get("deliveries_note", "")],
        ["messages sent per month", f"{k['messages_sent']:,}", basis("extrapolated"), "rate × hours a month"],
        ["messages delivered per month", f"{k['messages_delivered']:,}", basis("extrapolated"), "rate × hours a month"],
        ["cost of messages sent", f"{k['cost_sent']:,.2f} {currency}", basis("input"), "at the input price"],
        ["cost of deliveries", f"{k['cost_delivered']:,.2f} {currency}", basis("input"), "at the input price"],
        [tag("strong", "total per month"), (f"{k['cost_total']:,.2f} {currency}", "strong"), basis("input"), ""],
    ]
    return join([*parts, tag("h3", f"At the knee (step {k['step']}, load {k['load']:,g})"),
                 table(["", "value", "basis", ""], rows, numeric={1}), tag("h3", "Inputs"),
                 table(["input", "value", "basis"], price_rows, numeric={1})])


def plan_section(doc: dict) -> Html:
    scenario = doc.get("scenario") or {}
    return join([tag("h3", "[capacity]"), tag("pre", pretty_json(scenario.get("capacity"))),
                 tag("details", [tag("summary", "the scenario tables every step starts from"),
                                 tag("pre", pretty_json(scenario.get("base")))])])


# -- figures ----------------------------------------------------------------------------------------------


def _markers(doc: dict) -> list[dict]:
    knee = doc.get("knee") or {}
    shapes = []
    if knee.get("knee"):
        shapes.append(_vline(knee["knee"]["load"], "#16a34a", "solid"))
    if knee.get("breaking"):
        shapes.append(_vline(knee["breaking"]["load"], "#dc2626", "dot"))
    return shapes


def _vline(x: float, color: str, dash: str) -> dict:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": color, "width": 1.4, "dash": dash}}


def latency_figure(doc: dict) -> dict | None:
    steps = [s for s in doc.get("steps") or [] if s.get("delivery_us") or s.get("ack_us")]
    if not steps:
        return None
    label = (doc.get("load") or {}).get("load", "load")
    data = []
    for name, key, dash, width in (("delivery", "p50", "solid", 2), ("delivery", "p99", "dash", 2.4),
                                   ("delivery", "p99.9", "dot", 1.6), ("ack", "p99", "dash", 1.6)):
        field = f"{name}_us"
        ys = [(s.get(field) or {}).get(key) for s in steps]
        if not any(v is not None for v in ys):
            continue
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{name} {key}",
                     "x": [s["load"] for s in steps], "y": [None if v is None else v / 1000 for v in ys],
                     "line": {"color": figures.COLORS[name], "dash": dash, "width": width},
                     "hovertemplate": "%{y:,.2f} ms"})
    shapes = _markers(doc)
    for rule, limit_ms in objective_latency_limits(doc):
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": limit_ms,
                       "y1": limit_ms, "line": {"color": "#dc2626", "width": 1.2, "dash": "dash"}})
        data.append({"type": "scatter", "mode": "lines", "name": f"objective: {rule}", "x": [None], "y": [None],
                     "line": {"color": "#dc2626", "dash": "dash", "width": 1.2}, "hoverinfo": "skip"})
    shown = [v for trace in data for v in trace["y"] if v is not None]
    shown += [limit for _, limit in objective_latency_limits(doc)]
    layout = figures.base_layout(hovermode="x unified", xaxis={"title": {"text": label}},
                                 yaxis={"title": {"text": "latency (log scale)"}, "type": "log",
                                        "rangemode": "normal", **log_ticks(shown)})
    layout["shapes"] = shapes
    return {"data": data, "layout": layout}


def objective_latency_limits(doc: dict) -> list[tuple[str, float]]:
    """(rule, threshold in ms) of the objective's latency rules, read from a judged step's checks."""
    judged = next((s for s in doc.get("steps") or [] if s.get("checks")), None)
    out = []
    for check in (judged or {}).get("checks", []):
        metric, unit, expected = check.get("metric") or "", check.get("unit"), check.get("expected")
        if metric.split(".")[0] in ("delivery", "ack") and unit in UNIT_TO_MS and isinstance(expected, int | float) \
                and expected > 0:
            out.append((check.get("rule"), expected * UNIT_TO_MS[unit]))
    return out


def throughput_figure(doc: dict) -> dict | None:
    usl = doc.get("usl") or {}
    points = [p for p in usl.get("points") or [] if p.get("throughput") is not None]
    if not points:
        return None
    label = (doc.get("load") or {}).get("load", "load")
    data = []
    used = [p for p in points if p["used"]]
    unused = [p for p in points if not p["used"]]
    if used:
        data.append({"type": "scatter", "mode": "markers", "name": "measured", "x": [p["load"] for p in used],
                     "y": [p["throughput"] for p in used], "marker": {"color": "#2563eb", "size": 10},
                     "hovertemplate": "%{y:,.0f} deliveries/s<extra>measured</extra>"})
    if unused:
        data.append({"type": "scatter", "mode": "markers", "name": "measured, not fitted (harness out of CPU)",
                     "x": [p["load"] for p in unused], "y": [p["throughput"] for p in unused],
                     "marker": {"color": "#ffffff", "size": 10, "line": {"color": "#6b7280", "width": 2}},
                     "hovertemplate": "%{y:,.0f} deliveries/s<extra>not fitted</extra>"})
    from .analysis import usl_curve

    curve = usl_curve(usl)
    shapes = _markers(doc)
    if curve:
        lam = usl["parameters"]["lambda"]
        fitted_x, fitted_y = curve["fitted"]
        extra_x, extra_y = curve["extrapolated"]
        data += [
            {"type": "scatter", "mode": "lines", "name": "USL fit (measured range)", "x": _r(fitted_x),
             "y": _r(fitted_y), "line": {"color": "#0f766e", "width": 2.4}, "hovertemplate": "%{y:,.0f}<extra>fit</extra>"},
            {"type": "scatter", "mode": "lines", "name": "USL extrapolated", "x": _r(extra_x), "y": _r(extra_y),
             "line": {"color": "#0f766e", "width": 2, "dash": "dash"},
             "hovertemplate": "%{y:,.0f}<extra>extrapolated</extra>"},
            {"type": "scatter", "mode": "lines", "name": "linear scaling λN", "x": [0, extra_x[-1]],
             "y": [0, lam * extra_x[-1]], "line": {"color": "#9ca3af", "width": 1.2, "dash": "dot"},
             "hoverinfo": "skip"},
        ]
        peak = usl.get("peak")
        if peak and peak.get("load") is not None:
            data.append({"type": "scatter", "mode": "markers", "name": f"predicted peak ({peak['basis']})",
                         "x": [peak["load"]], "y": [peak["throughput"]],
                         "marker": {"symbol": "star", "size": 14, "color": "#ea580c"},
                         "hovertemplate": "N* %{x:,.1f}: %{y:,.0f}/s<extra>" + peak["basis"] + "</extra>"})
        top = max([*(p["throughput"] for p in points), *(y for y in fitted_y + extra_y if math.isfinite(y))])
    else:
        top = max(p["throughput"] for p in points)
    cost_us = (doc.get("target") or {}).get("delivery_cost_us")
    if cost_us:  # the emulator's artificial cost caps it near 1e6 / cost deliveries a second
        ceiling = 1e6 / cost_us
        top = max(top, ceiling)
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": ceiling, "y1": ceiling,
                       "line": {"color": "#9333ea", "width": 1.2, "dash": "dashdot"}})
        data.append({"type": "scatter", "mode": "lines", "name": f"1e6 / artificial cost ({cost_us:g} µs)",
                     "x": [None], "y": [None], "line": {"color": "#9333ea", "dash": "dashdot", "width": 1.2},
                     "hoverinfo": "skip"})
    layout = figures.base_layout(hovermode="closest", xaxis={"title": {"text": label}, "rangemode": "tozero"},
                                 yaxis={"title": {"text": "deliveries per second"}, "range": [0, top * 1.12]})
    layout["shapes"] = shapes
    return {"data": data, "layout": layout}


def harness_figure(doc: dict) -> dict | None:
    steps = [s for s in doc.get("steps") or [] if s.get("harness")]
    if not steps:
        return None
    label = (doc.get("load") or {}).get("load", "load")
    x = [s["load"] for s in steps]
    cpu = [s["harness"].get("cpu_percent_max") for s in steps]
    data = [{"type": "scatter", "mode": "lines+markers", "name": "CPU, worst process (%)", "x": x, "y": cpu,
             "line": {"color": "#7c3aed", "width": 2.4},
             "marker": {"size": 10, "color": ["#dc2626" if _saturated(s["harness"]) else "#7c3aed" for s in steps]},
             "hovertemplate": "%{y:.1f} %"}]
    for key, name, dash in (("loop_lag_max_us", "event-loop lag max (ms, right)", "dash"),
                            ("hub_stall_max_us", "hub stall max (ms, right)", "dot")):
        ys = [s["harness"].get(key) for s in steps]
        if any(v is not None for v in ys):
            data.append({"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "yaxis": "y2",
                         "y": [None if v is None else v / 1000 for v in ys],
                         "line": {"color": "#0891b2", "width": 1.6, "dash": dash}, "hovertemplate": "%{y:,.1f} ms"})
    layout = figures.base_layout(hovermode="x unified", xaxis={"title": {"text": label}},
                                 yaxis={"title": {"text": "CPU (%)"}, "range": [0, 105]})
    layout["yaxis2"] = {"title": {"text": "milliseconds"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
                        "showgrid": False, "zeroline": False}
    layout["margin"] = {**layout["margin"], "r": 72}
    layout["shapes"] = [*_markers(doc), {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1,
                                         "y0": SATURATION["cpu_percent"], "y1": SATURATION["cpu_percent"],
                                         "line": {"color": "#dc2626", "width": 1.2, "dash": "dash"}}]
    return {"data": data, "layout": layout}


# -- small helpers --------------------------------------------------------------------------------------------


def _saturated(harness: dict) -> bool:
    return bool(harness.get("saturated_while_measured", harness.get("saturated")))


def log_ticks(values_ms: list[float]) -> dict:
    """Tick values 1-2-5 per decade over the data, labelled in ms: plotly's log axis labels minor ticks
    with bare digits, which read as nonsense next to "10" and "100"."""
    finite = [v for v in values_ms if v is not None and v > 0]
    if not finite:
        return {}
    low, high = math.floor(math.log10(min(finite))), math.ceil(math.log10(max(finite)))
    ticks = [m * 10 ** e for e in range(low, high + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if min(finite) / 2.5 <= t <= max(finite) * 2.5]
    return {"tickvals": ticks, "ticktext": [f"{t:g} ms" if t < 1000 else f"{t / 1000:g} s" for t in ticks]}


def _note(text: str) -> Html:
    return tag("p", text, class_="note")


def _ms(us) -> str:
    return "—" if us is None else format_value(us / 1000, "ms")


def _rate(value) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _num(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return " – ".join(_num(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.4g}"
    return format_value(value)


def _r(values) -> list[float]:
    return [round(v, 4) if math.isfinite(v) else None for v in values]

