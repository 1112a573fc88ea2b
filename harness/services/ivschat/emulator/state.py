"""What the emulator remembers: rooms, tags and chat tokens.

Plain data and bookkeeping, no I/O. The control plane validates its input before calling in here;
the data plane asks here whether a token may open a connection. Times are wall-clock nanoseconds
passed in by the caller, so tests can drive expiry without sleeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ....emulation.memory import Expiring
from .ids import new_chat_token, random_id

DEFAULT_RATE = 10
DEFAULT_LENGTH = 500
DEFAULT_SESSION_MINUTES = 60
DEFAULT_TOKEN_MINUTES = 60  # emulator choice: the service's token lifetime is not published
NS_PER_MINUTE = 60 * 1_000_000_000


def iso8601(time_ns: int) -> str:
    """Control-plane timestamps: ISO 8601 UTC with milliseconds, as the service returns them."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1_000_000:03d}Z"


@dataclass
class Room:
    id: str
    arn: str
    name: str
    create_time_ns: int
    update_time_ns: int
    maximum_message_rate_per_second: int = DEFAULT_RATE
    maximum_message_length: int = DEFAULT_LENGTH
    message_review_handler: dict | None = None  # {"uri": str, "fallbackResult": "ALLOW"|"DENY"}
    logging_configuration_identifiers: list[str] = field(default_factory=list)

    def describe(self, tags: dict[str, str]) -> dict:
        """The `Room` shape of the API (GetRoom, CreateRoom, UpdateRoom)."""
        out = {
            "arn": self.arn,
            "id": self.id,
            "name": self.name,
            "createTime": iso8601(self.create_time_ns),
            "updateTime": iso8601(self.update_time_ns),
            "maximumMessageRatePerSecond": self.maximum_message_rate_per_second,
            "maximumMessageLength": self.maximum_message_length,
            "tags": dict(tags),
            "loggingConfigurationIdentifiers": list(self.logging_configuration_identifiers),
        }
        if self.message_review_handler:
            out["messageReviewHandler"] = dict(self.message_review_handler)
        return out


@dataclass(frozen=True)
class TokenGrant:
    """What a chat token entitles its bearer to. The token string itself is never logged."""

    room_id: str
    user_id: str
    capabilities: frozenset[str]
    attributes: dict[str, str] | None
    token_expiration_ns: int
    session_expiration_ns: int


class TokenRejected(Exception):
    """Why a handshake is refused; `status` is the HTTP status the data plane answers with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class IvsChatRooms:
    """The IVS Chat emulator's records: rooms, their tags, and the chat tokens issued for them.

    (Not to be confused with the load harness's per-user chat state, `harness.locust.state`.)
    """

    def __init__(
        self, region: str = "us-east-1", account_id: str = "123456789012", token_minutes: float = DEFAULT_TOKEN_MINUTES
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.token_minutes = token_minutes
        self.rooms: dict[str, Room] = {}  # by room id
        self.tags: dict[str, dict[str, str]] = {}  # by resource ARN
        # Both kept until the token expires, then forgotten (`emulation.memory.Expiring`): a long
        # soak holds the tokens alive at once, not every token ever issued.
        self._tokens = Expiring(time.time_ns)  # token → its grant, until the token expires
        # Hashes, not tokens: a reconnect storm redeems many tokens and we only need to say "reused"
        # rather than "invalid" (both are 403), so a rare hash collision costs nothing. Once the token
        # would have expired anyway, "invalid" is as true.
        self._used_tokens = Expiring(time.time_ns)

    # -- rooms ------------------------------------------------------------------------------------

    def create_room(self, *, now_ns: int | None = None, room_id: str | None = None, **settings) -> Room:
        """Create a room. `settings` are `Room` fields (snake_case), already validated."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        room_id = room_id or random_id(12)
        if room_id in self.rooms:
            raise ValueError(f"room {room_id} exists already")
        arn = f"arn:aws:ivschat:{self.region}:{self.account_id}:room/{room_id}"
        tags = settings.pop("tags", None) or {}
        room = Room(id=room_id, arn=arn, name=settings.pop("name", "") or "", create_time_ns=now_ns,
                    update_time_ns=now_ns, **settings)
        self.rooms[room_id] = room
        self.tags[arn] = dict(tags)
        return room

    def find_room(self, identifier: str) -> Room | None:
        """A room by ARN (what the API takes) or by bare id (what people type)."""
        room_id = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
        room = self.rooms.get(room_id)
        if room is None or (identifier.startswith("arn:") and room.arn != identifier):
            return None
        return room

    def update_room(self, room: Room, *, now_ns: int | None = None, **settings) -> Room:
        for key, value in settings.items():
            setattr(room, key, value)
        room.update_time_ns = time.time_ns() if now_ns is None else now_ns
        return room

    def delete_room(self, room: Room) -> None:
        del self.rooms[room.id]
        self.tags.pop(room.arn, None)

    # -- tokens -----------------------------------------------------------------------------------

    def create_token(
        self,
        room: Room,
        user_id: str,
        capabilities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        session_minutes: int = DEFAULT_SESSION_MINUTES,
        *,
        now_ns: int | None = None,
    ) -> tuple[str, TokenGrant]:
        now_ns = time.time_ns() if now_ns is None else now_ns
        grant = TokenGrant(
            room_id=room.id,
            user_id=user_id,
            capabilities=frozenset(capabilities or ()),
            attributes=dict(attributes) if attributes else None,
            token_expiration_ns=now_ns + int(self.token_minutes * NS_PER_MINUTE),
            session_expiration_ns=now_ns + session_minutes * NS_PER_MINUTE,
        )
        token = new_chat_token()
        self._tokens.put(token, grant.token_expiration_ns, grant)
        return token, grant

    def redeem_token(self, token: str | None, *, now_ns: int | None = None) -> TokenGrant:
        """Check a token offered in a handshake and consume it (tokens are single-use).

        Raises `TokenRejected` with the handshake status (emulator choice, see the spec): 401 no
        token, 403 unknown/expired/reused, 404 room deleted. The token is consumed only on success.
        """
        if not token:
            raise TokenRejected(401, "no chat token offered as the WebSocket subprotocol")
        now_ns = time.time_ns() if now_ns is None else now_ns
        grant = self._tokens.get(token, now=now_ns)
        if grant is None:
            if self._used_tokens.get(hash(token), now=now_ns):
                raise TokenRejected(403, "chat token already used")
            raise TokenRejected(403, "invalid or expired chat token")
        if now_ns >= grant.session_expiration_ns:
            self._tokens.pop(token)
            raise TokenRejected(403, "chat session expired")
        if grant.room_id not in self.rooms:
            raise TokenRejected(404, "room not found")
        self._tokens.pop(token)
        self._used_tokens.put(hash(token), grant.token_expiration_ns)
        return grant

    def token_bookkeeping(self) -> int:
        """Entries kept about tokens: issued and unused, plus used and not yet expired."""
        return len(self._tokens) + len(self._used_tokens)
