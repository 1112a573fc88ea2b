"""The metric catalog: readable names (`delivery.p99`, `lost`, `rejected.rate_limited.ratio`) for the
figures of a results document, so rules and scenario expectations never spell JSON paths.

Rejections are named by neutral category (`rejected.rate_limited`, `rejected.forbidden`, … — the same
for every service) or by the service's own code (`rejected.429` for IVS Chat, which reads the same
messages as `rejected.rate_limited` there).

Every metric has a kind, which fixes the units a rule may write for it and how values are shown:

    duration  integer microseconds in the report; rules write µs (or us), ms or s
    count     a plain number
    ratio     a fraction; rules write 0.4 or 40%
    rate      per second over the run's duration; rules write a plain number or N/s
    flag      0 or 1 (rules may write false / true)

`read(report, name)` raises `MetricMissing` saying what the report lacks; `lookup` returns None instead.
Unknown names raise `UnknownMetric` with close matches. Nothing here reads files or clocks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..metrics.histograms import ACK_WORDS
from ..services.base import CATEGORIES

DURATION, COUNT, RATIO, RATE, FLAG = "duration", "count", "ratio", "rate", "flag"
LOWER, HIGHER = "lower_is_better", "higher_is_better"

# Histograms in `latency_us` (see ARCHITECTURE.md, "Latency definitions"); send_lag is the harness's own
# lateness against the schedule, part of every latency above it.
HISTOGRAMS = {
    "delivery": "delivery latency (intended send time → arrival at each receiver)",
    "ack": f"ack latency ({ACK_WORDS})",
    "connect": "connect time (token in hand and a TLS place taken → usable socket)",
    "connect.tls": "TLS handshake time, a phase of each wss:// connect (TCP connected → TLS established)",
    "connect.tls_wait": "wait for one of the loop's 8 TLS places before a wss:// connect starts (not in connect)",
    "reconnect": "reconnect time (drop noticed → usable again)",
    "token_fetch": "token fetch time",
    "send_lag": "send lag (how late the harness sent against its schedule)",
    "retry_wait": "wait before trying again after a failed connect or token fetch (the reconnect policy's backoff)",
    "kick": "kick latency (the control-plane call → the kicked user's own notice)",
    "spread": "fan-out spread (a message's last recipient − its first), where the service measures it",
    "replay_lag": "replay lag (how late a trace replay dispatched each message against the trace's time)",
}
PROPAGATION_COUNTS = {  # report["propagation"][stream] keys: (direction, words)
    "expected": (HIGHER, "observations owed: each member present when it happened"),
    "observed": (HIGHER, "observations that arrived"),
    "missed": (LOWER, "owed observations that never arrived"),
    "unconfirmed": (LOWER, "owed to a member that left before anything later reached it (fate unknown)"),
    "extra": (LOWER, "observed by a member that joined while it happened (not judged)"),
    "duplicates": (LOWER, "second observations of one origin by one member"),
    "unmatched": (LOWER, "observations of something no origin was recorded for"),
}


def _service_declarations() -> tuple[dict[str, str], dict[str, str]]:
    """Every registered service's own histograms and propagation streams (through the registry only)."""
    from ..services import registry

    histograms, streams = {}, {}
    for name in registry.names():
        service = registry.get(name)
        histograms.update({h: f"{words} ({service.title})" for h, words in service.histograms.items()})
        streams.update({s: f"{words} ({service.title})" for s, words in service.propagations.items()})
    return histograms, streams


SERVICE_HISTOGRAMS, PROPAGATIONS = _service_declarations()


def _service_verdicts() -> dict:
    from ..services import registry

    return {name: ((service_name, *path), kind, direction, f"{words} ({registry.get(service_name).title})")
            for service_name in registry.names()
            for name, (path, kind, direction, words) in registry.get(service_name).verdict_metrics.items()}


