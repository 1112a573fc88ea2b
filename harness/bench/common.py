"""What every benchmark shares: options, repeat statistics, progress on stderr, the JSON report file."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ..files.atomic import write_atomic

SCHEMA_VERSION = 1
UNRELIABLE_SPREAD = 0.20  # (max - min) / median above which a verdict is flagged unreliable


class BenchError(RuntimeError):
    """A benchmark could not produce figures (a child failed to start, connections failed …)."""


@dataclass
class BenchOptions:
    """Options common to all benchmarks; None means "the benchmark's own default"."""

    sizes: list[int] | None = None
    seconds: float | None = None
    warmup: float | None = None
    repeat: int = 3
    rate: float | None = None
    connect_concurrency: int = 200
    drain_timeout: float = 60.0
    pin: bool = False  # server on a core of its own, load clients on the others (when there are ≥ 2)
    json_path: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class BenchResult:
    name: str
    document: dict  # the JSON report
    table: str  # the human-readable summary
    passed: bool | None  # None: the benchmark has no verdict


# -- statistics over repeats ---------------------------------------------------------------------------


def summarize(values: list[float | None]) -> dict:
    """Median, min, max and relative spread of the repeats that produced a value."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "spread": None, "n": 0, "values": values}
    median = statistics.median(present)
    low, high = min(present), max(present)
    spread = (high - low) / abs(median) if median else None
    return {"median": median, "min": low, "max": high, "spread": spread, "n": len(present), "values": values}


def alternating(kinds: tuple, repeat: int) -> tuple:
    """The order in which `kinds` run in a repeat: reversed every other one, so slow drift of the
    machine hits each alike."""
    return kinds if repeat % 2 == 0 else tuple(reversed(kinds))


def runs_by(runs: list[dict], n: int, field: str, kinds) -> dict:
    """Size `n`'s runs, split by `run[field]` (one list per kind, in repeat order)."""
    return {kind: sorted((r for r in runs if r["n"] == n and r[field] == kind), key=lambda r: r["repeat"])
            for kind in kinds}


def summarize_metrics(runs: list[dict], metrics) -> dict:
    return {metric: summarize([r[metric] for r in runs]) for metric in metrics}


def few_repeats_warnings(repeats: int) -> list[str]:
    return [f"only {repeats} repeat(s): spread and verdict are indicative"] if repeats < 3 else []


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


# -- progress --------------------------------------------------------------------------------------------


class Progress:
    """One status line on stderr: rewritten in place on a terminal, throttled plain lines otherwise."""

    def __init__(self, stream=None, min_interval: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval
        self._last_plain = 0.0
        self._last_text = ""
        self._width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        if self.tty:
            padded = text.ljust(self._width)
            self._width = len(text)
            self.stream.write("\r" + padded)
            self.stream.flush()
            return
        now = time.monotonic()
        if force or (text != self._last_text and now - self._last_plain >= self.min_interval):
            self._last_plain, self._last_text = now, text
            self.stream.write(text + "\n")
            self.stream.flush()

    def step(self, text: str) -> None:
        """A new step: always shown."""
        self.update(text, force=True)

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def note(self, text: str) -> None:
        """A line that stays (warnings, per-run results)."""
        self.done()
        self.stream.write(text + "\n")
        self.stream.flush()


# -- reports ---------------------------------------------------------------------------------------------


def bench_document(name: str, description: str, started: float, options: dict, *, service: str, verdict: str,
                   summary, runs: list[dict], **targets) -> dict:
    """A benchmark's JSON report; `service` is the registry's name of the service it ran on; `targets`
    (what it is judged against) come between options and verdict."""
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": name,
        "service": service,
        "description": description,
        "started_at": started,
        "finished_at": time.time(),
        "machine": machine_info(),
        "options": options,
        **targets,
        "verdict": verdict,
        "summary": summary,
        "runs": runs,
    }


def machine_info() -> dict:
    import psutil
    import uvloop
    import websockets

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "websockets": websockets.__version__,
        "uvloop": uvloop.__version__,
        "psutil": psutil.__version__,
    }


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def report_path(json_path: str | None, name: str, stamp: str, several: bool) -> Path:
    """Where a benchmark's JSON goes.

    No `--json`: reports/bench/<stamp>-<name>.json. A directory (existing, or ending in "/"): the same
    name inside it. A file name: exactly that file when one benchmark runs, else `<stem>-<name><suffix>`.
    """
    if json_path is None:
        return Path("reports") / "bench" / f"{stamp}-{name}.json"
    path = Path(json_path)
    if json_path.endswith(("/", os.sep)) or path.is_dir():
        return path / f"{stamp}-{name}.json"
    if several:
        return path.with_name(f"{path.stem}-{name}{path.suffix or '.json'}")
    return path


def write_json_atomically(path: Path, document: dict) -> None:
    """Write to a temporary file in the same directory, then rename: readers never see half a file."""
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    write_atomic(path, lambda f: f.write(data), binary=True)
