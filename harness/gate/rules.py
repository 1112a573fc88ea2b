"""Rules over a results document: thresholds (`delivery.p99 < 250ms`) and regressions against a baseline.

One rule is one line of a tiny grammar:

    rule   := METRIC OP VALUE | METRIC "between" VALUE "and" VALUE
    OP     := "<" | "<=" | ">" | ">=" | "==" | "!="
    VALUE  := NUMBER [UNIT] | "true" | "false"
    UNIT   := "µs" | "us" | "ms" | "s" | "%" | "/s"

METRIC is a name from `metrics` (the catalog), and the unit must fit its kind: durations need one of
µs/ms/s (a bare number would be ambiguous, except 0), `%` only fits ratios. `between` includes both
bounds. Values are compared in the catalog's internal units (µs for durations); results are shown in
the unit the rule was written in.

A rules file is TOML with `[[threshold]]` tables (`rule`, optional `name`) and `[[regression]]` tables
(`metric`, `worse_by_at_most`, optional `noise`, `direction`, `name`). Unknown keys are errors, and
every error names the file, the rule's index and text, and what is wrong (`RulesError`).

`evaluate` never raises for a report: a metric the report lacks gives the verdict "error" saying so.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..report.numbers import exact_number, unit_suffix
from .metrics import (
    COUNT,
    DURATION,
    FLAG,
    HIGHER,
    LOWER,
    RATE,
    RATIO,
    UNIT_ADVICE,
    MetricMissing,
    UnknownMetric,
    resolve,
)

PASS, FAIL, ERROR = "pass", "fail", "error"
VERDICTS = (PASS, FAIL, ERROR)
OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
             "==": operator.eq, "!=": operator.ne}
# unit as written → (unit shown, factor to the catalog's internal unit, the kinds it fits)
UNITS = {
    "µs": ("µs", 1.0, {DURATION}), "μs": ("µs", 1.0, {DURATION}), "us": ("µs", 1.0, {DURATION}),
    "ms": ("ms", 1e3, {DURATION}), "s": ("s", 1e6, {DURATION}),
    "%": ("%", 0.01, {RATIO}), "/s": ("/s", 1.0, {RATE}),
    "": ("", 1.0, {COUNT, RATIO, RATE, FLAG}),
}
SHOWN_FACTOR = {shown: factor for shown, factor, _ in UNITS.values()}
DEFAULT_SHOWN = {DURATION: "ms", COUNT: "", RATIO: "", RATE: "/s", FLAG: ""}
OPERATOR_ADVICE = "use <, <=, >, >=, ==, != or `between A and B`"

_HEAD = re.compile(r"\s*(?P<metric>[A-Za-z_][\w.:\-]*)\s*(?P<rest>.*?)\s*", re.S)
_OPERATOR = re.compile(r"(?P<op><=|>=|==|!=|<|>)\s*(?P<value>.*)", re.S)
_BETWEEN = re.compile(r"between\b\s*(?P<range>.*)", re.S | re.I)
_RANGE = re.compile(r"(?P<low>.+?)\s+and\s+(?P<high>.+)", re.S)
_VALUE = re.compile(r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>.*)", re.S)


class RulesError(ValueError):
    """A rule or rules file is invalid; `problems` lists every error found, one a line of the message."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Problem(Exception):
    """What is wrong with one rule; the caller adds where the rule is."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str  # one of OPERATORS, or "between"
    value: float  # internal units; the lower bound for "between"
    high: float | None  # the upper bound for "between"
    unit: str  # shown unit: the one the rule was written in
    text: str
    name: str


@dataclass(frozen=True)
class Regression:
    metric: str
    allowed: float  # a fraction of the baseline when `relative`, else internal units
    relative: bool
    noise: float  # internal units: worsening up to this much is never a regression
    direction: str  # LOWER or HIGHER
    unit: str
    text: str
    name: str


@dataclass(frozen=True)
class CheckResult:
    name: str
    rule: str
    metric: str
    op: str
    expected: float | list[float] | None  # in `unit`; [low, high] for "between"
    observed: float | None  # in `unit`
    unit: str
    verdict: str  # PASS, FAIL or ERROR
    detail: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object, index: int) -> CheckResult:
        """A check as a report stores it; one the gate cannot read becomes an error, not an exception."""
        if not isinstance(data, Mapping):
            return cls(f"checks[{index}]", "", "", "", None, None, "", ERROR, "not a check record")
        values = {field.name: data.get(field.name) for field in dataclasses.fields(cls)}
        verdict = values["verdict"]
        name = str(values["name"] or values["rule"] or f"checks[{index}]")
        detail = str(values["detail"] or "")
        if verdict not in VERDICTS:
            verdict, detail = ERROR, f"the report's check has no valid verdict ({verdict!r})"
        return cls(name=name, rule=str(values["rule"] or name), metric=str(values["metric"] or ""),
                   op=str(values["op"] or ""), expected=values["expected"], observed=values["observed"],
                   unit=str(values["unit"] or ""), verdict=verdict, detail=detail)


class RuleSet(NamedTuple):
    thresholds: tuple[Threshold, ...]
    regressions: tuple[Regression, ...]


# -- parsing --------------------------------------------------------------------------------------------

def parse_rule(text: object, *, name: str | None = None, where: str | None = None) -> Threshold:
    """One threshold from its text. `where` (e.g. "scenario.toml: expect[2]") prefixes error messages."""
    prefix = f"{where}: " if where else "rule "
    if not isinstance(text, str):
        raise RulesError(f"{prefix}{text!r}: a rule is a string such as \"delivery.p99 < 250ms\"")
    try:
        return _threshold(text, name)
    except _Problem as exc:
        raise RulesError(f"{prefix}{text!r}: {exc}") from None


def _threshold(text: str, name: str | None) -> Threshold:
    head = _HEAD.fullmatch(text)
    if not text.strip():
        raise _Problem("empty rule; write METRIC OP VALUE, e.g. \"lost == 0\"")
    if head is None:
        raise _Problem("a rule starts with a metric name, e.g. \"delivery.p99 < 250ms\"")
    metric = _metric(head["metric"])
    rest = head["rest"]
    if not rest:
        raise _Problem(f"missing operator and value after {metric.name}; {OPERATOR_ADVICE}")
    if match := _OPERATOR.fullmatch(rest):
        op = match["op"]
        value, unit = _value(match["value"], metric)
        _can_hold(metric.name, op, value, None, unit)
        return Threshold(metric.name, op, value, None, unit, text.strip(), name or text.strip())
    if match := _BETWEEN.fullmatch(rest):
        bounds = _RANGE.fullmatch(match["range"])
        if bounds is None:
            raise _Problem("`between` needs two bounds: `between A and B`")
        low, unit = _value(bounds["low"], metric)
        high, high_unit = _value(bounds["high"], metric)
        if low > high:
            raise _Problem("the lower bound of `between` is above the upper bound")
        _can_hold(metric.name, "between", low, high, unit or high_unit)
        return Threshold(metric.name, "between", low, high, unit or high_unit, text.strip(), name or text.strip())
    token = re.match(r"[^\s\d.+-]+|\S+", rest)[0]
    hint = "; for equality write ==" if token == "=" else ""
    raise _Problem(f"bad operator {token!r}: {OPERATOR_ADVICE}{hint}")


def _can_hold(metric: str, op: str, value: float, high: float | None, unit: str) -> None:
    """Every metric is a latency, a count, a ratio, a rate or a flag: never below 0. A rule that only
    a negative value would satisfy can never hold, so it is a mistake in the rule, said before any
    run rather than as a failure after it."""
    never = (op == "<" and value <= 0) or (op in ("<=", "==") and value < 0) or (op == "between" and high < 0)
    if never:
        bound = _with_unit(_shown(high if op == "between" else value, unit), unit)
        raise _Problem(f"can never hold: {metric} is never below 0, so it is never {op} {bound}"
                       if op != "between" else f"can never hold: {metric} is never below 0 (upper bound {bound})")


def _metric(name: str):
    try:
        return resolve(name)
    except UnknownMetric as exc:
        raise _Problem(str(exc)) from None


def _value(text: str, metric) -> tuple[float, str]:
    """(value in internal units, unit shown) for one written value, checked against the metric's kind."""
    text = text.strip()
    if metric.kind == FLAG and text.lower() in ("true", "false"):
        return (1.0 if text.lower() == "true" else 0.0), ""
    match = _VALUE.fullmatch(text)
    if match is None:
        raise _Problem(f"expected a number with an optional unit, got {text!r}")
    number, written = float(match["number"]), match["unit"].strip()
    if written not in UNITS:
        raise _Problem(f"unknown unit {written!r}: use µs (or us), ms, s, %, /s or a plain number")
    shown, factor, kinds = UNITS[written]
    if metric.kind not in kinds and not (metric.kind == DURATION and written == "" and number == 0):
        what = "a plain number" if written == "" else repr(written)
        raise _Problem(f"{metric.name} is a {metric.kind}, so {what} does not fit: {UNIT_ADVICE[metric.kind]}")
    if metric.kind == FLAG and number not in (0, 1):
        raise _Problem(f"{metric.name} is a flag: {UNIT_ADVICE[FLAG]}")
    return number * factor, shown or DEFAULT_SHOWN[metric.kind]