HISTOGRAMS.update(SERVICE_HISTOGRAMS)
HISTOGRAMS.update(PROPAGATIONS)
# statistic → (key in a latency summary, kind, words). Percentile keys are the recorder's ("99.9").
STATISTICS = {
    "p50": ("50", DURATION, "median"),
    "p90": ("90", DURATION, "90th percentile"),
    "p99": ("99", DURATION, "99th percentile"),
    "p99.9": ("99.9", DURATION, "99.9th percentile"),
    "p99.99": ("99.99", DURATION, "99.99th percentile"),
    "max": ("max", DURATION, "maximum"),
    "min": ("min", DURATION, "minimum"),
    "mean": ("mean", DURATION, "mean"),
    "count": ("count", COUNT, "number of samples"),
}
# accounting.totals fields: name → (direction, words)
TOTALS = {
    "expected": (HIGHER, "deliveries owed: messages accepted while each receiver was connected"),
    "delivered": (HIGHER, "deliveries that arrived"),
    "lost": (LOWER, "expected deliveries that never arrived"),
    "unconfirmed_at_disconnect": (LOWER, "accepted after the last frame a dropped connection received (fate unknown)"),
    "missed_while_away": (LOWER, "messages accepted while a receiver was disconnected"),
    "duplicates": (LOWER, "deliveries received more than once"),
    "out_of_order": (LOWER, "deliveries that arrived before an earlier message of the same sender"),
    "unexpected": (LOWER, "deliveries not expected at their receiver (accepted before its connection began)"),
    "during_handshake": (LOWER, "deliveries accepted while their connection was opening: legitimate, not judged"),
    "replay_expected": (HIGHER, "messages owed as replays to members joining late or coming back"),
    "replayed": (HIGHER, "replays that arrived"),
    "replay_missed": (LOWER, "owed replays that never arrived"),
    "accepted": (HIGHER, "messages the server accepted"),
    "sent": (HIGHER, "messages sent"),
    "rejected": (LOWER, "messages the server rejected (any reason)"),
    "presumed_accepted": (LOWER, "sends never echoed but delivered to someone, so presumed accepted"),
    "unconfirmed_sends": (LOWER, "sends neither accepted nor rejected"),
    "receivers": (HIGHER, "receivers in the ledger"),
    "connections": (HIGHER, "receiving connections in the ledger"),
}
RATIOS = {  # name → (numerator, denominator, direction, words)
    "loss.ratio": ("lost", "expected", LOWER, "lost / expected"),
    "delivery.ratio": ("delivered", "expected", HIGHER, "delivered / expected"),
    "rejected.ratio": ("rejected", "sent", LOWER, "rejected (any code) / sent"),
}
RATES = {  # name → (accounting total, words)
    "accepted.rate": ("accepted", "accepted messages per second over the run"),
    "sent.rate": ("sent", "sent messages per second over the run"),
    "deliveries.rate": ("delivered", "deliveries per second over the run"),
}
# The harness's own counters (harness/session/chat_session.py, harness/runtime/loop_side.py), readable without `counters.`:
# a misspelt one is still an unknown metric, where `counters.<name>` reads 0 for any name.
COUNTERS = {
    "protocol_errors": (LOWER, "server frames the codec could not parse (and binary frames)"),
    "foreign_messages": (LOWER, "messages without chatload's attributes (other clients' traffic)"),
    "connects": (HIGHER, "connections opened (first connects and reconnects)"),
    "reconnects": (LOWER, "reconnections after a drop"),
    "token_fetches": (HIGHER, "chat tokens fetched"),
    "token_fetch_cut_short": (LOWER, "users whose token fetch was still in flight when the run ended"),
    "subscribe_token_fetches": (HIGHER, "subscribe tokens fetched from the application's endpoint (Hotsock)"),
    "kicked": (LOWER, "connections closed by a moderator's DISCONNECT_USER"),
    "kicked_rejoined": (LOWER, "kicked users that connected again (must stay 0)"),
}
# Derived facts in the report's `verdicts` section (harness/results/verdicts.py): name → (path, kind, direction, words)
VERDICTS = {
    "rate_limit.peak_ratio": (("rate_limit", "peak_ratio"), RATIO, LOWER,
                              "busiest second's accepted messages / the room's limit (max over rooms)"),
    "rate_limit.steady_ratio": (("rate_limit", "steady_ratio"), RATIO, HIGHER,
                                "mean accepted per overloaded second / the limit (min over rooms)"),
    "rate_limit.overloaded_seconds": (("rate_limit", "overloaded_seconds"), COUNT, HIGHER,
                                      "seconds a room was offered ≥ 1.2 × its limit"),
    "rate_limit.untied_rejections": (("rate_limit", "untied_rejections"), COUNT, LOWER,
                                     "rate-limit rejections that matched no request"),
    "rate_limit.non_rate_limited_rejections": (("rate_limit", "non_rate_limited_rejections"), COUNT, LOWER,
                                               "sends rejected for another reason than the rate limit"),
    "token_fetch.peak_per_s": (("reconnect", "token_fetch_peak_per_s"), COUNT, LOWER,
                               "most token fetches (CreateChatToken calls) in any one second"),
    "token_fetch.storm_peak_per_s": (("reconnect", "storm_token_fetch_peak_per_s"), COUNT, LOWER,
                                     "most token fetches in any one second from the first fault on"),
    "reconnect_attempts.max": (("reconnect", "attempts_max"), COUNT, LOWER,
                               "most tries any client needed to come back after one drop"),
}
# Names rule files may still use, each for a neutral metric: alias → (that metric, the verdicts path a
# report written before the neutral name held the value under). IVS Chat's "non-429" is the first.
ALIASES = {
    "rate_limit.non_429_rejections": ("rate_limit.non_rate_limited_rejections", ("rate_limit", "non_429_rejections")),
}
COUNTER_FAMILIES = {  # <family>.<key>
    "errors": "error answers by the service's own code, e.g. errors.429 (IVS Chat)",
    "untied_rejections": "error answers that matched no request, by category, e.g. untied_rejections.rate_limited",
    "refused": "sessions the service refused (a join error), by category, e.g. refused.forbidden",
    "events": "EVENT frames by name, e.g. events.aws:DELETE_MESSAGE",
    "closes": "connection closes by close code, e.g. closes.1006",
    "connect_failures": "failed connects by cause",
    "token_fetch_failures": "failed token fetches by cause (an endpoint's HTTP status, timeout, bad_json, …)",
    "subscribe_token_fetch_failures": "failed subscribe-token fetches by cause",
    "timeouts": "requests the server never answered, by kind, e.g. timeouts.send",
    "unanswered_at_close": "requests still unanswered when their connection closed, by kind",
    "not_sent": "scheduled sends skipped, by reason, e.g. not_sent.stopping",
    "gave_up": "users that stopped reconnecting, by cause",
    "not_connected_at_end": "users not connected when the run ended, by reason (kicked, gave_up, refused, closed_by_server)",
}
COUNTER_FAMILY = re.compile(rf"(?:{'|'.join(COUNTER_FAMILIES)})\.[^.\s].*")
# A category (lower case, from the fixed list) or a service's code: digits (429) or UPPER_SNAKE
# (SUBSCRIBE_PERMISSION_DENIED), so a misspelt category stays an unknown metric.
_REJECTION = rf"({'|'.join(CATEGORIES)}|\d+|[A-Z][A-Z0-9_]*)"
REJECTED_CODE = re.compile(rf"rejected\.{_REJECTION}")
REJECTED_CODE_RATIO = re.compile(rf"rejected\.{_REJECTION}\.ratio")
COUNTER = re.compile(r"counters\.(.+)")


