"""Scenario files (`scenarios/*.toml`): what to run, against what, and what it must meet.

A scenario is validated completely before anything starts; an error names the file, the key and
what is wrong, and unknown keys are errors (a typo must never silently become a default). See
`scenarios/smoke.toml` for a commented example of every section.

`[target] service` (default "ivschat") names the service; the service reads the rest of
`[target]`, its rooms table (`[rooms]` for IVS Chat) and says which population kinds exist.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .measured import DEFAULT_MIN_CONNECTED
from .services import registry
from .services.base import KIND_EMULATOR, KIND_RUNNING_EMULATOR, RoomSettings, Target

FAULT_ACTIONS = {
    # action: (allowed parameters, required parameters)
    "drop": ({"fraction", "users", "mode", "code", "room", "seed"}, set()),
    "expire": ({"fraction", "users", "room", "seed"}, set()),
    "delay": ({"delay_ms", "jitter_ms", "room"}, {"delay_ms"}),
    "pause": ({"mode", "room"}, set()),
    "resume": ({"room"}, set()),
    "restart": ({"downtime_ms", "mode"}, set()),
    "kick": ({"fraction", "seed", "prefix"}, set()),
}  # every emulator's (harness/emulation/admin.py) plus kick; a service may add its own
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class ScenarioError(ValueError):
    pass


@dataclass
class Population:
    kind: str
    users: int
    reconnect: str = "sdk"
    session_minutes: int | None = None
    message_rate: float | None = None  # chatters: messages per second each (default: [messages].rate_per_chatter)
    burst: int = 0  # chatters: send this many at every whole second instead (rate-limit edges)
    burst_offset_ms: float = 0.0


@dataclass
class Messages:
    rate_per_chatter: float = 1.0
    size_min: int = 32
    size_max: int = 32


@dataclass
class Fault:
    at_s: float
    action: str
    params: dict


@dataclass
class Scenario:
    name: str
    file: str
    description: str = ""
    duration_s: float = 30.0
    ramp_s: float = 5.0
    drain_s: float = 5.0
    processes: int = 0  # 0: one worker process per core
    target: Target = field(default_factory=lambda: Target(registry.DEFAULT, KIND_EMULATOR))
    rooms: RoomSettings = field(default_factory=RoomSettings)
    populations: list[Population] = field(default_factory=list)
    messages: Messages = field(default_factory=Messages)
    faults: list[Fault] = field(default_factory=list)
    expectations: list[str] = field(default_factory=list)
    policy_expectations: dict[str, list[str]] = field(default_factory=dict)
    min_connected: float = DEFAULT_MIN_CONNECTED  # fraction of each population that must connect

    @property
    def users(self) -> int:
        return sum(p.users for p in self.populations)

    @property
    def service(self):
        return registry.get(self.target.service)

    def as_run(self) -> dict:
        """The validated scenario as a plain dict (for the report: nothing secret is in a scenario)."""
        data = asdict(self)
        data["target"] = self.target.to_dict()
        data["rooms"] = {"count": self.rooms.count, **self.rooms.settings}
        return data

    def sends(self, population: Population) -> bool:
        return self.service.populations[population.kind].sends

    def population_names(self, *, sending: bool = False) -> list[str]:
        """The Locust user class of each population, as `chatload run` names them."""
        return [population_class_name(p.kind, i) for i, p in enumerate(self.populations)
                if not sending or self.sends(p)]

    def estimated_messages(self, room_members: int | None = None) -> tuple[int, int]:
        """(messages sent, messages delivered) if everything is accepted: what a service billing per
        message would bill."""
        sent = 0.0
        for p in self.populations:
            if self.sends(p):
                rate = p.burst or p.message_rate or self.messages.rate_per_chatter
                sent += p.users * rate * self.duration_s
        members = room_members if room_members is not None else max(1, self.users // max(1, self.rooms.count))
        return int(sent), int(sent * members)


def population_class_name(kind: str, index: int) -> str:
    """"viewer", 0 → "Viewer0": a population's Locust class name, under which its counts are kept."""
    return f"{kind.title().replace('_', '')}{index}"


def parse_duration(value, where: str) -> float:
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: must be a duration like \"30s\", \"2m\" or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ScenarioError(f"{where}: {value!r} is not a duration (write \"500ms\", \"30s\", \"2m\" or \"1h\")")
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds < 0:
        raise ScenarioError(f"{where}: must not be negative")
    return seconds


NUMBER = (int, float)  # `kind` for "any number, kept as written" (an int stays an int)
_KIND_NAMES = {str: "a string", int: "a whole number", float: "a number", NUMBER: "a number", list: "a list",
               bool: "true or false"}


