"""Benchmark child processes: the same mechanism as the emulator's (see `harness.childproc`)."""

from ..childproc import ChildStartError, JsonChildProcess

__all__ = ["ChildStartError", "JsonChildProcess"]
