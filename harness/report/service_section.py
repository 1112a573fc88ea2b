"""The section of what the run's service measured beyond messages: its own latencies (join, ping,
subscribe, replay, API calls…), its propagations (roster, presence) with their exact accounting, and
the facts derived after the run, by the names `chatload gate` reads them with."""

from __future__ import annotations

from .figures import distribution_figure, latency_over_time_figure, percentile_series
from .html_kit import Html, chart, ms, note, table, tag
from .numbers import format_value


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
    curves = [(name, percentile_series(encoded.get(name)), {"color": SERVICE_COLORS[i % len(SERVICE_COLORS)]})
              for i, name in enumerate(own)]
    rows = []
    for name, words in own.items():
        s = summaries.get(name) or {}
        p = s.get("percentiles") or {}
        empty = not s.get("count")
        rows.append([tag("div", [tag("code", name), tag("div", words, class_="muted small")]),
                     format_value(s.get("count")),
                     *(("—" if empty else ms(v)) for v in (p.get("50"), p.get("90"), p.get("99"), s.get("max")))])
    parts = [chart("service-distribution", distribution_figure(curves), charts),
             table(["measure", "samples", "p50", "p90", "p99", "max"], rows, numeric={1, 2, 3, 4, 5})]
    over_time = latency_over_time_figure(report, tuple(measures["histograms"]), {
        name: SERVICE_COLORS[i % len(SERVICE_COLORS)] for i, name in enumerate(own)})
    if over_time is not None:  # propagations are matched at the end of the run: no per-second series
        parts += [chart("service-over-time", over_time, charts),
                  note("Per second: p50 (solid), p99 (dashed) and max (dotted) of the service's own latencies.")]
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
                  note("Every change owed to a member present when it happened is observed, missed or "
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
