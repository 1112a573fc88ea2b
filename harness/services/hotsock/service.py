"""Hotsock behind the service contract: channels, JWTs chatload signs itself, the token in the URL.

Spec: `shared/spec/hotsock.md`. A Hotsock installation is a stack in the customer's own AWS account:
its WebSocket URL (`wss://….execute-api.REGION.amazonaws.com/v1`, the token in `?token=`), its
HTTP publish API (`<PublishHttpApiUrl>/publish` with a 40-character bearer key) and the signing key
the customer's backend signs connect tokens with. chatload needs the same three things; the
embedded emulator gives its own (its ready line names the files holding its generated HS256 secret
and API key, which `provision` puts in the target *by path*).

The `Target` never holds a key: `signing_key` and `api_key` are sources (a file path or
`env:NAME`), read by the token provider and the publisher in each process.

Channels exist as soon as they are named, so provisioning is naming: `[channels] count` channels,
`presence.`-prefixed when `presence = true` (Hotsock's presence channels). Hotsock has no kick API
(`kick` faults are not supported) and documents no per-connection rate limit (no room limits).
"""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit

from ...files.toml_tables import Key
from ...net.transport import ConnectParams
from ..base import (
    KIND_EMULATOR,
    KIND_RUNNING_EMULATOR,
    ChatService,
    PopulationKind,
    RoomSettings,
    ServiceError,
    Target,
    UserSpec,
)
from ..tokens import KeySourceError, read_secret
from . import codec
from .client import EVENT, PRESENCE_JOIN, PRESENCE_LEAVE, HotsockProtocol, identity_data, server_time_ns
from .tokens import ALGORITHMS

USERS = "harness.services.hotsock.users"
SECRET_KEYS = ("signing_key", "api_key")  # sources, never values
SETTINGS = ("publish_url", "api_key", "signing_key", "key_id", "algorithm", "audience", "issuer",
            "heartbeat_timeout", "channel_alias")
EMULATED_ONLY = ("endpoint", "control_endpoint", "publish_url", "api_key", "signing_key", "key_id", "algorithm",
                 "audience", "issuer", "channels")


