"""The results of one run: merged on the gevent side of the process that owns the run (the Locust
master, or the only process), and written as one schema-versioned JSON document.

Interval snapshots (one a second from every process) are merged exactly: the cumulative recorder
takes every encoded histogram once, and the per-second timeline merges the histograms of the same
second across processes before taking percentiles.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections import Counter, defaultdict
from pathlib import Path

from ..files.atomic import write_atomic
from ..metrics import propagation, saturation
from ..metrics.counters import error_total
from ..metrics.histograms import ACK_WORDS, LatencyHistogram, Recorder
from ..metrics.ledger_judge import merge_exports, rate_series
from ..metrics.saturation import DEFAULT_WINDOW

SCHEMA = "chatload.results/1"
TIMELINE_HISTOGRAMS = ("delivery", "ack")
SATURATION = saturation.LIMITS  # the harness-health limits (harness/metrics/saturation.py states the rule)


class ChatStats:
    def __init__(self) -> None:
        self.reset()

    def reset(self, timeline_histograms: tuple[str, ...] = ()) -> None:
        """`timeline_histograms`: the service's own latencies (join, ping…) kept per second beside
        delivery and ack, so the report can draw them over time."""
        self.timeline_names = (*TIMELINE_HISTOGRAMS, *timeline_histograms)
        self.recorder = Recorder()
        self.started_ns = time.time_ns()
        self._seconds: dict[int, dict] = defaultdict(lambda: {"counters": defaultdict(int), "histograms": {},
                                                                "gauges": {}, "sources": set(), "health": {},
                                                                "health_of": {}})
        self.health: dict[str, dict] = {}  # by source: worst values seen
        self.finals: dict[str, dict] = {}  # by source: ledger export, totals, samples
        self.last_interval: dict[str, dict] = {}
        self.by_source: dict[str, Counter] = defaultdict(Counter)  # each process's counters so far
        self.accounting: dict | None = None  # set when the results are built

    # -- feeding ----------------------------------------------------------------------------------

    def add_interval(self, snapshot: dict, source: str = "local") -> None:
        self.recorder.merge_snapshot(snapshot)
        self.last_interval[source] = snapshot
        self.by_source[source].update(snapshot.get("counters", {}))
        second = self._seconds[int(snapshot["t_ns"] // 1_000_000_000)]
        second["sources"].add(source)
        for name, value in snapshot.get("counters", {}).items():
            second["counters"][name] += value
        # Gauges are levels: a process's latest value in a second counts, once (a process can report
        # twice in one second at the end); counters are deltas and add up.
        second["gauges"][source] = dict(snapshot.get("gauges", {}))
        for name in self.timeline_names:
            encoded = snapshot.get("histograms", {}).get(name)
            if encoded:
                second["histograms"].setdefault(name, []).append(encoded)
        worst = self.health.setdefault(source, {})
        for key, value in snapshot.get("health", {}).items():
            worst[key] = max(worst.get(key, 0), value)
            # And per second (worst across processes), so a spike while users connect is not
            # mistaken for the steady state of a whole run or capacity step.
            second["health"][key] = max(second["health"].get(key, 0), value)
            mine = second["health_of"].setdefault(source, {})  # and per process: which one saturated
            mine[key] = max(mine.get(key, 0), value)

    def add_final(self, source: str, final: dict) -> None:
        self.finals[source] = final

    def sources(self) -> set[str]:
        """Every process that sent an interval."""
        return set(self.last_interval)

    # -- reading ----------------------------------------------------------------------------------

    def live_rows(self) -> list[dict]:
        """Rows for the web UI's Chat tab table: one quantity a row, named with its unit."""
        everything = self.recorder.summary()
        summary, counters = everything["histograms"], everything["counters"]
        rows = []
        for name, words in (("delivery", "delivery latency (intended send → each other member)"),
                            ("ack", f"ack latency ({ACK_WORDS})")):
            for label, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100)):
                rows.append({"measure": f"{words} {label}", "value": _ms(summary, name, p), "unit": "ms"})
        last = [s.get("counters", {}) for s in self.last_interval.values()]
        rows += [
            {"measure": "deliveries timed, in all", "value": summary.get("delivery", {}).get("count", 0),
             "unit": "messages"},
            {"measure": "deliveries in the last second", "value": sum(c.get("deliveries", 0) for c in last),
             "unit": "per second"},
            {"measure": "connections open", "value": sum(s.get("gauges", {}).get("connections_open", 0)
                                                          for s in self.last_interval.values()),
             "unit": "connections"},
            {"measure": "messages sent", "value": counters.get("sent", 0), "unit": "messages"},
            {"measure": "messages accepted", "value": counters.get("accepted", 0), "unit": "messages"},
        ]
        rows += [{"measure": f"rejected as {name.split('.', 1)[1]}", "value": n, "unit": "messages"}
                 for name, n in sorted(counters.items()) if name.startswith("rejected.")]
        rows += [{"measure": "errors (all kinds, as the report counts them)", "value": error_total(counters),
                  "unit": "errors"},
                 {"measure": "protocol errors (frames that could not be read)",
                  "value": counters.get("protocol_errors", 0), "unit": "frames"}]
        # Loss needs every process's ledger, so it is exact only once the test has stopped.
        lost = self.accounting["totals"]["lost"] if self.accounting else "counted when the test stops"
        rows.append({"measure": "lost (exact)", "value": lost, "unit": "messages"})
        return rows

    def _second_row(self, second: int) -> dict:
        data = self._seconds[second]
        gauges: dict[str, int] = defaultdict(int)
        for per_source in data["gauges"].values():
            for name, value in per_source.items():
                gauges[name] += value
        row = {"t": second, "sources": len(data["sources"]), **gauges, "counters": dict(data["counters"]),
               "deliveries": data["counters"].get("deliveries", 0), "health": dict(data["health"])}
        for name in data["histograms"]:
            merged = LatencyHistogram()
            for encoded in data["histograms"].get(name, ()):
                merged.merge_encoded(encoded)
            if merged.count:
                row[name] = {"count": merged.count, "p50_us": merged.percentile(50),
                             "p99_us": merged.percentile(99), "max_us": merged.max}
        return row

    def timeline(self) -> list[dict]:
        return [self._second_row(second) for second in sorted(self._seconds)]

    def live_series(self, since: int = 0) -> list[dict]:
        """The web UI's charts: per-second rows from second `since` on (a client asks again for the
        last few seconds, which later intervals from other processes may still complete)."""
        rows = []
        for second in sorted(s for s in self._seconds if s >= since):
            row = self._second_row(second)
            counters = row.pop("counters")
            row.pop("health")
            row["errors"] = error_total(counters)
            row["rejected"] = {name.split(".", 1)[1]: n for name, n in counters.items() if name.startswith("rejected.")}
            rows.append(row)
        return rows

    def saturation(self, rows: list[dict] | None = None, window: str = DEFAULT_WINDOW) -> dict:
        """The harness-health verdict over the run's timeline (harness/metrics/saturation.py)."""
        return saturation.judge(self.timeline() if rows is None else rows, window)

    def processes(self, rows: list[dict], window: str = DEFAULT_WINDOW) -> list[dict]:
        """One row per process (each Locust worker, or the only process): where it ran, its share of
        users and connections, its clock offset, and whether it saturated in the judged window (the
        same rule as the run's own `health.saturated`, harness/metrics/saturation.py)."""
        judged = [row["t"] for row in saturation.judged_rows(rows, window)]
        peaks = {source: max((self._seconds[t]["gauges"].get(source, {}).get("connections_open", 0)
                              for t in self._seconds), default=0) for source in self.finals}
        users_total = sum((final.get("process") or {}).get("users") or 0 for final in self.finals.values())
        connections_total = sum(peaks.values())
        out = []
        for source, final in sorted(self.finals.items()):
            facts, clock = final.get("process") or {}, final.get("clock") or {}
            users = facts.get("users")
            reasons = [reason for t in judged
                       for reason in saturation.over_limits(self._seconds[t]["health_of"].get(source, {}))]
            out.append({"process": source, "host": facts.get("host"), "cpus": facts.get("cpus"), "users": users,
                        "users_share": round(users / users_total, 4) if users_total and users is not None else None,
                        "connections_peak": peaks[source],
                        "connections_share": round(peaks[source] / connections_total, 4) if connections_total else None,
                        "clock_method": clock.get("method"), "clock_offset_ns": clock.get("offset_ns"),
                        "clock_uncertainty_ns": clock.get("uncertainty_ns"),
                        "health": dict(self.health.get(source, {})), "saturated": bool(reasons),
                        "saturation_reasons": sorted(set(reasons))})
        return out

    def merge_check(self, summary: dict | None = None) -> dict:
        """Merged histogram counts against the sum of what each process says it recorded in total."""
        summary = self.recorder.summary()["histograms"] if summary is None else summary
        merged = {name: h["count"] for name, h in summary.items()}
        per_source = {source: {name: LatencyHistogram.decode(enc).count
                               for name, enc in final.get("totals", {}).get("histograms", {}).items()}
                      for source, final in self.finals.items()}
        summed: dict[str, int] = defaultdict(int)
        for counts in per_source.values():
            for name, count in counts.items():
                summed[name] += count
        return {"merged": merged, "per_process": per_source,
                "equal": all(merged.get(k, 0) == v for k, v in summed.items()) and bool(per_source)}