THRESHOLD_KEYS = {"rule", "name"}
REGRESSION_KEYS = {"metric", "worse_by_at_most", "noise", "direction", "name"}
TOP_KEYS = {"threshold": THRESHOLD_KEYS, "regression": REGRESSION_KEYS}


def parse_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}") from None
    # Every error of the file is listed, not the first: one round of fixing, not one per error.
    problems: list[str] = []

    def collect(build, *args):
        try:
            return build(*args)
        except RulesError as exc:
            problems.extend(exc.problems)
            return None

    for key in data:
        collect(_no_unknown_keys, {key: None}, TOP_KEYS, f"{path}")
    tables = {}
    for kind in TOP_KEYS:
        entries = data.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            problems.append(f"{path}: `{kind}` must be an array of tables: write [[{kind}]] before each")
            entries = []
        tables[kind] = entries
    if not problems and not tables["threshold"] and not tables["regression"]:
        raise RulesError(f"{path}: no rules: add [[threshold]] or [[regression]] tables")
    thresholds = [collect(_threshold_entry, entry, f"{path}: threshold[{index}]")
                  for index, entry in enumerate(tables["threshold"])]
    regressions = [collect(_regression, entry, f"{path}: regression[{index}]")
                   for index, entry in enumerate(tables["regression"])]
    if problems:
        raise RulesError("\n".join(problems), problems)
    return RuleSet(tuple(thresholds), tuple(regressions))


