"""The child side of the JSON-lines protocol every load-client child speaks (`counting_receivers`,
and IVS Chat's `bare_websockets_client`, `bare_picows_client`, `chatload_client`): the config line,
events on stdout, the processes it watches, and the `drain` command's wait."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import orjson
import psutil


def emit(event: dict) -> None:
    sys.stdout.buffer.write(orjson.dumps(event) + b"\n")
    sys.stdout.flush()


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Pin every thread of `pid` (Linux applies sched_setaffinity per thread)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def apply_config(line: bytes) -> dict:
    """The parent's config line; pins this process first when it names CPUs."""
    config = orjson.loads(line)
    if config.get("cpus"):
        set_affinity(os.getpid(), set(config["cpus"]))
    return config


def watched_processes(pids: dict[str, int | None]) -> dict[str, psutil.Process | None]:
    """The processes whose CPU a window snapshot reads: the parent's (server, sender …) and this one."""
    watched = {name: _process(pid) for name, pid in pids.items()}
    watched["client"] = psutil.Process()
    return watched


def _process(pid: int | None) -> psutil.Process | None:
    try:
        return psutil.Process(pid) if pid else None
    except psutil.Error:
        return None


async def open_stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def run_on_uvloop(main_async) -> int:
    import uvloop

    try:
        return uvloop.run(main_async())
    except KeyboardInterrupt:
        return 130


async def wait_for_frames(count, expected: int, timeout: float, stall: float, sleep) -> str:
    """Wait until `count()` reaches `expected`, stops moving for `stall` s, or `timeout` passes."""
    started = last_change = time.monotonic()
    last = count()
    while count() < expected:
        await sleep(0.05)
        now, current = time.monotonic(), count()
        if current != last:
            last, last_change = current, now
        elif now - last_change >= stall:
            return "stalled"
        if now - started >= timeout:
            return "timeout"
    return "complete"
