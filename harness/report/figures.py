"""Plotly figures (plain dicts: `{"data": [...], "layout": {...}}`) for the report and the comparison.

Latency distributions are read from the merged HdrHistograms themselves, the HdrHistogram way: the
x axis is 1/(1 - p) on a log scale, so 90 %, 99 %, 99.9 % … are evenly spaced and the tail gets the
room it deserves. Everything over time uses seconds since the run started.
"""

from __future__ import annotations

import math

from ..metrics.counters import counter_sum
from ..metrics.histograms import LatencyHistogram

FONT = ('-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
        '"Noto Sans", sans-serif')
INK, MUTED, GRID = "#1f2937", "#6b7280", "#e5e7eb"
COLORS = {"delivery": "#2563eb", "ack": "#ea580c", "connect": "#059669", "reconnect": "#7c3aed",
          "token_fetch": "#0891b2", "send_lag": "#9ca3af"}
RUN_COLORS = ("#2563eb", "#dc2626")  # run A, run B in a comparison

# Points per decade of 1/(1 - p), and the deepest percentile drawn (99.9999 %).
STEPS_PER_DECADE = 24
DECADES = 6
PERCENTILE_TICKS = [(10 ** d, label) for d, label in enumerate(
    ("0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"))]


# -- data -----------------------------------------------------------------------------------------------


def percentile_series(encoded: str | None) -> dict | None:
    """{"x": [1/(1-p)], "y": [ms], "p": [percentile labels]} from an encoded HdrHistogram, up to the
    first percentile that reaches the maximum (beyond it the curve is flat: no more samples); None when
    the histogram is missing or empty."""
    if not encoded:
        return None
    hist = LatencyHistogram.decode(encoded)
    if not hist.count:
        return None
    steps = [i / STEPS_PER_DECADE for i in range(DECADES * STEPS_PER_DECADE + 1)]
    ps = [100 * (1 - 10 ** -d) for d in steps]
    values = hist.percentiles(ps)
    top = hist.max
    series: dict[str, list] = {"x": [], "y": [], "p": []}
    for d, p in zip(steps, ps, strict=True):
        value = values[p]
        series["x"].append(round(10 ** d, 6))
        series["y"].append(value / 1000)
        series["p"].append(percentile_label(p, d))
        if value >= top:
            break
    series["count"] = hist.count
    return series


def percentile_label(p: float, decades: float) -> str:
    digits = int(decades) + 1 if decades else 0
    return f"{p:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{p:g}"


def run_start_s(report: dict) -> float | None:
    started = (report.get("metadata") or {}).get("started_at_ns")
    return started / 1e9 if isinstance(started, int) else None


def timeline_x(report: dict) -> list[float]:
    """Seconds since the run started, at the middle of each timeline row's second."""
    rows = report.get("timeline") or []
    start = run_start_s(report)
    if start is None and rows:
        start = rows[0]["t"]
    return [round(row["t"] + 0.5 - start, 2) for row in rows]


# -- figures --------------------------------------------------------------------------------------------


