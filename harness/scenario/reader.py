"""Scenario files (`scenarios/*.toml`): what to run, against what, and what it must meet.

A scenario is validated completely before anything starts; an error names the file, the key and
what is wrong, and unknown keys are errors (a typo must never silently become a default). Every
table and key is in `docs/scenarios.md` (generated from the declarations below).

`[target] service` (default "ivschat") names the service; the service reads the rest of
`[target]`, its rooms table (`[rooms]` for IVS Chat) and says which population kinds exist.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files.toml_tables import DURATION, NUMBER, Key, Problems, TableError
from ..files.toml_tables import TableReader as _TableReader
from ..files.toml_tables import parse_duration as _parse_duration
from ..net.source_addresses import parse_source_addresses
from ..net.tls import ca_file_problem, ca_pem_of
from ..net.transport import DEFAULT_TRANSPORT, TRANSPORTS
from ..results.measured import DEFAULT_MIN_CONNECTED, DEFAULT_MIN_SPAWNED
from ..results.populations import population_class_name
from ..services import registry, token_endpoint
from ..services.base import KIND_EMULATOR, KIND_RUNNING_EMULATOR, RoomSettings, Target
from ..services.token_endpoint import TokenEndpoint

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
class Traffic:
    """`[traffic]`: a trace replayed as the load (docs/traces.md)."""

    trace: str  # the file as the scenario names it, resolved against the scenario's folder
    format: str = "chatload"
    speed: float = 1.0
    audience: float = 1.0
    delay_s: float | None = None  # None: the ramp
    rooms: dict[str, int] | None = None
    senders: list[int] | None = None  # population indices (None: every sending population)
    listeners: list[int] | None = None  # population indices (None: every other population)


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
    measures_ramp: bool = False  # harness health is judged over the ramp too (harness/metrics/saturation.py)
    target: Target = field(default_factory=lambda: Target(registry.DEFAULT, KIND_EMULATOR))
    rooms: RoomSettings = field(default_factory=RoomSettings)
    populations: list[Population] = field(default_factory=list)
    messages: Messages = field(default_factory=Messages)
    faults: list[Fault] = field(default_factory=list)
    expectations: list[str] = field(default_factory=list)
    policy_expectations: dict[str, list[str]] = field(default_factory=dict)
    min_connected: float = DEFAULT_MIN_CONNECTED  # fraction of each population that must connect
    min_spawned: float = DEFAULT_MIN_SPAWNED  # fraction of each population that must have started
    transport: str = DEFAULT_TRANSPORT  # the WebSocket client implementation ([run] transport)
    metrics_port: int | None = None  # live Prometheus /metrics ([run] metrics_port)
    tls: bool = False  # the embedded emulator serves TLS ([target] tls, `chatload run --tls`)
    token_endpoint: TokenEndpoint | None = None  # [target.token_endpoint]: the application's own tokens
    workers: int = 0  # Locust workers on other machines the run waits for ([run] workers; 0: none)
    source_addresses: tuple[str, ...] = ()  # local addresses connections are made from, in turn ([run])
    emulator_bind: str | None = None  # the embedded emulator's address for remote workers ([target] bind)
    traffic: Traffic | None = None  # a trace replayed as the load ([traffic])

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
        data["token_endpoint"] = self.token_endpoint.to_dict() if self.token_endpoint else None
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
        if self.traffic is not None:  # a replay sends the trace's messages due before the run ends
            from ..trace.loading import load_traffic_trace

            delay = self.ramp_s if self.traffic.delay_s is None else self.traffic.delay_s
            sent = float(sum(e.t / self.traffic.speed < self.duration_s - delay
                             for e in load_traffic_trace(self.traffic).messages))
        for p in self.populations if self.traffic is None else ():
            if self.sends(p):
                rate = p.burst or p.message_rate or self.messages.rate_per_chatter
                sent += p.users * rate * self.duration_s
        members = room_members if room_members is not None else max(1, self.users // max(1, self.rooms.count))
        return int(sent), int(sent * members)


def parse_duration(value, where: str) -> float:
    return _parse_duration(value, where, ScenarioError)


class TableReader(_TableReader):
    error = ScenarioError


# -- the keys of every table (docs/scenarios.md is generated from these: `python -m harness.scenario.docs`) ----

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
    Key("measures_ramp", bool, False, "the ramp is what this scenario measures (a join storm): harness health "
        "is judged over the ramp too, not only once every user has started", "true"),
)
TARGET_KEYS = (
    Key("service", str, registry.DEFAULT, "which service: " + ", ".join(registry.SERVICES), '"ivschat"',
        choices=tuple(registry.SERVICES)),
    Key("kind", str, KIND_EMULATOR, "\"emulator\" (started for the run), \"running-emulator\" (one that is "
        "already running: give its endpoints), or the service's own name for the real service",
        '"running-emulator"'),
    Key("tls", bool, False, "kind \"emulator\": serve wss:// and https:// with a CA made for the run, which the "
        "clients alone trust (`chatload run --tls` does the same)", "true"),
    Key("ca_file", str, "", "a running emulator or real endpoint behind a private CA: trust only this CA "
        "(a PEM file; a relative path is from the scenario's folder) for wss:// and https:// (default: the "
        "system trust store)", '"certs/ca.pem"'),
    Key("tls_verify", bool, True, "false turns certificate checks off; emulators only (the console says so)",
        "false"),
    Key("bind", str, None, "the embedded emulator listens on this address instead of 127.0.0.1, so workers "
        "on other machines reach it (an address of this machine, not 0.0.0.0: workers connect to it)",
        '"10.0.0.5"'),
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
    Key("min_spawned", float, DEFAULT_MIN_SPAWNED, "each population's share of users that must have started "
        "when the run ends (the ramp finished), or the run did not apply its load (an error)", "0.5",
        minimum=0.0, maximum=1.0),
)
RUN_KEYS = (
    Key("transport", str, DEFAULT_TRANSPORT, "the WebSocket client implementation (same measurements; "
        "`chatload bench` compares their cost)", '"websockets"', choices=tuple(sorted(TRANSPORTS))),
    Key("metrics_port", int, None, "serve live Prometheus /metrics on this port while the run goes "
        "(docs/live-metrics.md); 0 picks a free port", "9646", minimum=0, maximum=65535),
    Key("source_addresses", list, [], "local addresses to connect from, in turn: each has its own ~28k "
        "ephemeral ports to one endpoint, so a generator holding more connections than that needs more "
        "(any 127.x.y.z on loopback); empty: the system chooses", '["127.0.0.1", "127.0.0.2"]'),
    Key("workers", int, 0, "Locust workers on other machines this run needs (`chatload worker`; "
        "docs/distributed.md); 0: none, the run uses [scenario] processes", "2", minimum=0, maximum=1000),
)
WILDCARDS = ("0.0.0.0", "::", "*", "")
TRAFFIC_FORMATS = ("chatload", "ivschat-log", "hotsock-pages")
TRAFFIC_KEYS = (
    Key("trace", str, None, "the trace file, relative to the scenario's folder (docs/traces.md)",
        '"traces/final.jsonl"', required=True),
    Key("format", str, "chatload", "the file's format: a chatload trace, IVS Chat logging records or Hotsock "
        "listMessages pages (imported as the run starts)", '"ivschat-log"', choices=TRAFFIC_FORMATS),
    Key("speed", float, 1.0, "time compression: trace times are divided by it", "3.0", minimum=0.01, maximum=1000.0),
    Key("audience", float, 1.0, "each trace user's joins and leaves this many times over", "2.0", minimum=0.01,
        maximum=1000.0),
    Key("delay", DURATION, None, "from the first user to the trace's start (default: the ramp)", '"5s"'),
    Key("rooms", dict, None, "trace room → target room index; only the rooms named are replayed "
        "(default: the trace's rooms busiest first onto rooms 0, 1, …)", '{ "room_AbC" = 0 }'),
    Key("senders", list, None, "indices of the populations whose users carry the trace's senders "
        "(default: every sending population)", "[1]"),
    Key("listeners", list, None, "indices of the populations whose users join and leave as the trace's users "
        "(default: every other population)", "[0]"),
)
TOP_KEYS = ("scenario", "run", "target", "population", "messages", "faults", "expectations", "traffic")
# + the rooms table


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
    if problems:
        # The service reads the rest of the file (its rooms table, population kinds, limits): judged by
        # the default service instead, a misspelt name would bring errors that are not the user's.
        raise ScenarioError("\n".join(problems.messages()), problems=problems.messages())
    top = reader("", data)
    top.check_keys({*TOP_KEYS, service.rooms_table})

    head = reader("scenario", data.get("scenario", {}))
    values = head.read_all(SCENARIO_KEYS)
    scenario = Scenario(name=values["name"] or path.stem, file=shown, description=values["description"],
                        duration_s=values["duration"], ramp_s=values["ramp"], drain_s=values["drain"],
                        processes=values["processes"], measures_ramp=values["measures_ramp"])
    if not re.fullmatch(r"[A-Za-z0-9._-]+", scenario.name):
        head.fail("name", "use letters, digits, '.', '_' or '-' (it names a folder)")
    if scenario.duration_s <= 0:
        head.fail("duration", "must be longer than 0 s")

    run_table = reader("run", data.get("run", {}))
    values = run_table.read_all(RUN_KEYS)
    scenario.transport, scenario.metrics_port = values["transport"], values["metrics_port"]
    scenario.workers = values["workers"]
    try:
        scenario.source_addresses = parse_source_addresses(values["source_addresses"])
    except ValueError as exc:
        run_table.fail("source_addresses", str(exc))

    t.check_keys({key.name for key in (*TARGET_KEYS, *service.target_keys)} | {"token_endpoint"})
    kind = t.read(TARGET_KEYS[1], choices=(KIND_EMULATOR, KIND_RUNNING_EMULATOR, service.real_kind))
    scenario.target = service.read_target(t, kind)
    scenario.tls, scenario.target = _read_tls(t, scenario.target, service)
    if "token_endpoint" in t.table:
        scenario.token_endpoint = token_endpoint.read_table(reader("target.token_endpoint", t.table["token_endpoint"]),
                                                            service.token_endpoint_fields, service.token_purposes)
    scenario.emulator_bind = t.read(TARGET_KEYS[5])
    if scenario.emulator_bind is not None:
        if kind != KIND_EMULATOR:
            t.fail("bind", f"only the embedded emulator (kind = \"{KIND_EMULATOR}\") is started by the run")
        elif scenario.emulator_bind in WILDCARDS:
            t.fail("bind", "name an address of this machine that workers can reach: the emulator's endpoints "
                           "are built from it, and workers cannot connect to 0.0.0.0")
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

    if "traffic" in data:
        scenario.traffic = _read_traffic(reader("traffic", data["traffic"]), scenario, path.parent)

    e = reader("expectations", data.get("expectations", {}))
    values = e.read_all(EXPECTATIONS_KEYS)
    scenario.min_connected, scenario.min_spawned = values["min_connected"], values["min_spawned"]
    _check_ramp(head, scenario)
    for key in ("rules", "sdk_rules", "backoff_rules"):
        _check_rules(e, key, values[key], scenario)
    scenario.expectations = [rule for rule in values["rules"] if isinstance(rule, str)]
    scenario.policy_expectations = {policy: [r for r in values[f"{policy}_rules"] if isinstance(r, str)]
                                    for policy in ("sdk", "backoff")}
    if problems:
        raise ScenarioError("\n".join(problems.messages()), problems=problems.messages())
    return scenario


def _read_tls(t: TableReader, target: Target, service) -> tuple[bool, Target]:
    """`[target]` tls, ca_file and tls_verify, the same for every service: (tls, the target with them)."""
    tls, ca_file, verify = (t.read(key) for key in TARGET_KEYS[2:5])
    ca_pem = ""  # the CA's text travels with the target: a worker on another machine has no such path
    if tls and target.kind != KIND_EMULATOR:
        t.fail("tls", "is for kind \"emulator\" (started for the run); a running emulator or a real service "
                      "names its wss:// endpoint, and ca_file if its CA is private")
    if ca_file:
        ca_file = str((Path(t.path).parent / ca_file).resolve())  # relative to the scenario file
        if target.kind == KIND_EMULATOR:
            t.fail("ca_file", "kind \"emulator\" makes its own CA (tls = true); ca_file is for a running emulator "
                              "or a real endpoint")
        else:
            problem = ca_file_problem(ca_file)
            if problem:
                t.fail("ca_file", problem)
            else:
                ca_pem = ca_pem_of(ca_file)
    if not verify and not target.emulated:
        t.fail("tls_verify", f"certificate checks stay on against the real {service.title}")
    return tls, dataclasses.replace(target, ca_file=ca_file, ca_pem=ca_pem, tls_verify=verify)


def _read_traffic(t: TableReader, scenario: Scenario, folder: Path) -> Traffic | None:
    """`[traffic]`, with the trace itself read now, so a bad trace fails `--check` like a bad key."""
    from ..trace.loading import TraceLoadError, load_traffic_trace

    values = t.read_all(TRAFFIC_KEYS)
    if values["trace"] is None:
        return None
    traffic = Traffic(str(folder / values["trace"]), values["format"], values["speed"], values["audience"],
                      values["delay"], values["rooms"], values["senders"], values["listeners"])
    if scenario.processes > 1:
        t.fail("trace", "a trace is replayed by one process: set [scenario] processes = 1 (or leave it 0)")
    if scenario.workers > 1:  # remote workers would each replay the whole trace
        t.fail("trace", "a trace is replayed by one process: set [run] workers = 1 (or leave it 0)")
    if any(population.connections_per_user > 1 for population in scenario.populations):
        t.fail("trace", "a replay's listeners join and leave one by one, as the trace's users did: listener "
                        "pools (connections_per_user) cannot follow it")
    for key in ("senders", "listeners"):
        for index in getattr(traffic, key) or ():
            if not isinstance(index, int) or not 0 <= index < len(scenario.populations):
                t.fail(key, f"{index!r} is not a population index (0 to {len(scenario.populations) - 1})")
            elif (key == "senders") != scenario.sends(scenario.populations[index]):
                t.fail(key, f"population[{index}] ({scenario.populations[index].kind}) "
                            f"{'does not send' if key == 'senders' else 'sends: put it in senders'}")
    for room, index in (traffic.rooms or {}).items():
        if not isinstance(index, int) or not 0 <= index < scenario.rooms.count:
            t.fail("rooms", f"{room}: {index!r} is not a {scenario.service.room_noun} index "
                            f"(0 to {scenario.rooms.count - 1})")
    try:
        load_traffic_trace(traffic)
    except TraceLoadError as exc:
        t.fail("trace", str(exc))
    return traffic


def expectations_for(scenario: Scenario) -> list[str]:
    """The rules that apply: the common ones, plus a policy's own when every population uses it
    (a 1 s outage is survived with backoff, while SDK-like immediate retries give up)."""
    policies = {p.reconnect for p in scenario.populations}
    extra = scenario.policy_expectations.get(policies.pop(), []) if len(policies) == 1 else []
    return scenario.expectations + extra


def _check_ramp(head: TableReader, scenario: Scenario) -> None:
    """A ramp that cannot finish within the duration applies a fraction of the load: the run would
    end with users never started (an error, harness.results.measured), so say it before anything runs."""
    ramp, duration = scenario.ramp_s, scenario.duration_s
    if ramp <= 0 or duration <= 0 or duration / ramp > scenario.min_spawned:
        return
    share = min(1.0, duration / ramp)
    needed = "shorter than duration" if scenario.min_spawned >= 1 else (
        f"at most {duration / scenario.min_spawned:g} s for [expectations] min_spawned = {scenario.min_spawned:g}")
    started = (f"only about {share:.0%} of the {scenario.users:,} users would have started by the end" if share < 1
               else f"the last of the {scenario.users:,} users would start only as the run ends, so no second runs "
                    "at full load")
    head.fail("ramp", f"{ramp:g} s cannot complete within duration ({duration:g} s): {started}; make ramp "
                      f"{needed}, or state the share you accept in [expectations] min_spawned")


def _check_rules(table: TableReader, key: str, rules, scenario: Scenario) -> None:
    """Expectations use the gate's rule grammar; parse them now so a typo fails before the run, and so
    does a rule this scenario's run can never evaluate (another service's measure, presence on
    channels without it)."""
    from ..gate.metrics import unmeasurable
    from ..gate.rules import RulesError, parse_rule

    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, str):
            table.fail(f"{key}[{index}]", "must be a string like \"lost == 0\"")
            continue
        try:
            threshold = parse_rule(rule)
        except RulesError as exc:
            table.fail(f"{key}[{index}]", f"{rule!r}: {str(exc).removeprefix(f'rule {rule!r}: ')}")
            continue
        reason = unmeasurable(threshold.metric, scenario.service, scenario.rooms)
        if reason:
            table.fail(f"{key}[{index}]", f"{rule!r}: can never be evaluated: {reason}")