class UnknownMetric(ValueError):
    pass


class MetricMissing(LookupError):
    """The report has no value for a known metric; the message says what is missing."""


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    direction: str
    description: str
    read: Callable[[Mapping], float]

    @property
    def is_latency(self) -> bool:
        return self.kind == DURATION and self.name.split(".")[0] in HISTOGRAMS


# -- readers: each raises MetricMissing with the reason ----------------------------------------------------

def _section(report: Mapping, key: str, what: str, why: str = "") -> Mapping:
    value = report.get(key)
    if not isinstance(value, Mapping):
        raise MetricMissing(f"the report has no {what} (`{key}`){why}")
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetricMissing(f"the report has no number for {what}")
    return float(value)


def _histogram_reader(histogram: str, statistic: str) -> Callable[[Mapping], float]:
    key = STATISTICS[statistic][0]

    def read(report: Mapping) -> float:
        summary = _section(report, "latency_us", "latency summaries").get(histogram)
        if not isinstance(summary, Mapping):
            raise MetricMissing(f"the report has no {histogram} histogram (`latency_us.{histogram}`)")
        if statistic == "count":
            return _number(summary.get("count"), f"latency_us.{histogram}.count")
        # An empty histogram's summary holds zeros; a percentile of nothing must not pass a threshold.
        if not summary.get("count"):
            raise MetricMissing(f"{histogram} recorded no samples (count 0), so it has no {statistic}")
        if key in ("min", "mean", "max"):
            return _number(summary.get(key), f"latency_us.{histogram}.{key}")
        percentiles = summary.get("percentiles")
        value = percentiles.get(key) if isinstance(percentiles, Mapping) else None
        return _number(value, f"latency_us.{histogram}.percentiles.{key}")
    return read