class TableReader:
    """Reads one table of a TOML file for validation: every error names the file, the key and what
    is wrong, and unknown keys are errors. Scenario and capacity files share it; `error` is the
    exception each raises."""

    error: type[ValueError] = ScenarioError

    def __init__(self, path: str, where: str, table) -> None:
        if not isinstance(table, dict):
            raise self.error(f"{path}: {where}: must be a table")
        self.path, self.where, self.table = path, where, table

    def name(self, key: str) -> str:
        return f"{self.path}: {self.where}.{key}" if self.where else f"{self.path}: {key}"

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(sorted(allowed))}"
                raise self.error(f"{self.name(key)}: unknown key{hint}")

    def get(self, key: str, kind, default=None, *, minimum=None, maximum=None, above=None, choices=None,
            required=False):
        if key not in self.table:
            if required:
                raise self.error(f"{self.name(key)}: is required")
            return default
        value = self.table[key]
        numeric = kind in (int, float, NUMBER)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
            raise self.error(f"{self.name(key)}: must be {_KIND_NAMES.get(kind, getattr(kind, '__name__', kind))}, "
                             f"not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):  # TOML has nan and inf; they pass every bound
            raise self.error(f"{self.name(key)}: must be finite, not {value!r}")
        if choices is not None and value not in choices:
            raise self.error(f"{self.name(key)}: must be one of {', '.join(choices)}, not {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(f"{self.name(key)}: must be at least {minimum}, not {value}")
        if above is not None and value <= above:
            raise self.error(f"{self.name(key)}: must be more than {above}, not {value}")
        if maximum is not None and value > maximum:
            raise self.error(f"{self.name(key)}: must be at most {maximum}, not {value}")
        return value

    def duration(self, key: str, default: float) -> float:
        return parse_duration(self.table[key], self.name(key)) if key in self.table else default


def load_scenario(path: str | os.PathLike) -> Scenario:
    path = Path(path)
    shown = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{shown}: not valid TOML: {exc}") from None
    t = TableReader(shown, "target", data.get("target", {}))
    service_name = t.get("service", str, registry.DEFAULT, choices=tuple(registry.names()))
    service = registry.get(service_name)
    top = TableReader(shown, "", data)
    top.check_keys({"scenario", "target", service.rooms_table, "population", "messages", "faults", "expectations"})

    head = TableReader(shown, "scenario", data.get("scenario", {}))
    head.check_keys({"name", "description", "duration", "ramp", "drain", "processes"})
    scenario = Scenario(
        name=head.get("name", str, path.stem),
        file=shown,
        description=head.get("description", str, ""),
        duration_s=head.duration("duration", 30.0),
        ramp_s=head.duration("ramp", 5.0),
        drain_s=head.duration("drain", 5.0),
        processes=head.get("processes", int, 0, minimum=0, maximum=64),
    )
    if not re.fullmatch(r"[A-Za-z0-9._-]+", scenario.name):
        raise ScenarioError(f"{shown}: scenario.name: use letters, digits, '.', '_' or '-' (it names a folder)")
    if scenario.duration_s <= 0:
        raise ScenarioError(f"{shown}: scenario.duration: must be longer than 0 s")

    kind = t.get("kind", str, KIND_EMULATOR, choices=(KIND_EMULATOR, KIND_RUNNING_EMULATOR, service.real_kind))
    scenario.target = service.read_target(t, kind)
    scenario.rooms = service.read_rooms(TableReader(shown, service.rooms_table, data.get(service.rooms_table, {})))
    kinds = tuple(service.populations)

    populations = data.get("population", [])
    if not isinstance(populations, list) or not populations:
        raise ScenarioError(f"{shown}: population: at least one [[population]] table is required")
    for index, table in enumerate(populations):
        p = TableReader(shown, f"population[{index}]", table)
        p.check_keys({"kind", "users", "reconnect", "session_minutes", "message_rate", "burst", "burst_offset_ms"})
        scenario.populations.append(Population(
            kind=p.get("kind", str, required=True, choices=kinds),
            users=p.get("users", int, required=True, minimum=1, maximum=100_000),
            reconnect=p.get("reconnect", str, "sdk", choices=("sdk", "backoff")),
            session_minutes=p.get("session_minutes", int, None, minimum=1, maximum=180),
            message_rate=p.get("message_rate", float, None, minimum=0.001, maximum=100.0),
            burst=p.get("burst", int, 0, minimum=0, maximum=1000),
            burst_offset_ms=p.get("burst_offset_ms", float, 0.0, minimum=-500.0, maximum=500.0),
        ))
        if scenario.populations[-1].burst and not scenario.sends(scenario.populations[-1]):
            sending = [k for k, p in service.populations.items() if p.sends]
            raise ScenarioError(f"{shown}: population[{index}].burst: only {', '.join(sending)} populations send")

    m = TableReader(shown, "messages", data.get("messages", {}))
    m.check_keys({"rate_per_chatter", "size", "size_min", "size_max"})
    limit = service.message_size_limit(scenario.rooms)
    size = m.get("size", int, None, minimum=1, maximum=limit)
    size_min = m.get("size_min", int, size or 32, minimum=1, maximum=limit)
    size_max = m.get("size_max", int, size or max(size_min, 32), minimum=1, maximum=limit)
    if size is not None and ("size_min" in m.table or "size_max" in m.table):
        raise ScenarioError(f"{shown}: messages.size: give either size or size_min/size_max, not both")
    if size_min > size_max:
        raise ScenarioError(f"{shown}: messages.size_min: must not exceed size_max ({size_min} > {size_max})")
    room_limit = scenario.rooms.settings.get("maximum_message_length")
    if room_limit is not None and size_max > room_limit:
        raise ScenarioError(f"{shown}: messages.size_max: {size_max} exceeds {service.rooms_table}.maximum_message_length "
                            f"({room_limit}); every message would be rejected")
    scenario.messages = Messages(m.get("rate_per_chatter", float, 1.0, minimum=0.001, maximum=100.0),
                                 size_min, size_max)

    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError(f"{shown}: faults: must be a list of [[faults]] tables")
    if not scenario.target.emulated and any(f.get("action") != "kick" for f in faults if isinstance(f, dict)):
        raise ScenarioError(f"{shown}: faults: only `kick` (through the service's control plane) works "
                            f"against the real {service.title}; the other faults need the emulator")
    actions = {**FAULT_ACTIONS, **service.fault_actions}
    for index, table in enumerate(faults):
        f = TableReader(shown, f"faults[{index}]", table)
        action = f.get("action", str, required=True, choices=tuple(actions))
        allowed, required = actions[action]
        f.check_keys({"at", "action"} | allowed)
        for key in sorted(required):
            f.get(key, object, required=True)
        at_s = parse_duration(f.get("at", object, required=True), f"{shown}: faults[{index}].at")
        if at_s > scenario.duration_s:
            raise ScenarioError(f"{shown}: faults[{index}].at: {at_s:g} s is after the end of the run "
                                f"({scenario.duration_s:g} s)")
        params = {k: v for k, v in table.items() if k not in ("at", "action")}
        if "room" in params and (not isinstance(params["room"], int) or not 0 <= params["room"] < scenario.rooms.count):
            raise ScenarioError(f"{shown}: faults[{index}].room: must be a {service.room_noun} index from 0 to "
                                f"{scenario.rooms.count - 1}")
        scenario.faults.append(Fault(at_s, action, params))
    scenario.faults.sort(key=lambda fault: fault.at_s)

    e = TableReader(shown, "expectations", data.get("expectations", {}))
    e.check_keys({"rules", "sdk_rules", "backoff_rules", "min_connected"})
    scenario.min_connected = e.get("min_connected", float, DEFAULT_MIN_CONNECTED, minimum=0.0, maximum=1.0)
    for key in ("rules", "sdk_rules", "backoff_rules"):
        rules = e.get(key, list, [])
        for index, rule in enumerate(rules):
            if not isinstance(rule, str):
                raise ScenarioError(f"{shown}: expectations.{key}[{index}]: must be a string like \"lost == 0\"")
        _checked_rules(shown, rules, key)
    scenario.expectations = list(e.get("rules", list, []))
    scenario.policy_expectations = {"sdk": list(e.get("sdk_rules", list, [])),
                                    "backoff": list(e.get("backoff_rules", list, []))}
    return scenario


def expectations_for(scenario: Scenario) -> list[str]:
    """The rules that apply: the common ones, plus a policy's own when every population uses it
    (a 1 s outage is survived with backoff, while SDK-like immediate retries give up)."""
    policies = {p.reconnect for p in scenario.populations}
    extra = scenario.policy_expectations.get(policies.pop(), []) if len(policies) == 1 else []
    return scenario.expectations + extra


def _checked_rules(shown: str, rules: list[str], key: str = "rules") -> list[str]:
    """Expectations use the gate's rule grammar; parse them now so a typo fails before the run."""
    from .gate.rules import RulesError, parse_rule

    for index, rule in enumerate(rules):
        try:
            parse_rule(rule)
        except RulesError as exc:
            raise ScenarioError(f"{shown}: expectations.{key}[{index}]: {rule!r}: {exc}") from None
    return list(rules)
