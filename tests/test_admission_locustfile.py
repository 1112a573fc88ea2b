"""With a worker secret, the master does not hand its locustfile to a peer that asks (`locust -f -
--worker` asks before any hello, with no secret): a real Locust master on loopback, in a child process
(Locust patches gevent), asked over its own ZeroMQ channel as Locust's worker asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.run.worker import SECRET_ENV

ROOT = Path(__file__).resolve().parents[1]

ASK = """
import json, socket, sys
import gevent
from locust import __version__
from locust.env import Environment
from locust.rpc import Message, zmqrpc
from harness.locust.admission import Admission

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
environment = Environment(parsed_locustfiles=[sys.argv[1]])
runner = environment.create_master_runner("127.0.0.1", port)
Admission(environment, runner)
client = zmqrpc.Client("127.0.0.1", port, "stranger_locustfile_1")
client.send(Message("locustfile", {"version": __version__}, "stranger_locustfile_1"))
answer = gevent.spawn(client.recv).get(timeout=10)
client.close()
runner.quit()
print(json.dumps({"type": answer.type, "data": answer.data}))
"""


def _ask_for_the_locustfile(secret: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    done = subprocess.run([sys.executable, "-c", ASK, __file__], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**env, **({SECRET_ENV: secret} if secret else {})})
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["type"] == "locustfile"
    return answer["data"]


def test_with_a_secret_an_unadmitted_peer_gets_no_locustfile_and_is_told_why():
    answer = _ask_for_the_locustfile("admit-me-0123456789")
    assert "locustfiles" not in answer and "does not hand out its locustfile" in answer["error"]


def test_without_a_secret_the_locustfile_is_handed_out_as_plain_locust_does():
    answer = _ask_for_the_locustfile("")
    assert [f["filename"] for f in answer["locustfiles"]] == [Path(__file__).name]


def test_admission_wraps_the_master_before_the_target_is_set_up():
    """Locust calls init listeners in the order they were added, which is the order their modules
    were imported. On a master, target_setup's init may start an emulator or provision rooms and
    yield meanwhile; a worker's hello that lands then must already meet admission's secret check
    (once, a top-level import of target_setup in progress.py put it first)."""
    probe = ("import harness.services.ivschat.users\n"
             "from locust import events\n"
             "print(' '.join(h.__module__ for h in events.init._handlers))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    order = proc.stdout.split()
    assert order.index("harness.locust.admission") < order.index("harness.locust.target_setup"), order
