"""An emulator of Amazon Chime SDK meetings: the signaling WebSocket (data messages), the boto3
`chime-sdk-meetings` control plane, faults, metrics."""

from .process import EmulatorProcess
from .server import ChimeEmulator

__all__ = ["ChimeEmulator", "EmulatorProcess"]
