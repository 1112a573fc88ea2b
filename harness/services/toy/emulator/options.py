"""`chatload emulator --service toy`: no options of its own."""

from __future__ import annotations

from .server import ToyEmulator

TITLE = "toy echo-broadcast"

def add_arguments(parser) -> None:
    pass


def build(args) -> ToyEmulator:
    return ToyEmulator(host=args.host, port=args.port, control_port=args.control_port)


def banner(emulator: ToyEmulator) -> list[str]:
    return [f"data plane    : {emulator.messaging_endpoint}/?token=…", f"control plane : {emulator.control_endpoint}"]
