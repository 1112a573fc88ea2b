"""The locustfile `chatload run` gives Locust: user classes built from the scenario's populations.

The runner writes the scenario as run (overrides applied) to a JSON file and names it in the
environment (CHATLOAD_SCENARIO), so `--processes` workers, which import this file themselves, build
the very same classes as the report describes. A worker on another machine (`chatload worker`, which
sets CHATLOAD_MASTER instead) asks the master for that scenario before Locust's runner starts
(`harness.locust.admission`): nothing of the run is read from the worker's own disk. Each population kind's user class comes from the
scenario's service (`ChatService.populations`).
"""

import importlib
import json
import os
import sys

from harness.locust.pool import ListenerPool
from harness.results.populations import population_class_name
from harness.services import registry

if os.environ.get("CHATLOAD_SCENARIO"):
    with open(os.environ["CHATLOAD_SCENARIO"], encoding="utf-8") as _file:
        _scenario = json.load(_file)
else:
    from harness.locust.admission import MASTER_ENV, fetch_scenario

    if not os.environ.get(MASTER_ENV):
        raise SystemExit("chatload: this locustfile runs scenarios: use `chatload run SCENARIO`, or "
                         "`chatload worker --master HOST:PORT` for a worker")
    _scenario = fetch_scenario(os.environ[MASTER_ENV], float(os.environ.get("CHATLOAD_MASTER_WAIT", "300")))
if _scenario.get("token_endpoint"):
    # Header values `env:NAME` are read on every process that fetches tokens: the master checked its
    # own environment only, and a worker without the variable would fail in each user's greenlet.
    from harness.services.token_endpoint import TokenEndpoint, TokenEndpointError, resolved_headers

    try:
        resolved_headers(TokenEndpoint.from_dict(_scenario["token_endpoint"]))
    except TokenEndpointError as _exc:
        print(f"chatload worker: {_exc} on this machine (set it on every worker)", file=sys.stderr)
        raise SystemExit(2) from None
_service = registry.get(_scenario["target"]["service"])
_messages = _scenario["messages"]


def _user_class(kind: str):
    module, _, name = _service.populations[kind].user_class.partition(":")
    return getattr(importlib.import_module(module), name)


for _index, _population in enumerate(_scenario["populations"]):
    _name = population_class_name(_population["kind"], _index)
    # A pooled population (connections_per_user > 1) is users / connections_per_user pool users.
    _pooled = _population.get("connections_per_user", 1)
    _bases = (ListenerPool, _user_class(_population["kind"])) if _pooled > 1 else (_user_class(_population["kind"]),)
    globals()[_name] = type(_name, _bases, {
        "__module__": __name__,
        "fixed_count": _population["users"] // _pooled,
        "connections_per_user": _pooled,
        "reconnect": _population["reconnect"],
        "session_minutes": _population["session_minutes"],
        "message_rate": _population["message_rate"] or _messages["rate_per_chatter"],
        "message_size": (_messages["size_min"], _messages["size_max"]),
        "burst": _population["burst"],
        "burst_offset_ms": _population["burst_offset_ms"],
    })