class HotsockService(ChatService):
    name = "hotsock"
    title = "Hotsock"
    room_noun = "channel"
    rooms_table = "channels"
    real_kind = "hotsock"
    bills_messages = True
    measures_spread = True
    populations = {
        "subscriber": PopulationKind(f"{USERS}:Subscriber", description="subscribes to its channel and listens "
                                     "(a presence member on presence.* channels)"),
        "chatter": PopulationKind(f"{USERS}:ChannelChatter", sends=True, description="subscribes and sends client "
                                  "messages on an open-loop schedule; its echo is its ack"),
        "publisher": PopulationKind(f"{USERS}:Publisher", sends=True, description="publishes through the HTTP "
                                    "publish API on an open-loop schedule, without a connection; timed from each "
                                    "POST's intended time"),
        "member": PopulationKind(f"{USERS}:PresenceMember", description="subscribes, leaves after 2–4 s and comes "
                                 "back 0.5–1 s later, over and over (presence churn)"),
        "intruder": PopulationKind(f"{USERS}:Intruder", sends=True, description="its token forbids subscribing and "
                                   "publishing on its channel; tries both: every try must be refused"),
        "muted": PopulationKind(f"{USERS}:MutedChatter", sends=True, description="subscribed, but its token forbids "
                                "publishing: every send must be refused, none delivered"),
    }
    histograms = {"subscribe": "subscribe latency (hotsock.subscribe sent → hotsock.subscribed)"}
    propagations = {
        PRESENCE_JOIN: "presence join propagation (A's hotsock.subscribe → B's hotsock.memberAdded for A)",
        PRESENCE_LEAVE: "presence leave propagation (A's hotsock.unsubscribe → B's hotsock.memberRemoved for A)",
    }

    def unmeasured(self, measure: str, rooms: RoomSettings) -> str | None:
        if measure in self.propagations and not rooms.settings.get("presence"):
            return (f"{measure} is measured on presence channels only; these channels have no presence "
                    f"([{self.rooms_table}] presence = true makes them presence channels)")
        return None

    def __init__(self) -> None:
        self._emulator_keys: dict[str, dict[str, str]] = {}  # control endpoint → key *file paths*
        self._publishers: dict[tuple[str, str], object] = {}

    # -- scenario ----------------------------------------------------------------------------------------

    target_keys = (
        Key("endpoint", str, "", "the WebSocket URL: the stack output WebSocketsWssUrl, or a running emulator's "
            "ws://HOST:PORT/v1", '"wss://abc123.execute-api.us-east-1.amazonaws.com/v1"'),
        Key("control_endpoint", str, "", "a running emulator's HTTP API (faults, metrics, publish); not for a real "
            "installation", '"http://127.0.0.1:8766"'),
        Key("publish_url", str, "", "the HTTP publish API: <PublishHttpApiUrl>/publish (default on an emulator: "
            "its own); needed by publishers", '"https://xyz789.execute-api.us-east-1.amazonaws.com/publish"'),
        Key("api_key", str, "", "where the publish API key is: a file or env:NAME (never the key itself); needed "
            "by publishers", '"env:HOTSOCK_API_KEY"'),
        Key("signing_key", str, "", "where the key that signs connect tokens is: a file or env:NAME holding the "
            "HMAC secret or PEM private key (never the key itself)", '"/secure/hotsock-signing.pem"'),
        Key("key_id", str, "", "the `kid` header, when the installation's key slot has a Key ID", '"chatload-1"'),
        Key("algorithm", str, "HS256", "the JWT algorithm the signing key is for", '"ES256"', choices=ALGORITHMS),
        Key("audience", str, "", "the `aud` claim, when the installation checks it", '"my-app"'),
        Key("issuer", str, "", "the `iss` claim, when the installation checks it", '"my-backend"'),
        Key("channels", list, [], "existing channels to use (required for a real installation; names starting "
            "with presence. are presence channels)", '["loadtest.1", "presence.loadtest"]'),
        Key("heartbeat_timeout", int, 0, "the tokens' heartbeatTimeout claim in seconds (5–600; 0: none): users "
            "then send hotsock.heartbeat every 0.9 × this", "30", minimum=0, maximum=600),
        Key("channel_alias", str, "", "tokens grant each user's channel under this alias (Hotsock's `alias` "
            "claim) and users subscribe and send by it, as an app using hotsock-js does", '"room"'),
    )
    room_keys = (
        Key("count", int, 1, "channels to use on an emulator; users are spread over them", "1", minimum=1,
            maximum=1000),
        Key("presence", bool, False, "name them presence.…: presence channels, with rosters and member events",
            "true"),
    )

    def read_target(self, table, kind: str) -> Target:
        values = {key.name: table.read(key) for key in self.target_keys}
        written = set(table.table)
        # With the application's own token endpoint ([target.token_endpoint]) the app signs, not chatload.
        signs = "token_endpoint" not in written
        if kind == KIND_EMULATOR:
            for key in sorted(written & set(EMULATED_ONLY)):
                table.fail(key, "kind \"emulator\" starts its own emulator with its own keys; for one that is "
                                "already running use kind = \"running-emulator\"")
        if kind == KIND_RUNNING_EMULATOR:
            for key in [k for k in ("endpoint", "control_endpoint", "signing_key") if signs or k != "signing_key"]:
                if not values[key]:
                    table.fail(key, "is required for kind \"running-emulator\"")
        if kind == self.real_kind:
            if not values["endpoint"].startswith("wss://"):
                table.fail("endpoint", "a real installation needs its WebSocketsWssUrl (wss://…/v1)")
            for key in [k for k in ("signing_key", "channels") if signs or k != "signing_key"]:
                if not values[key]:
                    table.fail(key, "is required for a real installation (chatload signs tokens and names "
                                    "no channels of its own there)")
            if values["control_endpoint"]:
                table.fail("control_endpoint", "only an emulator has one")
            if bool(values["publish_url"]) != bool(values["api_key"]):
                table.fail("publish_url" if not values["publish_url"] else "api_key",
                           "publish_url and api_key go together (publishers need both)")
        for key in SECRET_KEYS:
            if values[key]:
                try:
                    read_secret(values[key])  # readable here; the value is not kept
                except KeySourceError as exc:
                    table.fail(key, str(exc))
        heartbeat = values["heartbeat_timeout"]
        if heartbeat and heartbeat < 5:
            table.fail("heartbeat_timeout", "Hotsock accepts 5 to 600 seconds (or 0: none)")
        if values["channel_alias"] and (problem := codec.channel_problem(values["channel_alias"])):
            table.fail("channel_alias", problem)
        for index, channel in enumerate(values["channels"]):
            if problem := codec.channel_problem(channel):
                table.fail(f"channels[{index}]", problem)
        settings = {key: values[key] for key in SETTINGS if values[key]}
        return Target(service=self.name, kind=kind, endpoint=values["endpoint"],
                      control_endpoint=values["control_endpoint"], rooms=tuple(values["channels"]), settings=settings)

    def read_rooms(self, table) -> RoomSettings:
        values = {key.name: table.read(key) for key in self.room_keys}
        return RoomSettings(count=values.pop("count"), settings=values)

    def message_size_limit(self, rooms: RoomSettings) -> int | None:
        return 30 * 1024  # `data` ≤ 32 KiB of JSON, the identity fields included

    def billing_note(self, sent: int, delivered: int) -> str | None:
        return (f"It will send about {sent:,} messages and cause about {delivered:,} deliveries; your AWS account "
                "pays for them (API Gateway messages and connection minutes, Lambda, SQS).")

    # -- the run's owner ---------------------------------------------------------------------------------

    def start_emulator(self, *args: str):
        """The embedded emulator, which makes its own HS256 secret and API key; where it wrote them
        (paths, never the keys) is kept for `provision`."""
        from .emulator import EmulatorProcess

        emulator = EmulatorProcess(*args).start()
        self._emulator_keys[emulator.control_endpoint] = {"signing_key": emulator.info["hs256_secret_file"],
                                                          "api_key": emulator.info["api_key_file"]}
        return emulator

    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        """Name the channels (Hotsock creates a channel when it is first used) and, on an emulator,
        complete the target with its WebSocket path, publish URL and key files."""
        data = target.to_dict()
        if not target.rooms:
            prefix = "presence." if rooms.settings.get("presence") else ""
            suffix = secrets.token_hex(3)  # a rerun on a running emulator starts from empty channels
            data["rooms"] = tuple(f"{prefix}chatload-{name}-{i}-{suffix}" for i in range(rooms.count))
            if any(codec.channel_problem(channel) for channel in data["rooms"]):
                raise ServiceError(f"{name!r} makes invalid channel names")
        if target.emulated:
            if urlsplit(target.endpoint).path in ("", "/"):
                data["endpoint"] = target.endpoint.rstrip("/") + "/v1"
            settings = data["settings"]
            settings.setdefault("publish_url", f"{target.control_endpoint}/publish")
            for key, path in self._emulator_keys.get(target.control_endpoint, {}).items():
                settings.setdefault(key, path)
            if not settings.get("signing_key"):
                raise ServiceError(f"no signing_key for the emulator at {target.control_endpoint}: name the "
                                   "secret file it wrote (its ready line says where) in [target]")
        return Target.from_dict(data)

    # -- every process -----------------------------------------------------------------------------------

    token_purposes = ("subscribe",)  # subscribe tokens, as hotsock-js's subscribeTokenFn fetches them

    def token_provider(self, target: Target):
        from .token_provider import SigningKeyTokens

        return SigningKeyTokens(target.settings)

    def connect_params(self, target: Target, token: str, user: UserSpec) -> ConnectParams:
        return ConnectParams(f"{target.endpoint}?token={quote(token, safe='')}")

    def client_protocol(self, user: UserSpec) -> HotsockProtocol:
        return HotsockProtocol(user)

    def sdk_policy(self):
        from .reconnect import HotsockJsPolicy

        return HotsockJsPolicy()

    def publish(self, target: Target, user: UserSpec, seq: int, intended_ns: int, content: str) -> int | None:
        """`POST /publish` of one measured message; its server time is its id's (see the client)."""
        from .publish import PublishApi

        settings = target.settings
        key = (settings.get("publish_url", ""), settings.get("api_key", ""))
        api = self._publishers.get(key)
        if api is None:
            api = self._publishers[key] = PublishApi(*key)
        intended_us = intended_ns // 1000
        answer = api.publish(user.room, EVENT, identity_data(user.sender_id, seq, intended_us, content))
        message_id = answer.get("id")
        return server_time_ns(message_id, intended_us) if isinstance(message_id, str) else None
