"""`render_html(report)`: a run's report as one self-contained HTML page: its header and banners,
then the sections (run_sections, service_section, accounting_section) as cards, each with a link in
the sticky nav. A section with nothing to say is left out."""

from __future__ import annotations

from datetime import UTC, datetime

from .accounting_section import accounting_section
from .console import SATURATED_WARNING, worker_rows
from .document import SCHEMA, as_report, scenario_name
from .figures import connections_figure, latency_over_time_figure, throughput_figure
from .html_kit import Html, badge, chart, duration, join, note, page_header, sectioned_page, tag, when
from .numbers import format_value, key_numbers
from .run_sections import (
    checks_section,
    clocks_section,
    errors_section,
    faults_section,
    health_section,
    latency_section,
    numbers_section,
    rate_limit_section,
    reconnect_section,
    replay_section,
    scenario_section,
    workers_section,
)
from .service_section import service_measures, service_section


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
        ("over-time", "Latency over time", _chart_or_none("latency-over-time", latency_over_time_figure(report),
                                                          charts, "Per second: p50 (solid), p99 (dashed) and max "
                                                          "(dotted); dashed red lines mark faults.")),
        ("throughput", "Throughput", _chart_or_none(
            "throughput", throughput_figure(report) if messages else None, charts,
            "Per second: messages sent, accepted and rejected (left axis), deliveries (right axis).")),
        ("connections", "Connections", _chart_or_none("connections", connections_figure(report), charts)),
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


def _chart_or_none(name: str, figure: dict | None, charts: dict, caption: str | None = None) -> Html | None:
    if figure is None:
        return None
    return tag("div", [chart(name, figure, charts), *([note(caption)] if caption else [])])


def carries_messages(report: dict) -> bool:
    """Whether the run sent or delivered measured messages: a run that only joins stages (IVS
    Real-Time) or churns a control plane has no message sections to show."""
    counters = report.get("counters") or {}
    totals = (report.get("accounting") or {}).get("totals") or {}
    delivered = ((report.get("latency_us") or {}).get("delivery") or {}).get("count")
    return bool(counters.get("sent") or totals.get("sent") or totals.get("expected") or delivered)


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
    return page_header("chatload report", scenario_name(report), description,
                       [badge(verdict, verdict_text, large=True),
                        badge("complete" if complete else "incomplete", large=True),
                        tag("div", checks_line, class_="muted small")], facts)


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
