"""Amazon IVS Chat behind the service contract: rooms, CreateChatToken, the token as subprotocol.

Spec: `shared/spec/ivschat.md`. The data plane is one WebSocket per user (the chat token is its only
subprotocol); the control plane is boto3's `ivschat` client, against AWS or the emulator's
`endpoint_url`. A scenario's `[target]` takes `endpoint`, `control_endpoint`, `region` and
`room_arns`; `[rooms]` takes `count`, `maximum_message_rate_per_second` and
`maximum_message_length`.
"""

from __future__ import annotations

import re

from ...files.toml_tables import Key
from ...net.reconnect import SdkLike
from ...net.transport import ConnectParams
from ..base import (
    ChatService,
    PopulationKind,
    RoomSettings,
    ServiceError,
    Target,
    UserSpec,
    check_emulator_kinds,
)
from .client import IvsChatProtocol

ROOM_ARN = re.compile(r"arn:aws:ivschat:[a-z0-9-]+:\d+:room/[A-Za-z0-9-]+")
USERS = "harness.services.ivschat.users"


class IvsChatService(ChatService):
    name = "ivschat"
    title = "Amazon IVS Chat"
    room_noun = "room"
    rooms_table = "rooms"
    real_kind = "ivschat"
    bills_messages = True
    populations = {
        "viewer": PopulationKind(f"{USERS}:ViewerUser", description="listens only: the bulk of a real room"),
        "chatter": PopulationKind(f"{USERS}:ChatterUser", sends=True,
                                  description="sends messages on an open-loop schedule (or in bursts)"),
        "moderator": PopulationKind(f"{USERS}:ModeratorUser", sends=True,
                                    description="may send, deletes a recent message now and then"),
    }
    fault_actions = {"limits": ({"algorithm"}, {"algorithm"})}

    # -- scenario ----------------------------------------------------------------------------------------

    target_keys = (
        Key("endpoint", str, "", "the messaging endpoint: a running emulator's ws://…, or "
            "wss://edge.ivschat.REGION.amazonaws.com for real rooms", '"wss://edge.ivschat.us-east-1.amazonaws.com"'),
        Key("control_endpoint", str, "", "a running emulator's control plane (boto3 endpoint_url); not for AWS",
            '"http://127.0.0.1:8766"'),
        Key("region", str, "us-east-1", "AWS region", '"us-east-1"'),
        Key("room_arns", list, [], "existing rooms (required for real rooms, which chatload never creates)",
            '["arn:aws:ivschat:us-east-1:123456789012:room/AbCdEfGhIjKl"]'),
    )
    room_keys = (
        Key("count", int, 1, "rooms to create on the emulator; users are spread over them", "4",
            minimum=1, maximum=1000),
        Key("maximum_message_rate_per_second", int, 100, "each room's rate limit (CreateRoom)", "10",
            minimum=1, maximum=100),
        Key("maximum_message_length", int, 500, "each room's longest message, in characters (CreateRoom)", "200",
            minimum=1, maximum=500),
    )
    fault_parameters = {"algorithm": Key("algorithm", str, None, "limits: the emulator's rate-limit algorithm",
                                         '"token-bucket"', choices=("fixed-window", "token-bucket", "off"))}

    def read_target(self, table, kind: str) -> Target:
        values = {key.name: table.read(key) for key in self.target_keys}
        target = Target(service=self.name, kind=kind, endpoint=values["endpoint"],
                        control_endpoint=values["control_endpoint"], region=values["region"],
                        rooms=tuple(values["room_arns"]))
        check_emulator_kinds(table, target)
        if kind == self.real_kind:
            if not target.endpoint.startswith("wss://"):
                table.fail("endpoint", "a real room needs wss://edge.ivschat.REGION.amazonaws.com")
            if not target.rooms:
                table.fail("room_arns", "a real room's ARN is required (rooms are not created)")
            if target.control_endpoint:
                table.fail("control_endpoint", "not used against AWS (boto3 finds the service)")
        for index, arn in enumerate(target.rooms):
            if not isinstance(arn, str) or not ROOM_ARN.fullmatch(arn):
                table.fail(f"room_arns[{index}]", f"not a room ARN: {arn!r}")
        return target

    def read_rooms(self, table) -> RoomSettings:
        values = {key.name: table.read(key) for key in self.room_keys}
        count = values.pop("count")
        return RoomSettings(count=count, settings=values)

    def message_size_limit(self, rooms: RoomSettings) -> int | None:
        return 500  # the service's maximum maximumMessageLength; a room's own is checked against it too

    def apply_fault(self, admin, action: str, params: dict, rooms: list[str]):
        if action == "limits":
            return admin.set_rate_algorithm(params["algorithm"])
        return super().apply_fault(admin, action, params, rooms)

    def billing_note(self, sent: int, delivered: int) -> str | None:
        return (f"It will send about {sent:,} messages and cause about {delivered:,} deliveries; "
                "Amazon IVS bills both.")

    # -- Locust's own command line (`locust -f locustfiles/ivschat.py`) -----------------------------------

    def add_locust_options(self, parser) -> None:
        parser.add_argument("--chat-room-rate", type=int, default=100,
                            help="IVS Chat: maximumMessageRatePerSecond of emulator rooms (1-100)")

    def rooms_from_options(self, options) -> RoomSettings:
        return RoomSettings(count=max(1, options.chat_rooms),
                            settings={"maximum_message_rate_per_second": options.chat_room_rate})

    # -- the run's owner ---------------------------------------------------------------------------------

    def start_emulator(self, *args: str):
        from .emulator import EmulatorProcess

        return EmulatorProcess(*args).start()

    def emulator_args(self, users: int) -> list[str]:
        return ["--max-connections", str(max(50_000, users * 2))]

    def _client(self, target: Target):
        from .boto import ivschat_client

        return ivschat_client(target.region, target.control_endpoint or None)

    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        if target.rooms:
            return target
        if not target.control_endpoint:
            raise ServiceError("room ARNs are required against AWS (rooms are not created for you)")
        from botocore.exceptions import BotoCoreError, ClientError

        settings = {"maximumMessageRatePerSecond": rooms.settings.get("maximum_message_rate_per_second", 100),
                    "maximumMessageLength": rooms.settings.get("maximum_message_length", 500)}
        prefix = re.sub(r"[^A-Za-z0-9_-]", "-", name)  # room names allow [a-zA-Z0-9-_]
        client = self._client(target)
        try:
            arns = [client.create_room(name=f"{prefix}-{i}", **settings)["arn"] for i in range(rooms.count)]
        except (BotoCoreError, ClientError) as exc:
            raise ServiceError(f"CreateRoom at {target.control_endpoint} failed: {exc}") from None
        return Target(**{**target.to_dict(), "rooms": tuple(arns)})

    def room_limits(self, target: Target) -> dict[str, int]:
        """maximumMessageRatePerSecond from GetRoom, so the verdicts judge a real room by its own settings."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client(target)
        try:
            return {arn: client.get_room(identifier=arn)["maximumMessageRatePerSecond"] for arn in target.rooms}
        except (BotoCoreError, ClientError) as exc:
            raise ServiceError(f"cannot read room limits (GetRoom): {exc}") from None

    # -- every process -----------------------------------------------------------------------------------

    def token_provider(self, target: Target):
        from .tokens import CreateChatTokenProvider

        return CreateChatTokenProvider(target.region, target.control_endpoint or None)

    def connect_params(self, target: Target, token: str, user: UserSpec) -> ConnectParams:
        # The token is the only subprotocol; the room is inside the token.
        return ConnectParams(target.endpoint, (token,))

    def client_protocol(self, user: UserSpec) -> IvsChatProtocol:
        return IvsChatProtocol(user)

    def sdk_policy(self) -> SdkLike:
        return SdkLike(max_attempts=3)  # the SDK's maxReconnectAttempts default

    def kick(self, provider, target: Target, user: UserSpec) -> None:
        """DisconnectUser through the control plane — the same call against AWS and the emulator."""
        client = getattr(provider, "client", None) or self._client(target)
        client.disconnect_user(roomIdentifier=user.room, userId=user.user_id, reason="kicked by chatload scenario")