def base_layout(**extra) -> dict:
    layout = {
        "height": 360,
        "margin": {"l": 64, "r": 24, "t": 16, "b": 48},
        "font": {"family": FONT, "size": 12, "color": INK},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "xaxis": {"gridcolor": GRID, "linecolor": "#9ca3af", "zeroline": False, "ticks": "outside",
                  "tickcolor": "#9ca3af"},
        "yaxis": {"gridcolor": GRID, "linecolor": "#9ca3af", "zeroline": False, "rangemode": "tozero",
                  "ticks": "outside", "tickcolor": "#9ca3af"},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def distribution_figure(curves: list[tuple[str, dict, dict]]) -> dict | None:
    """One HDR-axis chart of several latency distributions: (trace name, series, line style)."""
    data = []
    xmax = 1000.0
    for name, series, line in curves:
        if not series:
            continue
        xmax = max(xmax, series["x"][-1])
        data.append({
            "type": "scatter", "mode": "lines", "name": f"{name} ({series['count']:,} samples)",
            "x": series["x"], "y": series["y"], "customdata": series["p"], "line": {"width": 2.2, **line},
            "hovertemplate": "p%{customdata}: %{y:.3f} ms<extra>" + name + "</extra>",
        })
    if not data:
        return None
    ticks = [(x, label) for x, label in PERCENTILE_TICKS if x <= xmax * 1.0001]
    return {"data": data, "layout": base_layout(
        hovermode="closest",
        xaxis={"type": "log", "title": {"text": "percentile"}, "range": [0, math.log10(xmax)],
               "tickvals": [x for x, _ in ticks], "ticktext": [label for _, label in ticks]},
        yaxis={"title": {"text": "latency (ms)"}},
    )}


def latency_over_time_figure(report: dict, names: tuple[str, ...] = ("delivery", "ack"),
                             colors: dict[str, str] | None = None) -> dict | None:
    """p50, p99 and max per second of each of `names` found in the timeline (delivery and ack, or a
    service's own: join, ping, subscribe…)."""
    rows = report.get("timeline") or []
    x = timeline_x(report)
    colors = {**COLORS, **(colors or {})}
    data = []
    for name in names:
        if not any(row.get(name) for row in rows):
            continue
        for stat, label, dash, width in (("p50_us", "p50", "solid", 2), ("p99_us", "p99", "dash", 2),
                                         ("max_us", "max", "dot", 1.4)):
            data.append({
                "type": "scatter", "mode": "lines", "name": f"{name} {label}", "x": x,
                "y": [row[name][stat] / 1000 if row.get(name) else None for row in rows],
                "line": {"color": colors.get(name, "#6b7280"), "dash": dash, "width": width}, "connectgaps": False,
                "hovertemplate": "%{y:.2f} ms",
            })
    if not data:
        return None
    return {"data": data, "layout": _timed_layout(report, "latency (ms)")}


def throughput_figure(report: dict) -> dict | None:
    rows = report.get("timeline") or []
    if not rows:
        return None
    x = timeline_x(report)
    series = (
        ("sent", [row.get("counters", {}).get("sent", 0) for row in rows], "#6b7280", "dot"),
        ("accepted", [row.get("counters", {}).get("accepted", 0) for row in rows], "#ea580c", "solid"),
        ("rejected", [counter_sum(row.get("counters", {}), "rejected") for row in rows], "#dc2626", "solid"),
    )
    data = [{"type": "scatter", "mode": "lines", "name": f"{name} /s", "x": x, "y": y,
             "line": {"color": color, "dash": dash, "width": 2}, "hovertemplate": "%{y:,}"}
            for name, y, color, dash in series]
    delivered = [(row.get("delivery") or {}).get("count", 0) for row in rows]
    data.append({"type": "scatter", "mode": "lines", "name": "delivered /s (right axis)", "x": x,
                 "y": delivered, "yaxis": "y2", "line": {"color": "#2563eb", "width": 2.4},
                 "hovertemplate": "%{y:,}"})
    layout = _timed_layout(report, "messages per second")
    layout["yaxis2"] = {"title": {"text": "deliveries per second"}, "overlaying": "y", "side": "right",
                        "rangemode": "tozero", "showgrid": False, "zeroline": False}
    layout["margin"] = {**layout["margin"], "r": 72}
    return {"data": data, "layout": layout}


def connections_figure(report: dict) -> dict | None:
    rows = report.get("timeline") or []
    if not rows:
        return None
    x = timeline_x(report)
    data = [
        {"type": "scatter", "mode": "lines", "name": "connections open", "x": x,
         "y": [row.get("connections_open", 0) for row in rows], "line": {"color": "#059669", "width": 2.4},
         "hovertemplate": "%{y:,}"},
        {"type": "scatter", "mode": "lines", "name": "connections held", "x": x, "y": [row.get("users", 0) for row in rows],
         "line": {"color": "#9ca3af", "dash": "dot", "width": 1.6}, "hovertemplate": "%{y:,}"},
    ]
    events = (("connects", "#93c5fd"), ("reconnects", "#7c3aed"), ("closes", "#f59e0b"),
              ("connect_failures", "#dc2626"))
    for name, color in events:
        y = [counter_sum(row.get("counters", {}), name) for row in rows]
        if any(y):
            data.append({"type": "bar", "name": f"{name.replace('_', ' ')} /s (right axis)", "x": x, "y": y,
                         "yaxis": "y2", "marker": {"color": color}, "opacity": 0.75, "hovertemplate": "%{y:,}"})
    layout = _timed_layout(report, "connections")
    layout["yaxis2"] = {"title": {"text": "events per second"}, "overlaying": "y", "side": "right",
                        "rangemode": "tozero", "showgrid": False, "zeroline": False}
    layout["barmode"] = "group"
    layout["margin"] = {**layout["margin"], "r": 72}
    return {"data": data, "layout": layout}


# Stacked per second. A rejected send is also an error answer (`errors.<code>`): the chart shows the
# rejections and the other error answers, so nothing is counted twice.
ERROR_GROUPS = (
    ("rejected sends", "#f59e0b", lambda c: counter_sum(c, "rejected")),
    ("other error answers", "#dc2626", lambda c: max(0, counter_sum(c, "errors") - counter_sum(c, "rejected"))),
    ("connect failures", "#991b1b", lambda c: counter_sum(c, "connect_failures")),
    ("token fetch failures", "#7c3aed", lambda c: counter_sum(c, "token_fetch_failures")),
    ("timeouts", "#db2777", lambda c: counter_sum(c, "timeouts")),
    ("protocol errors", "#111827", lambda c: counter_sum(c, "protocol_errors")),
    ("gave up reconnecting", "#6b7280", lambda c: counter_sum(c, "gave_up")),
)


def errors_figure(report: dict) -> dict | None:
    rows = report.get("timeline") or []
    x = timeline_x(report)
    data = []
    for name, color, count in ERROR_GROUPS:
        y = [count(row.get("counters") or {}) for row in rows]
        if any(y):
            data.append({"type": "bar", "name": name, "x": x, "y": y,
                         "marker": {"color": color}, "hovertemplate": "%{y:,}"})
    if not data:
        return None
    layout = _timed_layout(report, "per second")
    layout["barmode"] = "stack"
    layout["height"] = 300
    return {"data": data, "layout": layout}


def _timed_layout(report: dict, y_title: str) -> dict:
    x = timeline_x(report)
    duration = (report.get("metadata") or {}).get("duration_s") or 0
    end = max([duration, *(v + 0.5 for v in x)])  # whole seconds from 0: ticks land on round numbers
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if end / s <= 12), 7200)
    layout = base_layout(xaxis={"title": {"text": "seconds since start"}, "range": [0, end],
                                "tickmode": "linear", "tick0": 0, "dtick": step},
                         yaxis={"title": {"text": y_title}})
    shapes, annotations = [], []
    for fault in report.get("faults") or []:
        at = fault.get("applied_at_s", fault.get("at_s"))
        if not isinstance(at, int | float):
            continue
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1,
                       "line": {"color": "#dc2626", "width": 1.2, "dash": "dash"}})
        annotations.append({"xref": "x", "yref": "paper", "x": at, "y": 1, "yanchor": "top", "xanchor": "left",
                            "text": str(fault.get("action", "fault")), "showarrow": False,
                            "font": {"size": 11, "color": "#dc2626"}, "bgcolor": "rgba(255,255,255,0.8)"})
    if shapes:
        layout["shapes"], layout["annotations"] = shapes, annotations
    return layout


