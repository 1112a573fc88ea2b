"""Workers on other machines: admission by a shared secret, and the scenario sent from the master.

Locust's workers authenticate with nothing: a `client_ready` from anyone who reaches the master's
port makes them a worker, and they get users (and the target) at once. Locust has no hook to refuse
one, so the master's `handle_message` is wrapped (one owning greenlet: Locust's client listener):

- `chat_scenario`, asked by `harness/run/locustfile.py` on a worker before Locust's own runner
  exists (from a temporary client id, like Locust's `-f -`): the answer is the scenario as run, or a
  refusal when the secret is wrong. The scenario, and the target in it, never come from a local file.
- `client_ready` from a worker not yet admitted is acknowledged (so its runner finishes starting and
  fires `init`) but not registered: it counts for nothing and gets no users.
- `chat_hello`, sent by the worker's `init` listener, carries the secret and what the report says of
  the worker (host, CPUs): right, the held `client_ready` is replayed into Locust; wrong, the worker is
  told why and asked to quit. Any other message from an unadmitted worker is dropped.
- `locustfile` (a `locust -f - --worker` asking for the master's locustfile) carries no secret: with a
  secret set it is refused with an error, so a stranger cannot download the run's locustfile.

The secret (CHATLOAD_WORKER_SECRET, the same on master and workers) is compared in constant time but
travels in the clear: ZeroMQ's channel is not encrypted, so this keeps strangers' workers out of a run,
not eavesdroppers out of a network. Without a secret every worker is admitted, as in plain Locust, and
`chatload run` warns when its master listens beyond loopback.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import os
import socket
import sys
import uuid

import gevent
import gevent.event
from locust import __version__ as locust_version
from locust import events
from locust.rpc import Message, zmqrpc
from locust.runners import MasterRunner, WorkerRunner

from ..distributed.environment import MASTER_ENV, SECRET_ENV  # noqa: F401 - MASTER_ENV for the scenario locustfile
from .options import option
from .progress import progress_line

log = logging.getLogger("chatload")
_PASS_UNADMITTED = {"chat_scenario", "chat_hello", "client_ready"}
LOCUSTFILE_REFUSED = ("this master has a worker secret and does not hand out its locustfile (a `locustfile` "
                      "request carries no secret): have the locustfile on each worker, or use `chatload worker`")


def secret() -> str:
    return os.environ.get(SECRET_ENV, "")


def secret_matches(offered) -> bool:
    expected = secret()
    return not expected or (isinstance(offered, str) and hmac.compare_digest(offered.encode(), expected.encode()))


def host_facts() -> dict:
    """What the report says of the machine a process runs on."""
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "pid": os.getpid()}


# -- the master ------------------------------------------------------------------------------------------


class Admission:
    """The master's gate, owned by Locust's client-listener greenlet (it calls handle_message)."""

    def __init__(self, environment, runner: MasterRunner) -> None:
        if secret() and "self.handle_message(" not in inspect.getsource(MasterRunner.client_listener):
            # A Locust whose listener does not route through handle_message would ignore the wrap:
            # every worker admitted while the operator believes a secret guards the run.
            raise SystemExit(f"chatload: this Locust ({locust_version}) cannot be made to check {SECRET_ENV}: "
                             "its master does not route worker messages through handle_message; upgrade Locust")
        self.environment = environment
        self.runner = runner
        self.admitted: dict[str, dict] = {}  # client id → hello facts
        self.announced: set[str] = set()  # workers whose hello was passed on to `chatload run`
        self.held: dict[str, Message] = {}  # client id → its client_ready, until its hello
        self.refused: list[dict] = []
        self.original = runner.handle_message
        runner.handle_message = self.handle_message

    def handle_message(self, client_id: str, msg: Message) -> None:
        node = msg.node_id or client_id
        if msg.type == "chat_scenario":
            self._answer_scenario(client_id, msg)
        elif msg.type == "chat_hello":
            self._hello(node, msg.data or {})
        elif msg.type == "locustfile" and secret():  # `-f -` workers ask before any hello: no secret to check
            self._refuse(client_id, msg.data or {}, "asked for the locustfile")
            self.runner.server.send_to_client(Message("locustfile", {"error": LOCUSTFILE_REFUSED}, client_id))
        elif node in self.admitted or not secret():
            if msg.type == "client_ready" and node not in self.admitted:
                self.admitted[node] = {}  # a plain `locust --worker`: admitted, facts unknown
            self.original(client_id, msg)
        elif msg.type == "client_ready":
            self.held[node] = msg
            self.runner.server.send_to_client(Message("ack", {"index": -1}, node))
        elif msg.type not in _PASS_UNADMITTED:
            log.debug("chatload: dropped %s from unadmitted worker %s", msg.type, node)
        else:
            self.original(client_id, msg)

    def _answer_scenario(self, client_id: str, msg: Message) -> None:
        data = msg.data or {}
        if not secret_matches(data.get("secret")):
            self._refuse(client_id, data, "wrong worker secret")
            self.runner.server.send_to_client(Message("chat_scenario", {"error": self.refused[-1]["reason"]},
                                                      client_id))
            return
        if not os.environ.get("CHATLOAD_SCENARIO"):
            self.runner.server.send_to_client(Message("chat_scenario", {
                "error": "this master runs a locustfile, not a scenario: start its workers with "
                         "`locust -f THE_SAME_LOCUSTFILE --worker --master-host …`"}, client_id))
            return
        with open(os.environ["CHATLOAD_SCENARIO"], encoding="utf-8") as f:
            scenario = json.load(f)
        self.runner.server.send_to_client(Message("chat_scenario", {"scenario": scenario}, client_id))

    def _hello(self, node: str, data: dict) -> None:
        facts = {k: data.get(k) for k in ("host", "cpus", "pid")}
        if not secret_matches(data.get("secret")):
            self._refuse(node, data, "wrong worker secret")
            self.held.pop(node, None)
            self.runner.server.send_to_client(Message("chat_refused", {"reason": "wrong worker secret"}, node))
            self.runner.server.send_to_client(Message("quit", None, node))
            return
        self.admitted[node] = facts
        held = self.held.pop(node, None)
        if held is not None:
            self.original(node, held)
        if node not in self.announced:
            self.announced.add(node)
            log.info("chatload: worker %s admitted (host %s, %s CPUs)", node, facts["host"], facts["cpus"])
            self._progress({"event": "worker", "id": node, "admitted": True, **facts})

    def _refuse(self, who: str, data: dict, reason: str) -> None:
        row = {"id": who, "host": data.get("host"), "reason": reason}
        self.refused.append(row)
        log.error("chatload: refused worker %s (host %s): %s", who, row["host"], reason)
        self._progress({"event": "worker", "admitted": False, **row})

    def _progress(self, record: dict) -> None:
        if option(self.environment, "chat_progress_file"):
            progress_line(self.environment, record)


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    if isinstance(runner, MasterRunner):
        environment._chatload_admission = Admission(environment, runner)
    elif isinstance(runner, WorkerRunner):
        runner.register_message("chat_refused", _refused)
        runner.send_message("chat_hello", {"secret": secret(), **host_facts()})


def _refused(environment, msg, **_kwargs) -> None:
    log.error("chatload: the master refused this worker: %s", msg.data["reason"])
    environment.process_exit_code = 2


# -- a worker, before Locust's runner exists -----------------------------------------------------------------


def fetch_scenario(master: str, timeout: float) -> dict:
    """The scenario as run, from the master at `master` (HOST:PORT), asked until it answers or
    `timeout` s pass. Exits (SystemExit, with the reason) when refused or unanswered."""
    host, _, port = master.rpartition(":")
    client_id = f"{socket.gethostname()}_chatload_scenario_{uuid.uuid4().hex}"
    client = zmqrpc.Client(host.strip("[]"), int(port), client_id)
    answered = gevent.event.Event()

    def ask() -> None:
        while not answered.is_set():
            client.send(Message("chat_scenario", {"secret": secret(), **host_facts()}, client_id))
            gevent.sleep(1.0)

    asking = gevent.spawn(ask)
    try:
        msg = gevent.spawn(client.recv).get(timeout=timeout)
    except gevent.Timeout:
        raise SystemExit(f"chatload worker: no answer from the master at {master} within {timeout:g} s "
                         "(is `chatload run --workers N --master-bind-host …` running, and its port open?)") from None
    finally:
        answered.set()
        asking.kill()
        client.close()
    if msg.type != "chat_scenario":
        raise SystemExit(f"chatload worker: the master at {master} answered {msg.type!r}, not a scenario")
    if "error" in msg.data:
        print(f"chatload worker: the master at {master} refused this worker: {msg.data['error']}", file=sys.stderr)
        raise SystemExit(2)
    return msg.data["scenario"]
