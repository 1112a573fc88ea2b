"""docs/scenarios.md, generated from the keys the scenario reader declares (and each service's).

    python -m harness.scenario.docs > docs/scenarios.md

`tests/test_scenario_docs.py` fails when the committed page differs from what this prints, so the
reference cannot drift from the reader.
"""

from __future__ import annotations

from ..files.toml_tables import DURATION, Key
from ..services import registry, token_endpoint
from . import reader as s

INTRO = """\
# Scenario files

A scenario (`scenarios/*.toml`) says what to run, against which service and target, and what the
run must meet. `chatload run FILE` runs it; `chatload run --check FILE` only validates it and lists
every error with its line. Unknown keys are errors (with a suggestion), so a typo never becomes a
default. Durations are written `"500ms"`, `"30s"`, `"2m"`, `"1h"` or as a number of seconds.

This page is generated from the reader's own key declarations (`python -m harness.scenario.docs`);
a test keeps it true.
"""


def _bounds(key: Key) -> str:
    parts = []
    if key.choices:
        parts.append("one of " + ", ".join(f"`{c}`" for c in key.choices))
    if key.minimum is not None and key.maximum is not None:
        parts.append(f"{key.minimum:g} to {key.maximum:g}")
    elif key.minimum is not None:
        parts.append(f"at least {key.minimum:g}")
    elif key.maximum is not None:
        parts.append(f"at most {key.maximum:g}")
    return "; ".join(parts)


def _default(key: Key) -> str:
    if key.required:
        return "required"
    if key.default is None or key.default == [] or key.default == "":
        return "—"
    if key.kind == DURATION:
        return f"{key.default:g} s"
    return f"`{key.default!r}`".replace("'", '"')


def key_table(keys) -> list[str]:
    rows = ["| key | type | default | allowed | meaning | example |", "|---|---|---|---|---|---|"]
    for key in keys:
        rows.append(f"| `{key.name}` | {key.type_words()} | {_default(key)} | {_bounds(key)} | {key.meaning} | "
                    f"`{key.example}` |")
    return rows


def render() -> str:
    out = [INTRO]
    out += ["## `[scenario]`", "", "What the run is and how long it lasts.", "", *key_table(s.SCENARIO_KEYS), ""]
    out += ["## `[run]`", "", "How the harness itself runs (not what it measures).", "", *key_table(s.RUN_KEYS), ""]
    out += ["## `[target]`", "", "Which service and where. `service` and `kind` are the same for every service; "
            "the other keys are the service's own (below).", "", *key_table(s.TARGET_KEYS), ""]
    out += ["## `[target.token_endpoint]`", "", "Tokens from the application's own endpoint instead of the "
            "service's API (any service; `locust -f` takes the same as `--chat-token-*` options): one request per "
            "connect or reconnect, read by JSON paths. A service that needs more than the token from the answer "
            "adds its own keys (below).", "", *key_table(token_endpoint.KEYS), ""]
    out += ["## `[[population]]`", "", "One table per population of users (at least one). `kind` is one of "
            "the service's kinds (below).", "", *key_table(s.POPULATION_KEYS), ""]
    out += ["## `[messages]`", "", "What senders send.", "", *key_table(s.MESSAGES_KEYS), ""]
    out += ["## `[[faults]]`", "", "A timeline of faults played during the run; all but `kick` need an emulator.",
            "", *key_table(s.FAULT_KEYS), "", "| action | parameters | what it does |", "|---|---|---|"]
    for action, (allowed, required) in s.FAULT_ACTIONS.items():
        params = ", ".join(f"`{p}`" + (" (required)" if p in required else "") for p in sorted(allowed))
        out.append(f"| `{action}` | {params or '—'} | {s.FAULT_MEANINGS[action]} |")
    out += ["", "Parameters:", "", *key_table(s.FAULT_PARAMETERS.values()), ""]
    out += ["## `[expectations]`", "", "Rules in the gate's grammar (`docs/gate.md`; `chatload gate --list-metrics` "
            "lists the metrics). A run that measured nothing — a population that did not connect, nothing "
            "accepted, nothing delivered — is an error whatever the rules say.", "",
            *key_table(s.EXPECTATIONS_KEYS), ""]
    out += ["## `[traffic]`", "", "A trace of real traffic replayed as the load (`docs/traces.md`): the sending "
            "populations' users send the trace's messages at its times ÷ `speed` instead of their own schedules, "
            "the listening populations' users join and leave as its users did. One process replays it.", "",
            *key_table(s.TRAFFIC_KEYS), ""]
    out += ["## Services", ""]
    for name in registry.names():
        service = registry.get(name)
        out += [f"### `service = \"{name}\"`: {service.title}", ""]
        out += [f"Real-service kind: `kind = \"{service.real_kind}\"`. A room is a {service.room_noun}.", ""]
        if service.target_keys:
            out += ["`[target]` keys:", "", *key_table(service.target_keys), ""]
        if service.token_endpoint_fields:
            out += ["`[target.token_endpoint]` keys:", "",
                    *key_table(token_endpoint.field_keys(service.token_endpoint_fields)), ""]
        if service.room_keys:
            out += [f"`[{service.rooms_table}]`:", "", *key_table(service.room_keys), ""]
        out += ["Population kinds:", "", "| kind | sends | what it does |", "|---|---|---|"]
        out += [f"| `{kind}` | {'yes' if p.sends else 'no'} | {p.description} |"
                for kind, p in service.populations.items()]
        if service.fault_actions:
            out += ["", "Faults of its own:", "", "| action | parameters |", "|---|---|"]
            out += [f"| `{action}` | {', '.join(f'`{p}`' for p in sorted(allowed))} |"
                    for action, (allowed, _required) in service.fault_actions.items()]
            out += ["", *key_table(service.fault_parameters.values())]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