def _total(report: Mapping, key: str) -> float:
    totals = _section(report, "accounting", "accounting", ": no process exported a delivery ledger").get("totals")
    if not isinstance(totals, Mapping):
        raise MetricMissing("the report has no accounting totals (`accounting.totals`)")
    return _number(totals.get(key), f"accounting.totals.{key}")


def _rejected_code(report: Mapping, code: str) -> float:
    """By neutral category when `code` is one, else by the service's own code."""
    _total(report, "rejected")  # the accounting is there; a code it never saw was rejected 0 times
    key = "rejected_by_category" if code in CATEGORIES else "rejected_by_code"
    by_code = report["accounting"]["totals"].get(key) or {}
    value = by_code.get(code, 0) if isinstance(by_code, Mapping) else None
    return _number(value, f"accounting.totals.{key}.{code}")


def _ratio(numerator: Callable[[Mapping], float], denominator: str) -> Callable[[Mapping], float]:
    def read(report: Mapping) -> float:
        below = _total(report, denominator)
        if below == 0:
            raise MetricMissing(f"{denominator} is 0, so the ratio is undefined")
        return numerator(report) / below
    return read


def _run_seconds(report: Mapping) -> float:
    metadata = _section(report, "metadata", "metadata")
    started, ended = metadata.get("started_at_ns"), metadata.get("ended_at_ns")
    if not isinstance(started, int) or not isinstance(ended, int):
        raise MetricMissing("the report has no run duration (`metadata.started_at_ns` / `ended_at_ns`)")
    if ended <= started:
        raise MetricMissing("the report's run duration is not positive")
    return (ended - started) / 1e9


def _counter(report: Mapping, name: str) -> float:
    # Counters appear on their first increment, so one the report lacks was never incremented.
    return _number(_section(report, "counters", "counters").get(name, 0), f"counters.{name}")


def _verdict(report: Mapping, path: tuple[str, ...]) -> float:
    value: object = _section(report, "verdicts", "derived verdict facts", " (a run by `chatload run` has them)")
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        raise MetricMissing(f"the report has no `verdicts.{'.'.join(path)}` (no room with a known limit, "
                            "or no overloaded second)" if path[0] == "rate_limit" else
                            f"the report has no `verdicts.{'.'.join(path)}`")
    return _number(value, f"verdicts.{'.'.join(path)}")


def _aliased(read: Callable[[Mapping], float], old_path: tuple[str, ...]) -> Callable[[Mapping], float]:
    """An alias reads its metric; a report older than the metric's name holds it under `old_path`."""
    def reader(report: Mapping) -> float:
        try:
            return read(report)
        except MetricMissing as missing:
            try:
                return _verdict(report, old_path)
            except MetricMissing:
                raise missing from None
    return reader


def _propagation(report: Mapping, stream: str, key: str) -> float:
    facts = _section(report, "propagation", "propagation accounting").get(stream)
    if not isinstance(facts, Mapping):
        raise MetricMissing(f"the report has no propagation of {stream!r} (nothing was recorded for it)")
    return _number(facts.get(key), f"propagation.{stream}.{key}")


def _propagation_ratio(report: Mapping, stream: str) -> float:
    expected = _propagation(report, stream, "expected")
    if expected == 0:
        raise MetricMissing(f"{stream}: nothing was expected, so the ratio is undefined")
    return _propagation(report, stream, "missed") / expected


def _flag(path: tuple[str, ...]) -> Callable[[Mapping], float]:
    def read(report: Mapping) -> float:
        value: object = report
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if not isinstance(value, bool):
            raise MetricMissing(f"the report has no `{'.'.join(path)}`")
        return float(value)
    return read


# -- the catalog --------------------------------------------------------------------------------------------

