"""Benchmark child processes: the same mechanism as the emulator's (see `harness.emulation.childproc`)."""

from ..emulation.childproc import ChildStartError, JsonChildProcess

__all__ = ["ChildStartError", "JsonChildProcess"]
