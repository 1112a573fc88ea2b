"""Run as a child process with CHATLOAD_CHECK_THREADS=1 (it monkey-patches gevent, as Locust does):
call a loop-only method from the hub's thread and a greenlet-only one from the loop thread, and
each the right way round. Prints one JSON line: the AssertionError messages, and what the right
calls returned."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from harness.metrics.histograms import Recorder  # noqa: E402
from harness.metrics.ledger_record import DeliveryLedger  # noqa: E402
from harness.net.reconnect import SdkLike  # noqa: E402
from harness.runtime.probes import GcPauseProbe  # noqa: E402
from harness.services import registry  # noqa: E402
from harness.services.base import Target, UserSpec  # noqa: E402
from harness.session.chat_session import ChatSession  # noqa: E402
from harness.threads import marks as threads  # noqa: E402
from harness.threads.boundary import LoopThread  # noqa: E402


def main() -> dict:
    loop_thread = LoopThread().start()
    runtime = SimpleNamespace(recorder=Recorder(), ledger=DeliveryLedger(), service=None, clock_offset_ns=0)
    session = ChatSession(runtime, None, UserSpec("s1", "user-s1", "room"), SdkLike())
    probe = GcPauseProbe()
    toy = registry.get("toy")
    target = Target("toy", "running-emulator", "ws://127.0.0.1:9", "http://127.0.0.1:9", rooms=("room",))
    result: dict = {"checking": threads.CHECKING, "errors": []}
    wrong = [
        lambda: session.stop(),  # a session's method, from the hub
        lambda: toy.client_protocol(UserSpec("s2", "user-s2", "room")),  # a contract hook, from the hub
        lambda: loop_thread.ask(probe.take),  # a hub-side reader, on the loop
        lambda: loop_thread.ask(toy.sdk_policy),  # a greenlet hook, on the loop
    ]
    for call in wrong:
        try:
            call()
            result["errors"].append(None)
        except AssertionError as exc:
            result["errors"].append(str(exc))
    right = [
        lambda: loop_thread.ask(session.stop),
        lambda: type(loop_thread.ask(toy.client_protocol, UserSpec("s3", "user-s3", "room"))).__name__,
        lambda: loop_thread.ask(toy.connect_params, target, "token", UserSpec("s4", "user-s4", "room")).url,
        lambda: probe.take(),
        lambda: type(toy.sdk_policy()).__name__,
    ]
    result["right"] = [call() for call in right]
    probe.stop()
    loop_thread.stop()
    return result


if __name__ == "__main__":
    print(json.dumps(main()), flush=True)
