"""Benchmark child processes: start one, learn what it printed as its ready line, stop it cleanly.

The same pattern as `harness/emulator/process.py`: the child prints exactly one JSON line on stdout
when it is ready and logs to stderr (kept in a file, so a failed start can say why). Stopping is
SIGINT first — every child here shuts down cleanly on it — then SIGKILL after a deadline.
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


class ChildStartError(RuntimeError):
    pass


class JsonChildProcess:
    def __init__(self, module: str, *args: str, startup_timeout: float = 20.0) -> None:
        self.command = [sys.executable, "-m", module, *args]
        self.module = module
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._log = tempfile.NamedTemporaryFile(prefix="chatload-bench-", suffix=".log", delete=False)

    def start(self) -> JsonChildProcess:
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        line = self._read_ready_line()
        try:
            self.info = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.stop()
            raise ChildStartError(f"{self.module} printed {line[:200]!r}; log:\n{self.log_text()}") from None
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
                    raise ChildStartError(f"{self.module} not ready within {self.startup_timeout:.0f} s; "
                                          f"log:\n{self.log_text()}")
                if selector.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        code = self.proc.wait()
                        raise ChildStartError(f"{self.module} exited with code {code} during start-up; log:\n"
                                              f"{self.log_text()}")
                    buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
        return self.proc.returncode

    def __enter__(self) -> JsonChildProcess:
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
