"""`render_html(report)`: the report as one self-contained HTML page (inline CSS and plotly.js, no
network), light theme, laptop-sized.

Every text that comes from the document is escaped (`esc`); HTML built here is marked as such with
`Html`. Figures travel as one JSON block that a short script hands to Plotly: the page never
evaluates data as code. A chart without data becomes a "no data" note instead of an empty plot, so
every element with `data-chart` is a chart that must render (the browser test checks each one).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from functools import lru_cache

from ..metrics.histograms import ACK_WORDS
from . import figures
from .console import WORKER_HEADERS, worker_rows
from .document import SCHEMA, as_report
from .numbers import KeyNumber, by_key, format_value, key_numbers

LATENCY_NAMES = ("delivery", "ack", "connect", "reconnect", "token_fetch", "send_lag")
LATENCY_MEANING = {
    "delivery": "intended send time → arrival at each receiver",
    "ack": ACK_WORDS,
    "connect": "connection attempt → usable",
    "reconnect": "drop noticed → usable again",
    "token_fetch": "chat token request → token",
    "send_lag": "how late the harness sent against its schedule (part of every latency)",
    "retry_wait": "a failed connect or token fetch → the next try (the reconnect policy's backoff)",
}
COUNTER_GROUPS = (
    ("rejected", "rejected by the service (by error code)"),
    ("errors", "ERROR frames (by code)"),
    ("refused", "sessions the service refused (by category)"),
    ("closes", "connection closes (by close code)"),
    ("connect_failures", "failed connection attempts (by cause)"),
    ("token_fetch_failures", "failed token fetches (by cause)"),
    ("timeouts", "timeouts"),
    ("protocol_errors", "frames the client could not parse"),
    ("gave_up", "clients that stopped reconnecting (by cause)"),
    ("unanswered_at_close", "requests unanswered when their connection closed (by kind)"),
    ("not_sent", "scheduled sends not made (by reason)"),
    ("histogram_clamped_low", "latencies below 1 µs, recorded as 1 µs"),
    ("histogram_clamped_high", "latencies above 1 h, recorded as 1 h"),
)
ACCOUNTING_MEANING = {
    "sent": "messages the senders sent",
    "accepted": "acknowledged by the service (echo or receipt anywhere)",
    "rejected": "answered with an ERROR (never counted as loss)",
    "unconfirmed_sends": "sent, neither accepted nor rejected",
    "presumed_accepted": "no answer while the connection stayed open: accepted, delivered to no one",
    "receivers": "receivers judged",
    "connections": "receiver connections judged",
    "expected": "accepted messages sent while a receiver was connected",
    "delivered": "expected messages that arrived",
    "lost": "expected and missing, though later messages arrived",
    "unconfirmed_at_disconnect": "accepted after the last frame a dropped connection got: fate unknown",
    "missed_while_away": "sent while a receiver was disconnected",
    "duplicates": "a message received again",
    "out_of_order": "first receipts behind a later message of the same sender",
    "unexpected": "received, not expected (accepted before its connection began, or while it was away)",
    "during_handshake": "received, accepted while its connection was opening (after the attempt began, before "
                        "the handshake ended): legitimate, not judged",
    "replay_expected": "owed as replays to a member joining late or coming back (services that replay)",
    "replayed": "replays that arrived",
    "replay_missed": "owed replays that never arrived",
}
PROBLEM_KEYS = ("lost", "duplicates", "out_of_order", "unconfirmed_at_disconnect")
BAD_TOTALS = ("lost", "duplicates", "out_of_order")  # shown in red when not 0
SATURATED_WARNING = "the harness itself saturated — latency figures include harness queueing"


class Html(str):
    """Text that is already HTML (built here from escaped parts)."""


def esc(value) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts) -> Html:
    return Html("".join(esc(part) for part in parts))


def tag(name: str, content="", **attrs) -> Html:
    shown = "".join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
                    for key, value in attrs.items() if value is not None and value is not False)
    return Html(f"<{name}{shown}>{esc(content) if not isinstance(content, list) else join(content)}</{name}>")


def badge(verdict: str, text: str | None = None, *, large: bool = False) -> Html:
    kind = {"pass": "pass", "complete": "pass", "fail": "fail", "error": "error", "incomplete": "warn",
            "warning": "warn"}.get(verdict, "none")
    return tag("span", (text or verdict).upper(), class_=f"badge {kind}{' large' if large else ''}")


def table(headers: list, rows: list[list], *, numeric: set[int] = frozenset(), classes: str = "") -> Html:
    head = tag("tr", [tag("th", h, class_="num" if i in numeric else None) for i, h in enumerate(headers)])
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "num" if i in numeric else None
            if isinstance(cell, tuple):  # (content, extra class)
                cell, extra = cell
                cls = f"{cls or ''} {extra}".strip()
            cells.append(tag("td", cell, class_=cls))
        body.append(tag("tr", cells))
    return tag("table", [tag("thead", [head]), tag("tbody", body)], class_=classes or None)


def no_data(text: str = "no data") -> Html:
    return tag("p", text, class_="nodata")


def chart(chart_id: str, figure: dict | None, charts: dict, *, empty: str = "no data") -> Html:
    """A chart placeholder with a stable id; without a figure, a "no data" note (no data-chart)."""
    if figure is None:
        return tag("div", empty, id=f"chart-{chart_id}", class_="chart nodata")
    charts[chart_id] = figure
    return tag("div", "", id=f"chart-{chart_id}", class_="chart", data_chart=chart_id)


def ms(us) -> str:
    return format_value(us / 1000, "ms") if isinstance(us, int | float) and not isinstance(us, bool) else "—"


def when(iso: str | None) -> str:
    """"2026-11-22T05:55:31.256627Z" → "2026-11-22 05:55:31 UTC"."""
    if not iso:
        return "—"
    return iso.replace("T", " ").split(".")[0].rstrip("Z") + " UTC"


def duration(seconds) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)


# -- the page -------------------------------------------------------------------------------------------


def render_html(report: dict) -> str:
    report = as_report(report)
    charts: dict[str, dict] = {}
    numbers = key_numbers(report)
    service = service_measures(report)
    messages = carries_messages(report)
    sections = [
        ("checks", "Checks", checks_section(report)),
        # What the run's service measured beyond messages leads (join, roster, presence, subscribe…).
        ("service", f"{service['title']}: what it measured", service_section(report, service, charts)),
        ("numbers", "Key numbers", numbers_section(numbers, messages=messages)),
        ("latency", "Latency distribution", latency_section(report, charts)),
        ("over-time", "Latency over time", _chart_or_none("latency-over-time", figures.latency_over_time_figure(report),
                                                          charts, "Per second: p50 (solid), p99 (dashed) and max "
                                                          "(dotted); dashed red lines mark faults.")),
        ("throughput", "Throughput", _chart_or_none(
            "throughput", figures.throughput_figure(report) if messages else None, charts,
            "Per second: messages sent, accepted and rejected (left axis), deliveries (right axis).")),
        ("connections", "Connections", _chart_or_none("connections", figures.connections_figure(report), charts)),
        ("rate-limits", "Rate limits", rate_limit_section(report, charts) if messages else None),
        ("reconnects", "Reconnects", reconnect_section(report, charts)),
        ("errors", "Errors", errors_section(report, charts)),
        ("health", "Harness health", health_section(report)),
        *([("workers", "Workers", workers_section(report))] if worker_rows(report) else []),
        ("accounting", "Accounting", accounting_section(report) if messages else None),
        ("faults", "Faults", faults_section(report) if report.get("faults") else None),
        ("scenario", "Scenario as run", scenario_section(report) if report.get("scenario") else None),
        ("clocks", "Clocks and merge", clocks_section(report)),
    ]
    if report.get("replay"):
        sections.insert(2, ("replay", "Trace replay", replay_section(report, charts)))
    # A section with nothing to say is left out (and so is its link), not shown empty.
    sections = [(sid, heading, content) for sid, heading, content in sections if content is not None]
    return sectioned_page(f"{scenario_name(report)} — chatload report", header(report), banners(report), sections,
                          footer(report), charts)


def _chart_or_none(name: str, figure: dict | None, charts: dict, note: str | None = None) -> Html | None:
    if figure is None:
        return None
    return tag("div", [chart(name, figure, charts), *([_note(note)] if note else [])])


def carries_messages(report: dict) -> bool:
    """Whether the run sent or delivered measured messages: a run that only joins stages (IVS
    Real-Time) or churns a control plane has no message sections to show."""
    counters = report.get("counters") or {}
    totals = (report.get("accounting") or {}).get("totals") or {}
    delivered = ((report.get("latency_us") or {}).get("delivery") or {}).get("count")
    return bool(counters.get("sent") or totals.get("sent") or totals.get("expected") or delivered)


def service_measures(report: dict) -> dict:
    """The run's service, and the measures it declares beyond messages: {"title", "histograms": {name:
    words}, "streams": {name: words}} (only those the report holds samples or counts of)."""
    from ..services import registry

    as_run = (report.get("scenario") or {}).get("as_run") or {}
    name = (as_run.get("target") or {}).get("service") or ((report.get("metadata") or {}).get("target") or {}).get(
        "service")
    try:
        service = registry.get(name or registry.DEFAULT)
    except registry.UnknownService:
        return {"title": str(name), "histograms": {}, "streams": {}, "facts": {}}
    summaries, propagation = report.get("latency_us") or {}, report.get("propagation") or {}
    histograms = {h: words for h, words in service.histograms.items() if (summaries.get(h) or {}).get("count")}
    streams = {s: words for s, words in service.propagations.items()
               if (summaries.get(s) or {}).get("count") or (propagation.get(s) or {}).get("expected")}
    # The facts derived after the run (throttle onset, token rate, API quota…), by their gate names.
    from ..gate.metrics import lookup

    facts = {name: (words, kind, value) for name, (_path, kind, _direction, words) in service.verdict_metrics.items()
             if (value := lookup(report, name)) is not None}
    return {"title": service.title, "histograms": histograms, "streams": streams, "facts": facts}


SERVICE_COLORS = ("#2563eb", "#059669", "#7c3aed", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#b45309")


def service_section(report: dict, measures: dict, charts: dict) -> Html | None:
    """The service's own latencies (join, ping, subscribe, replay, API calls…) and propagations
    (roster, presence), with their distribution and their exact accounting; None when it has none."""
    own = {**measures["histograms"], **measures["streams"]}
    if not own and not measures["facts"]:
        return None
    facts = _facts_table(measures["facts"])
    if not own:
        return facts
    encoded, summaries = report.get("histograms") or {}, report.get("latency_us") or {}
    curves = [(name, figures.percentile_series(encoded.get(name)), {"color": SERVICE_COLORS[i % len(SERVICE_COLORS)]})
              for i, name in enumerate(own)]
    rows = []
    for name, words in own.items():
        s = summaries.get(name) or {}
        p = s.get("percentiles") or {}
        empty = not s.get("count")
        rows.append([tag("div", [tag("code", name), tag("div", words, class_="muted small")]),
                     format_value(s.get("count")),
                     *(("—" if empty else ms(v)) for v in (p.get("50"), p.get("90"), p.get("99"), s.get("max")))])
    parts = [chart("service-distribution", figures.distribution_figure(curves), charts),
             table(["measure", "samples", "p50", "p90", "p99", "max"], rows, numeric={1, 2, 3, 4, 5})]
    over_time = figures.latency_over_time_figure(report, tuple(measures["histograms"]), {
        name: SERVICE_COLORS[i % len(SERVICE_COLORS)] for i, name in enumerate(own)})
    if over_time is not None:  # propagations are matched at the end of the run: no per-second series
        parts += [chart("service-over-time", over_time, charts),
                  _note("Per second: p50 (solid), p99 (dashed) and max (dotted) of the service's own latencies.")]
    propagation = report.get("propagation") or {}
    accounted = [(stream, propagation[stream]) for stream in measures["streams"] if propagation.get(stream)]
    if accounted:
        keys = ("expected", "observed", "missed", "unconfirmed", "extra", "duplicates", "unmatched")
        parts += [tag("h3", "Propagation accounting"),
                  table(["stream", *keys, "missed %"],
                        [[tag("code", stream), *((format_value(facts.get(k)), "bad strong" if k in (
                            "missed", "duplicates") and facts.get(k) else "") for k in keys),
                          format_value(100 * facts["missed"] / facts["expected"], "%")
                          if facts.get("expected") else "—"] for stream, facts in accounted],
                        numeric=set(range(1, len(keys) + 2))),
                  _note("Every change owed to a member present when it happened is observed, missed or "
                        "unconfirmed (the member left before anything later reached it): expected = observed + "
                        "missed + unconfirmed, exactly, across processes.")]
    if measures["facts"]:
        parts.append(_facts_table(measures["facts"]))
    return tag("div", parts)


def _facts_table(facts: dict) -> Html:
    """The service's derived facts (`chatload gate` reads them by these names)."""
    def shown(kind: str, value: float) -> str:
        if kind == "duration":
            return ms(value)
        if kind == "ratio":
            return format_value(100 * value, "%")
        return format_value(value)

    return tag("div", [tag("h3", "Derived facts"),
                       table(["gate metric", "what it is", "value"],
                             [[tag("code", name), words, shown(kind, value)]
                              for name, (words, kind, value) in facts.items()], numeric={2})])


