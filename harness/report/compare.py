"""`render_compare_html(a, b)`: two runs side by side, B against A (the baseline): key numbers with
absolute and relative deltas coloured better/worse, both latency distributions on one HDR axis,
latency over time, and the checks of both."""

from __future__ import annotations

from .console import SATURATED_WARNING
from .document import as_report, scenario_name, shape_differences
from .figures import COLORS, RUN_COLORS, base_layout, distribution_figure, percentile_series, timeline_x
from .html_kit import Html, badge, chart, duration, esc, join, no_data, page, table, tag, when
from .numbers import KeyNumber, expected_text, format_value, key_numbers

GROUP_TITLES = {"messages": "Messages", "loss": "Loss", "latency": "Latency", "connections": "Connections"}


def render_compare_html(a: dict, b: dict) -> str:
    a, b = as_report(a), as_report(b)
    charts: dict[str, dict] = {}
    sections = [
        ("numbers", "Key numbers (B against A)", numbers_table(key_numbers(a), key_numbers(b))),
        ("distribution", "Latency distribution", join([
            chart("compare-distribution", distribution(a, b), charts),
            tag("p", "HDR axis: x is 1/(1 − percentile) on a log scale. Run A solid, run B dashed.",
                class_="note")])),
        ("over-time", "Latency over time", join([
            chart("compare-latency-over-time", over_time(a, b), charts),
            tag("p", "Delivery latency per second since each run's start: p50 and p99.", class_="note")])),
        ("checks", "Checks", checks_table(a, b)),
    ]
    title = f"{scenario_name(a)} vs {scenario_name(b)} — chatload comparison"
    body = [
        tag("header", tag("div", [
            tag("div", "chatload comparison", class_="eyebrow"),
            tag("h1", f"{scenario_name(a)}  vs  {scenario_name(b)}" if scenario_name(a) != scenario_name(b)
                else scenario_name(a)),
            tag("div", [run_card("A", "baseline", a), run_card("B", "compared", b)], class_="runs"),
        ], class_="wrap"), class_="top"),
        tag("nav", tag("div", [tag("a", heading, href=f"#{sid}") for sid, heading, _ in sections], class_="wrap")),
        tag("main", [warnings(a, b), *(tag("section", [tag("h2", heading), content], id=sid, class_="card")
                                       for sid, heading, content in sections)], class_="wrap"),
    ]
    return page(title, join(body), charts)


def run_card(letter: str, role: str, report: dict) -> Html:
    meta = report.get("metadata") or {}
    target = meta.get("target") or {}
    return tag("div", [
        tag("div", [tag("span", f"Run {letter} ", class_="tagline"), tag("span", f"({role})", class_="muted small")]),
        tag("div", [tag("span", scenario_name(report), class_="strong"), " ",
                    badge(report.get("verdict", "none"), {"none": "no checks"}.get(report.get("verdict"))), " ",
                    badge("complete" if report.get("complete") else "incomplete")]),
        tag("div", f"{when(meta.get('started_at'))} · {duration(meta.get('duration_s'))} · "
                   f"{target.get('kind', '?')} {target.get('endpoint', '')}", class_="muted small"),
    ], class_="run")


def warnings(a: dict, b: dict) -> Html:
    parts = []
    for letter, report in (("A", a), ("B", b)):
        if (report.get("health") or {}).get("saturated"):
            parts.append(tag("div", tag("strong", f"WARNING (run {letter}): {SATURATED_WARNING}."),
                             class_="banner warn"))
        if not report.get("complete"):
            parts.append(tag("div", [tag("strong", f"Run {letter} is INCOMPLETE: "),
                                     report.get("incomplete_reason") or "no reason given"], class_="banner warn"))
    differences = shape_differences(b, a, here="in B", there="in A")
    if differences:
        parts.append(tag("div", [tag("strong", "WARNING: the runs applied different loads, so their figures compare "
                                               "unlike runs: "), "; ".join(differences)], class_="banner warn",
                         id="banner-shape"))
    return join(parts)