def _fixed_catalog() -> dict[str, Metric]:
    catalog: dict[str, Metric] = {}

    def add(name, kind, direction, description, read):
        catalog[name] = Metric(name, kind, direction, description, read)

    for histogram, words in HISTOGRAMS.items():
        for statistic, (_, kind, stat_words) in STATISTICS.items():
            add(f"{histogram}.{statistic}", kind, HIGHER if kind == COUNT else LOWER,
                f"{stat_words} of {words}", _histogram_reader(histogram, statistic))
    for key, (direction, words) in TOTALS.items():
        add(key, COUNT, direction, words, lambda report, key=key: _total(report, key))
    for name, (numerator, denominator, direction, words) in RATIOS.items():
        add(name, RATIO, direction, words,
            _ratio(lambda report, key=numerator: _total(report, key), denominator))
    for name, (key, words) in RATES.items():
        add(name, RATE, HIGHER, words, lambda report, key=key: _total(report, key) / _run_seconds(report))
    for name, (direction, words) in COUNTERS.items():
        add(name, COUNT, direction, f"{words} (counters.{name})", lambda report, name=name: _counter(report, name))
    for name, (path, kind, direction, words) in {**VERDICTS, **_service_verdicts()}.items():
        add(name, kind, direction, words, lambda report, path=path: _verdict(report, path))
    for alias, (name, old_path) in ALIASES.items():
        metric = catalog[name]
        add(alias, metric.kind, metric.direction, f"the former name of {name}", _aliased(metric.read, old_path))
    for stream, words in PROPAGATIONS.items():
        for key, (direction, count_words) in PROPAGATION_COUNTS.items():
            add(f"{stream}.{key}", COUNT, direction, f"{count_words} — {words}",
                lambda report, stream=stream, key=key: _propagation(report, stream, key))
        add(f"{stream}.missed.ratio", RATIO, LOWER, f"missed / expected — {words}",
            lambda report, stream=stream: _propagation_ratio(report, stream))
    add("duration", DURATION, HIGHER, "the run's length (metadata.started_at_ns → ended_at_ns)",
        lambda report: _run_seconds(report) * 1e6)
    add("health.saturated", FLAG, LOWER, "1 when the harness itself saturated (loop lag, hub stall, CPU)",
        _flag(("health", "saturated")))
    add("complete", FLAG, HIGHER, "1 when the run finished and drained as planned", _flag(("complete",)))
    add("trace.replay_ratio", RATIO, HIGHER, "trace messages replayed / the trace's total (a run with [traffic])",
        lambda report: _number(_section(report, "replay", "a replay section", " (a run with [traffic] has it)")
                               .get("replayed_ratio"), "trace.replay_ratio"))
    add("trace.too_fast", FLAG, LOWER, "1 when the trace was faster than the harness could send it",
        _flag(("replay", "too_fast")))
    return catalog


CATALOG = _fixed_catalog()
PATTERNS = {  # for listings and suggestions: parameterised names and what they read
    "rejected.<category>": f"messages rejected for this reason, one of {', '.join(CATEGORIES)} "
                           "(accounting.totals.rejected_by_category)",
    "rejected.<category>.ratio": "messages rejected for this reason / sent, e.g. rejected.rate_limited.ratio",
    "rejected.<code>": "messages rejected with the service's own code (accounting.totals.rejected_by_code), "
                       "e.g. rejected.429 for IVS Chat",
    "rejected.<code>.ratio": "messages rejected with this code / sent",
    **{f"{family}.<key>": words for family, words in COUNTER_FAMILIES.items()},
    "counters.<name>": "any counter by its name in the report, e.g. counters.not_sent.stopping",
}


def resolve(name: str) -> Metric:
    """The catalog entry for `name`, or UnknownMetric naming close matches."""
    metric = CATALOG.get(name)
    if metric is not None:
        return metric
    if match := REJECTED_CODE_RATIO.fullmatch(name):
        code = match[1]
        return Metric(name, RATIO, LOWER, f"messages rejected {_rejected_words(code)} / sent",
                      _ratio(lambda report: _rejected_code(report, code), "sent"))
    if match := REJECTED_CODE.fullmatch(name):
        code = match[1]
        return Metric(name, COUNT, LOWER, f"messages rejected {_rejected_words(code)}",
                      lambda report: _rejected_code(report, code))
    if COUNTER_FAMILY.fullmatch(name):
        return Metric(name, COUNT, LOWER, f"the counter `{name}`", lambda report: _counter(report, name))
    if (match := COUNTER.fullmatch(name)) and not name.endswith("."):
        counter = match[1]
        return Metric(name, COUNT, LOWER, f"the counter `{counter}`", lambda report: _counter(report, counter))
    raise UnknownMetric(_unknown_message(name))


