"""`chatload emulator` as a user runs it: banner, rooms file, clear errors, Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from harness.services.ivschat.emulator import EmulatorProcess


def test_rooms_file_creates_rooms_with_pinned_arns(tmp_path):
    rooms = tmp_path / "rooms.toml"
    rooms.write_text('[[rooms]]\nid = "lobby0000001"\nname = "lobby"\nmaximumMessageRatePerSecond = 100\n'
                     'tags = { team = "chat" }\n\n[[rooms]]\nname = "quiet"\n')
    with EmulatorProcess("--rooms-file", str(rooms)) as emulator:
        client = emulator.boto3_client()
        lobby = client.get_room(identifier="arn:aws:ivschat:us-east-1:123456789012:room/lobby0000001")
        assert (lobby["name"], lobby["maximumMessageRatePerSecond"], lobby["tags"]) == ("lobby", 100, {"team": "chat"})
        assert sorted(r["name"] for r in client.list_rooms()["rooms"]) == ["lobby", "quiet"]


@pytest.mark.parametrize("content, expected", [
    ('[[rooms]]\nname = "x"\nmaximumMessageRatePerSecnd = 5\n', "rooms[0].maximumMessageRatePerSecnd: unknown key"),
    ('[[rooms]]\nmaximumMessageRatePerSecond = 500\n', "rooms[0].maximumMessageRatePerSecond: must be at least 1"),
    ('[[rooms]]\nname = "bad name!"\n', "rooms[0].name: must match the pattern"),
    ('[[rooms]]\nid = "short"\n', "rooms[0].id: must be 12 characters"),
    ('[[rooms]]\nid = "AAAAAAAAAAAA"\n[[rooms]]\nid = "AAAAAAAAAAAA"\n', "rooms[1].id: room AAAAAAAAAAAA is defined twice"),
    ('rooms = 3\n', "expected exactly one key, `rooms`"),
    ('[[rooms]\n', "not valid TOML"),
])
def test_bad_rooms_file_names_file_key_and_reason(tmp_path, content, expected):
    rooms = tmp_path / "rooms.toml"
    rooms.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "harness.emulation", "--rooms-file", str(rooms)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert str(rooms) in proc.stderr and expected in proc.stderr, proc.stderr


def test_banner_and_clean_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "harness.emulation"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        assert "messaging endpoint : ws://127.0.0.1:" in lines[1]
        assert "control endpoint   : http://127.0.0.1:" in lines[2]
        assert proc.stdout.readline().strip() == "Ctrl-C to stop."
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "emulator stopped." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_port_in_use_is_a_clear_error():
    with EmulatorProcess() as running:
        port = running.messaging_endpoint.rsplit(":", 1)[1]
        proc = subprocess.run([sys.executable, "-m", "harness.emulation", "--port", port],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "cannot listen" in proc.stderr, proc.stderr


def test_emulator_child_never_outlives_its_parent(tmp_path):
    import os
    import time

    script = tmp_path / "parent.py"
    script.write_text("import os\nfrom harness.services.ivschat.emulator import EmulatorProcess\n"
                      "print(EmulatorProcess().start().pid, flush=True)\nos._exit(0)  # no clean-up at all\n")
    parent = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert parent.returncode == 0 and parent.stdout.strip().isdigit(), parent.stderr
    child = int(parent.stdout)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"emulator {child} outlived its parent"
        time.sleep(0.05)


def test_the_shared_launcher_prefers_no_service():
    """Only the command line has a default service (the README's `chatload emulator`); code names one."""
    from harness.emulation.process import EmulatorProcess as SharedEmulatorProcess

    with pytest.raises(TypeError, match="needs a service"):
        SharedEmulatorProcess()
    assert SharedEmulatorProcess(service="toy").service == "toy"  # not started: nothing runs
    assert EmulatorProcess().service == "ivschat"  # a service's own launcher names its service
