"""Importers: what a service logs, as a neutral trace. Content is read only to measure its size.

- **IVS Chat logging** (a room's logging configuration): every record is
  `{"event_timestamp", "type": "MESSAGE"|"EVENT", "version", "payload"}`, the payload being the
  Message or Event frame clients receive. Accepted shapes: the S3 / Firehose objects (records as JSON
  lines or concatenated, optionally gzipped), and CloudWatch Logs (`aws logs filter-log-events` or
  `get-log-events` output, `{"events": [{"timestamp", "message"}]}`, or a subscription filter's
  `{"logStream", "logEvents": […]}`), where each log event's `message` is one record. A record carries
  no room: the room is the `room_<id>` in the S3 key or the log stream name, else `--room`.
- **Hotsock `listMessages` pages**: `{"messages": [{"id", "event", "channel", "data", "meta"}]}`, a
  file of such pages (a JSON list or JSON lines); the time is the ULID's, the room the channel, the
  sender `meta.uid` (a server publish has none: "server"), the size that of `data` as JSON.

Records that cannot be read are skipped and reported ("file: record N: why"); events that are no
traffic (IVS Chat's `aws:DELETE_MESSAGE`, an application event with no user) are counted as ignored.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..services.hotsock.ulid import UlidError, timestamp_ms
from .model import JOIN, KICK, LEAVE, MESSAGE, PRESENCE, TraceEvent, hash_user
from .reader import NOT_JSON, not_json

_ROOM_IN_NAME = re.compile(r"room_([A-Za-z0-9]+)")
_FRACTION = re.compile(r"(\.\d{6})\d+")
# Application event names → kinds, tried in order on the lower-cased name (IVS Chat has no system
# join or leave event: applications send their own with SendEvent). `--event NAME=KIND` adds exact ones.
EVENT_WORDS = ((KICK, ("kick", "ban", "disconnect")), (LEAVE, ("leave", "left", "part")), (JOIN, ("join",)),
               (PRESENCE, ("presence", "status")))
USER_ATTRIBUTES = ("UserId", "userId", "user_id", "user")


class TraceImportError(ValueError):
    """An input file cannot be read at all (names it and why)."""


@dataclass
class Imported:
    """Events with absolute times (seconds since the epoch) and what was skipped on the way."""

    events: list[TraceEvent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)

    def relative(self) -> tuple[list[TraceEvent], float]:
        """Events timed from the first one, and that first time (epoch seconds)."""
        start = min((e.t for e in self.events), default=0.0)
        return [TraceEvent(e.t - start, e.room, e.sender, e.size, e.kind) for e in self.events], start


def _text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except OSError as exc:
        raise TraceImportError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise TraceImportError(f"{path}: not UTF-8 JSON text (or gzip of it): {exc}") from None


def json_values(text: str):
    """Every JSON value in `text`: one document, JSON lines, or values simply concatenated (Firehose
    writes records back to back). Yields (value, None) or, where text cannot be read, (None, why)
    and resumes at the next line."""
    decoder = json.JSONDecoder()
    at, end = 0, len(text)
    while True:
        while at < end and text[at].isspace():
            at += 1
        if at >= end:
            return
        try:
            value, at = decoder.raw_decode(text, at)
        except NOT_JSON as exc:
            line = text.count("\n", 0, at) + 1
            yield None, f"line {line}: {not_json(exc)}"
            newline = text.find("\n", at)
            at = end if newline < 0 else newline + 1
            continue
        yield value, None


def parse_time(text) -> float:
    """RFC 3339 (nanoseconds allowed) → epoch seconds; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("no timestamp")
    return datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00"))).timestamp()


# -- IVS Chat -----------------------------------------------------------------------------------------


def event_kind(name: str, extra: dict[str, str]) -> str | None:
    if name in extra:
        return extra[name]
    lowered = name.lower()
    for kind, words in EVENT_WORDS:
        if any(word in lowered for word in words):
            return kind
    return None


def import_ivschat(paths, *, salt: str, room: str | None = None, events: dict[str, str] | None = None) -> Imported:
    out = Imported()
    for path in map(Path, paths):
        default_room = room or _room_in(str(path)) or "room"
        for number, (value, problem) in enumerate(json_values(_text(path)), 1):
            if problem:
                out.skipped.append(f"{path}: {problem}")
                continue
            for where, record, stream in _ivschat_records(value, number):
                record_room = room or _room_in(stream or "") or default_room
                try:
                    event = _ivschat_event(record, record_room, salt, events or {})
                except ValueError as exc:
                    out.skipped.append(f"{path}: {where}: {exc}")
                    continue
                if isinstance(event, str):
                    out.ignored[event] += 1
                else:
                    out.events.append(event)
    return out


