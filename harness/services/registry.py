"""The services chatload knows: one line each. Adding a service is a package plus a line here."""

from __future__ import annotations

import importlib
from functools import cache

from .base import ChatService

SERVICES = {  # name → "module:ChatService subclass"
    "ivschat": "harness.services.ivschat.service:IvsChatService",
    "chime": "harness.services.chime.service:ChimeService",
    "hotsock": "harness.services.hotsock.service:HotsockService",
    "ivsrealtime": "harness.services.ivsrealtime.service:IvsRealtimeService",
    # A minimal echo-broadcast service, the tests' proof that the contract suffices (and the
    # walk-through in docs/adding-a-service.md).
    "toy": "harness.services.toy.service:ToyService",
}
DEFAULT = "ivschat"


class UnknownService(LookupError):
    pass


@cache
def get(name: str) -> ChatService:
    spec = SERVICES.get(name)
    if spec is None:
        raise UnknownService(f"unknown service {name!r}; chatload knows {', '.join(SERVICES)}")
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)()


def names() -> list[str]:
    return list(SERVICES)
