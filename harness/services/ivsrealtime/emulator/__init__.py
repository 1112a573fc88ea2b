"""An emulator of Amazon IVS Real-Time stages: the `ivs-realtime` control plane, ES384 participant
tokens, the events WebSocket (STAGE_STATE, PING, JOIN_ERROR, DISCONNECT), a WHIP stub, faults, metrics."""

from .process import EmulatorProcess
from .server import Emulator

__all__ = ["Emulator", "EmulatorProcess"]
