"""Capacity files: a normal scenario plus a `[capacity]` table, turned into one scenario per step.

The scenario loader rejects unknown top-level keys, so `[capacity]` is read here: it is popped from
the TOML, validated with the scenario loader's manners (an error names the file, the key and the
reason; unknown keys are errors, with a suggestion), and every step becomes an ordinary scenario
document — the remaining tables with the stepped quantity substituted — that
`harness.scenario.reader.load_scenario` validates like any other. A step is therefore exactly a scenario a
person could have written and run with `chatload run`; the files are kept next to the reports.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files.toml_tables import TableError
from ..scenario.reader import NUMBER, Scenario, ScenarioError, TableReader, load_scenario, parse_duration
from ..services import registry

VARIES = {
    # vary: (what a step value is, what the load N of the USL fit is)
    "room_size": ("users of the chosen [[population]]", "room size (members per room)"),
    "message_rate": ("messages per second per chatter", "offered messages per second (all chatters)"),
    "rooms": ("rooms.count (every population scales with it)", "rooms"),
    "trace_speed": ("[traffic] speed of the replayed trace", "trace speed (× the trace's own rate)"),
    "trace_audience": ("[traffic] audience; the listening population grows with it", "audience (× the trace's)"),
}
LOAD_SHORT = {"room_size": "room size", "message_rate": "offered msg/s", "rooms": "rooms",
              "trace_speed": "trace speed", "trace_audience": "audience"}  # for one-line answers
TRACE_VARIES = ("trace_speed", "trace_audience")
MAX_STEPS = 40
CAPACITY_KEYS = {"vary", "population", "steps", "start", "factor", "increment", "max", "hold", "objective",
                 "emulator", "prices", "sizing"}
EMULATOR_KEYS = {"delivery_cost_us", "rate_limit", "max_connections"}
PRICE_KEYS = {"per_million_sent", "per_million_delivered", "currency", "hours_per_month"}
SIZING_KEYS = {"target_room_size", "cores_per_machine", "cpu_budget_percent"}
# Illustrative list prices (USD per million): inputs, never quotes. Check the provider's pricing page.
DEFAULT_PRICES = {"per_million_sent": 0.40, "per_million_delivered": 0.02, "currency": "USD",
                  "hours_per_month": 730.0}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class CapacityError(TableError):
    """A capacity file is invalid; the message names the file, the key and the reason."""


@dataclass
class EmulatorOptions:
    delivery_cost_us: float = 0.0
    rate_limit: str | None = None  # fixed-window | token-bucket | off; None: the emulator's default
    max_connections: int | None = None


@dataclass
class Prices:
    per_million_sent: float = DEFAULT_PRICES["per_million_sent"]
    per_million_delivered: float = DEFAULT_PRICES["per_million_delivered"]
    currency: str = "USD"
    hours_per_month: float = 730.0  # hours a month at the measured load (730: around the clock)
    given: bool = False  # False: the illustrative defaults above


@dataclass
class Sizing:
    target_room_size: int | None = None  # None: the largest room size of the schedule
    cores_per_machine: int | None = None  # None: this machine's
    cpu_budget_percent: float = 70.0  # how busy a load-generator process may run (saturation is 90 %)


@dataclass
class CapacitySpec:
    vary: str
    steps: list[int | float]
    hold_s: float
    objective: list[str]
    population: int | None = None
    emulator: EmulatorOptions = field(default_factory=EmulatorOptions)
    prices: Prices = field(default_factory=Prices)
    sizing: Sizing = field(default_factory=Sizing)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PlannedStep:
    index: int  # 1-based
    value: int | float  # the stepped quantity as written in the schedule
    tables: dict  # the step's scenario document (TOML tables)
    scenario: Scenario | None = None  # set once validated

    @property
    def rooms(self) -> int:
        target = self.scenario.target
        return len(target.rooms) if target.rooms else self.scenario.rooms.count

    @property
    def users(self) -> int:
        return self.scenario.users

    @property
    def room_size(self) -> float:
        size = self.users / max(1, self.rooms)
        return int(size) if float(size).is_integer() else round(size, 2)

    @property
    def offered_messages_per_s(self) -> float:
        """Messages per second the chatters are scheduled to send (all rooms), if the scenario runs as written
        (a replayed trace: its mean rate at its speed)."""
        s = self.scenario
        if s.traffic is not None:
            from ..trace.loading import load_traffic_trace

            trace = load_traffic_trace(s.traffic)
            return len(trace.messages) * s.traffic.speed / max(trace.duration_s, 1e-3)
        total = 0.0
        for p in s.populations:
            if s.sends(p):
                total += p.users * (getattr(p, "burst", 0) or p.message_rate or s.messages.rate_per_chatter)
        return total


@dataclass
class CapacityPlan:
    file: str
    name: str
    spec: CapacitySpec
    base: dict  # the scenario tables without [capacity]
    steps: list[PlannedStep]
    target_kind: str
    service_name: str = registry.DEFAULT

    @property
    def service(self):
        return registry.get(self.service_name)

    def load_of(self, step: PlannedStep) -> float:
        """The load N of a step, in the unit VARIES names (the USL's x axis)."""
        if self.spec.vary == "room_size":
            return float(step.room_size)
        if self.spec.vary in TRACE_VARIES:
            return float(step.value)
        if self.spec.vary == "message_rate":
            return round(step.offered_messages_per_s, 6)
        return float(step.rooms)

    @property
    def load_label(self) -> str:
        return VARIES[self.spec.vary][1]

    @property
    def load_short(self) -> str:
        return LOAD_SHORT[self.spec.vary]


# -- reading and validating -------------------------------------------------------------------------


class _Table(TableReader):
    """The scenario reader, raising CapacityError; `number`/`string` read as the capacity code asks."""

    error = CapacityError

    def number(self, key: str, default=None, *, integer=False, minimum=None, maximum=None, above=None):
        return self.get(key, int if integer else NUMBER, default, minimum=minimum, maximum=maximum, above=above)

    def string(self, key: str, default=None, *, choices=None):
        return self.get(key, str, default, choices=choices)


def load_plan(path: str | os.PathLike) -> CapacityPlan:
    """Read a capacity file and validate it and every step's scenario; CapacityError says what is wrong."""
    path = Path(path)
    shown = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CapacityError(f"{shown}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CapacityError(f"{shown}: not valid TOML: {exc}") from None
    if "capacity" not in data:
        raise CapacityError(f"{shown}: capacity: a [capacity] table is required (a capacity file is a scenario "
                            "plus [capacity]; see docs/capacity.md)")
    raw = data.pop("capacity")
    if "expectations" in data:
        raise CapacityError(f"{shown}: expectations: a capacity file judges every step by capacity.objective; "
                            "move these rules there")
    head = data.get("scenario", {})
    if isinstance(head, dict) and "duration" in head:
        raise CapacityError(f"{shown}: scenario.duration: a capacity file sets the time of each step with "
                            "capacity.hold (after scenario.ramp); remove scenario.duration")
    spec = _read_spec(shown, raw, data)
    name = head.get("name", path.stem) if isinstance(head, dict) else path.stem
    target = data.get("target", {})
    target_kind = target.get("kind", "emulator") if isinstance(target, dict) else "emulator"
    plan = CapacityPlan(file=shown, name=str(name), spec=spec, base=data, steps=[], target_kind=str(target_kind),
                        service_name=_service_name(shown, data))
    _check_target_fits(plan)
    plan.steps = [PlannedStep(index, value, step_tables(plan, index, value))
                  for index, value in enumerate(spec.steps, start=1)]
    _validate_steps(plan)
    return plan


def _read_spec(shown: str, raw, data: dict) -> CapacitySpec:
    t = _Table(shown, "capacity", raw)
    t.check_keys(CAPACITY_KEYS)
    if "vary" not in t.table:
        raise CapacityError(f"{t.name('vary')}: is required: one of {', '.join(VARIES)}")
    vary = t.string("vary", choices=tuple(VARIES))
    populations = data.get("population", [])
    if not isinstance(populations, list) or not populations or not all(isinstance(p, dict) for p in populations):
        raise CapacityError(f"{shown}: population: at least one [[population]] table is required")

    population = t.number("population", None, integer=True, minimum=0, maximum=len(populations) - 1)
    if vary == "room_size" and population is None:
        # the first viewer population grows a room; without viewers, the first population
        population = next((i for i, p in enumerate(populations) if p.get("kind") == "viewer"), 0)
    if vary == "rooms" and population is not None:
        raise CapacityError(f"{t.name('population')}: not used with vary = \"rooms\" (every population scales "
                            "with the number of rooms)")
    if vary == "message_rate":
        service = registry.get(_service_name(shown, data))
        sending = {kind for kind, p in service.populations.items() if p.sends}
        chatters = [i for i, p in enumerate(populations) if p.get("kind") in sending]
        if population is not None and population not in chatters:
            raise CapacityError(f"{t.name('population')}: population[{population}] is not a chatter; only "
                                "chatters send messages")
        if population is None and not any("message_rate" not in populations[i] and "burst" not in populations[i]
                                           for i in chatters):
            raise CapacityError(f"{t.name('vary')}: \"message_rate\" steps messages.rate_per_chatter, but no "
                                "chatter population uses it (each sets its own message_rate, or there are no "
                                "chatters); name one with capacity.population")
        if population is not None and "burst" in populations[population]:
            raise CapacityError(f"{t.name('population')}: population[{population}] sends in bursts; its "
                                "message_rate is not used")
    if vary == "rooms" and isinstance(data.get("target"), dict) and (data["target"].get("room_arns")
                                                                     or data["target"].get("rooms")):
        raise CapacityError(f"{t.name('vary')}: \"rooms\" needs rooms the emulator creates; this target names "
                            "its rooms (target.room_arns)")

    if vary in TRACE_VARIES:
        if not isinstance(data.get("traffic"), dict):
            raise CapacityError(f"{t.name('vary')}: {vary!r} steps a replayed trace: the scenario needs a "
                                "[traffic] table (docs/traces.md)")
        if vary == "trace_audience" and population is None:
            service = registry.get(_service_name(shown, data))
            population = next((i for i, p in enumerate(populations)
                               if p.get("kind") in service.populations and not service.populations[p["kind"]].sends),
                              None)
            if population is None:
                raise CapacityError(f"{t.name('population')}: no listening population grows with the audience; "
                                    "name one")
    steps = _read_steps(t, integer=vary not in ("message_rate", *TRACE_VARIES))
    hold_s = parse_hold(t)
    objective = t.table.get("objective")
    if not isinstance(objective, list) or not objective:
        raise CapacityError(f"{t.name('objective')}: is required: a list of rules like "
                            "[\"delivery.p99 <= 250ms\", \"lost == 0\"]")
    _check_rules(t, objective)

    spec = CapacitySpec(vary=vary, steps=steps, hold_s=hold_s, objective=list(objective), population=population)
    if "emulator" in t.table:
        e = _Table(shown, "capacity.emulator", t.table["emulator"])
        e.check_keys(EMULATOR_KEYS)
        spec.emulator = EmulatorOptions(
            delivery_cost_us=float(e.number("delivery_cost_us", 0.0, minimum=0, maximum=1_000_000)),
            rate_limit=e.string("rate_limit", None, choices=("fixed-window", "token-bucket", "off")),
            max_connections=e.number("max_connections", None, integer=True, minimum=1, maximum=10_000_000),
        )
    if "prices" in t.table:
        p = _Table(shown, "capacity.prices", t.table["prices"])
        p.check_keys(PRICE_KEYS)
        spec.prices = Prices(
            per_million_sent=float(p.number("per_million_sent", DEFAULT_PRICES["per_million_sent"], minimum=0)),
            per_million_delivered=float(p.number("per_million_delivered", DEFAULT_PRICES["per_million_delivered"],
                                                 minimum=0)),
            currency=p.string("currency", "USD"),
            hours_per_month=float(p.number("hours_per_month", 730.0, above=0, maximum=744)),
            given=bool({"per_million_sent", "per_million_delivered"} & set(p.table)),
        )
    if "sizing" in t.table:
        s = _Table(shown, "capacity.sizing", t.table["sizing"])
        s.check_keys(SIZING_KEYS)
        spec.sizing = Sizing(
            target_room_size=s.number("target_room_size", None, integer=True, minimum=1, maximum=100_000_000),
            cores_per_machine=s.number("cores_per_machine", None, integer=True, minimum=1, maximum=4096),
            cpu_budget_percent=float(s.number("cpu_budget_percent", 70.0, above=0, maximum=100)),
        )
    return spec


def _read_steps(t: _Table, *, integer: bool) -> list[int | float]:
    kind = "a whole number" if integer else "a number"
    if "steps" in t.table:
        extra = sorted({"start", "factor", "increment", "max"} & set(t.table))
        if extra:
            raise CapacityError(f"{t.name('steps')}: give either steps or start/max with factor or increment, "
                                f"not both (found {', '.join(extra)})")
        steps = t.table["steps"]
        if not isinstance(steps, list) or not steps:
            raise CapacityError(f"{t.name('steps')}: must be a non-empty list of increasing numbers, e.g. "
                                "[50, 100, 200, 400]")
        for i, value in enumerate(steps):
            ok = isinstance(value, int) if integer else isinstance(value, int | float)
            if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise CapacityError(f"{t.name('steps')}[{i}]: must be {kind}, not {value!r}")
            if value <= 0:
                raise CapacityError(f"{t.name('steps')}[{i}]: must be more than 0, not {value}")
            if i and value <= steps[i - 1]:
                raise CapacityError(f"{t.name('steps')}[{i}]: steps must increase ({steps[i - 1]} then {value})")
        values = list(steps)
    else:
        if "start" not in t.table or "max" not in t.table:
            raise CapacityError(f"{t.name('steps')}: is required: a list like [50, 100, 200, 400], or start and "
                                "max with factor (geometric) or increment (linear)")
        start = t.number("start", integer=integer, above=0)
        ceiling = t.number("max", integer=integer, above=0)
        if ceiling < start:
            raise CapacityError(f"{t.name('max')}: must be at least start ({start}), not {ceiling}")
        factor = t.number("factor", None, above=1, maximum=100)
        increment = t.number("increment", None, integer=integer, above=0)
        if (factor is None) == (increment is None):
            raise CapacityError(f"{t.name('factor')}: give exactly one of factor (each step × factor) or "
                                "increment (each step + increment)")
        values, value = [], start
        while value < ceiling and len(values) <= MAX_STEPS:
            shown = round(value) if integer else round(value, 6)
            if not values or shown > values[-1]:
                values.append(shown)
            value = value * factor if factor is not None else value + increment
        if not values or values[-1] < ceiling:
            values.append(ceiling)  # the ceiling is always measured
    if len(values) > MAX_STEPS:
        raise CapacityError(f"{t.name('steps')}: {len(values)} steps; at most {MAX_STEPS} (a capacity search "
                            "needs few well-spaced steps, not many)")
    return values


def parse_hold(t: _Table) -> float:
    if "hold" not in t.table:
        raise CapacityError(f"{t.name('hold')}: is required: how long to hold each step after its ramp, "
                            "e.g. \"30s\"")
    try:
        hold_s = parse_duration(t.table["hold"], t.name("hold"))
    except ScenarioError as exc:
        raise CapacityError(str(exc)) from None
    if hold_s < 1:
        raise CapacityError(f"{t.name('hold')}: must be at least 1 s to measure a steady state, not {hold_s:g} s")
    return hold_s


def _check_rules(t: _Table, rules: list) -> None:
    from ..gate.rules import RulesError, parse_rule

    for index, rule in enumerate(rules):
        if not isinstance(rule, str):
            raise CapacityError(f"{t.name('objective')}[{index}]: must be a string like \"delivery.p99 <= 250ms\"")
        try:
            parse_rule(rule)
        except RulesError as exc:
            raise CapacityError(f"{t.name('objective')}[{index}]: {rule!r}: {exc}") from None


def _check_target_fits(plan: CapacityPlan) -> None:
    options = plan.spec.emulator
    if plan.target_kind != "emulator" and options != EmulatorOptions():
        raise CapacityError(f"{plan.file}: capacity.emulator: applies to the embedded emulator only (this target "
                            f"is {plan.target_kind!r}); configure a running emulator on its command line")


def _validate_steps(plan: CapacityPlan) -> None:
    """Load every step as a scenario now, so a bad step fails before anything runs."""
    with tempfile.TemporaryDirectory(prefix="chatload-capacity-") as folder:
        for step in plan.steps:
            file = Path(folder) / f"step{step.index:02d}.toml"
            file.write_text(dump_toml(step.tables), encoding="utf-8")
            try:
                step.scenario = load_scenario(file)
            except ScenarioError as exc:
                reason = str(exc).replace(f"{file}: ", "", 1)
                raise CapacityError(f"{plan.file}: capacity.steps[{step.index - 1}] ({plan.spec.vary} = "
                                    f"{step.value}) makes an invalid scenario: {reason}") from None
            step.scenario.file = plan.file


# -- one step's scenario ----------------------------------------------------------------------------


def _service_name(shown: str, data: dict) -> str:
    target = data.get("target")
    name = target.get("service", registry.DEFAULT) if isinstance(target, dict) else registry.DEFAULT
    if name not in registry.SERVICES:
        raise CapacityError(f"{shown}: target.service: must be one of {', '.join(registry.SERVICES)}, not {name!r}")
    return name


def step_name(plan: CapacityPlan, index: int) -> str:
    return f"{plan.name}-step{index:02d}"  # no ".": room names (CreateRoom) refuse it


def step_tables(plan: CapacityPlan, index: int, value, target: dict | None = None) -> dict:
    """The scenario document of step `index` (1-based) with `value` substituted; `target` replaces the
    [target] table (the capacity run points every step at the emulator it started)."""
    spec = plan.spec
    tables = copy.deepcopy(plan.base)
    head = tables.setdefault("scenario", {})
    head["name"] = step_name(plan, index)
    what = VARIES[spec.vary][0]
    head["description"] = (f"capacity step {index} of {len(spec.steps)} for {plan.name}: {spec.vary} = {value} "
                           f"({what})")
    try:
        ramp_s = parse_duration(head["ramp"], f"{plan.file}: scenario.ramp") if "ramp" in head else 5.0
    except ScenarioError as exc:
        raise CapacityError(str(exc)) from None
    head["duration"] = f"{ramp_s + spec.hold_s:g}s"
    populations = tables["population"]
    traffic = tables.get("traffic")
    if isinstance(traffic, dict) and isinstance(traffic.get("trace"), str):
        # Step files live beside the reports: the trace stays where the capacity file's folder says.
        traffic["trace"] = str((Path(plan.file).parent / traffic["trace"]).resolve())
    if spec.vary in TRACE_VARIES:
        key = "speed" if spec.vary == "trace_speed" else "audience"
        base = traffic.get(key, 1.0) if isinstance(traffic.get(key, 1.0), int | float) else 1.0
        traffic[key] = float(value)
        if spec.vary == "trace_audience" and isinstance(populations[spec.population].get("users"), int):
            populations[spec.population]["users"] = max(1, round(populations[spec.population]["users"] * value / base))
    elif spec.vary == "room_size":
        populations[spec.population]["users"] = value
    elif spec.vary == "message_rate":
        if spec.population is not None:
            populations[spec.population]["message_rate"] = float(value)
        else:
            tables.setdefault("messages", {})["rate_per_chatter"] = float(value)
    else:
        rooms = tables.setdefault(plan.service.rooms_table, {})
        base_count = rooms.get("count", 1) if isinstance(rooms.get("count", 1), int) else 1
        rooms["count"] = value
        for population in populations:  # keep every room's make-up: users per room stay as written
            if isinstance(population.get("users"), int):
                population["users"] = max(1, round(population["users"] * value / max(1, base_count)))
    tables["expectations"] = {"rules": list(spec.objective)}  # each step's report judges the objective
    if target is not None:
        tables["target"] = dict(target)
    return tables


# -- writing TOML (the subset scenarios use) --------------------------------------------------------


def dump_toml(document: dict) -> str:
    """TOML text for a scenario document: scalars, lists of scalars, tables and arrays of tables."""
    lines: list[str] = []
    _dump_table(document, [], lines)
    return "\n".join(lines).strip() + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _dump_table(table: dict, path: list[str], lines: list[str]) -> None:
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in table.items():
        dotted = ".".join(_key(part) for part in [*path, key])
        if isinstance(value, dict):
            lines += ["", f"[{dotted}]"]
            _dump_table(value, [*path, key], lines)
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{dotted}]]"]
                _dump_table(item, [*path, key], lines)
