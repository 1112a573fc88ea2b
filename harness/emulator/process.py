"""Run the emulator as a child process and learn its endpoints.

The child is `python -m harness.emulator --json …`: it binds (port 0 = free ports), prints exactly one
JSON line with its endpoints on stdout, and logs to stderr. We wait for that line with a deadline
instead of polling ports, and keep stderr in a file so a failed start can say why.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time

import orjson

from .client import EmulatorAdmin


class EmulatorStartError(RuntimeError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends the child SIGINT when its parent dies, however the parent ends
    (an error during start-up, SIGKILL, …), so no emulator outlives the run that started it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class EmulatorProcess:
    def __init__(self, *extra_args: str, host: str = "127.0.0.1", startup_timeout: float = 20.0) -> None:
        self.args = ["--host", host, "--port", "0", "--control-port", "0", *extra_args]
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._log = tempfile.NamedTemporaryFile(prefix="chatload-emulator-", suffix=".log", delete=False)

    def start(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.emulator", "--json", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            # Its own process group: a Ctrl-C in the terminal goes to the parent, which stops the
            # emulator last, after the load has drained (death of the parent still ends it).
            start_new_session=True,
        )
        line = self._read_ready_line()
        try:
            self.info = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.stop()
            raise EmulatorStartError(
                f"emulator printed {line[:200]!r} instead of its endpoints; log:\n{self.log_text()}") from None
        return self

    def _read_ready_line(self) -> bytes:
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    raise EmulatorStartError(
                        f"emulator did not report ready within {self.startup_timeout:.0f} s; log:\n{self.log_text()}")
                if selector.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        code = self.proc.wait()
                        raise EmulatorStartError(f"emulator exited with code {code} during start-up; log:\n"
                                                 f"{self.log_text()}")
                    buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ctrl-C the child (it shuts down cleanly), then kill it if it does not go in time."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log.name)

    def log_text(self) -> str:
        with open(self._log.name, "rb") as f:
            return f.read().decode(errors="replace")[-8000:]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def messaging_endpoint(self) -> str:
        return self.info["messaging_endpoint"]

    @property
    def control_endpoint(self) -> str:
        return self.info["control_endpoint"]

    @property
    def region(self) -> str:
        return self.info["region"]

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.control_endpoint)

    def boto3_client(self, **config):
        """A real boto3 `ivschat` client aimed at this emulator (credentials are not checked)."""
        import boto3

        return boto3.client(
            "ivschat", endpoint_url=self.control_endpoint, region_name=self.region,
            aws_access_key_id="emulator", aws_secret_access_key="emulator", **config,
        )