def _room_in(name: str) -> str | None:
    match = _ROOM_IN_NAME.search(name)
    return match.group(1) if match else None


def _ivschat_records(value, number: int):
    """(where, record, log stream name) for every logging record a JSON value holds."""
    if isinstance(value, dict) and isinstance(value.get("events") or value.get("logEvents"), list):
        stream = value.get("logStream")
        for index, log_event in enumerate(value.get("events") or value.get("logEvents")):
            where = f"value {number}, log event {index}"
            message = log_event.get("message") if isinstance(log_event, dict) else None
            try:
                record = json.loads(message) if isinstance(message, str) else None
            except NOT_JSON as exc:
                record = f"its message is {not_json(exc)}"
            yield where, record, log_event.get("logStreamName", stream) if isinstance(log_event, dict) else stream
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield f"value {number}[{index}]", item, None
    else:
        yield f"record {number}", value, None


def _ivschat_event(record, room: str, salt: str, extra: dict[str, str]):
    if isinstance(record, str):
        raise ValueError(record)
    if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
        raise ValueError("not a logging record (no payload object)")
    payload, kind = record["payload"], record.get("type") or record["payload"].get("Type")
    t = parse_time(record.get("event_timestamp") or payload.get("SendTime"))
    if kind == "MESSAGE":
        sender = (payload.get("Sender") or {}).get("UserId")
        content = payload.get("Content")
        if not isinstance(sender, str) or not isinstance(content, str):
            raise ValueError("a MESSAGE needs Sender.UserId and Content")
        return TraceEvent(t, room, hash_user(sender, salt), len(content), MESSAGE)
    if kind == "EVENT":
        name = payload.get("EventName")
        if not isinstance(name, str):
            raise ValueError("an EVENT needs an EventName")
        mapped = event_kind(name, extra)
        attributes = payload.get("Attributes") or {}
        user = next((attributes[k] for k in USER_ATTRIBUTES if isinstance(attributes.get(k), str)), None)
        if mapped is None or user is None:
            return f"event {name}" if mapped is None else f"event {name} without a user attribute"
        return TraceEvent(t, room, hash_user(user, salt), 0, mapped)
    raise ValueError(f"type {kind!r} is neither MESSAGE nor EVENT")


# -- Hotsock ------------------------------------------------------------------------------------------


def import_hotsock(paths, *, salt: str) -> Imported:
    out = Imported()
    seen: set[str] = set()  # pages overlap when fetched with before/after: each message once
    for path in map(Path, paths):
        for number, (value, problem) in enumerate(json_values(_text(path)), 1):
            if problem:
                out.skipped.append(f"{path}: {problem}")
                continue
            pages = value if isinstance(value, list) else [value]
            for index, page in enumerate(pages):
                messages = page.get("messages") if isinstance(page, dict) else None
                if not isinstance(messages, list):
                    out.skipped.append(f"{path}: value {number}[{index}]: not a listMessages page (no messages list)")
                    continue
                for position, message in enumerate(messages):
                    where = f"{path}: value {number}[{index}], message {position}"
                    try:
                        event = _hotsock_event(message, salt)
                    except ValueError as exc:
                        out.skipped.append(f"{where}: {exc}")
                        continue
                    if event is None:
                        out.ignored["hotsock.* event"] += 1
                    elif message["id"] not in seen:
                        seen.add(message["id"])
                        out.events.append(event)
    return out


def _hotsock_event(message, salt: str) -> TraceEvent | None:
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    try:
        t = timestamp_ms(message.get("id")) / 1000
    except UlidError as exc:
        raise ValueError(f"id is not a ULID ({exc})") from None
    channel, name = message.get("channel"), message.get("event")
    if not isinstance(channel, str) or not channel or not isinstance(name, str):
        raise ValueError("a message needs a channel and an event")
    if name.startswith("hotsock."):
        return None
    uid = (message.get("meta") or {}).get("uid") if isinstance(message.get("meta"), dict) else None
    size = len(json.dumps(message.get("data"), separators=(",", ":"), ensure_ascii=False))
    return TraceEvent(t, channel, hash_user(uid if isinstance(uid, str) else "server", salt), size, MESSAGE)
