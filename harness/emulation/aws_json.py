"""The AWS REST-JSON request checks every AWS-shaped emulator shares: the input model as a table.

botocore checks only required members and minimums before sending, so an emulator enforces the
whole input model itself: types, lengths, ranges, enums and patterns. A service writes its model as
`Spec`s (`string`, `integer`, `list_of`, `map_of`, `structure`) and runs `check` on a request's JSON
body; unknown members are dropped, as the services ignore them, and `null` reads as absent. Each
problem is a (field, problem) pair; the messages never repeat the offending value (user ids, token
attributes and join tokens are sensitive). How the problems are answered (ValidationException,
BadRequestException, …) is the service's own; `ApiError` is the REST-JSON error most of them use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spec:
    """One input shape of the service model: its JSON type and its constraints.

    `min`/`max` bound the value of an integer and the length of anything else (code points for
    strings, as Smithy counts them; items for lists; entries for maps).
    """

    kind: type  # str, int, list or dict
    min: int | None = None
    max: int | None = None
    pattern: re.Pattern[str] | None = None
    enum: frozenset[str] | None = None
    item: Spec | None = None  # list items and map values
    key: Spec | None = None  # map keys
    members: Mapping[str, Spec] | None = None  # structure members (a structure has kind dict)
    required: frozenset[str] = field(default_factory=frozenset)
    max_utf8_bytes: int | None = None  # maps: keys and values together


def string(min: int = 0, max: int | None = None, pattern: str | None = None, enum: tuple[str, ...] = ()) -> Spec:
    return Spec(str, min, max, re.compile(pattern) if pattern else None, frozenset(enum) or None)


def integer(min: int, max: int) -> Spec:
    return Spec(int, min, max)


def list_of(item: Spec, max: int | None = None) -> Spec:
    return Spec(list, None, max, item=item)


def map_of(key: Spec, value: Spec, max: int | None = None, max_utf8_bytes: int | None = None) -> Spec:
    return Spec(dict, None, max, item=value, key=key, max_utf8_bytes=max_utf8_bytes)


def structure(required: tuple[str, ...] = (), **members: Spec) -> Spec:
    return Spec(dict, members=members, required=frozenset(required))


KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def check(spec: Spec, value: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    """Return `value` with unknown structure members dropped; append (field, problem) pairs."""
    # bool is an int subclass in Python, but `true` is no integer in JSON.
    if not isinstance(value, spec.kind) or (spec.kind is int and isinstance(value, bool)):
        problems.append((path, f"must be {KIND_NAMES[spec.kind]}"))
        return value
    if spec.members is not None:
        cleaned = {}
        for name in sorted(spec.required):
            if value.get(name) is None:
                problems.append((_join(path, name), "is required"))
        for name, member in spec.members.items():
            if value.get(name) is not None:  # null reads as absent
                cleaned[name] = check(member, value[name], _join(path, name), problems)
        return cleaned
    size = value if spec.kind is int else len(value)
    unit = {int: "", str: " characters", list: " items", dict: " entries"}[spec.kind]
    if (spec.min is not None and size < spec.min) or (spec.max is not None and size > spec.max):
        low = "" if spec.min is None else f"at least {spec.min}"
        high = "" if spec.max is None else f"at most {spec.max}"
        problems.append((path, f"must be {' and '.join(filter(None, (low, high)))}{unit}"))
    if spec.enum is not None and value not in spec.enum:
        problems.append((path, f"must be one of {', '.join(sorted(spec.enum))}"))
    if spec.pattern is not None and not spec.pattern.fullmatch(value):
        problems.append((path, f"must match the pattern {spec.pattern.pattern}"))
    if spec.kind is list:
        for i, item in enumerate(value):
            check(spec.item, item, f"{path}[{i}]", problems)
    if spec.kind is dict:
        for key, item in value.items():
            check(spec.key, key, f"{path} key", problems)
            check(spec.item, item, f"{path} value", problems)
        if spec.max_utf8_bytes is not None:
            size = sum(len(text.encode()) for pair in value.items() for text in pair if isinstance(text, str))
            if size > spec.max_utf8_bytes:
                problems.append((path, f"keys and values must total at most {spec.max_utf8_bytes} bytes"))
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class ApiError(Exception):
    """An error the API answers with: `error_type` is the model's shape name, `fields` its members."""

    def __init__(self, status: int, error_type: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.body = {"message": message, **fields}