def _rejected_words(code: str) -> str:
    return f"as {code}" if code in CATEGORIES else f"with the service's code {code}"


def _unknown_message(name: str) -> str:
    candidates = [*CATALOG, *(f"rejected.{c}" for c in CATEGORIES), *(f"rejected.{c}.ratio" for c in CATEGORIES),
                  "rejected.429", "errors.429", "closes.1006", "timeouts.send", "counters.<name>"]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = ""
    if close:
        hint = f"; did you mean {' or '.join(', '.join(close).rsplit(', ', 1))}?"
    head = name.split(".")[0]
    if head in HISTOGRAMS:
        hint += f" ({head} has {', '.join(STATISTICS)})"
    return f"unknown metric {name!r}{hint} (`chatload gate --list-metrics` lists them all)"


def declared_by(name: str) -> dict[str, str]:
    """The services (name → title) whose own declarations `name` reads: their histograms, propagation
    streams, spread, verdict facts. Empty for a metric every service's run has (delivery, lost, …)."""
    from ..services import registry

    head = name.split(".")[0]
    statistic = name[len(head) + 1:] in STATISTICS  # `replay.x` is Chime's histogram only for its statistics
    found = {}
    for service_name in registry.names():
        service = registry.get(service_name)
        if ((statistic and head in service.histograms) or head in service.propagations or name in service.verdict_metrics
                or (head == "spread" and service.measures_spread)):
            found[service_name] = service.title
    return found


def unmeasurable(name: str, service, rooms) -> str | None:
    """Why a run of `service` with `rooms` can never produce `name` (None when it can): a measure
    another service declares, or one of the service's own that these rooms leave out."""
    owners = declared_by(name)
    if owners and service.name not in owners:
        return (f"{name} is measured by {' and '.join(owners.values())} only; this scenario's service "
                f"is {service.title}")
    return service.unmeasured(name.split(".")[0], rooms) if owners else None


def read(report: Mapping, name: str) -> float:
    """The metric's value (µs for durations); MetricMissing says what the report lacks."""
    return resolve(name).read(report)


def lookup(report: Mapping, name: str) -> float | None:
    """The metric's value (µs for durations), or None when the report lacks it."""
    try:
        return read(report, name)
    except MetricMissing:
        return None


UNIT_ADVICE = {  # how a rule writes a value of each kind
    DURATION: "write µs (or us), ms or s, e.g. 250ms",
    COUNT: "write a plain number",
    RATIO: "write a fraction (0.4) or a percentage (40%)",
    RATE: "write a plain number or N/s",
    FLAG: "write 0, 1, false or true",
}


def describe(name: str) -> str:
    metric = resolve(name)
    better = "lower" if metric.direction == LOWER else "higher"
    internal = " (µs in the report)" if metric.kind == DURATION else ""
    return (f"{metric.name}: {metric.description} — a {metric.kind}{internal}: {UNIT_ADVICE[metric.kind]}; "
            f"{better} is better")


def listing() -> str:
    """Every metric, one a line, grouped: the text behind `chatload gate --list-metrics`."""
    lines = ["Latency histograms, each with " + ", ".join(STATISTICS) + " (e.g. delivery.p99):"]
    lines += [f"  {name:<26} {words}" for name, words in HISTOGRAMS.items()]
    lines.append("Other metrics:")
    per_histogram = {f"{histogram}.{statistic}" for histogram in HISTOGRAMS for statistic in STATISTICS}
    others = [metric for name, metric in CATALOG.items() if name not in per_histogram]
    lines += [f"  {metric.name:<26} {metric.description} [{metric.kind}]" for metric in others]
    lines += [f"  {name:<26} {words}" for name, words in PATTERNS.items()]
    lines.append("Units in rules, by kind:")
    lines += [f"  {kind:<26} {advice}" for kind, advice in UNIT_ADVICE.items()]
    return "\n".join(lines)
