"""The toy service behind the contract: nothing here is known to the harness outside this package
and its registry line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

from ...files.toml_tables import Key
from ...net.transport import ConnectParams
from ..base import ChatService, PopulationKind, RoomSettings, ServiceError, Target, UserSpec
from ..tokens import TokenFetchFailed, TokenProvider
from .client import ToyProtocol

USERS = "harness.services.toy.users"


def _post(base: str, path: str, body: dict, timeout: float = 10.0) -> dict:
    request = urllib.request.Request(base.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class ToyTokens(TokenProvider):
    name = "toy"

    def __init__(self, control_endpoint: str) -> None:
        self.control_endpoint = control_endpoint

    def fetch(self, request: UserSpec) -> str:
        try:
            return _post(self.control_endpoint, "/tokens", {"user": request.user_id, "room": request.room})["token"]
        except urllib.error.HTTPError as exc:
            raise TokenFetchFailed(f"HTTP {exc.code}", exc.reason) from None
        except OSError as exc:
            raise TokenFetchFailed(type(exc).__name__, str(exc)) from None


class ToyService(ChatService):
    name = "toy"
    title = "Toy echo-broadcast service (the tests' proof of the contract)"
    real_kind = "toy-server"  # a toy emulator someone runs elsewhere, without the admin routes' guarantees
    populations = {
        "listener": PopulationKind(f"{USERS}:ToyListener", description="only listens"),
        "sender": PopulationKind(f"{USERS}:ToySender", sends=True, description="sends on an open-loop schedule"),
    }

    target_keys = (Key("endpoint", str, "", "a running toy emulator's data plane", '"ws://127.0.0.1:9000"'),
                   Key("control_endpoint", str, "", "its control plane", '"http://127.0.0.1:9001"'),
                   Key("rooms", list, [], "existing rooms", '["room-1a2b3c"]'))
    room_keys = (Key("count", int, 1, "rooms to create", "1", minimum=1, maximum=100),
                 Key("rate", int, 0, "messages per second each room accepts (0: no limit)", "10", minimum=0))

    def read_target(self, table, kind: str) -> Target:
        values = {key.name: table.read(key) for key in self.target_keys}
        target = Target(self.name, kind, values["endpoint"], values["control_endpoint"], rooms=tuple(values["rooms"]))
        if kind != "emulator" and not (target.endpoint and target.control_endpoint):
            table.fail("", f"endpoint and control_endpoint are required for kind {kind!r}")
        return target

    def read_rooms(self, table) -> RoomSettings:
        values = {key.name: table.read(key) for key in self.room_keys}
        return RoomSettings(values.pop("count"), values)

    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        if target.rooms:
            return target
        try:
            made = [_post(target.control_endpoint, "/rooms", {"name": name, "rate": rooms.settings.get("rate", 0)})
                    for _ in range(rooms.count)]
        except OSError as exc:
            raise ServiceError(f"cannot create rooms at {target.control_endpoint}: {exc}") from None
        return Target(**{**target.to_dict(), "rooms": tuple(room["room"] for room in made)})

    def room_limits(self, target: Target) -> dict[str, int]:
        limits = {}
        for room in target.rooms:
            with urllib.request.urlopen(f"{target.control_endpoint}/rooms/{quote(room)}", timeout=10) as response:
                rate = json.loads(response.read())["rate"]
            if rate:
                limits[room] = rate
        return limits

    def token_provider(self, target: Target) -> TokenProvider:
        return ToyTokens(target.control_endpoint)

    def connect_params(self, target: Target, token: str, user: UserSpec) -> ConnectParams:
        return ConnectParams(f"{target.endpoint}/?token={quote(token)}")

    def client_protocol(self, user: UserSpec) -> ToyProtocol:
        return ToyProtocol(user)

    def kick(self, provider: TokenProvider, target: Target, user: UserSpec) -> None:
        _post(target.control_endpoint, "/kick", {"user": user.user_id, "room": user.room})
