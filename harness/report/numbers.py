"""The key numbers of a run, read from its report: the ones shown first and compared between runs."""

from __future__ import annotations

from dataclasses import dataclass

from .figures import counter_sum

# A rejected send is an ERROR frame too: "errors" counts it once.
ERROR_PREFIXES = ("errors", "connect_failures", "token_fetch_failures", "subscribe_token_fetch_failures", "timeouts",
                  "protocol_errors", "gave_up")


def error_total(counters) -> int:
    """"errors (all kinds)": the one definition the live progress and the report both show."""
    return sum(counter_sum(counters, prefix) for prefix in ERROR_PREFIXES)


@dataclass(frozen=True)
class KeyNumber:
    key: str
    label: str
    value: float | int | None  # None: not measured in this run
    unit: str = ""  # "ms", "%" or "" (a count)
    better: str | None = None  # "lower", "higher", or None when neither is better (load, not outcome)
    group: str = ""

    def text(self) -> str:
        return format_value(self.value, self.unit)


def format_value(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if unit == "ms":
        return f"{value:,.3f} ms" if value < 10 else f"{value:,.2f} ms" if value < 1000 else f"{value:,.0f} ms"
    if unit == "%":
        return f"{value:.4g} %"
    if unit == "/s":
        return f"{value:,.1f} /s"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def latency_ms(report: dict, name: str, percentile: str) -> float | None:
    summary = (report.get("latency_us") or {}).get(name) or {}
    if not summary.get("count"):
        return None
    value = summary.get("max") if percentile == "max" else (summary.get("percentiles") or {}).get(percentile)
    return None if value is None else value / 1000


def key_numbers(report: dict) -> list[KeyNumber]:
    counters = report.get("counters") or {}
    totals = (report.get("accounting") or {}).get("totals") or {}
    timeline = report.get("timeline") or []
    duration = (report.get("metadata") or {}).get("duration_s")
    delivered = totals.get("delivered")
    if delivered is None:
        delivered = ((report.get("latency_us") or {}).get("delivery") or {}).get("count")
    expected = totals.get("expected")
    lost = totals.get("lost")
    loss = 100 * lost / expected if expected and lost is not None else (0.0 if expected == 0 else None)
    peak_open = max((row.get("connections_open", 0) for row in timeline), default=None)
    rate = delivered / duration if delivered is not None and duration else None
    # One source for each count: the ledger's totals, which the accounting section and the gate read
    # too. The `accepted` counter counts acks, and a service that acknowledges nothing (Chime data
    # messages) has none, though the ledger knows what the server accepted.
    sent, accepted, rejected = (totals.get("sent"), totals.get("accepted"), totals.get("rejected")) if totals else (
        counters.get("sent", 0), counters.get("accepted", 0), counter_sum(counters, "rejected"))
    numbers = [
        KeyNumber("sent", "messages sent", sent, group="messages"),
        KeyNumber("accepted", "accepted", accepted, group="messages"),
        KeyNumber("rejected", "rejected", rejected, better="lower", group="messages"),
        KeyNumber("expected", "deliveries expected", expected, group="messages"),
        KeyNumber("delivered", "delivered", delivered, better="higher", group="messages"),
        KeyNumber("delivery_rate", "deliveries per second", rate, "/s", better="higher", group="messages"),
        KeyNumber("lost", "lost", lost, better="lower", group="loss"),
        KeyNumber("loss_percent", "loss", loss, "%", better="lower", group="loss"),
        KeyNumber("duplicates", "duplicates", totals.get("duplicates"), better="lower", group="loss"),
        KeyNumber("out_of_order", "out of order", totals.get("out_of_order"), better="lower", group="loss"),
        KeyNumber("unconfirmed_at_disconnect", "unconfirmed at disconnect",
                  totals.get("unconfirmed_at_disconnect"), better="lower", group="loss"),
    ]
    for name in ("delivery", "ack"):
        for percentile, label in (("50", "p50"), ("99", "p99"), ("99.9", "p99.9"), ("max", "max")):
            numbers.append(KeyNumber(f"{name}_{label}", f"{name} {label}", latency_ms(report, name, percentile),
                                     "ms", better="lower", group="latency"))
    numbers += [
        KeyNumber("connect_p99", "connect p99", latency_ms(report, "connect", "99"), "ms", better="lower",
                  group="latency"),
        KeyNumber("connections_peak", "connections open (peak)", peak_open, group="connections"),
        KeyNumber("connects", "connects", counters.get("connects", 0), group="connections"),
        KeyNumber("reconnects", "reconnects", counters.get("reconnects", 0), better="lower", group="connections"),
        KeyNumber("connect_failures", "connect failures", counter_sum(counters, "connect_failures"),
                  better="lower", group="connections"),
        KeyNumber("errors", "errors (all kinds)", error_total(counters), better="lower", group="connections"),
    ]
    return numbers


def by_key(numbers: list[KeyNumber]) -> dict[str, KeyNumber]:
    return {number.key: number for number in numbers}
