"""An emulator of a Hotsock installation: the WebSocket, the publish and client HTTP APIs, faults, metrics."""

from .process import EmulatorProcess
from .server import Emulator

__all__ = ["Emulator", "EmulatorProcess"]