def _ms(summary: dict, name: str, p: float):
    data = summary.get(name)
    if not data or not data.get("count"):
        return ""
    value = data["max"] if p == 100 else data["percentiles"].get(_pkey(p))
    return "" if value is None else round(value / 1000, 3)


def _pkey(p: float) -> str:
    return f"{p:g}"  # the recorder's percentile keys: "50", "99.9"


def lost_processes(stats: ChatStats, lost: list[str]) -> tuple[list[dict], str | None]:
    """What the processes whose final report never came had done, as far as their intervals said,
    and the reason a report gives: their figures are unknown, not lost."""
    if not lost:
        return [], None
    rows = [{"process": source, "sent": stats.by_source[source].get("sent", 0),
             "deliveries": stats.by_source[source].get("deliveries", 0),
             "connections_open": stats.last_interval.get(source, {}).get("gauges", {}).get("connections_open", 0)}
            for source in lost]
    sent, deliveries = sum(r["sent"] for r in rows), sum(r["deliveries"] for r in rows)
    reason = (f"lost worker(s) {', '.join(lost)}: no final report (killed, paused or disconnected). Their ledger "
              f"never arrived, so what their users sent ({sent:,} sends so far) and received ({deliveries:,} "
              "deliveries so far) is unknown, not lost; the accounting covers the other processes")
    return rows, reason


