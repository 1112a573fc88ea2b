"""What a receiving child reads at a measured window's two instants: its frame count and, at the
same moment, the CPU time of itself and of the processes it watches (server, sender), how long each
waited for a CPU, and the whole machine's busy time. Every receiving child (the counting receivers,
chatload's client, the bare baselines) takes the same snapshot, so their windows compare.
"""

from __future__ import annotations

import os
import time

import psutil


def runqueue_wait_seconds(pid: int) -> float | None:
    """Time the process's threads spent runnable but waiting for a CPU (Linux schedstat), or None.

    High values mean the machine, not the process, set the pace: other processes held the cores.
    """
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None
    return total / 1e9


def cpu_seconds(process: psutil.Process | None, system_only: bool = False) -> float | None:
    if process is None:
        return None
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.system if system_only else times.user + times.system


def take_snapshot(frames: int, watched: dict[str, psutil.Process | None], **extra) -> dict:
    """Frames received and, at the same instant, the CPU time of this process and the watched ones
    (and how long each waited for a CPU); `extra` figures go in beside them."""
    machine = psutil.cpu_times()
    return {
        "wall": time.time(),
        "frames": frames,
        **extra,
        "cpu": {who: cpu_seconds(p) for who, p in watched.items()},
        "cpu_system": {who: cpu_seconds(p, system_only=True) for who, p in watched.items()},
        "wait": {who: runqueue_wait_seconds(p.pid) if p else None for who, p in watched.items()},
        # the whole machine, so the benchmark can tell how much other processes took meanwhile
        "machine_busy": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
        "machine_steal": getattr(machine, "steal", 0.0),
        "machine_total": sum(machine),
    }


class WindowSampler:
    """Takes a window's two snapshots from a thread of its own, at the exact wall-clock instants.

    Not from the event loop: under a backlog one loop iteration reads every ready socket, which can
    take seconds, so a loop timer can fire seconds late (both of a window's timers in one iteration,
    in the worst case). `count` must be safe to call from another thread (a monotonic int read).
    """

    def __init__(self, count, watched: dict, *, start_thread=None, sleep=None) -> None:
        import _thread

        self.count = count
        self.watched = watched
        self.start_thread = start_thread or _thread.start_new_thread
        self.sleep = sleep or time.sleep
        self.snapshots: dict[str, dict] = {}
        self.window: tuple[float, float] | None = None

    def schedule(self, start: float, end: float) -> None:
        snapshots: dict[str, dict] = {}
        self.snapshots, self.window = snapshots, (start, end)

        def run() -> None:
            for name, at in (("start", start), ("end", end)):
                delay = at - time.time()
                if delay > 0:
                    self.sleep(delay)
                snapshots[name] = take_snapshot(self.count(), self.watched)

        self.start_thread(run, ())

    @property
    def pending(self) -> bool:
        return self.window is not None and "end" not in self.snapshots
