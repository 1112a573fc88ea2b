"""Thread ownership said in the code: `@runs_on_loop` / `@runs_in_greenlet` (harness/threads/marks.py).

Off (the default), a mark is an attribute and nothing else: the function itself, no wrapper on
any path. With CHATLOAD_CHECK_THREADS=1 a call from the wrong thread raises AssertionError naming
the function and both threads; an end-to-end run in that mode is in test_locust_chat.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.runtime.hub_side import ChatRuntime
from harness.runtime.loop_side import LoopSide
from harness.services import registry
from harness.session.chat_session import ChatSession, SessionState
from harness.threads import marks as threads

from .locust_run import ROOT


def test_marks_are_free_when_checks_are_off():
    assert not threads.CHECKING
    assert ChatSession.on_frame.runs_on == threads.LOOP and not hasattr(ChatSession.on_frame, "__wrapped__")
    assert LoopSide.fetch_token.runs_on == threads.LOOP
    assert ChatRuntime.new_session.runs_on == ChatRuntime.call_session.runs_on == threads.GREENLET


def test_a_services_overrides_inherit_the_contracts_marks():
    for name in ("ivschat", "hotsock", "chime", "ivsrealtime", "toy"):
        service = registry.get(name)
        protocol = type(service.client_protocol.__func__(service, _user()))
        assert protocol.receive.runs_on == protocol.send_message.runs_on == threads.LOOP, name
        assert type(service).connect_params.runs_on == type(service).client_protocol.runs_on == threads.LOOP
        assert type(service).token_provider.runs_on == type(service).publish.runs_on == threads.GREENLET


def test_session_states_read_as_their_words():
    assert SessionState.OPEN == "open" and f"{SessionState.STOPPED}" == "stopped"
    assert json.dumps({"state": SessionState.CLOSED}) == '{"state": "closed"}'


def test_in_checking_mode_a_call_from_the_wrong_thread_raises_naming_the_method_and_both_threads():
    env = {**os.environ, "CHATLOAD_CHECK_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.thread_check_run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["checking"]
    session_stop, protocol, probe, policy = result["errors"]
    assert "ChatSession.stop runs on the loop thread" in session_stop
    assert "called on the main thread (the gevent hub's)" in session_stop
    assert "ToyService.client_protocol runs on the loop thread" in protocol, protocol
    assert "GcPauseProbe.take runs on a greenlet on the gevent hub's thread" in probe
    assert "called on loop thread 'chatload-loop'" in probe
    assert ".sdk_policy runs on a greenlet" in policy and "'chatload-loop'" in policy
    assert result["right"][1] == "ToyProtocol" and result["right"][2].startswith("ws://127.0.0.1:9"), result["right"]
    assert result["right"][4] == type(registry.get("toy").sdk_policy()).__name__
    assert "thread check" in proc.stderr  # logged as well as raised


def _user():
    from harness.services.base import UserSpec

    return UserSpec("s1", "user-s1", "room")
