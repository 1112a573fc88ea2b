"""Benchmark child processes, the parent's side.

`JsonChildProcess` (a server that prints its endpoint as one JSON line, as the emulator does; see
`harness.emulation.childproc`) and `LoadClient`: a receiving child that speaks JSON lines over its stdin and
stdout (`child_protocol` is the child's side), started as `python -m <module>`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time

import orjson

from ..emulation.childproc import ChildStartError, JsonChildProcess
from .common import BenchError

__all__ = ["ChildStartError", "JsonChildProcess", "LoadClient"]


class LoadClient:
    """A receiving child process (`module`), driven over its stdin and stdout."""

    def __init__(self, module: str, *, line_limit: int = 1 << 22) -> None:
        self.module = module
        self.line_limit = line_limit  # a result line may carry every latency sample
        self.proc: asyncio.subprocess.Process | None = None
        self.log = tempfile.TemporaryFile(prefix="chatload-bench-client-")

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self.log, limit=self.line_limit,
        )

    async def send(self, message: dict) -> None:
        self.proc.stdin.write(orjson.dumps(message) + b"\n")
        await self.proc.stdin.drain()

    async def wait_event(self, name: str, timeout: float, on_progress=None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"load client sent no {name!r} within {timeout:.0f} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                code = await self.proc.wait()
                raise BenchError(f"load client exited (code {code}) before {name!r}; its log:\n{self.log_text()}")
            event = orjson.loads(line)
            if event.get("event") == name:
                return event
            if on_progress is not None:
                on_progress(event)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            try:
                await self.send({"cmd": "close"})
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, OSError, ConnectionError):
                pass
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.log.close()

    def log_text(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]
