"""A trace as a scenario names it (`[traffic] trace`, `format`): read, or imported on the spot."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from .importers import TraceImportError, import_hotsock, import_ivschat
from .model import Trace
from .reader import TraceError, judged, read_trace


class TraceLoadError(ValueError):
    """Names the file and why it cannot be replayed."""


def import_trace(paths, fmt: str, *, salt: str | None = None, room: str | None = None,
                 events: dict[str, str] | None = None) -> Trace:
    """Service records → a trace (times from the first event), under the same rules as trace files.
    `salt` (default: a fresh random one) keys the hashing of user ids."""
    salt = salt or secrets.token_hex(16)
    paths = list(paths)
    shown = ", ".join(map(str, paths))
    try:
        if fmt == "ivschat-log":
            imported = import_ivschat(paths, salt=salt, room=room, events=events)
        elif fmt == "hotsock-pages":
            imported = import_hotsock(paths, salt=salt)
        else:
            raise TraceLoadError(f"{shown}: unknown format {fmt!r}")
    except TraceImportError as exc:
        raise TraceLoadError(str(exc)) from None
    relative, start = imported.relative()
    header = {"source": fmt, "started_at": datetime.fromtimestamp(start, UTC).isoformat() if relative else None,
              "ignored": dict(imported.ignored)}
    seen = len(relative) + len(imported.skipped)
    try:
        return judged(shown, relative, imported.skipped, seen, header)
    except TraceError as exc:
        raise TraceLoadError(str(exc)) from None


def load_traffic_trace(traffic) -> Trace:
    """The trace of a scenario's `[traffic]` table."""
    try:
        if traffic.format == "chatload":
            return read_trace(traffic.trace)
        return import_trace([traffic.trace], traffic.format)
    except TraceError as exc:
        raise TraceLoadError(str(exc)) from None
