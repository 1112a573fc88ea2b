"""Benchmark child processes: the same mechanism as the emulator's (see `harness.run.childproc`)."""

from ..run.childproc import ChildStartError, JsonChildProcess

__all__ = ["ChildStartError", "JsonChildProcess"]
