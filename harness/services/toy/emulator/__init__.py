"""The toy service's emulator: a websockets data plane and an aiohttp control plane."""

from .server import ToyEmulator

__all__ = ["ToyEmulator"]