def build_results(stats: ChatStats, *, metadata: dict, complete: bool, lost: list[str] | None = None,
                  health_window: str = saturation.DEFAULT_WINDOW) -> dict:
    exports = [final["ledger"] for final in stats.finals.values() if final.get("ledger")]
    accounting = merge_exports(exports).to_dict() if exports else None
    stats.accounting = accounting
    samples = [s for final in stats.finals.values() for s in final.get("protocol_error_samples", [])]
    totals = stats.recorder.totals()
    latency = stats.recorder.summary()["histograms"]
    merge_check = stats.merge_check(latency)
    # Latencies only the whole run can know: propagation (origin in one process, observers in others)
    # and fan-out spread (first and last recipient of each message, wherever they are).
    users: dict[str, str] = {}
    for final in stats.finals.values():
        users.update(final.get("users") or {})
    streams = propagation.merge([f["propagation"] for f in stats.finals.values() if f.get("propagation")],
                                exports, users)
    for stream, facts in streams.items():
        histogram = facts.pop("histogram")
        latency[stream], totals["histograms"][stream] = histogram.summary(), histogram.encode()
    spreads = [f["spread"] for f in stats.finals.values() if f.get("spread") is not None]
    if spreads:
        histogram = propagation.merge_spread(spreads)
        latency["spread"], totals["histograms"]["spread"] = histogram.summary(), histogram.encode()
    timeline = stats.timeline()  # decodes every second's histograms: once
    health = stats.saturation(timeline, health_window)
    lost_rows, reason = lost_processes(stats, lost or [])
    return {
        "schema": SCHEMA,
        "complete": complete,
        "incomplete_reason": reason,
        "lost_processes": lost_rows,
        "metadata": {
            **metadata,
            "host": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "started_at_ns": stats.started_ns,
            "ended_at_ns": time.time_ns(),
            "processes": sorted(stats.finals),
            # Per process: offset applied to its stamps against the master's clock, and how sure it is.
            "clocks": {source: final.get("clock") for source, final in stats.finals.items()},
            # Per process (each worker on its machine): host, CPUs, share of users and connections, health.
            "workers": stats.processes(timeline, health_window),
        },
        "latency_us": latency,
        "histograms": totals["histograms"],
        "counters": totals["counters"],
        "accounting": accounting,
        # Per room and second: offered, accepted (by server SendTime), rejected by code.
        "rooms": {room: {str(second): row for second, row in seconds.items()}
                  for room, seconds in rate_series(exports).items()},
        "timeline": timeline,
        "health": {"per_process": stats.health, **health},
        "merge_check": merge_check,
        "propagation": streams,
        "protocol_error_samples": samples[:20],
    }


RESULTS_MODE = 0o600  # raw server text (protocol_error_samples) is kept, unscanned for secrets as report.json is


def write_json_atomic(path: Path, document: dict) -> Path:
    """Write the document so that no half-written results survive a crash (`harness.files.atomic`).
    Readable by its owner only: it holds what servers sent verbatim, which may carry a token."""
    return write_atomic(path, lambda f: (json.dump(document, f, indent=1, sort_keys=False), f.write("\n")),
                        mode=RESULTS_MODE)
