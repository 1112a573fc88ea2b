"""An emulator of Amazon IVS Chat: the messaging WebSocket, the boto3 control plane, faults, metrics."""

from .process import EmulatorProcess
from .server import Emulator

__all__ = ["Emulator", "EmulatorProcess"]
