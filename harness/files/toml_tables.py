"""Reading the tables of a TOML file for validation: scenario, capacity and service keys share it.

Every error names the file, the key, what is wrong and the line it is on; unknown keys are errors
(a typo must never silently become a default), with a suggestion. Keys are declared once (`Key`):
the declaration drives validation, the default and the generated reference (docs/scenarios.md).

A reader either raises at the first error (`problems=None`) or records every error in a `Problems`
collector and carries on with the key's fallback, so that `chatload run --check` can list them all.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
NUMBER = (int, float)  # `kind` for "any number, kept as written" (an int stays an int)
DURATION = "duration"  # `kind` for "500ms", "30s", "2m", "1h" or a number of seconds
_KIND_NAMES = {str: "a string", int: "a whole number", float: "a number", NUMBER: "a number", list: "a list",
               bool: "true or false", dict: "a table", DURATION: "a duration"}


class TableError(ValueError):
    """A table's content is invalid; `key` is where (e.g. "population[0].users"), when known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Key:
    """One key of a table: its type, default and bounds, and what it means (for the reference)."""

    name: str
    kind: object
    default: object = None
    meaning: str = ""
    example: str = ""  # a TOML value, for the reference
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    choices: tuple | None = None
    required: bool = False

    def type_words(self) -> str:
        return _KIND_NAMES.get(self.kind, getattr(self.kind, "__name__", str(self.kind)))


def parse_duration(value, where: str, error: type[TableError] = TableError, key: str | None = None) -> float:
    if isinstance(value, bool):
        raise error(f"{where}: must be a duration like \"30s\", \"2m\" or a number of seconds", key)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise error(f"{where}: {value!r} is not a duration (write \"500ms\", \"30s\", \"2m\" or \"1h\")", key)
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds < 0:
        raise error(f"{where}: must not be negative", key)
    return seconds


def key_lines(text: str) -> dict[str, int]:
    """Where each key of a TOML document is written: "population[1].users" → line (1-based).

    A light scan, not a parser (the file has already parsed): table headers, arrays of tables and
    `key = value` lines, dotted keys included. A value spanning lines is found at its first line."""
    lines: dict[str, int] = {}
    prefix = ""
    counts: dict[str, int] = {}
    depth = 0  # inside a multi-line array or inline table: no keys of the table there
    for number, raw in enumerate(text.splitlines(), start=1):
        code = _STRINGS.sub('""', raw).split("#", 1)[0].strip()  # strings emptied, comment gone
        if not code:
            continue
        if depth == 0 and (header := re.fullmatch(r"\[\[\s*([^\]]+?)\s*\]\]", code)):
            name = header.group(1)
            counts[name] = counts.get(name, 0) + 1
            prefix = f"{name}[{counts[name] - 1}]"
            lines.setdefault(name, number)
            lines[prefix] = number
            continue
        if depth == 0 and (header := re.fullmatch(r"\[\s*([^\]]+?)\s*\]", code)):
            prefix = header.group(1)
            lines.setdefault(prefix, number)
            continue
        if depth == 0 and (assignment := re.match(r"""\s*([A-Za-z0-9_."'-]+?)\s*=""", raw)):
            key = assignment.group(1).replace('"', "").replace("'", "")
            lines.setdefault(f"{prefix}.{key}" if prefix else key, number)
        depth = max(0, depth + code.count("[") + code.count("{") - code.count("]") - code.count("}"))
    return lines


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


class Problems:
    """Every error of one file, each with its line: "FILE: KEY: reason (line N)"."""

    def __init__(self, path: str, text: str = "") -> None:
        self.path = path
        self.lines = key_lines(text) if text else {}
        self.found: list[tuple[int, str]] = []

    def line_of(self, key: str | None) -> int:
        """The line of `key`, or of the nearest enclosing key or table that is written down."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = re.sub(r"(\[\d+\]|\.[^.\[]*)$", "", key) if re.search(r"(\[\d+\]|\.[^.\[]*)$", key) else ""
        return 0

    def add(self, error: TableError) -> None:
        line = self.line_of(error.key)
        self.found.append((line, f"{error}" + (f" (line {line})" if line else "")))

    def messages(self) -> list[str]:
        return [message for _, message in sorted(self.found, key=lambda item: item[0])]

    def __bool__(self) -> bool:
        return bool(self.found)


class TableReader:
    """Reads one table (`where`, e.g. "population[0]") of the file at `path`.

    With a `Problems` collector every error is recorded and the reader carries on (a bad value reads
    as `fallback`, else the key's default); without one, the first error raises `error`."""

    error: type[TableError] = TableError

    def __init__(self, path: str, where: str, table, problems: Problems | None = None) -> None:
        self.path, self.where, self.problems = path, where, problems
        if not isinstance(table, dict):
            self.fail("", "must be a table")
            table = {}
        self.table = table

    def key_path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where and key else (self.where or key)

    def name(self, key: str) -> str:
        return f"{self.path}: {self.key_path(key)}"

    def fail(self, key: str, reason: str) -> None:
        """Record (or raise) an error about `key` of this table."""
        error = self.error(f"{self.name(key)}: {reason}", self.key_path(key))
        if self.problems is None:
            raise error
        self.problems.add(error)

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(sorted(allowed))}"
                self.fail(key, f"unknown key{hint}")

    def get(self, key: str, kind, default=None, *, minimum=None, maximum=None, above=None, choices=None,
            required=False, fallback=None):
        """The value of `key` checked against its type and bounds; missing: `default`. A bad or missing
        required value reads as `fallback` (or `default`) when errors are collected."""
        if key not in self.table:
            if required:
                self.fail(key, "is required")
                return fallback if fallback is not None else default
            return default
        value = self.table[key]
        reason = self._reason(value, kind, minimum, maximum, above, choices)
        if reason is not None:
            self.fail(key, reason)
            return fallback if fallback is not None else default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        return value

    @staticmethod
    def _reason(value, kind, minimum, maximum, above, choices) -> str | None:
        numeric = kind in (int, float, NUMBER)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
            return f"must be {_KIND_NAMES.get(kind, getattr(kind, '__name__', kind))}, not {value!r}"
        if isinstance(value, float) and not math.isfinite(value):  # TOML has nan and inf; they pass every bound
            return f"must be finite, not {value!r}"
        if choices is not None and value not in choices:
            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1) if isinstance(value, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"must be one of {', '.join(map(str, choices))}, not {value!r}{hint}"
        if minimum is not None and value < minimum:
            return f"must be at least {minimum}, not {value}"
        if above is not None and value <= above:
            return f"must be more than {above}, not {value}"
        if maximum is not None and value > maximum:
            return f"must be at most {maximum}, not {value}"
        return None

    def duration(self, key: str, default: float) -> float:
        if key not in self.table:
            return default
        try:
            return parse_duration(self.table[key], self.name(key), self.error, self.key_path(key))
        except TableError as exc:
            if self.problems is None:
                raise
            self.problems.add(exc)
            return default

    def read(self, key: Key, **overrides):
        """`get` (or `duration`) as the key declares it; `overrides` replace declared bounds."""
        spec = {"minimum": key.minimum, "maximum": key.maximum, "above": key.above, "choices": key.choices,
                "required": key.required, **overrides}
        if key.kind == DURATION:
            return self.duration(key.name, key.default)
        return self.get(key.name, key.kind, key.default, **spec)

    def read_all(self, keys: tuple[Key, ...], **overrides_by_key) -> dict:
        """Check the table holds only these keys and read each: {name: value}."""
        self.check_keys({key.name for key in keys})
        return {key.name: self.read(key, **overrides_by_key.get(key.name, {})) for key in keys}
