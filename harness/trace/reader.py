"""Reading and writing trace files (JSON lines), with the bad-input rules of docs/traces.md:

- a blank line is ignored; the first line may be a header `{"format": "chatload.trace/1", …}`;
- a malformed line (not JSON, not an object, a field missing or of the wrong type, an unknown kind)
  is skipped and reported with its line number — unless more than `MAX_BAD_FRACTION` of the event
  lines are malformed, which refuses the file (it is most likely not a trace at all);
- events out of time order are sorted (stably) and counted;
- a trace with no usable message is an error: there would be nothing to replay.

Only the five fields are read; any other key (an exported `content`, say) is never looked at.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..files.atomic import write_atomic
from .model import FORMAT, KINDS, MESSAGE, Trace, TraceEvent

MAX_BAD_FRACTION = 0.1
SHOWN_PROBLEMS = 10  # malformed lines listed in an error; the rest are counted


# What the standard library's decoder raises on a line that is not JSON it can read: a line nested
# deeper than its recursion limit raises RecursionError, a malformed line like any other.
NOT_JSON = (json.JSONDecodeError, RecursionError)


def not_json(exc: Exception) -> str:
    """Why a line is not JSON, in the words `NOT_JSON`'s exceptions give."""
    return f"not JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else 'nested too deeply'})"


class TraceError(ValueError):
    """A trace cannot be used: names the file and the reason (and the lines at fault)."""


def parse_event(data) -> TraceEvent:
    """One trace event from a decoded line; ValueError says what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    t = data.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise ValueError("t must be a number of seconds ≥ 0")
    kind = data.get("kind", MESSAGE)
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    for key in ("room", "sender"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"{key} must be a non-empty string")
    size = data.get("size", 0 if kind != MESSAGE else None)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("size must be a whole number of characters ≥ 0" + (" (required for a message)"
                                                                           if kind == MESSAGE else ""))
    return TraceEvent(float(t), data["room"], data["sender"], size if kind == MESSAGE else 0, kind)


def read_trace(path: str | os.PathLike) -> Trace:
    shown = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TraceError(f"{shown}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    header: dict = {}
    events: list[TraceEvent] = []
    skipped: list[str] = []
    seen = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except NOT_JSON as exc:
            skipped.append(f"line {number}: {not_json(exc)}")
            seen += 1
            continue
        if not events and not skipped and not header and isinstance(data, dict) and "format" in data:
            if data["format"] != FORMAT:
                raise TraceError(f"{shown}: line {number}: format {data['format']!r} is not {FORMAT!r}")
            header = data
            continue
        seen += 1
        try:
            events.append(parse_event(data))
        except ValueError as exc:
            skipped.append(f"line {number}: {exc}")
    return judged(shown, events, skipped, seen, header)


def judged(shown: str, events: list[TraceEvent], skipped: list[str], seen: int, header: dict) -> Trace:
    """The bad-input rules, for trace files and imports alike: refuse a file that is mostly not a
    trace, sort and count what was out of order, refuse a trace with no message."""
    if skipped and len(skipped) > MAX_BAD_FRACTION * seen:
        raise TraceError(_listing(f"{shown}: {len(skipped)} of {seen} lines are malformed (more than "
                                  f"{MAX_BAD_FRACTION:.0%}): refused as a trace", skipped))
    reordered, latest = 0, -1.0
    for event in events:
        if event.t < latest:
            reordered += 1
        latest = max(latest, event.t)
    events.sort(key=lambda e: e.t)
    if not any(e.kind == MESSAGE for e in events):
        raise TraceError(_listing(f"{shown}: no usable message ({len(events)} other events)", skipped))
    return Trace(events, header, skipped, reordered)


def _listing(message: str, problems: list[str]) -> str:
    shown = problems[:SHOWN_PROBLEMS]
    more = [f"… and {len(problems) - len(shown)} more"] if len(problems) > len(shown) else []
    return "\n  ".join([message, *shown, *more])


def write_trace(path: str | os.PathLike, events, header: dict | None = None) -> Path:
    """Write a trace (header first, events in time order), atomically (`harness.files.atomic`)."""
    def lines(out) -> None:
        out.write(json.dumps({"format": FORMAT, **(header or {})}) + "\n")
        for event in sorted(events, key=lambda e: e.t):
            out.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")

    try:
        return write_atomic(path, lines)
    except OSError as exc:
        raise TraceError(f"{path}: cannot write: {exc.strerror or exc}") from None
