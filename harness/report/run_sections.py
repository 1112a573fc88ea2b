"""The sections of a run's report, each a function of the report (and the page's charts) that
returns its HTML, or None when it has nothing to say: checks, key numbers, latency, errors, harness
health, workers, rate limits, trace replay, reconnects, faults, the scenario as run, clocks."""

from __future__ import annotations

import json

from ..metrics.histograms import ACK_WORDS
from .console import SATURATED_WARNING, WORKER_HEADERS, worker_rows
from .figures import (
    COLORS,
    distribution_figure,
    errors_figure,
    percentile_series,
    rate_limit_figure,
    reconnect_figure,
    replay_figure,
)
from .html_kit import Html, badge, chart, join, ms, no_data, note, pretty_json, table, tag
from .numbers import KeyNumber, by_key, check_value, expected_text, format_value

LATENCY_NAMES = ("delivery", "ack", "connect", "reconnect", "token_fetch", "send_lag")


LATENCY_MEANING = {
    "delivery": "intended send time → arrival at each receiver",
    "ack": ACK_WORDS,
    "connect": "connection attempt → usable",
    "reconnect": "drop noticed → usable again",
    "token_fetch": "token request → token",
    "send_lag": "how late the harness sent against its schedule (part of every latency)",
    "retry_wait": "a failed connect or token fetch → the next try (the reconnect policy's backoff)",
}


COUNTER_GROUPS = (
    ("rejected", "rejected by the service (by error code)"),
    ("errors", "error answers from the service (by code)"),
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


def checks_section(report: dict) -> Html:
    checks = report.get("checks") or []
    if not checks:
        return no_data("No checks: this run was not judged against expectations.")
    rows = []
    for check in checks:
        unit = check.get("unit") or ""
        expected = expected_text(check)
        observed = f"{check_value(check.get('observed'))} {unit}".strip() if check.get("observed") is not None else "—"
        rows.append([badge(check.get("verdict", "none")),
                     tag("div", [tag("div", check.get("name"), class_="strong"),
                                 tag("code", check.get("rule")) if check.get("rule") != check.get("name") else ""]),
                     tag("code", check.get("metric") or "—"), (expected, "num"),
                     (observed, f"num strong {check.get('verdict')}"), tag("span", check.get("detail") or "",
                                                                           class_="muted")])
    return table(["verdict", "check", "metric", "expected", "observed", "detail"], rows, classes="checks")


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
    curves = [(name, percentile_series(histograms.get(name)), {"color": COLORS[name]})
              for name in ("delivery", "ack")]
    figure = distribution_figure(curves)  # None without messages: the table says the rest
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
           note("Read from the merged HdrHistograms (1 µs resolution, 3 significant digits). The x axis is "
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
    figure = errors_figure(report)
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
    parts.append(note(f"{stated} {verdict} The whole-run rows include start-up and the drain, which "
                       "the rule does not judge."))
    return join(parts)


def workers_section(report: dict) -> Html:
    """Each worker's machine and share of the load; a saturated one is named (its latencies include
    its own queueing)."""
    rows = [[tag("code", row[0]), *row[1:-1], (row[-1], "bad strong" if row[-1] != "ok" else "")]
            for row in worker_rows(report)]
    return join([table(WORKER_HEADERS, rows, numeric={2, 3, 4, 5}),
                 note("Users when the run stopped; connections at their peak; the clock offset is what the "
                       "worker added to its stamps to read the master's clock. Health is judged like the run's "
                       "(the steady part, every user spawned) for each worker alone.")])


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
        note(f"Accepted seconds are the server's (when it accepted each message); a second is overloaded when "
             f"offered ≥ {rate.get('overload_threshold', 1.2)} × the limit. Rejections not tied to a request: "
             f"{rate.get('untied_rejections', 0)}; rejected for another reason than the rate limit: "
             f"{rate.get('non_rate_limited_rejections', rate.get('non_429_rejections', 0))}."),
        chart("rate-limit", rate_limit_figure(report), charts),
    ])


def replay_section(report: dict, charts: dict) -> Html:
    from ..trace.replayreport import replay_lines

    replay = report["replay"]
    return join([
        tag("ul", [tag("li", line) for line in replay_lines(report)]),
        chart("replay", replay_figure(report), charts),
        note("Per second from the trace's start: the trace's messages at its speed (bars) and the messages the "
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
                 chart("reconnects", reconnect_figure(report), charts, empty="No reconnects in this run.")])


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
                       numeric={0, 1}), note("Times are seconds since the load started; the time charts mark "
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
        parts.append(note("Latencies measured across machines are uncertain by the sum of the sender's and the "
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
