"""Scenario files (`scenarios/*.toml`): what to run, against what, and what it must meet.

A scenario is validated completely before anything starts; an error names the file, the key and
what is wrong, and unknown keys are errors (a typo must never silently become a default). See
`scenarios/smoke.toml` for a commented example of every section.

`[target] service` (default "ivschat") names the service; the service reads the rest of
`[target]`, its rooms table (`[rooms]` for IVS Chat) and says which population kinds exist.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .measured import DEFAULT_MIN_CONNECTED
from .net.transport import DEFAULT_TRANSPORT, TRANSPORTS
from .services import registry
from .services.base import KIND_EMULATOR, KIND_RUNNING_EMULATOR, RoomSettings, Target
from .tables import DURATION, NUMBER, Key, Problems, TableError
from .tables import TableReader as _TableReader
from .tables import parse_duration as _parse_duration

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


class ScenarioError(TableError):
    """A scenario file is invalid: the message names the file, the key, the reason and the line of
    every error found (`problems` lists them one by one)."""

    def __init__(self, message: str, key: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, key)
        self.problems = problems or [message]


@dataclass
class Population:
    kind: str
    users: int
    reconnect: str = "sdk"
    session_minutes: int | None = None
    message_rate: float | None = None  # chatters: messages per second each (default: [messages].rate_per_chatter)
    burst: int = 0  # chatters: send this many at every whole second instead (rate-limit edges)
    burst_offset_ms: float = 0.0
    connections_per_user: int = 1  # listeners: > 1 makes listener pools (users counts connections)


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
    transport: str = DEFAULT_TRANSPORT  # the WebSocket client implementation ([run] transport)
    metrics_port: int | None = None  # live Prometheus /metrics ([run] metrics_port)

    @property
    def users(self) -> int:
        """Connections (a pooled population's `users` counts its connections, not its Locust users)."""
        return sum(p.users for p in self.populations)

    @property
    def locust_users(self) -> int:
        return sum(p.users // p.connections_per_user for p in self.populations)

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
    return _parse_duration(value, where, ScenarioError)


class TableReader(_TableReader):
    error = ScenarioError


# -- the keys of every table (docs/scenarios.md is generated from these: `python -m harness.scenario_docs`) ----

SCENARIO_KEYS = (
    Key("name", str, None, "names the run and its report folder: letters, digits, '.', '_' or '-' "
        "(default: the file's name)", '"smoke"'),
    Key("description", str, "", "one line saying what the scenario is for", '"20 users in one room for 10 s"'),
    Key("duration", DURATION, 30.0, "how long the load runs, ramp included", '"30s"'),
    Key("ramp", DURATION, 5.0, "time to start every user (spawn rate = users / ramp)", '"5s"'),
    Key("drain", DURATION, 5.0, "at the end, how long receivers keep listening for messages in flight",
        '"5s"'),
    Key("processes", int, 0, "Locust processes: 0 one per core, 1 no workers, N workers", "1",
        minimum=0, maximum=64),
)
TARGET_KEYS = (
    Key("service", str, registry.DEFAULT, "which service: " + ", ".join(registry.SERVICES), '"ivschat"',
        choices=tuple(registry.SERVICES)),
    Key("kind", str, KIND_EMULATOR, "\"emulator\" (started for the run), \"running-emulator\" (one that is "
        "already running: give its endpoints), or the service's own name for the real service",
        '"running-emulator"'),
)
POPULATION_KEYS = (
    Key("kind", str, None, "one of the service's population kinds (listed per service below)", '"viewer"',
        required=True),
    Key("users", int, None, "how many users of this kind", "180", minimum=1, maximum=100_000, required=True),
    Key("reconnect", str, "sdk", "after a drop: \"sdk\" does what the service's own client does, "
        "\"backoff\" full-jitter exponential backoff", '"backoff"', choices=("sdk", "backoff")),
    Key("session_minutes", int, None, "session length asked of the service (default: the service's)", "60",
        minimum=1, maximum=180),
    Key("message_rate", float, None, "senders: messages per second each (default: messages.rate_per_chatter)",
        "2.0", minimum=0.001, maximum=100.0),
    Key("burst", int, 0, "senders: instead, this many messages at once at every whole second", "20",
        minimum=0, maximum=1000),
    Key("burst_offset_ms", float, 0.0, "senders: move the bursts this far from the second boundary "
        "(negative: just before it)", "-5.0", minimum=-500.0, maximum=500.0),
    Key("connections_per_user", int, 1, "listeners: connections each Locust user holds (a listener pool, "
        "docs/listener-pools.md); `users` still counts connections and must be a multiple of it", "500",
        minimum=1, maximum=100_000),
)
MESSAGES_KEYS = (
    Key("rate_per_chatter", float, 1.0, "messages per second per sender, unless its population says",
        "1.0", minimum=0.001, maximum=100.0),
    Key("size", int, None, "characters per message (or size_min and size_max)", "64", minimum=1),
    Key("size_min", int, 32, "fewest characters per message", "16", minimum=1),
    Key("size_max", int, 32, "most characters per message", "120", minimum=1),
)
FAULT_KEYS = (
    Key("at", DURATION, None, "when, from the start of the run", '"10s"', required=True),
    Key("action", str, None, "what happens (the actions and their parameters are listed below)", '"drop"',
        required=True),
)
FAULT_PARAMETERS = {  # every action's parameters, each once (FAULT_ACTIONS says which action takes which)
    "fraction": Key("fraction", NUMBER, None, "share of the selected users (0 to 1)", "0.5", minimum=0, maximum=1),
    "users": Key("users", list, None, "user ids to select", '["viewer-a1"]'),
    "room": Key("room", int, None, "index of the room (0 for the first)", "0", minimum=0),
    "seed": Key("seed", int, None, "random seed of the selection", "1"),
    "mode": Key("mode", str, None, "drop: \"abrupt\" (no close frame) or \"clean\"; pause: \"drop\" or "
                "\"hold\"; restart: \"abrupt\" or \"clean\"", '"abrupt"'),
    "code": Key("code", int, None, "drop: the close code of a clean drop", "1001"),
    "delay_ms": Key("delay_ms", NUMBER, None, "delay: milliseconds added to every delivery", "20", minimum=0),
    "jitter_ms": Key("jitter_ms", NUMBER, None, "delay: up to this many more, at random (order kept)", "5",
                     minimum=0),
    "downtime_ms": Key("downtime_ms", NUMBER, None, "restart: milliseconds the data plane is down", "1000",
                       minimum=0),
    "prefix": Key("prefix", str, None, "kick: kick users whose id starts with this (default \"viewer\")",
                  '"viewer"'),
}
FAULT_MEANINGS = {
    "drop": "drop connections (abrupt: clients see 1006; clean: a close frame)",
    "expire": "the service's session expiry, now",
    "delay": "delay every delivery (one room, or every room)",
    "pause": "stop delivering in a room",
    "resume": "deliver again (held frames go out in order)",
    "restart": "restart the data plane on the same port",
    "kick": "a moderator's kick through the service's control plane (works against the real service too)",
}
EXPECTATIONS_KEYS = (
    Key("rules", list, [], "rules in the gate's grammar, all of which must hold", '["lost == 0"]'),
    Key("sdk_rules", list, [], "more rules, applied when every population uses reconnect = \"sdk\"",
        '["reconnect_attempts.max <= 4"]'),
    Key("backoff_rules", list, [], "more rules, applied when every population uses reconnect = \"backoff\"",
        '["not_connected_at_end.gave_up == 0"]'),
    Key("min_connected", float, DEFAULT_MIN_CONNECTED, "each population's share of users that must connect, "
        "or the run measured nothing (an error)", "0.95", minimum=0.0, maximum=1.0),
)
RUN_KEYS = (
    Key("transport", str, DEFAULT_TRANSPORT, "the WebSocket client implementation (same measurements; "
        "`chatload bench` compares their cost)", '"websockets"', choices=tuple(sorted(TRANSPORTS))),
    Key("metrics_port", int, None, "serve live Prometheus /metrics on this port while the run goes "
        "(docs/live-metrics.md); 0 picks a free port", "9646", minimum=0, maximum=65535),
)
TOP_KEYS = ("scenario", "run", "target", "population", "messages", "faults", "expectations")  # + the rooms table


def load_scenario(path: str | os.PathLike) -> Scenario:
    """The validated scenario; ScenarioError lists every error found, each with its line."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{shown}: not valid TOML: {exc}") from None
    problems = Problems(shown, text)

    def reader(where: str, table) -> TableReader:
        return TableReader(shown, where, table, problems)

    t = reader("target", data.get("target", {}))
    service = registry.get(t.read(TARGET_KEYS[0]))
    top = reader("", data)
    top.check_keys({*TOP_KEYS, service.rooms_table})

    head = reader("scenario", data.get("scenario", {}))
    values = head.read_all(SCENARIO_KEYS)
    scenario = Scenario(name=values["name"] or path.stem, file=shown, description=values["description"],
                        duration_s=values["duration"], ramp_s=values["ramp"], drain_s=values["drain"],
                        processes=values["processes"])
    if not re.fullmatch(r"[A-Za-z0-9._-]+", scenario.name):
        head.fail("name", "use letters, digits, '.', '_' or '-' (it names a folder)")
    if scenario.duration_s <= 0:
        head.fail("duration", "must be longer than 0 s")

    values = reader("run", data.get("run", {})).read_all(RUN_KEYS)
    scenario.transport, scenario.metrics_port = values["transport"], values["metrics_port"]

    t.check_keys({key.name for key in (*TARGET_KEYS, *service.target_keys)})
    kind = t.read(TARGET_KEYS[1], choices=(KIND_EMULATOR, KIND_RUNNING_EMULATOR, service.real_kind))
    scenario.target = service.read_target(t, kind)
    rooms = reader(service.rooms_table, data.get(service.rooms_table, {}))
    rooms.check_keys({key.name for key in service.room_keys})
    scenario.rooms = service.read_rooms(rooms)

    populations = data.get("population", [])
    if not isinstance(populations, list) or not populations:
        top.fail("population", "at least one [[population]] table is required")
        populations = []
    kinds = tuple(service.populations)
    for index, table in enumerate(populations):
        p = reader(f"population[{index}]", table)
        values = p.read_all(POPULATION_KEYS, kind={"choices": kinds, "fallback": kinds[0]},
                            users={"fallback": 1})
        population = Population(**values)
        if population.burst and not scenario.sends(population):
            sending = [k for k, kind_ in service.populations.items() if kind_.sends]
            p.fail("burst", f"only {', '.join(sending)} populations send")
        if population.connections_per_user > 1:
            if scenario.sends(population):
                p.fail("connections_per_user", "only listening populations can be pooled")
            elif population.users % population.connections_per_user:
                p.fail("connections_per_user", f"users ({population.users}) must be a multiple of it "
                                               f"({population.connections_per_user})")
        scenario.populations.append(population)

    m = reader("messages", data.get("messages", {}))
    limit = service.message_size_limit(scenario.rooms)
    size = m.read(MESSAGES_KEYS[1], maximum=limit)
    m.check_keys({key.name for key in MESSAGES_KEYS})
    size_min = m.read(MESSAGES_KEYS[2], maximum=limit) if "size_min" in m.table else (size or 32)
    size_max = m.read(MESSAGES_KEYS[3], maximum=limit) if "size_max" in m.table else (size or max(size_min, 32))
    if size is not None and ("size_min" in m.table or "size_max" in m.table):
        m.fail("size", "give either size or size_min/size_max, not both")
    if size_min > size_max:
        m.fail("size_min", f"must not exceed size_max ({size_min} > {size_max})")
    room_limit = scenario.rooms.settings.get("maximum_message_length")
    if room_limit is not None and size_max > room_limit:
        m.fail("size_max", f"{size_max} exceeds {service.rooms_table}.maximum_message_length ({room_limit}); "
                           "every message would be rejected")
    scenario.messages = Messages(m.read(MESSAGES_KEYS[0]), size_min, size_max)

    faults = data.get("faults", [])
    if not isinstance(faults, list):
        top.fail("faults", "must be a list of [[faults]] tables")
        faults = []
    if not scenario.target.emulated and any(f.get("action") != "kick" for f in faults if isinstance(f, dict)):
        top.fail("faults", f"only `kick` (through the service's control plane) works against the real "
                           f"{service.title}; the other faults need the emulator")
    actions = {**FAULT_ACTIONS, **service.fault_actions}
    for index, table in enumerate(faults):
        f = reader(f"faults[{index}]", table)
        action = f.read(FAULT_KEYS[1], choices=tuple(actions))
        if action not in actions:
            continue  # said already; its parameters cannot be judged
        allowed, required = actions[action]
        f.check_keys({"at", "action"} | allowed)
        for key in sorted(allowed):
            parameter = FAULT_PARAMETERS.get(key) or service.fault_parameters.get(key)
            if parameter is not None:
                f.read(parameter, required=key in required)
            elif key in required and key not in f.table:
                f.fail(key, "is required")
        at_s = f.read(FAULT_KEYS[0])
        if at_s is None:
            continue
        if at_s > scenario.duration_s:
            f.fail("at", f"{at_s:g} s is after the end of the run ({scenario.duration_s:g} s)")
        params = {k: v for k, v in table.items() if k not in ("at", "action")}
        if "room" in params and isinstance(params["room"], int) and not params["room"] < scenario.rooms.count:
            f.fail("room", f"must be a {service.room_noun} index from 0 to {scenario.rooms.count - 1}")
        scenario.faults.append(Fault(at_s, action, params))
    scenario.faults.sort(key=lambda fault: fault.at_s)

    e = reader("expectations", data.get("expectations", {}))
    values = e.read_all(EXPECTATIONS_KEYS)
    scenario.min_connected = values["min_connected"]
    for key in ("rules", "sdk_rules", "backoff_rules"):
        _check_rules(e, key, values[key])
    scenario.expectations = [rule for rule in values["rules"] if isinstance(rule, str)]
    scenario.policy_expectations = {policy: [r for r in values[f"{policy}_rules"] if isinstance(r, str)]
                                    for policy in ("sdk", "backoff")}
    if problems:
        raise ScenarioError("\n".join(problems.messages()), problems=problems.messages())
    return scenario


def expectations_for(scenario: Scenario) -> list[str]:
    """The rules that apply: the common ones, plus a policy's own when every population uses it
    (a 1 s outage is survived with backoff, while SDK-like immediate retries give up)."""
    policies = {p.reconnect for p in scenario.populations}
    extra = scenario.policy_expectations.get(policies.pop(), []) if len(policies) == 1 else []
    return scenario.expectations + extra


def _check_rules(table: TableReader, key: str, rules) -> None:
    """Expectations use the gate's rule grammar; parse them now so a typo fails before the run."""
    from .gate.rules import RulesError, parse_rule

    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, str):
            table.fail(f"{key}[{index}]", "must be a string like \"lost == 0\"")
            continue
        try:
            parse_rule(rule)
        except RulesError as exc:
            table.fail(f"{key}[{index}]", f"{rule!r}: {exc}")
