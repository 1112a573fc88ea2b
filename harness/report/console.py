"""What a run prints at its end, shared by `chatload run` and a plain `locust -f` run: the verdict
line, the accounting in numbers that reconcile, and a latency table in ms; and the plain text the
pages share with the console (the workers' rows, the saturation warning)."""

from __future__ import annotations

from .numbers import format_value

LATENCY_ROWS = (  # histogram → what it measures, as the table says it
    ("delivery", "delivery (intended send → each other member)"),
    ("ack", "ack (intended send → accepted)"),
    ("connect", "connect (token in hand → usable)"),
    ("connect.tls", "  of which TLS handshake (wss://)"),
    ("connect.tls_wait", "queued for a TLS place (before connect)"),
    ("reconnect", "reconnect (drop noticed → usable again)"),
    ("token_fetch", "token fetch"),
)
PERCENTILES = ("50", "90", "99", "99.9")
# The pages' words for a saturated harness (the run's report and the comparison of two runs).
SATURATED_WARNING = "the harness itself saturated — latency figures include harness queueing"


def verdict_line(report: dict) -> str:
    """"PASS", "FAIL", "ERROR", or — first, because it limits what the rest means — "INCOMPLETE (why);
    the checks that ran: PASS"."""
    verdict = report["verdict"].upper()
    if (report.get("measured") or {}).get("problems"):
        verdict = "ERROR: the run measured nothing"
    if report.get("complete"):
        return verdict
    return f"INCOMPLETE ({report.get('incomplete_reason') or 'no reason given'}); the checks that ran: {verdict}"


def saturation_line(health: dict) -> str:
    """The console's words for a saturated harness: what it means, where, and the rule that judged it."""
    return (f"the harness itself saturated; latency includes harness queueing: {'; '.join(health.get('reasons') or ())}"
            + (f" ({health['rule']})" if health.get("rule") else ""))


def health_warning(health: dict) -> str | None:
    """The console's warning about the harness's own health, when there is one to give."""
    from ..metrics.saturation import NOT_JUDGED

    if health.get("saturated"):
        return saturation_line(health)
    if health.get("judged_seconds") == 0:
        return f"harness health {NOT_JUDGED}" + (f" ({health['rule']})" if health.get("rule") else "")
    return None


def check_line(check: dict) -> str:
    """`[ERROR] rule  (observed —): reason`: a check as the console shows it. An error has no observed
    value, so its reason (in the report as `detail`) is the only thing that says what went wrong."""
    observed = format_value(check.get("observed"), check.get("unit") or "", exact=True)
    reason = f": {check['detail']}" if check.get("verdict") == "error" and check.get("detail") else ""
    return f"[{str(check.get('verdict')).upper():5}] {check.get('rule')}  (observed {observed}){reason}"


def accounting_lines(report: dict) -> list[str]:
    """Figures that appear twice must agree, so the lines say how they relate: the ledger's
    `delivered` counts distinct expected messages that arrived (the senders' own copies included);
    the latency histograms time every arrival (to other members → delivery latency, a sender's own
    echo → ack latency). Arrivals = delivered + during_handshake + unexpected + duplicates."""
    totals = (report.get("accounting") or {}).get("totals") or {}
    latency = report.get("latency_us") or {}
    delivery, ack = (latency.get("delivery") or {}).get("count", 0), (latency.get("ack") or {}).get("count", 0)
    lines = [f"delivered {totals.get('delivered', 0):,} of {totals.get('expected', 0):,} expected (senders' own "
             f"copies included); lost {totals.get('lost', 0):,}, duplicates {totals.get('duplicates', 0):,}"]
    if delivery or ack:
        parts = [f"{totals.get('delivered', 0):,} delivered"]
        parts += [f"{totals[key]:,} {words}" for key, words in (
            ("during_handshake", "accepted while their connection was opening"),
            ("unexpected", "unexpected"), ("duplicates", "duplicates")) if totals.get(key)]
        # An ack is an arrival only where the service echoes a send to its sender; a publish API answers
        # over HTTP instead (Hotsock's server publishes), and those acks are no arrival at all.
        arrivals = sum(totals.get(key, 0) for key in ("delivered", "during_handshake", "unexpected", "duplicates"))
        echoes = min(ack, max(0, arrivals - delivery))
        line = (f"timed {delivery + echoes:,} arrivals ({' + '.join(parts)}): {delivery:,} to other members "
                f"(delivery latency), {echoes:,} senders' own echoes (ack latency)")
        if ack > echoes:
            line += f"; {ack - echoes:,} acks were the service's answers to the sends, not arrivals"
        lines.append(line)
    return lines


def latency_table(document: dict) -> list[str]:
    """A short table in ms of the latencies that have samples (report or results document)."""
    latency = document.get("latency_us") or {}
    rows = [(words, latency[name]) for name, words in LATENCY_ROWS if (latency.get(name) or {}).get("count")]
    if not rows:
        return []
    width = max(len(words) for words, _ in rows)
    head = f"{'latency (ms)':<{width}}  {'samples':>9}" + "".join(f"{'p' + p:>9}" for p in PERCENTILES) + f"{'max':>9}"
    lines = [head, "-" * len(head)]
    for words, data in rows:
        cells = "".join(f"{data['percentiles'].get(p, 0) / 1000:>9.2f}" for p in PERCENTILES)
        lines.append(f"{words:<{width}}  {data['count']:>9,}{cells}{data.get('max', 0) / 1000:>9.2f}")
    return lines


def worker_rows(report: dict) -> list[list[str]]:
    """Each worker of a run with workers (none for a one-process run): process, host, CPUs, users and
    connections with their shares, clock offset ± uncertainty, health. Shared by the console and HTML."""
    workers = (report.get("metadata") or {}).get("workers") or []
    if len(workers) < 2 and all(w.get("process") == "local" for w in workers):
        return []

    def share(count, fraction) -> str:
        return "—" if count is None else f"{count:,}" + ("" if fraction is None else f" ({fraction:.0%})")

    def offset(w: dict) -> str:
        if w.get("clock_offset_ns") is None:
            return "—"
        return f"{w['clock_offset_ns'] / 1e6:+,.3f} ± {(w.get('clock_uncertainty_ns') or 0) / 1e6:,.3f} ms"

    return [[w["process"], w.get("host") or "—", "—" if w.get("cpus") is None else str(w["cpus"]),
             share(w.get("users"), w.get("users_share")), share(w.get("connections_peak"), w.get("connections_share")),
             offset(w), ("SATURATED: " + "; ".join(w.get("saturation_reasons") or ())) if w.get("saturated") else "ok"]
            for w in workers]


WORKER_HEADERS = ["process", "host", "CPUs", "users", "connections (peak)", "clock offset", "health"]


def worker_lines(report: dict) -> list[str]:
    rows = worker_rows(report)
    if not rows:
        return []
    widths = [max(len(str(row[i])) for row in [WORKER_HEADERS, *rows]) for i in range(len(WORKER_HEADERS) - 1)]
    return [f"workers ({len(rows)}):"] + ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                                                      strict=False))
                                         + "  " + row[-1] for row in [WORKER_HEADERS, *rows]]