def sectioned_page(title: str, head: Html, top: Html, sections, foot: Html, charts: dict) -> str:
    """The page every chatload report uses: header, a sticky section nav, the sections as cards."""
    body = [head, nav(sections), tag("main", [top, *(
        tag("section", [tag("h2", heading), content], id=section_id, class_="card")
        for section_id, heading, content in sections)], class_="wrap"), foot]
    return page(title, join(body), charts)


def scenario_name(report: dict) -> str:
    scenario = report.get("scenario") or {}
    if scenario.get("name"):
        return str(scenario["name"])
    locustfile = (report.get("metadata") or {}).get("locustfile")
    return f"{locustfile} (no scenario)" if locustfile else "chatload run"


def header(report: dict) -> Html:
    meta = report.get("metadata") or {}
    target = meta.get("target") or {}
    scenario = report.get("scenario") or {}
    as_run = scenario.get("as_run")
    description = as_run.get("description") if isinstance(as_run, dict) else None
    counts = report.get("check_counts") or {}
    verdict = report.get("verdict", "none")
    verdict_text = {"none": "no checks"}.get(verdict, verdict)
    checks_line = (f"{counts.get('pass', 0)} passed · {counts.get('fail', 0)} failed · {counts.get('error', 0)} "
                   "errors" if report.get("checks") else "no checks were given")
    rooms = target.get("rooms") or []
    facts = [
        ("target", f"{target.get('kind', '?')} · {target.get('endpoint', '—')}"),
        ("rooms", f"{len(rooms)}" if rooms else "—"),
        ("started", when(meta.get("started_at"))),
        ("ended", when(meta.get("ended_at"))),
        ("duration", duration(meta.get("duration_s"))),
        ("users", format_value((meta.get("options") or {}).get("num_users"))),
        ("processes", ", ".join(map(str, meta.get("processes") or [])) or "—"),
        ("host", f"{meta.get('host', '—')} ({meta.get('cpu_count', '?')} CPUs)"),
        ("scenario file", scenario.get("file") or "—"),
        ("versions", " · ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items() if v) or "—"),
    ]
    complete = report.get("complete")
    return tag("header", [tag("div", [
        tag("div", [
            tag("div", [tag("div", "chatload report", class_="eyebrow"), tag("h1", scenario_name(report)),
                        tag("p", description, class_="desc") if description else ""]),
            tag("div", [badge(verdict, verdict_text, large=True),
                        badge("complete" if complete else "incomplete", large=True),
                        tag("div", checks_line, class_="muted small")], class_="verdicts"),
        ], class_="headline"),
        tag("dl", [tag("div", [tag("dt", k), tag("dd", v)]) for k, v in facts], class_="facts"),
    ], class_="wrap")], class_="top")


def nav(sections) -> Html:
    return tag("nav", [tag("div", [tag("a", heading, href=f"#{section_id}") for section_id, heading, _ in sections],
                           class_="wrap")])


def banners(report: dict) -> Html:
    parts = []
    measured = report.get("measured") or {}
    if measured.get("problems"):
        parts.append(tag("div", [tag("strong", "ERROR: this run measured nothing, so its checks prove nothing."),
                                 tag("ul", [tag("li", problem) for problem in measured["problems"]])],
                         class_="banner error", id="banner-measured-nothing", role="alert"))
    health = report.get("health") or {}
    if health.get("saturated"):
        reasons = health.get("reasons") or []
        parts.append(tag("div", [tag("strong", f"WARNING: {SATURATED_WARNING}."),
                                 tag("ul", [tag("li", r) for r in reasons]) if reasons else ""],
                         class_="banner warn", id="banner-saturated", role="alert"))
    if not report.get("complete"):
        parts.append(tag("div", [tag("strong", "INCOMPLETE run: "),
                                 report.get("incomplete_reason") or "no reason given",
                                 ". Figures cover only what was recorded."],
                         class_="banner warn", id="banner-incomplete"))
    merge = report.get("merge_check") or {}
    if merge and merge.get("per_process") and not merge.get("equal"):
        parts.append(tag("div", "The merged histogram counts differ from the sum of the processes' counts: "
                                "some interval snapshots were lost (see Clocks and merge).",
                         class_="banner warn", id="banner-merge"))
    return join(parts)


def footer(report: dict) -> Html:
    versions = (report.get("metadata") or {}).get("versions") or {}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return tag("footer", tag("div", f"chatload {versions.get('chatload') or ''} · {report.get('schema', SCHEMA)} · "
                                    f"rendered {generated} · report.json holds every figure shown here",
                             class_="wrap"))


# -- sections -------------------------------------------------------------------------------------------


def checks_section(report: dict) -> Html:
    checks = report.get("checks") or []
    if not checks:
        return no_data("No checks: this run was not judged against expectations.")
    rows = []
    for check in checks:
        unit = check.get("unit") or ""
        expected = expected_text(check)
        observed = f"{_value(check.get('observed'))} {unit}".strip() if check.get("observed") is not None else "—"
        rows.append([badge(check.get("verdict", "none")),
                     tag("div", [tag("div", check.get("name"), class_="strong"),
                                 tag("code", check.get("rule")) if check.get("rule") != check.get("name") else ""]),
                     tag("code", check.get("metric") or "—"), (expected, "num"),
                     (observed, f"num strong {check.get('verdict')}"), tag("span", check.get("detail") or "",
                                                                           class_="muted")])
    return table(["verdict", "check", "metric", "expected", "observed", "detail"], rows, classes="checks")


def expected_text(check: dict) -> str:
    """"< 250 ms", "between 40 and 60 %"."""
    op, expected, unit = check.get("op") or "", check.get("expected"), check.get("unit") or ""
    if isinstance(expected, list) and len(expected) == 2:
        return f"{op or 'between'} {_value(expected[0])} and {_value(expected[1])} {unit}".strip()
    return f"{op} {_value(expected)} {unit}".strip()


def _value(value) -> str:
    if isinstance(value, float):
        if value.is_integer() or abs(value) >= 1000:  # a count, or a large figure: never 1.597e+04
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def numbers_section(numbers: list[KeyNumber], *, messages: bool = True) -> Html:
    n = by_key(numbers)
    message_tiles = [
        ("messages sent", n["sent"].text(), f"{n['accepted'].text()} accepted · {n['rejected'].text()} rejected", ""),
        ("delivered", n["delivered"].text(), f"of {n['expected'].text()} expected · {n['delivery_rate'].text()}", ""),
        ("lost", n["lost"].text(), f"loss {n['loss_percent'].text()}", "bad" if n["lost"].value else "good"),
        ("duplicates", n["duplicates"].text(), f"{n['out_of_order'].text()} out of order",
         "bad" if n["duplicates"].value else ""),
        ("delivery p50", n["delivery_p50"].text(), f"p99.9 {n['delivery_p99.9'].text()}", ""),
        ("delivery p99", n["delivery_p99"].text(), f"max {n['delivery_max'].text()}", ""),
        ("ack p99", n["ack_p99"].text(), f"p50 {n['ack_p50'].text()}", ""),
    ]
    tiles = [*(message_tiles if messages else []),
        ("connections", n["connections_peak"].text(),
         f"peak open · {n['connects'].text()} connects · {n['reconnects'].text()} reconnects", ""),
        ("errors", n["errors"].text(), f"{n['connect_failures'].text()} connect failures",
         "bad" if n["errors"].value else ""),
    ]
    return tag("div", [tag("div", [tag("div", label, class_="label"), tag("div", value, class_="value"),
                                   tag("div", sub, class_="sub")], class_=f"tile {state}".strip())
                       for label, value, sub, state in tiles], class_="tiles")


# Histograms of counts rather than µs (tries per reconnect): shown where they mean something.
COUNT_HISTOGRAMS = {"reconnect_attempts"}


def latency_section(report: dict, charts: dict) -> Html:
    histograms = report.get("histograms") or {}
    curves = [(name, figures.percentile_series(histograms.get(name)), {"color": figures.COLORS[name]})
              for name in ("delivery", "ack")]
    figure = figures.distribution_figure(curves)  # None without messages: the table says the rest
    summaries = report.get("latency_us") or {}
    rows = []
    for name in [*LATENCY_NAMES, *sorted(set(summaries) - set(LATENCY_NAMES))]:
        s = summaries.get(name)
        if not s or name in COUNT_HISTOGRAMS or not s.get("count"):
            continue  # a latency nothing was measured for says nothing: left out
        p = s.get("percentiles") or {}
        rows.append([tag("span", name, title=LATENCY_MEANING.get(name), class_="strong"), format_value(s.get("count")),
                     *(ms(v) for v in (s.get("min"), p.get("50"), p.get("90"), p.get("99"), p.get("99.9"),
                                       p.get("99.99"), s.get("max"))),
                     ms(s.get("mean"))])
    if figure is None and not rows:
        return None
    return tag("div", [
        *([chart("latency-distribution", figure, charts),
           _note("Read from the merged HdrHistograms (1 µs resolution, 3 significant digits). The x axis is "
                 "1/(1 − percentile) on a log scale: each step right is ten times rarer. The curve ends where "
                 "it reaches the largest value recorded.")] if figure is not None else []),
        tag("h3", "All latencies (ms)"),
        table(["latency", "count", "min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"], rows,
              numeric=set(range(1, 10))) if rows else no_data(),
        tag("p", [join(f"{name}: {meaning}. " for name, meaning in LATENCY_MEANING.items())], class_="muted small"),
    ])


def errors_section(report: dict, charts: dict) -> Html:
    counters = report.get("counters") or {}
    rows = []
    for prefix, meaning in COUNTER_GROUPS:
        for name in sorted(k for k in counters if k == prefix or k.startswith(prefix + ".")):
            detail = name[len(prefix) + 1:] if name != prefix else ""
            state = "" if prefix in ("closes", "not_sent", "unanswered_at_close") or not counters[name] else "bad"
            rows.append([tag("code", name), meaning if not detail else f"{meaning}: {detail}",
                         (format_value(counters[name]), state)])
    samples = report.get("protocol_error_samples") or []
    figure = figures.errors_figure(report)
    if figure is None and not rows and not samples and not counters.get("protocol_errors"):
        return None  # no error, close or failure of any kind: nothing to say
    parts = [chart("errors", figure, charts,
                   empty="No rejections, errors, failures or timeouts in any second of the run.")]
    parts.append(table(["counter", "meaning", "count"], rows, numeric={2}) if rows
                 else no_data("No error, close or failure counters were recorded."))
    if samples:
        parts += [tag("h3", f"Protocol error samples ({len(samples)})"), tag("pre", "\n".join(map(str, samples)))]
    elif counters.get("protocol_errors"):
        parts.append(tag("p", "Protocol errors were counted, but no samples were kept.", class_="muted small"))
    return join(parts)


def health_section(report: dict) -> Html:
    """The harness's own health, judged by the one rule of harness/metrics/saturation.py: the judged
    window's worst values (red past a limit) decide; the whole run's, start-up and drain included,
    are shown beside them and never marked."""
    from ..metrics import saturation

    health = report.get("health") or {}
    per_process = health.get("per_process") or {}
    parts = []
    if health.get("saturated"):
        parts.append(tag("div", [tag("strong", f"WARNING: {SATURATED_WARNING}.")], class_="banner warn inline"))
    if not per_process:
        parts.append(no_data("No harness health was recorded."))
        return join(parts)
    limits = saturation.LIMITS
    keys = (("loop_lag_max_us", ms), ("loop_lag_mean_us", ms), ("hub_stall_max_us", ms),
            ("cpu_percent", lambda v: "—" if v is None else f"{v:.1f} %"))
    rows = []
    judged = health.get("judged")
    if isinstance(judged, dict):  # reports written before the judged window was recorded have none
        cells = [tag("strong", "judged window (all processes)")]
        for key, shown in keys:
            value = judged.get(key)
            over = value is not None and key in limits and value > limits[key]
            cells.append((shown(value) if key in judged else "", "bad strong" if over else ""))
        rows.append(cells)
    for source, worst in sorted(per_process.items()):
        rows.append([[tag("code", source), tag("span", " whole run", class_="muted small")],
                     *(shown(worst.get(key)) for key, shown in keys)])
    parts.append(table(["process", "event-loop lag max", "event-loop lag mean", "gevent hub stall max",
                        "CPU (max)"], rows, numeric={1, 2, 3, 4}))
    stated = health.get("rule") or saturation.rule()
    if health.get("saturated"):
        verdict = "Saturated: " + "; ".join(health.get("reasons") or ())
    elif health.get("judged_seconds") == 0:
        verdict = (f"{saturation.NOT_JUDGED[0].upper()}{saturation.NOT_JUDGED[1:]}: no second fell in the "
                   "window, so nothing is said about the harness's own queueing.")
    else:
        verdict = "Within limits: the latencies are the service's, not the harness's."
    parts.append(_note(f"{stated} {verdict} The whole-run rows include start-up and the drain, which "
                       "the rule does not judge."))
    return join(parts)


def workers_section(report: dict) -> Html:
    """Each worker's machine and share of the load; a saturated one is named (its latencies include
    its own queueing)."""
    rows = [[tag("code", row[0]), *row[1:-1], (row[-1], "bad strong" if row[-1] != "ok" else "")]
            for row in worker_rows(report)]
    return join([table(WORKER_HEADERS, rows, numeric={2, 3, 4, 5}),
                 _note("Users when the run stopped; connections at their peak; the clock offset is what the "
                       "worker added to its stamps to read the master's clock. Health is judged like the run's "
                       "(the steady part, every user spawned) for each worker alone.")])


MESSAGE_KEYS = ("sent", "accepted", "rejected", "unconfirmed_sends", "presumed_accepted")


def accounting_section(report: dict) -> Html:
    accounting = report.get("accounting")
    if not accounting:
        return None
    totals = accounting.get("totals") or {}

    def rows(keys) -> list[list]:
        return [[tag("div", [tag("code", key), tag("div", ACCOUNTING_MEANING.get(key, ""), class_="muted small")]),
                 (format_value(totals[key]), "bad strong" if key in BAD_TOTALS and totals[key] else "")]
                for key in keys if key in totals]

    message_rows = rows(MESSAGE_KEYS)
    by_code = totals.get("rejected_by_code") or {}
    if by_code:
        message_rows.append([tag("div", [tag("code", "rejected_by_code"),
                                         tag("div", "rejections by ERROR code", class_="muted small")]),
                             ", ".join(f"{code}: {n:,}" for code, n in by_code.items())])
    receiver_keys = [k for k in ACCOUNTING_MEANING if k not in MESSAGE_KEYS] + sorted(
        k for k in totals if k not in ACCOUNTING_MEANING and k != "rejected_by_code")
    delivered, expected = totals.get("delivered"), totals.get("expected")
    parts = []
    if expected is not None:
        parts.append(tag("p", f"Per receiver, delivered + lost + unconfirmed at disconnect = expected; over all "
                              f"receivers: {format_value(delivered)} + {format_value(totals.get('lost'))} + "
                              f"{format_value(totals.get('unconfirmed_at_disconnect'))} = {format_value(expected)}.",
                         class_="muted"))
    parts.append(tag("div", [
        tag("div", [tag("h3", "Messages"), table(["", "count"], message_rows, numeric={1})]),
        tag("div", [tag("h3", "Receivers"), table(["", "count"], rows(receiver_keys), numeric={1})]),
    ], class_="grid2"))
    parts.append(tag("div", worst_tables(accounting), class_="grid2"))
    return join(parts)


def worst_tables(accounting: dict) -> list[Html]:
    pairs = accounting.get("worst_pairs") or []
    left = [tag("h3", "Worst receiver ← sender pairs (lost)")]
    if pairs:
        left.append(table(["receiver", "sender", "lost"],
                          [[tag("code", p.get("receiver")), tag("code", p.get("sender")),
                            (format_value(p.get("lost")), "bad")] for p in pairs[:20]], numeric={2}))
    else:
        left.append(no_data("No pair lost a message."))
    receivers = accounting.get("per_receiver") or {}
    troubled = sorted(((rid, c) for rid, c in receivers.items() if any(c.get(k) for k in PROBLEM_KEYS)),
                      key=lambda item: (-sum(item[1].get(k, 0) for k in PROBLEM_KEYS), item[0]))
    parts = [tag("h3", f"Receivers with problems ({len(troubled):,} of {len(receivers):,})")]
    if troubled:
        parts.append(table(["receiver", "expected", "delivered", "lost", "duplicates", "out of order", "unconfirmed"],
                           [[tag("code", rid), *(format_value(c.get(k)) for k in (
                               "expected", "delivered", "lost", "duplicates", "out_of_order",
                               "unconfirmed_at_disconnect"))] for rid, c in troubled[:20]],
                           numeric=set(range(1, 7))))
        if len(troubled) > 20:
            parts.append(tag("p", f"… and {len(troubled) - 20:,} more in report.json (accounting.per_receiver).",
                             class_="muted small"))
    else:
        parts.append(no_data("Every receiver got every message it expected, once and in order."
                             if receivers else "No receivers were judged."))
    return [tag("div", left), tag("div", parts)]


def rate_limit_section(report: dict, charts: dict) -> Html:
    rate = (report.get("verdicts") or {}).get("rate_limit") or {}
    rooms = rate.get("rooms") or {}
    if not rooms:
        return None  # a bare Locust run has no per-room series

    def ratio(value) -> str:
        return "—" if value is None else f"{value:.2f}"

    rows = [[room.rsplit("/", 1)[-1], facts.get("limit") or facts.get("limit_words") or "unknown", f"{facts['offered']:,}", f"{facts['accepted']:,}",
             ", ".join(f"{code}: {n:,}" for code, n in sorted(facts["rejected"].items())) or "0",
             facts["peak_accepted_per_s"], ratio(facts["peak_ratio"]), facts["overloaded_seconds"],
             ratio(facts["steady_ratio"])] for room, facts in rooms.items()]
    return join([
        table(["room", "limit /s", "offered", "accepted", "rejected", "busiest second", "peak / limit",
               "overloaded seconds", "steady / limit"], rows, numeric={1, 2, 3, 5, 6, 7, 8}),
        _note(f"Accepted seconds are the server's (its SendTime); a second is overloaded when offered ≥ "
              f"{rate.get('overload_threshold', 1.2)} × the limit. Rejections not tied to a request: "
              f"{rate.get('untied_rejections', 0)}; rejected with another code than 429: "
              f"{rate.get('non_rate_limited_rejections', rate.get('non_429_rejections', 0))}."),
        chart("rate-limit", figures.rate_limit_figure(report), charts),
    ])


def replay_section(report: dict, charts: dict) -> Html:
    from ..trace.replayreport import replay_lines

    replay = report["replay"]
    return join([
        tag("ul", [tag("li", line) for line in replay_lines(report)]),
        chart("replay", figures.replay_figure(report), charts),
        _note("Per second from the trace's start: the trace's messages at its speed (bars) and the messages the "
              "service accepted (line, by its own time stamp). Lag is how late the harness dispatched each "
              f"message against the trace's time; every latency is measured from that time. Trace: "
              f"{replay.get('trace')}, {replay.get('messages_total', 0):,} messages over "
              f"{replay.get('trace_duration_s', 0):g} s; user ids are hashed and no content is kept."),
    ])


def reconnect_section(report: dict, charts: dict) -> Html:
    facts = (report.get("verdicts") or {}).get("reconnect") or {}
    counters = report.get("counters") or {}
    if not facts or not (facts.get("reconnects") or facts.get("kicked") or report.get("faults")
                         or counters.get("reconnects") or facts.get("not_connected_at_end")):
        return None  # nothing dropped, nobody came back: nothing to say
    latency = (report.get("latency_us") or {}).get("reconnect") or {}
    percentiles = latency.get("percentiles") or {}
    away = sum(r.get("missed_while_away", 0) for r in ((report.get("accounting") or {}).get("per_receiver") or {}).values())
    storm = facts.get("storm_token_fetch_peak_per_s")
    rows = [["reconnects", f"{facts.get('reconnects', 0):,}"],
            ["reconnect time p50 / p99 / max (ms)", " / ".join(ms(percentiles.get(k)) for k in ("50", "99"))
             + f" / {ms(latency.get('max'))}" if latency.get("count") else "—"],
            ["most tries for one comeback", facts.get("attempts_max", 0)],
            ["token fetches, peak second (whole run / from the first fault)",
             f"{facts.get('token_fetch_peak_per_s', 0)} / {'—' if storm is None else storm}"],
            ["kicked / kicked users who came back", f"{facts.get('kicked', 0)} / {facts.get('kicked_rejoined', 0)}"],
            ["not connected at the end", ", ".join(f"{k}: {v}" for k, v in sorted(
                facts.get("not_connected_at_end", {}).items())) or "0"],
            ["messages missed while away (all clients)", f"{away:,}"]]
    return join([table(["", "value"], rows, numeric={1}),
                 chart("reconnects", figures.reconnect_figure(report), charts, empty="No reconnects in this run.")])


def faults_section(report: dict) -> Html:
    faults = report.get("faults") or []
    if not faults:
        return no_data("No faults were injected.")
    rows = []
    for fault in faults:
        params = {k: v for k, v in fault.items()
                  if k not in ("at_s", "applied_at_s", "applied_at_ns", "action", "result", "error")}
        outcome = fault.get("error") or fault.get("result")
        rows.append([format_value(fault.get("at_s")) if fault.get("at_s") is not None else "—",
                     "—" if fault.get("applied_at_s") is None else f"{fault['applied_at_s']:.2f}",
                     tag("span", fault.get("action"), class_="strong"),
                     tag("code", json.dumps(params, ensure_ascii=False, default=str) if params else ""),
                     ("—" if outcome is None else json.dumps(outcome, ensure_ascii=False, default=str)
                      if not isinstance(outcome, str) else outcome, "bad" if fault.get("error") else "")])
    return join([table(["planned at (s)", "applied at (s)", "action", "parameters", "outcome"], rows,
                       numeric={0, 1}), _note("Times are seconds since the load started; the time charts mark "
                                              "each fault with a dashed red line.")])


def scenario_section(report: dict) -> Html:
    scenario = report.get("scenario")
    meta = report.get("metadata") or {}
    parts = []
    if scenario:
        parts.append(tag("p", [tag("span", scenario.get("name"), class_="strong"),
                               f" · {scenario.get('file')}" if scenario.get("file") else ""]))
        as_run = scenario.get("as_run")
        parts.append(tag("pre", pretty_json(as_run)) if as_run is not None else no_data("The scenario was not recorded."))
    else:
        parts.append(no_data("No scenario: rendered from a Locust run's results."))
    if meta.get("options"):
        parts.append(tag("details", [tag("summary", "Locust and chatload options"),
                                     tag("pre", pretty_json(meta["options"]))]))
    if meta.get("target"):
        parts.append(tag("details", [tag("summary", "Target"), tag("pre", pretty_json(meta["target"]))]))
    return join(parts)


def clocks_section(report: dict) -> Html:
    meta = report.get("metadata") or {}
    clocks = meta.get("clocks") or {}
    parts = []
    if clocks:
        rows = []
        for source, clock in sorted(clocks.items()):
            clock = clock or {}
            offset, uncertainty = clock.get("offset_ns"), clock.get("uncertainty_ns")
            rows.append([tag("code", source), clock.get("method", "unmeasured"),
                         "—" if offset is None else f"{offset / 1e6:+,.3f} ms",
                         "—" if uncertainty is None else f"± {uncertainty / 1e6:,.3f} ms"])
        parts.append(table(["process", "method", "offset applied", "uncertainty"], rows, numeric={2, 3}))
        parts.append(_note("Latencies measured across machines are uncertain by the sum of the sender's and the "
                           "receiver's uncertainty; on one machine every process shares the wall clock (0)."))
    else:
        parts.append(no_data("No clock offsets recorded."))
    merge = report.get("merge_check") or {}
    if merge:
        state = "equal" if merge.get("equal") else "NOT equal"
        merged = merge.get("merged") or {}
        parts.append(tag("h3", "Merge check"))
        parts.append(tag("p", f"Merged histogram counts are {state} to the sum of the processes' own totals "
                              f"({', '.join(f'{k} {v:,}' for k, v in merged.items()) or 'no histograms'}).",
                         class_="bad strong" if not merge.get("equal") and merge.get("per_process") else ""))
    return join(parts)


def _note(text: str) -> Html:
    return tag("p", text, class_="note")


# -- page shell -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    if "</script" in script.lower():  # would end the inline <script> early
        raise RuntimeError("plotly.js contains '</script': cannot inline it")
    return script


def json_for_script(value) -> str:
    """JSON that is safe inside <script>: no "</script>", "<!--" or line separators can appear."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


BOOT = """
(function () {
  var figures = JSON.parse(document.getElementById("chart-data").textContent);
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var fig = figures[el.getAttribute("data-chart")];
    if (!fig) { console.error("chatload report: no figure for #" + el.id); return; }
    if (typeof Plotly === "undefined") { console.error("chatload report: plotly.js did not load"); return; }
    Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
      el.setAttribute("data-rendered", "true");
    }, function (err) {
      console.error("chatload report: chart #" + el.id + " failed: " + err);
      el.setAttribute("data-rendered", "failed");
    });
  });
})();
"""

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f4f6f9; --card: #ffffff;
  --pass: #166534; --pass-bg: #dcfce7; --fail: #991b1b; --fail-bg: #fee2e2; --warn: #92400e;
  --warn-bg: #fef3c7; --error: #6b21a8; --error-bg: #f3e8ff; --none: #374151; --none-bg: #e5e7eb;
  --accent: #2563eb; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; scroll-padding-top: 56px; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
.wrap { max-width: 1240px; margin: 0 auto; padding: 0 28px; }
header.top { background: var(--card); border-bottom: 1px solid var(--line); padding: 26px 0 18px; }
.headline { display: flex; justify-content: space-between; align-items: flex-start; gap: 24px; flex-wrap: wrap; }
.eyebrow { color: var(--accent); font-weight: 600; font-size: 12px; letter-spacing: .08em; text-transform: uppercase; }
h1 { font-size: 28px; line-height: 1.2; margin: 4px 0 2px; font-weight: 700; }
h2 { font-size: 18px; margin: 0 0 14px; font-weight: 650; }
h3 { font-size: 14px; margin: 18px 0 8px; color: #374151; }
.desc { margin: 4px 0 0; color: var(--muted); max-width: 760px; }
.verdicts { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; justify-content: flex-end; }
.verdicts .small { width: 100%; text-align: right; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 6px 28px; margin: 18px 0 0; }
.facts > div { min-width: 0; }
.facts dt { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .06em; font-weight: 600; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
nav { position: sticky; top: 0; z-index: 10; background: rgba(255,255,255,.96); border-bottom: 1px solid var(--line);
  backdrop-filter: saturate(1.4) blur(6px); }
nav .wrap { display: flex; flex-wrap: wrap; gap: 2px; }
nav a { color: var(--muted); text-decoration: none; padding: 10px 9px; font-size: 13px; border-bottom: 2px solid transparent; }
nav a:hover { color: var(--accent); border-bottom-color: var(--accent); }
main { padding: 8px 28px 40px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 20px 24px;
  margin: 18px 0; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
.badge { display: inline-block; padding: 3px 10px; border-radius: 999px; font-weight: 700; font-size: 11px;
  letter-spacing: .06em; white-space: nowrap; border: 1px solid transparent; }
.badge.large { font-size: 14px; padding: 6px 16px; }
.badge.pass { color: var(--pass); background: var(--pass-bg); border-color: #86efac; }
.badge.fail { color: var(--fail); background: var(--fail-bg); border-color: #fca5a5; }
.badge.error { color: var(--error); background: var(--error-bg); border-color: #d8b4fe; }
.badge.warn { color: var(--warn); background: var(--warn-bg); border-color: #fcd34d; }
.badge.none { color: var(--none); background: var(--none-bg); border-color: #d1d5db; }
.banner { border-radius: 12px; padding: 14px 18px; margin: 18px 0 0; }
.banner.warn { background: var(--warn-bg); border: 1px solid #f59e0b; border-left: 6px solid #d97706; color: var(--warn); }
.banner.warn > strong::before { content: "\\26A0\\FE0E  "; }
.banner.warn strong { font-size: 15px; }
.banner.inline { margin: 0 0 14px; }
.banner.error { background: var(--error-bg); border: 1px solid #d8b4fe; border-left: 6px solid var(--error); color: var(--error); }
.banner.error strong { font-size: 15px; }
.banner ul { margin: 6px 0 0; padding-left: 20px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; background: #f9fafb; font-size: 12px; }
tbody tr:hover { background: #f9fafb; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pass { color: var(--pass); } td.fail { color: var(--fail); } td.error { color: var(--error); }
.bad { color: var(--fail); } .good { color: var(--pass); } .better { color: var(--pass); } .worse { color: var(--fail); }
.strong { font-weight: 600; }
td.group { background: #f9fafb; padding-top: 12px; } td.same { color: var(--muted); }
.muted { color: var(--muted); } .small { font-size: 12px; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #374151; }
pre { background: #f8fafc; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow: auto;
  max-height: 520px; font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 8px 0; }
details { margin: 10px 0; } summary { cursor: pointer; color: var(--accent); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.tile { border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; background: #fcfcfd; }
.tile .label { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .06em; font-weight: 600; }
.tile .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; margin: 2px 0; }
.tile .sub { color: var(--muted); font-size: 12px; }
.tile.bad { border-color: #fca5a5; background: #fffafa; } .tile.bad .value { color: var(--fail); }
.tile.good .value { color: var(--pass); }
.chart { width: 100%; min-height: 360px; }
.chart.nodata, .nodata { min-height: 0; color: var(--muted); font-style: italic; padding: 18px; text-align: center;
  border: 1px dashed #d1d5db; border-radius: 8px; background: #fafafa; margin: 4px 0; }
.note { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 28px; }
.grid2 h3:first-child { margin-top: 0; }
.runs { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 18px; margin-top: 16px; }
.run { border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; background: #fcfcfd; }
.run .tagline { font-weight: 700; font-size: 13px; }
@media (max-width: 900px) { .grid2, .runs { grid-template-columns: 1fr; } }
footer { color: var(--muted); font-size: 12px; padding: 0 0 30px; }
"""


def page(title: str, body: Html, charts: dict[str, dict]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n"
        f"<script>{plotly_js()}</script>\n</head>\n<body>\n{body}\n"
        f"<script type=\"application/json\" id=\"chart-data\">{json_for_script(charts)}</script>\n"
        f"<script>{BOOT}</script>\n</body>\n</html>\n"
    )
