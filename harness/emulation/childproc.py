"""Child processes that print one JSON line on stdout when ready: start, learn the line, stop.

The child logs to stderr, kept in a temporary file so a failed start can say why; the file goes when
the child is stopped (a run leaves nothing behind in the temp folder). We wait for the ready line
with a deadline instead of polling ports. Children sit in their own process group (a terminal's
Ctrl-C reaches only the parent, which stops them in its own order) and, on Linux, the kernel ends
them when the parent dies however it dies (PR_SET_PDEATHSIG), so none outlives its run.
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


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class JsonChildProcess:
    error = ChildStartError  # subclasses name their own

    def __init__(self, module: str, *args: str, startup_timeout: float = 20.0, name: str | None = None) -> None:
        self.command = [sys.executable, "-m", module, *args]
        self.name = name or module
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._log = None

    def start(self):
        self._log = tempfile.NamedTemporaryFile(prefix="chatload-child-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            start_new_session=True,
        )
        line = self._read_ready_line()
        try:
            self.info = orjson.loads(line)
        except orjson.JSONDecodeError:
            self._fail(f"{self.name} printed {line[:200]!r} instead of its ready line")
        return self

    def _fail(self, message: str):
        """Stop the child and raise, with its log (read before stopping removes it)."""
        log = self.log_text()
        self.stop()
        raise self.error(f"{message}; log:\n{log}") from None

    def _read_ready_line(self) -> bytes:
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail(f"{self.name} did not report ready within {self.startup_timeout:.0f} s")
                if selector.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        self._fail(f"{self.name} exited with code {self.proc.wait()} during start-up")
                    buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ctrl-C the child (it shuts down cleanly), then kill it if it does not go in time."""
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
            self._remove_log()
        return self.proc.returncode

    def _remove_log(self) -> None:
        if self._log is None:
            return
        self._log.close()
        try:
            os.unlink(self._log.name)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        if self._log is None:
            return "(not started)"
        try:
            with open(self._log.name, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except FileNotFoundError:
            return "(the child was stopped; its log is gone)"

    @property
    def pid(self) -> int:
        return self.proc.pid