def delta(a: KeyNumber, b: KeyNumber) -> tuple[str, str, str]:
    """(absolute delta, relative delta, css class) of B against A."""
    if a.value is None or b.value is None:
        return "—", "—", ""
    change = b.value - a.value
    if change == 0:
        return "0", "0 %", "same"
    # A difference of percentages is in percentage points.
    shown = format_value(abs(change), b.unit).replace(" %", " pp")
    absolute = ("+" if change > 0 else "−") + shown
    relative = f"{change / a.value * 100:+.1f} %".replace("-", "−") if a.value else "from 0"
    if b.better is None:
        return absolute, relative, ""
    improved = change < 0 if b.better == "lower" else change > 0
    return absolute, relative, "better" if improved else "worse"


def numbers_table(numbers_a: list[KeyNumber], numbers_b: list[KeyNumber]) -> Html:
    rows, group = [], None
    for a, b in zip(numbers_a, numbers_b, strict=True):
        if a.group != group:
            group = a.group
            rows.append([(tag("span", GROUP_TITLES.get(group, group), class_="strong"), "group"),
                         *[("", "group")] * 4])
        absolute, relative, state = delta(a, b)
        arrow = {"better": " ▲ better", "worse": " ▼ worse"}.get(state, "")
        rows.append([a.label, a.text(), b.text(),
                     (absolute, f"{state} strong" if state in ("better", "worse") else state), (relative + arrow, state)])
    return table(["", "A", "B", "Δ (B − A)", "Δ %"], rows, numeric={1, 2, 3, 4}, classes="compare")


def distribution(a: dict, b: dict) -> dict | None:
    curves = []
    for name, color in (("delivery", COLORS["delivery"]), ("ack", COLORS["ack"])):
        for letter, report, dash in (("A", a, "solid"), ("B", b, "dash")):
            series = percentile_series((report.get("histograms") or {}).get(name))
            curves.append((f"{name} {letter}", series, {"color": color, "dash": dash}))
    return distribution_figure(curves)


def over_time(a: dict, b: dict) -> dict | None:
    data = []
    for letter, report, color in (("A", a, RUN_COLORS[0]), ("B", b, RUN_COLORS[1])):
        rows = report.get("timeline") or []
        x = timeline_x(report)
        if not any(row.get("delivery") for row in rows):
            continue
        for stat, label, dash in (("p50_us", "p50", "solid"), ("p99_us", "p99", "dash")):
            data.append({"type": "scatter", "mode": "lines", "name": f"delivery {label} {letter}", "x": x,
                         "y": [row["delivery"][stat] / 1000 if row.get("delivery") else None for row in rows],
                         "line": {"color": color, "dash": dash, "width": 2}, "hovertemplate": "%{y:.2f} ms"})
    if not data:
        return None
    return {"data": data, "layout": base_layout(xaxis={"title": {"text": "seconds since start"}},
                                                        yaxis={"title": {"text": "delivery latency (ms)"}})}


def checks_table(a: dict, b: dict) -> Html:
    checks_a = {c.get("name"): c for c in a.get("checks") or []}
    checks_b = {c.get("name"): c for c in b.get("checks") or []}
    names = list(checks_a) + [name for name in checks_b if name not in checks_a]
    if not names:
        return no_data("Neither run was judged against checks.")
    rows = []
    for name in names:
        ca, cb = checks_a.get(name), checks_b.get(name)
        either = ca or cb
        unit = either.get("unit") or ""
        expected = expected_text(either)
        rows.append([tag("div", [tag("div", name, class_="strong"), tag("code", either.get("rule") or "")]), expected,
                     *_check_cells(ca, unit), *_check_cells(cb, unit)])
    return table(["check", "expected", "A observed", "A", "B observed", "B"], rows, numeric={1, 2, 4})


def _check_cells(check: dict | None, unit: str) -> list:
    if check is None:
        return ["—", esc("not checked")]
    observed = check.get("observed")
    return [f"{_text(observed)} {unit}".strip() if observed is not None else "—",
            badge(check.get("verdict", "none"))]


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)
