"""Run as a child process (it monkey-patches gevent, as Locust does): ramp many users on one runtime
while its ticker runs at 2 kHz, then report whether the ticker is still alive.

Before sessions were registered on the loop thread, `new_session` inserted into the sessions dict
on the gevent hub while the loop iterated it every tick: `RuntimeError: dictionary changed size
during iteration` ended the ticker for the rest of the run (no timeline, no expiry of unanswered
requests). Prints one JSON line.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from locust.env import Environment  # noqa: E402

import harness.runtime.loop_side as loop_side_module  # noqa: E402
from harness.runtime.hub_side import ChatRuntime  # noqa: E402
from harness.services import registry  # noqa: E402
from harness.services.base import KIND_RUNNING_EMULATOR, Target  # noqa: E402
from harness.services.tokens import TokenProvider  # noqa: E402
from harness.session.chat_session import SessionState  # noqa: E402


class InstantTokens(TokenProvider):
    name = "test"

    def fetch(self, request) -> str:
        return "token"


def main(users: int, break_once: bool) -> dict:
    loop_side_module.TICK_S = loop_side_module.INTERVAL_S = 0.0005
    # Nothing listens on port 9: every connect is refused at once, so sessions churn on the loop.
    target = Target("toy", KIND_RUNNING_EMULATOR, "ws://127.0.0.1:9", "http://127.0.0.1:9", rooms=("room",))
    runtime = ChatRuntime(Environment(), registry.get("toy"), target, InstantTokens(), connect_timeout=1)
    if break_once:  # a bug in something the ticker calls must not end the ticker
        loop_side = runtime.loop_side  # the loop's: the ticker reads the replacement there
        original = loop_side._expire_pending
        calls = {"n": 0}

        def fails_once() -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise ValueError("injected")
            original()

        loop_side._expire_pending = fails_once
    snapshots: list[dict] = []
    runtime.sink = snapshots.append
    gevent.sleep(0.1)
    for index in range(users):
        runtime.new_session("user", reconnect="backoff")
        if index % 20 == 0:
            gevent.sleep(0)
    during = len(snapshots)
    # A live ticker keeps posting snapshots (slowly, with thousands of sessions churning); a dead one
    # never posts another. Wait on that, with a deadline.
    deadline = time.monotonic() + 15
    while len(snapshots) < during + 5 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    after = len(snapshots)
    handles_open = sum(1 for h in runtime.handles.values() if h.state is not SessionState.NEW)
    registered, ticker_errors = runtime.loop_thread.ask(lambda: (len(runtime.loop_side.sessions),
                                                                 runtime.loop_side.ticker_errors))
    result = {"snapshots_during_ramp": during, "snapshots_after": after, "ticker_errors": ticker_errors,
              "registered": registered, "handles_with_posted_state": handles_open}
    runtime.close()
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2:] == ["--break-once"])), flush=True)
