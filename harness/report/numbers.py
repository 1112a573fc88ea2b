"""Numbers as people read them, and the key numbers of a run (the ones a report shows first and a
comparison sets side by side).

`format_value` is the one number formatter of the report, the comparison, the capacity page, the
console and the gate. It has two styles because their readers differ: a page rounds for reading
("8.375 ms", "1,234", "45 %"); the gate (`exact=True`) prints the figure it judged, as it rounded
it, since a CI log or a JUnit file must show the value the threshold was compared with ("8.375 ms",
"1234", "45%"). Nothing here knows HTML, so the gate may import it."""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics.counters import counter_sum, error_total


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


def format_value(value, unit: str = "", *, exact: bool = False) -> str:
    """A number with its unit: "—" for None, a non-number as its text.

    exact=False, for pages: ms to 3 decimals below 10, 2 below 1000, none above; "%" to 4 significant
    digits ("12.5 %"); "/s" to one decimal; a count with thousands separators.
    exact=True, the gate's style: integers without a decimal point or separators, others to 6
    significant digits; "%" and "/s" follow the number directly ("45%"), other units after a space;
    a pair [low, high] reads "between 40 and 60%"."""
    if exact:
        if isinstance(value, list | tuple) and len(value) == 2:
            return f"between {exact_number(value[0])} and {exact_number(value[1])}{unit_suffix(unit)}"
        return "—" if value is None else f"{exact_number(value)}{unit_suffix(unit)}"
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


def exact_number(value: object, *, signed: bool = False) -> str:
    """The gate's number, no unit: integers without a decimal point, others as they were rounded (6
    significant digits); `signed` puts "+" before a value ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    text = str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return f"+{text}" if signed and value >= 0 else text


def unit_suffix(unit: str) -> str:
    """How the gate's text follows a number with its unit: "%" and "/s" directly, others after a space."""
    return unit if unit in ("", "%", "/s") else f" {unit}"


def check_value(value) -> str:
    """A check's expected or observed value on a page: a count or a large figure with separators
    (never 1.597e+04), others to 4 significant digits."""
    if isinstance(value, float):
        if value.is_integer() or abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def expected_text(check: dict) -> str:
    """"< 250 ms", "between 40 and 60 %"."""
    op, expected, unit = check.get("op") or "", check.get("expected"), check.get("unit") or ""
    if isinstance(expected, list) and len(expected) == 2:
        return f"{op or 'between'} {check_value(expected[0])} and {check_value(expected[1])} {unit}".strip()
    return f"{op} {check_value(expected)} {unit}".strip()


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