def rate_limit_figure(report: dict) -> dict | None:
    """Per second, for up to four rooms: offered, accepted (by the server's accept time) and rejected,
    with the room's limit as a line — the rate-limit verdicts' evidence."""
    rooms = (report.get("verdicts") or {}).get("rate_limit", {}).get("rooms", {})
    series_by_room = report.get("rooms") or {}
    start = run_start_s(report) or 0
    data, palette = [], ("#2563eb", "#ea580c", "#16a34a", "#9333ea")
    for index, (room, facts) in enumerate(list(rooms.items())[:4]):
        seconds = series_by_room.get(room, {})
        keys = sorted(seconds, key=int)
        x = [int(k) - start for k in keys]
        label = room.rsplit("/", 1)[-1]
        color = palette[index]
        data.append({"type": "scatter", "mode": "lines", "name": f"{label} offered", "x": x,
                     "y": [seconds[k]["offered"] for k in keys], "line": {"color": color, "dash": "dot"}})
        data.append({"type": "bar", "name": f"{label} accepted", "x": x,
                     "y": [seconds[k]["accepted"] for k in keys], "marker": {"color": color}, "opacity": 0.55})
        data.append({"type": "scatter", "mode": "lines", "name": f"{label} rejected", "x": x,
                     "y": [sum(seconds[k]["rejected"].values()) for k in keys],
                     "line": {"color": "#dc2626", "width": 1.5}})
        if facts.get("limit") and x:
            data.append({"type": "scatter", "mode": "lines", "name": f"{label} limit", "x": [min(x), max(x)],
                         "y": [facts["limit"]] * 2, "line": {"color": "#111827", "dash": "dash", "width": 1}})
    if not data:
        return None
    return {"data": data, "layout": _timed_layout(report, "messages per second")}


