"""`chatload emulator --service hotsock` as a user and a program run it: the JSON ready line, the banner,
clear option errors — and no token, signing key or API key in any output, logs included."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from harness.emulation.process import EmulatorProcess as SharedEmulatorProcess
from harness.services.hotsock import codec, tokens
from harness.services.hotsock.emulator import EmulatorProcess

from .hotsock_chat import run

SECRET = "S3cr3t-hmac-key-that-must-never-be-printed-0123456789"
API_KEY = "K" * 20 + "ey-never-printed-000"  # 40 characters


def emulator_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.emulation", "--service", "hotsock", *args]


def test_the_shared_launcher_starts_it_and_reads_its_ready_line():
    with SharedEmulatorProcess(service="hotsock") as process:
        info = process.info
        assert info["service"] == "hotsock" and info["region"] == "us-east-1"
        assert info["messaging_endpoint"].startswith("ws://127.0.0.1:")
        assert info["control_endpoint"].startswith("http://127.0.0.1:")
        assert process.admin.health()["ok"]
        for name in ("hs256_secret_file", "api_key_file"):
            path = Path(info[name])
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
            assert path.read_text() not in str(info)
        assert len(Path(info["api_key_file"]).read_text()) == 40


def test_banner_names_endpoints_and_files_never_keys(tmp_path):
    env = {**os.environ, "HOTSOCK_CLI_SECRET": SECRET}
    (tmp_path / "api-key").write_text(API_KEY + "\n")
    proc = subprocess.Popen(emulator_command("--hs256-secret", "primary=env:HOTSOCK_CLI_SECRET", "--api-key",
                                             str(tmp_path / "api-key"), "--time-scale", "0.5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not (line := proc.stdout.readline()).startswith("Ctrl-C"):
            assert line, proc.stderr.read()
            lines.append(line)
        text = "".join(lines)
        assert "chatload Hotsock emulator" in lines[0]
        assert "WebSocket URL      : ws://127.0.0.1:" in text and "/v1?token=<JWT>" in text
        assert "publish URL        : http://127.0.0.1:" in text
        assert "key slot           : HMAC secret, kid primary" in text
        assert "time scale         : 0.5" in text
        assert "API key file" not in text, "a key given by the user is not reported as generated"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        out, err = proc.stdout.read(), proc.stderr.read()
        assert "emulator stopped." in out
        for secret in (SECRET, API_KEY):
            assert secret not in text + out + err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_debug_logging_shows_no_token_or_secret():
    with EmulatorProcess("--log-level", "DEBUG", service="hotsock") as emulator:
        good = emulator.mint(tokens.connect_claims({}, uid="u"))
        bad = tokens.mint(tokens.connect_claims({}), b"x" * 64)

        async def scenario():
            ws = await connect(emulator.connect_url(good), open_timeout=5)
            connected = codec.parse_server_frame(await asyncio.wait_for(ws.recv(), 5))
            await ws.close()
            try:
                await connect(emulator.connect_url(bad), open_timeout=5)
            except Exception:
                pass
            emulator.publish("room", "e", 1)
            return connected.connection_secret

        connection_secret = run(scenario())
        logs = emulator.log_text()
        secret, api_key = emulator.hs256_secret().decode(), emulator.api_key()
    for value in (good, bad, good.split(".")[2], secret, api_key, connection_secret):
        assert value not in logs
    assert "handshake refused: signature verification failed" in logs, logs[-2000:]


@pytest.mark.parametrize("args, expected", [
    (["--hs256-secret", "/no/such/file"], "--hs256-secret /no/such/file: cannot read"),
    (["--hs256-secret", "env:HOTSOCK_UNSET_VARIABLE"], "HOTSOCK_UNSET_VARIABLE is not set"),
    (["--signing-key", "kid=env:HOTSOCK_NOT_PEM"], "not a PEM public key"),
    (["--hs256-secret", "a=env:HOTSOCK_NOT_PEM", "--hs256-secret", "b=env:HOTSOCK_NOT_PEM", "--hs256-secret",
      "env:HOTSOCK_NOT_PEM"], "2 key slots; 3 keys were given"),
    (["--hs256-secret", "a=env:HOTSOCK_NOT_PEM", "--hs256-secret", "a=env:HOTSOCK_NOT_PEM"], "same KID"),
    (["--api-key", "env:HOTSOCK_NOT_PEM"], "an API key is 40 printable ASCII characters"),
    (["--time-scale", "0"], "--time-scale must be a positive number"),
])
def test_bad_options_exit_2_naming_the_option_not_the_key(args, expected):
    env = {**os.environ, "HOTSOCK_NOT_PEM": "plain-secret-value-never-shown"}
    env.pop("HOTSOCK_UNSET_VARIABLE", None)
    proc = subprocess.run(emulator_command(*args), capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "plain-secret-value-never-shown" not in proc.stdout + proc.stderr