def _threshold_entry(entry: Mapping, where: str) -> Threshold:
    _no_unknown_keys(entry, THRESHOLD_KEYS, where)
    if "rule" not in entry:
        raise RulesError(f"{where}: missing `rule`, e.g. rule = \"delivery.p99 < 250ms\"")
    return parse_rule(entry["rule"], name=_name(entry, where), where=where)


def _no_unknown_keys(table: Mapping, allowed: Iterable[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise RulesError(f"{where}: unknown key `{key}`{hint} (allowed: {', '.join(sorted(allowed))})")


def _name(entry: Mapping, where: str) -> str | None:
    name = entry.get("name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise RulesError(f"{where}.name: must be a non-empty string")
    return name


def _regression(entry: Mapping, where: str) -> Regression:
    name = entry.get("metric")
    if isinstance(name, str):
        where = f"{where} ({name})"
    _no_unknown_keys(entry, REGRESSION_KEYS, where)
    if not isinstance(name, str):
        raise RulesError(f"{where}: `metric` is required, a metric name such as \"delivery.p99\"")
    try:
        metric = _metric(name)
    except _Problem as exc:
        raise RulesError(f"{where}.metric: {exc}") from None
    if metric.kind == FLAG:
        raise RulesError(f"{where}.metric: {name} is a flag; gate it with a threshold, e.g. \"{name} == 0\"")
    if "worse_by_at_most" not in entry:
        raise RulesError(f"{where}: `worse_by_at_most` is required, e.g. \"10%\" (of the baseline)")
    allowed_text = str(entry["worse_by_at_most"]).strip()
    unit = DEFAULT_SHOWN[metric.kind]
    try:
        if allowed_text.endswith("%"):  # relative to the baseline, whatever the metric's kind
            relative = True
            allowed = float(allowed_text[:-1]) / 100
        else:
            relative = False
            allowed, unit = _value(allowed_text, metric)
    except ValueError:
        raise RulesError(f"{where}.worse_by_at_most: {allowed_text!r}: expected a percentage such as "
                         f"\"10%\" or an amount in the metric's unit") from None
    except _Problem as exc:
        raise RulesError(f"{where}.worse_by_at_most: {allowed_text!r}: {exc}") from None
    noise_text = str(entry.get("noise", 0)).strip()
    try:
        noise, noise_unit = _value(noise_text, metric)
    except _Problem as exc:
        raise RulesError(f"{where}.noise: {noise_text!r}: {exc}") from None
    if allowed < 0 or noise < 0:
        raise RulesError(f"{where}: `worse_by_at_most` and `noise` cannot be negative")
    direction = entry.get("direction", metric.direction)
    if direction not in (LOWER, HIGHER):
        raise RulesError(f"{where}.direction: {direction!r}: use \"{LOWER}\" or \"{HIGHER}\"")
    text = f"{metric.name} at most {allowed_text} worse than baseline"
    if noise:
        unit = noise_unit  # the amounts a reader compares against are shown as the noise was written
        text += f" (noise {noise_text})"
    return Regression(metric.name, allowed, relative, noise, direction, unit, text, _name(entry, where) or text)


# -- evaluation -----------------------------------------------------------------------------------------

def evaluate(report: Mapping, thresholds: Sequence[Threshold], regressions: Sequence[Regression] = (),
             baseline: Mapping | None = None) -> list[CheckResult]:
    """One result per rule, in order: thresholds, then regressions."""
    results = [_check_threshold(report, threshold) for threshold in thresholds]
    results += [_check_regression(report, baseline, regression) for regression in regressions]
    return results


def _check_threshold(report: Mapping, rule: Threshold) -> CheckResult:
    metric = resolve(rule.metric)
    expected = [_shown(rule.value, rule.unit), _shown(rule.high, rule.unit)] if rule.op == "between" \
        else _shown(rule.value, rule.unit)
    base = dict(name=rule.name, rule=rule.text, metric=rule.metric, op=rule.op, expected=expected,
                unit=rule.unit)
    try:
        observed = metric.read(report)
    except MetricMissing as exc:
        return CheckResult(**base, observed=None, verdict=ERROR, detail=f"missing from the report: {exc}")
    if rule.op == "between":
        passed = rule.value <= observed <= rule.high
        wanted = f"between {exact_number(expected[0])} and {exact_number(expected[1])}"
    else:
        passed = OPERATORS[rule.op](observed, rule.value)
        wanted = f"{rule.op} {exact_number(expected)}"
    shown = _shown(observed, rule.unit)
    detail = "" if passed else f"{rule.metric} is {_with_unit(shown, rule.unit)}, not {wanted}{unit_suffix(rule.unit)}"
    if not passed:
        detail += _saturation_note(report, metric)
    return CheckResult(**base, observed=shown, verdict=PASS if passed else FAIL, detail=detail)


def _check_regression(report: Mapping, baseline: Mapping | None, rule: Regression) -> CheckResult:
    metric = resolve(rule.metric)
    op = "<=" if rule.direction == LOWER else ">="
    base = dict(name=rule.name, rule=rule.text, metric=rule.metric, op=op, unit=rule.unit)
    if baseline is None:
        return CheckResult(**base, expected=None, observed=None, verdict=ERROR,
                           detail="a regression check needs a baseline report (--baseline); none was given")
    observed = None
    try:
        observed = metric.read(report)
        before = metric.read(baseline)
    except MetricMissing as exc:
        side = "report" if observed is None else "baseline"
        shown = None if observed is None else _shown(observed, rule.unit)
        return CheckResult(**base, expected=None, observed=shown, verdict=ERROR,
                           detail=f"missing from the {side}: {exc}")
    sign = 1 if rule.direction == LOWER else -1
    worsening = (observed - before) * sign
    allowance = max(abs(before) * rule.allowed if rule.relative else rule.allowed, rule.noise)
    limit = before + sign * allowance  # the worst value that still passes
    passed = worsening <= allowance * (1 + 1e-12)
    change = f"{(observed - before) / abs(before):+.1%}, " if before else ""
    unit = rule.unit
    detail = (f"{_with_unit(_shown(observed, unit), unit)} against baseline {_with_unit(_shown(before, unit), unit)} "
              f"({change}{exact_number(_shown(observed - before, unit), signed=True)}{unit_suffix(unit)}); "
              f"allowed: {exact_number(rule.allowed * 100) + '%' if rule.relative else _with_unit(_shown(rule.allowed, unit), unit)}")
    if rule.noise:
        detail += f", or up to {_with_unit(_shown(rule.noise, unit), unit)} of noise"
    if not passed:
        detail += _saturation_note(report, metric)
    return CheckResult(**base, expected=_shown(limit, unit), observed=_shown(observed, unit),
                       verdict=PASS if passed else FAIL, detail=detail)


def _saturation_note(report: Mapping, metric) -> str:
    health = report.get("health")
    if metric.is_latency and isinstance(health, Mapping) and health.get("saturated") is True:
        return "; the harness saturated during this run, so this latency may include its own queueing"
    return ""


def _shown(value: float | None, unit: str) -> float | None:
    """A value in internal units converted to the shown unit, to 6 significant digits."""
    if value is None:
        return None
    return float(f"{value / SHOWN_FACTOR[unit]:.6g}")


def _with_unit(value: object, unit: str) -> str:
    return f"{exact_number(value)}{unit_suffix(unit)}"
