"""The Hotsock emulator's live state: a connection, its subscriptions, and a channel with its roster.

A channel is this emulator's "room": it has one `DeliveryLine` (shared with every emulator, so
injected delay, jitter and pauses behave the same), a ULID generator (ids monotonic per channel),
and for `presence.*` channels a roster of uids, each with the connections that hold it (a uid stays
a member while any of its connections is subscribed). No I/O here: the data plane writes to a
connection's transport.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import string
import time
from collections import deque
from functools import partial

from websockets.asyncio.server import ServerConnection

from ....emulation.delivery import DeliveryLine
from ....emulation.frames import OPEN
from ....emulation.websocket_plane import EndReportingConnection
from .. import codec
from ..claims import ChannelGrant, Claims
from ..codec import Member, Meta
from ..ulid import MonotonicUlid
from .metrics import ChannelCounters

SECRET_ALPHABET = string.ascii_letters + string.digits


class Subscription:
    __slots__ = ("grant", "meta", "since_ms", "alias")

    def __init__(self, grant: ChannelGrant, meta: Meta, alias: str | None = None) -> None:
        self.grant = grant
        self.meta = meta  # uid and umd this connection has in the channel
        self.alias = alias  # the name the tokens give the channel, if any
        self.since_ms = time.time_ns() // 1_000_000  # listMessages shows what came after this


class Connection:
    """One open WebSocket: the token's claims, its subscriptions and its timers."""

    __slots__ = ("id", "connection_id", "secret", "claims", "meta", "connection", "transport", "subscriptions",
                 "aliases", "opened_ns", "expires_at", "active_at", "heartbeat_at", "timers", "closed")

    def __init__(self, member_id: int, connection: ServerConnection, claims: Claims, expires_at: float) -> None:
        self.id = member_id  # the admin routes' connection id
        self.connection_id = base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()  # 16 chars, ends "="
        self.secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(20))
        self.claims = claims
        self.meta = Meta(claims.uid, claims.umd)
        self.connection = connection  # the websockets connection (`.connection` as every emulator's member)
        self.transport = connection.transport
        self.subscriptions: dict[str, Subscription] = {}
        self.aliases: dict[str, str] = {}  # alias → channel, of the current subscriptions
        self.opened_ns = time.time_ns()
        self.expires_at = expires_at  # Unix seconds
        self.active_at = 0.0  # loop time of the last data frame in or out
        self.heartbeat_at = 0.0
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.closed = False

    @property
    def user_id(self) -> str:
        return self.claims.uid or ""

    def is_open(self) -> bool:
        return self.connection.protocol.state is OPEN and not self.transport.is_closing()

    def describe(self) -> dict:
        return {"connection_id": self.id, "hotsock_connection_id": self.connection_id, "user_id": self.user_id,
                "channels": sorted(self.subscriptions), "connected_at_ns": self.opened_ns}


class HotsockServerConnection(EndReportingConnection):
    """A websockets connection that knows its Hotsock connection."""

    hotsock: Connection | None = None


class RosterEntry:
    __slots__ = ("umd", "connections")

    def __init__(self, umd, connection_id: int) -> None:
        self.umd = umd
        self.connections = {connection_id}


def member_size(uid: str, umd) -> int:
    return len(codec.dumps({"uid": uid, "umd": umd}))


class Channel:
    """A channel's live side: subscribers, presence roster, delivery line, ids, counters, stored messages."""

    def __init__(self, name: str, fanout) -> None:
        self.name = self.id = name
        self.presence = codec.is_presence(name)
        self.subscribers: dict[int, Connection] = {}
        self.roster: dict[str, RosterEntry] = {}  # uid → entry, in join order
        self.line = DeliveryLine(partial(fanout, self))
        self.counters = ChannelCounters()
        self.next_id = MonotonicUlid()
        self.stored: deque[tuple[float, dict]] = deque()  # (expiry, loop time; inf = forever), message

    def members(self) -> tuple[Member, ...]:
        return tuple(Member(uid, entry.umd) for uid, entry in self.roster.items())

    def roster_bytes(self) -> int:
        return sum(member_size(uid, entry.umd) for uid, entry in self.roster.items())