def reconnect_figure(report: dict) -> dict | None:
    rows = (report.get("verdicts") or {}).get("reconnect", {}).get("timeline") or []
    if not rows or not any(row["reconnects"] or row["token_fetches"] for row in rows):
        return None
    start = run_start_s(report) or 0
    x = [row["t"] - start for row in rows]
    data = [
        {"type": "scatter", "mode": "lines", "name": "connections open", "x": x,
         "y": [row["connections_open"] for row in rows], "line": {"color": "#2563eb", "width": 2.4}},
        {"type": "bar", "name": "reconnects /s (right axis)", "x": x, "y": [row["reconnects"] for row in rows],
         "yaxis": "y2", "marker": {"color": "#16a34a"}, "opacity": 0.6},
        {"type": "scatter", "mode": "lines", "name": "token fetches /s (right axis)", "x": x,
         "y": [row["token_fetches"] for row in rows], "yaxis": "y2", "line": {"color": "#ea580c", "dash": "dot"}},
    ]
    layout = _timed_layout(report, "connections")
    layout["yaxis2"] = {"title": {"text": "per second"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
                        "showgrid": False, "zeroline": False}
    layout["margin"] = {**layout["margin"], "r": 72}
    return {"data": data, "layout": layout}


def replay_figure(report: dict) -> dict | None:
    """A trace replay: the trace's messages per second (at its speed) against those the service
    accepted per second, from the trace's start."""
    per_second = (report.get("replay") or {}).get("per_second") or {}
    trace, replayed = per_second.get("trace") or [], per_second.get("replayed") or []
    if not trace and not replayed:
        return None
    data = [{"type": "bar", "name": "trace", "x": list(range(len(trace))), "y": trace,
             "marker": {"color": "#9ca3af"}, "opacity": 0.6},
            {"type": "scatter", "mode": "lines+markers", "name": "replayed (accepted)", "x": list(range(len(replayed))),
             "y": replayed, "line": {"color": "#2563eb", "width": 2}}]
    return {"data": data, "layout": base_layout(barmode="overlay", xaxis={"title": {"text": "seconds from the trace's start"}},
                                                yaxis={"title": {"text": "messages per second"}})}
