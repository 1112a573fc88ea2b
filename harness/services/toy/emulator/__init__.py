"""The toy service's emulator: a data plane (`ToyPlane`) and a control app (`ToyEmulator`) on two ports."""

from .server import ToyEmulator

__all__ = ["ToyEmulator"]
