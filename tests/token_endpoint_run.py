"""Run as a child process (it monkey-patches gevent, as Locust does): users of one service get their
tokens from the test's token app (tests/token_app.py) through the runtime's real fetch path and
connect to a running emulator. Prints one JSON line: the runtime's counters, each user's last
state, the failure messages Locust was told, and when each user's connection opened.

    python -m tests.token_endpoint_run SPEC_JSON

SPEC: service, endpoint and control (the emulator), settings (the target's), token_endpoint (a
TokenEndpoint dict), groups [[prefix, count, reconnect, capabilities]], drop ("" or a prefix whose
users are dropped once all are open, then awaited back), per_connect (counters to await, one per
connect, e.g. subscribe_token_fetches), wait_s; `hang_in_greenlet` (seconds): use
instead a greenlet provider that never answers, with that timeout, and `grace_s` the runtime's grace.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from locust.env import Environment  # noqa: E402

import harness.runtime.loop_side as loop_side_module  # noqa: E402
from harness.emulation.client import EmulatorAdmin  # noqa: E402
from harness.runtime.hub_side import ChatRuntime  # noqa: E402
from harness.services import registry  # noqa: E402
from harness.services.base import KIND_RUNNING_EMULATOR, RoomSettings, Target  # noqa: E402
from harness.services.token_endpoint import TokenEndpoint  # noqa: E402
from harness.services.tokens import TokenProvider  # noqa: E402
from harness.session.token_fetch import EndpointTokens  # noqa: E402


class NeverAnswers(TokenProvider):
    """A greenlet provider whose fetch never returns: the runtime's bound must end it."""

    name = "never"

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def fetch(self, request) -> str:
        gevent.sleep(3600)
        return "never"


def wait_until(condition, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if condition():
            return True
        gevent.sleep(0.02)
    return condition()


def main(spec: dict) -> dict:
    service = registry.get(spec["service"])
    target = service.provision(Target(service.name, KIND_RUNNING_EMULATOR, spec["endpoint"], spec["control"],
                                      settings=spec.get("settings", {})), RoomSettings(1), "tokenep")
    environment = Environment()
    failures: list[str] = []
    environment.events.request.add_listener(
        lambda name, exception=None, **_: failures.append(f"{name}: {exception}") if exception else None)
    if "hang_in_greenlet" in spec:
        loop_side_module.FETCH_GRACE_S = spec["grace_s"]
        provider = NeverAnswers(spec["hang_in_greenlet"])
    else:
        provider = EndpointTokens(TokenEndpoint.from_dict(spec["token_endpoint"]))
    runtime = ChatRuntime(environment, service, target, provider, connect_timeout=5)
    handles = [runtime.new_session(prefix, capabilities, reconnect)
               for prefix, count, reconnect, capabilities in spec["groups"] for _ in range(count)]
    deadline = time.monotonic() + spec.get("wait_s", 15)
    settled = wait_until(lambda: all(h.state in ("open", "stopped") for h in handles), deadline)
    opened = {h.user_id: time.time() for h in handles if h.state == "open"}
    dropped = []
    counters = lambda: runtime.loop_thread.ask(lambda: dict(runtime.recorder.totals()["counters"]))  # noqa: E731
    if spec.get("drop") and settled:
        dropped = [h.user_id for h in handles if h.user_id.startswith(spec["drop"]) and h.state == "open"]
        before = counters().get("connects", 0)
        EmulatorAdmin(target.control_endpoint).drop(users=dropped, mode="abrupt")
        wait_until(lambda: counters().get("connects", 0) >= before + len(dropped), deadline + 10)
    if spec.get("per_connect"):  # e.g. subscribe tokens: one per connection, fetched after it opened
        wait_until(lambda: all(counters().get(name, 0) >= counters().get("connects", 0)
                               for name in spec["per_connect"]), deadline + 10)
    totals = runtime.loop_thread.ask(lambda: runtime.recorder.totals()["counters"])
    result = {"counters": dict(totals), "states": {h.user_id: h.state for h in handles}, "failures": failures,
              "opened": opened, "dropped": dropped, "settled": settled}
    result["final_counters"] = runtime.loop_thread.ask(runtime.loop_side.final, 0)["totals"]["counters"]
    runtime.close()
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
