"""The Hotsock emulator's WebSocket: handshakes, subscriptions, presence, fan-out, timers and faults.

`/v1?token=<JWT>` is verified before the upgrade (a bad token gets HTTP 401 and nothing else
happens: no connection, no state, no frame). A good one gets `hotsock.connected`, then any
`autoSubscribe` channels. Frames are read with `codec.parse_client_frame`; everything it refuses,
and every permission failure, is answered with one `hotsock.error` frame and the connection stays
open — the service answers errors with frames, not closes.

A channel is this emulator's "room": it has one `DeliveryLine` (shared with every emulator, so
injected delay, jitter and pauses behave the same), a ULID generator (ids monotonic per channel),
and for `presence.*` channels a roster of uids. The line carries `(frame, skip)` pairs: the frame
is written once-framed to every subscriber but the connection `skip` (a sender without `echo`, or
the member whose arrival a `hotsock.memberAdded` announces). `hotsock.subscribed`, errors and
pongs go straight to their one connection, outside the line.

Timers, all multiplied by `Timings.scale` so tests can use seconds (spec §1.1, §1.7):
- 2 hours after the upgrade the connection is closed 1001 "Going away" (`connectionExpiresAt`).
- 10 minutes without a data frame in either direction: closed 1001 "Going away" (API Gateway's
  idle timeout; WebSocket pings do not count — emulator choice, and the emulator sends none).
- `keepAlive: true`: `hotsock.keepAlive` every 9.5 minutes (which also keeps the connection busy).
- `heartbeatTimeout: N`: no `hotsock.heartbeat` for N seconds → closed 1001 "Going away" (the code
  and reason are an emulator choice; other frames do not count as heartbeats).

Channel aliases (the `alias` claim): a client may subscribe, unsubscribe and publish under a name its
token gives a channel; everything else happens on the real channel, which is what every frame names
(`hotsock.subscribed` and `hotsock.unsubscribed` add `meta.channelAlias`; messages and presence
events name the real channel only — hotsock-js routes them to the alias's bindings itself). A
subscribe token's alias beats the connect token's; the alias is kept on the subscription, so the
unsubscribe answer carries it whichever name was used. A name that is one of the token's channel
keys, or a channel the connection is subscribed to, is never read as an alias. `hotsock.error`
names the channel as the client sent it (emulator choice: hotsock-js marks that name failed).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ....emulation.delivery import DeliveryLine, select_members
from ....emulation.frames import OPEN, text_frame
from ...untrusted import close_reason
from ....emulation.websocket_plane import EndReportingConnection, WebSocketPlane
from .. import codec
from ..claims import ChannelGrant, Claims
from ..codec import FrameError, Member, Meta
from ..ulid import MonotonicUlid
from .auth import TokenInvalid, Verifier
from .metrics import ChannelCounters, Metrics

log = logging.getLogger(__name__)
# websockets logs the request line (token included) at DEBUG: its logger here never goes below INFO.
handshake_log = logging.getLogger(__name__ + ".websockets")
handshake_log.setLevel(logging.INFO)

MESSAGE_LIMIT = 128 * 1024  # API Gateway's WebSocket message limit: websockets closes 1009 above it
SLOW_CONSUMER_BYTES = 4 * 1024 * 1024  # unsent backlog after which a subscriber is aborted
GOING_AWAY = 1001
PRESENCE_CAPACITY_BYTES = 100_000  # "100KB" of member payloads per presence channel
SECRET_ALPHABET = string.ascii_letters + string.digits
CHANNELS_FLOOR = 1024  # channels below which idle ones are never swept


@dataclass(frozen=True)
class Timings:
    """The service's long timers, scaled: `scale=0.001` makes the 2-hour maximum last 7.2 s."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("the time scale must be positive")

    @property
    def max_connection_s(self) -> float:
        return 7200 * self.scale

    @property
    def idle_s(self) -> float:
        return 600 * self.scale

    @property
    def keep_alive_s(self) -> float:
        return 570 * self.scale

    @property
    def deduplication_s(self) -> float:
        return 300 * self.scale

    def heartbeat_s(self, claim_s: int) -> float:
        return claim_s * self.scale


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Subscription:
    __slots__ = ("grant", "meta", "since_ms", "alias")

    def __init__(self, grant: ChannelGrant, meta: Meta, alias: str | None = None) -> None:
        self.grant = grant
        self.meta = meta  # uid and umd this connection has in the channel
        self.alias = alias  # the name the tokens give the channel, if any
        self.since_ms = time.time_ns() // 1_000_000  # listMessages shows what came after this


class Connection:
    """One open WebSocket: the token's claims, its subscriptions and its timers."""

    __slots__ = ("id", "connection_id", "secret", "claims", "meta", "ws", "transport", "subscriptions",
                 "aliases", "opened_ns", "expires_at", "active_at", "heartbeat_at", "timers", "closed")

    def __init__(self, member_id: int, ws: ServerConnection, claims: Claims, expires_at: float) -> None:
        self.id = member_id  # the admin routes' connection id
        self.connection_id = base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()  # 16 chars, ends "="
        self.secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(20))
        self.claims = claims
        self.meta = Meta(claims.uid, claims.umd)
        self.ws = ws
        self.transport = ws.transport
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

    @property
    def room_id(self) -> str:  # `select_members` reads it; rooms are filtered by the data plane itself
        return next(iter(self.subscriptions), "")

    def is_open(self) -> bool:
        return self.ws.protocol.state is OPEN and not self.transport.is_closing()

    def describe(self) -> dict:
        return {"connection_id": self.id, "hotsock_connection_id": self.connection_id, "user_id": self.user_id,
                "channels": sorted(self.subscriptions), "connected_at_ns": self.opened_ns}


class RosterEntry:
    __slots__ = ("umd", "connections")

    def __init__(self, umd, connection_id: int) -> None:
        self.umd = umd
        self.connections = {connection_id}


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


def member_size(uid: str, umd) -> int:
    return len(codec.dumps({"uid": uid, "umd": umd}))


class HotsockServerConnection(EndReportingConnection):
    """A websockets connection that knows its Hotsock connection."""

    hotsock: Connection | None = None


class DataPlane(WebSocketPlane):
    def __init__(self, verifier: Verifier, metrics: Metrics, *, host: str = "127.0.0.1", port: int = 0,
                 timings: Timings = Timings(), presence_capacity_bytes: int = PRESENCE_CAPACITY_BYTES) -> None:
        self.verifier = verifier
        self.metrics = metrics
        self.host = host
        self.port = port
        self.timings = timings
        self.presence_capacity_bytes = presence_capacity_bytes
        self.channels: dict[str, Channel] = {}
        self.connections: dict[int, Connection] = {}
        self.by_connection_id: dict[str, Connection] = {}
        self.delivery_cost_s = 0.0  # artificial CPU cost per frame written (capacity tests)
        self.default_delay = (0.0, 0.0)
        self._deduplication: dict[tuple[str, str], tuple[str, float]] = {}
        self._sweep_channels_at = CHANNELS_FLOOR
        self._ids = iter(range(1, 1 << 62))
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def serve_options(self) -> dict:
        return dict(process_request=self._process_request, compression=None, max_size=MESSAGE_LIMIT,
                    ping_interval=None, server_header="chatload-hotsock-emulator",
                    create_connection=HotsockServerConnection, logger=handshake_log)

    def lines(self) -> list[DeliveryLine]:
        return [channel.line for channel in self.channels.values()]

    def channel(self, name: str) -> Channel:
        channel = self.channels.get(name)
        if channel is None:
            if len(self.channels) >= self._sweep_channels_at:
                self._sweep_idle_channels()
            channel = self.channels[name] = Channel(name, self._fanout)
            channel.line.set_delay(*self.default_delay)
        return channel

    def _sweep_idle_channels(self) -> None:
        """Forget channels nobody is in and nothing waits on, whenever the table has doubled since the
        last sweep (O(1) per channel, amortised): channels exist as soon as they are named, so clients
        naming ever new ones would otherwise grow memory and /metrics without end. A forgotten
        channel's series leave /metrics; named again, it starts afresh."""
        now = self._loop.time() if self._loop is not None else 0.0
        for name in [name for name, channel in self.channels.items() if self._idle(channel, now)]:
            del self.channels[name]
        self._sweep_channels_at = max(CHANNELS_FLOOR, 2 * len(self.channels))

    def _idle(self, channel: Channel, now: float) -> bool:
        line = channel.line
        return (not channel.subscribers and not channel.roster and line.paused is None and not line.pending
                and not line.held and (line.delay_s, line.jitter_s) == self.default_delay
                and all(expiry <= now for expiry, _ in channel.stored))

    # -- handshake ---------------------------------------------------------------------------------------

    def _process_request(self, ws: HotsockServerConnection, request):
        url = urlsplit(request.path)
        if url.path.rstrip("/") != "/v1":
            self.metrics.handshakes_rejected[404] += 1
            return ws.respond(404, "Not Found\n")
        token = parse_qs(url.query).get("token", [""])[0]
        try:
            if not token:
                raise TokenInvalid("no token in the query string")
            claims = self.verifier.verify(token, "connect", time.time())
            if claims.connection_id is not None:
                raise TokenInvalid("a token bound to a connectionId cannot open a connection")
        except TokenInvalid as exc:
            self.metrics.handshakes_rejected[401] += 1
            log.info("handshake refused: %s", exc)  # the reason, never the token
            return ws.respond(401, "Unauthorized\n")
        ws.hotsock = Connection(next(self._ids), ws, claims, time.time() + self.timings.max_connection_s)
        ws.on_lost = self._connection_lost
        return None

    async def _handler(self, ws: HotsockServerConnection) -> None:
        conn = ws.hotsock
        if conn is None or conn.closed:
            return
        self.connections[conn.id] = self.by_connection_id[conn.connection_id] = conn
        self.metrics.connections_opened += 1
        self._start_timers(conn)
        self._send(conn, codec.Connected(conn.connection_id, rfc3339(conn.expires_at), conn.secret, conn.meta))
        for name in conn.claims.auto_subscribe_channels():
            if codec.channel_problem(name) is None:
                self._subscribe(conn, name, None, auto=True)
        loop = self._loop
        try:
            async for data in ws:
                if conn.closed:
                    continue
                conn.active_at = loop.time()
                self._on_frame(conn, data)
        except ConnectionClosed:
            pass
        # Leaving channels happens in _connection_lost: a subscriber stays a recipient as long as
        # frames could still reach it.

    def _connection_lost(self, ws: HotsockServerConnection) -> None:
        conn = ws.hotsock
        conn.closed = True
        for timer in conn.timers.values():
            timer.cancel()
        conn.timers.clear()
        if self.connections.pop(conn.id, None) is None:
            return
        self.by_connection_id.pop(conn.connection_id, None)
        for name, subscription in list(conn.subscriptions.items()):
            self._leave(conn, name, subscription)
        conn.subscriptions.clear()
        conn.aliases.clear()

    # -- frames ------------------------------------------------------------------------------------------

    def _on_frame(self, conn: Connection, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.metrics.protocol_errors += 1
            return self._error(conn, None, codec.INVALID_FRAME, "binary frames are not supported")
        try:
            frame = codec.parse_client_frame(data)
        except FrameError as exc:
            self.metrics.protocol_errors += 1
            return self._error(conn, exc.channel, exc.code, exc.message)
        kind = type(frame)
        if kind is codec.ClientMessage:
            self._client_message(conn, frame)
        elif kind is codec.Subscribe:
            self._subscribe(conn, frame.channel, frame.token)
        elif kind is codec.Unsubscribe:
            self._unsubscribe(conn, frame.channel)
        elif kind is codec.Ping:
            self._send(conn, codec.SERVER_PONG)
        elif kind is codec.Heartbeat:
            conn.heartbeat_at = self._loop.time()
        elif kind is codec.UmdUpdate:
            self._umd_update(conn, frame)
        # codec.Pong (an answer to a server ping): nothing to do

    def _verify_bound(self, conn: Connection, token: str, scope: str) -> Claims:
        """A subscribe or umd token for this connection: bound by connectionId, else by a matching uid."""
        claims = self.verifier.verify(token, scope, time.time())
        if claims.connection_id is not None:
            if claims.connection_id != conn.connection_id:
                raise TokenInvalid("token is bound to another connection")
        elif not claims.uid or claims.uid != conn.claims.uid:
            raise TokenInvalid("token names neither this connection's connectionId nor its uid")
        return claims

    @staticmethod
    def _real_name(conn: Connection, name: str, extra: Claims | None = None) -> str:
        """The channel a name the client sent means: a channel it is in, or a channel key of its
        tokens, is itself; else an alias of a subscription, of the subscribe token, of the connect
        token; else itself."""
        if name in conn.subscriptions or conn.claims.names_channel(name) or (extra and extra.names_channel(name)):
            return name
        return (conn.aliases.get(name) or (extra and extra.aliased(name)) or conn.claims.aliased(name)
                or name)

    def _subscribe(self, conn: Connection, name: str, token: str | None, auto: bool = False) -> None:
        """`name` as the client sent it (a channel or an alias); errors name it so."""
        if self._real_name(conn, name) in conn.subscriptions:
            return self._error(conn, name, codec.ALREADY_SUBSCRIBED, "already subscribed to this channel")
        meta, extra = conn.meta, None
        if token is not None:
            try:
                extra = self._verify_bound(conn, token, "subscribe")
            except TokenInvalid as exc:
                return self._error(conn, name, codec.INVALID_SUBSCRIBE_TOKEN, str(exc))
            meta = Meta(extra.uid or meta.uid, meta.umd if extra.umd is None else extra.umd)
        real = self._real_name(conn, name, extra)
        if real != name and real in conn.subscriptions:  # an alias only the subscribe token knew
            return self._error(conn, name, codec.ALREADY_SUBSCRIBED, "already subscribed to this channel")
        grant = conn.claims.channel(real)
        if extra is not None:
            grant = grant.merged(extra.channel(real))
        alias = (extra and extra.alias_of(real)) or conn.claims.alias_of(real)  # the subscribe token's wins
        if not auto and not grant.subscribe:
            return self._error(conn, name, codec.SUBSCRIBE_PERMISSION_DENIED, "no subscribe permission for this channel")
        # Every check before the channel is made: a refused subscribe leaves nothing behind (no
        # channel, no /metrics series), however many names a hostile client tries.
        existing = self.channels.get(real)
        entry = None
        if codec.is_presence(real):
            if not meta.uid:
                return self._error(conn, name, codec.PRESENCE_CHANNEL_USER_ID_REQUIRED,
                                   "presence channels need a uid claim")
            entry = existing.roster.get(meta.uid) if existing is not None else None
            roster_bytes = existing.roster_bytes() if existing is not None else 0
            if entry is None and roster_bytes + member_size(meta.uid, meta.umd) > self.presence_capacity_bytes:
                return self._error(conn, name, codec.PRESENCE_CHANNEL_CAPACITY_REACHED,
                                   f"member payloads would exceed {self.presence_capacity_bytes} bytes")
        channel = self.channel(real)
        conn.subscriptions[real] = Subscription(grant, meta, alias)
        if alias is not None:
            conn.aliases[alias] = real
        channel.subscribers[conn.id] = conn
        channel.counters.subscriptions += 1
        if not channel.presence:
            return self._send(conn, codec.Subscribed(real, meta, None, auto, alias))
        if entry is None:
            channel.roster[meta.uid] = RosterEntry(meta.umd, conn.id)
            members = channel.members()
            self._send(conn, codec.Subscribed(real, meta, members, auto, alias))
            announce = codec.MemberAdded(real, Member(meta.uid, meta.umd), members)
            return channel.line.deliver((text_frame(announce.encode()), conn.id))  # existing members only
        entry.connections.add(conn.id)
        changed = entry.umd != meta.umd
        entry.umd = meta.umd
        members = channel.members()
        self._send(conn, codec.Subscribed(real, meta, members, auto, alias))
        if changed:  # the same uid again, with other metadata: everyone learns it
            update = codec.MemberUpdated(real, Member(meta.uid, meta.umd), members)
            channel.line.deliver((text_frame(update.encode()), None))

    def _unsubscribe(self, conn: Connection, name: str) -> None:
        real = self._real_name(conn, name)
        subscription = conn.subscriptions.pop(real, None)
        if subscription is None:
            return self._error(conn, name, codec.NOT_SUBSCRIBED, "not subscribed to this channel")
        if subscription.alias is not None:
            conn.aliases.pop(subscription.alias, None)
        self._send(conn, codec.Unsubscribed(real, subscription.meta, subscription.alias))
        self._leave(conn, real, subscription)

    def _leave(self, conn: Connection, name: str, subscription: Subscription) -> None:
        channel = self.channels[name]
        channel.subscribers.pop(conn.id, None)
        if not channel.presence:
            return
        uid = subscription.meta.uid
        entry = channel.roster.get(uid)
        if entry is None:
            return
        entry.connections.discard(conn.id)
        if not entry.connections:  # the uid's last connection left
            del channel.roster[uid]
            removed = codec.MemberRemoved(name, Member(uid, entry.umd), channel.members())
            channel.line.deliver((text_frame(removed.encode()), None))

    def _client_message(self, conn: Connection, message: codec.ClientMessage) -> None:
        subscription = conn.subscriptions.get(message.channel)
        real = message.channel if subscription is not None else self._real_name(conn, message.channel)
        if real != message.channel:  # sent under an alias
            subscription = conn.subscriptions.get(real)
        grant = subscription.grant if subscription is not None else conn.claims.channel(real)
        permission = grant.message(message.event)
        if not permission.allows(subscription is not None):
            return self._error(conn, message.channel, codec.PUBLISH_PERMISSION_DENIED,
                               "no publish (with a subscription) or broadcast permission for this event here")
        channel = self.channel(real)
        meta = subscription.meta if subscription is not None else conn.meta
        channel.counters.client_messages += 1
        self._accept(channel, message.event, message.data, meta, permission.store,
                     None if permission.echo else conn.id)

    def _umd_update(self, conn: Connection, update: codec.UmdUpdate) -> None:
        try:
            claims = self._verify_bound(conn, update.token, "umd")
        except TokenInvalid as exc:
            return self._error(conn, update.channel, codec.INVALID_UMD_TOKEN, str(exc))
        if update.channel is None:
            if not claims.umd_update:
                return self._error(conn, None, codec.UMD_UPDATE_PERMISSION_DENIED, "token lacks umdUpdate")
            conn.meta = Meta(conn.meta.uid, claims.umd)
            self._send(conn, codec.UmdUpdated(conn.meta))  # the answer first, then what it caused
            if claims.umd_propagate:
                for name, subscription in conn.subscriptions.items():
                    self._set_umd(conn, name, subscription, claims.umd)
            return None
        subscription = conn.subscriptions.get(update.channel)
        if subscription is None:
            return self._error(conn, update.channel, codec.NOT_SUBSCRIBED, "not subscribed to this channel")
        if not claims.channel(update.channel).umd_update:
            return self._error(conn, update.channel, codec.UMD_UPDATE_PERMISSION_DENIED,
                               "token lacks umdUpdate for this channel")
        self._set_umd(conn, update.channel, subscription, claims.umd)
        if not self.channels[update.channel].presence:
            self._send(conn, codec.UmdUpdated(subscription.meta, update.channel))

    def _set_umd(self, conn: Connection, name: str, subscription: Subscription, umd) -> None:
        subscription.meta = Meta(subscription.meta.uid, umd)
        channel = self.channels[name]
        entry = channel.roster.get(subscription.meta.uid) if channel.presence else None
        if entry is not None:
            entry.umd = umd
            update = codec.MemberUpdated(name, Member(subscription.meta.uid, umd), channel.members())
            channel.line.deliver((text_frame(update.encode()), None))  # to all, the updater included

    # -- messages ----------------------------------------------------------------------------------------

    def _accept(self, channel: Channel, event: str, data, meta: Meta | None, store: int, skip: int | None) -> str:
        message = codec.Message(channel.next_id(time.time_ns() // 1_000_000), channel.name, event, data, meta)
        payload = message.encode()
        if store:
            expiry = float("inf") if store < 0 else self._loop.time() + store * self.timings.scale
            channel.stored.append((expiry, {"id": message.id, "event": event, "channel": channel.name,
                                            "data": data, **({"meta": meta.to_json()} if meta else {})}))
        channel.line.deliver((text_frame(payload), skip))
        return message.id

    def publish(self, name: str, event: str, data, *, store: int = 0, deduplication_id: str | None = None) -> str:
        """A server-side publish (`POST /publish`): fanned out to every subscriber, without `meta`.
        A repeated `deduplicationId` within 5 minutes (scaled) is accepted but not delivered again."""
        now = self._loop.time()
        if deduplication_id is not None:
            seen = self._deduplication.get((name, deduplication_id))
            if seen is not None and seen[1] > now:
                return seen[0]
            if len(self._deduplication) > 10_000:
                self._deduplication = {k: v for k, v in self._deduplication.items() if v[1] > now}
        channel = self.channel(name)
        channel.counters.server_messages += 1
        message_id = self._accept(channel, event, data, None, store, None)
        if deduplication_id is not None:
            self._deduplication[(name, deduplication_id)] = (message_id, now + self.timings.deduplication_s)
        return message_id

    def stored_messages(self, name: str) -> list[dict]:
        """Messages kept on a channel (`store`), oldest first; expired ones are forgotten."""
        channel = self.channels.get(name)
        if channel is None:
            return []
        now = self._loop.time()
        channel.stored = deque(item for item in channel.stored if item[0] > now)
        return [message for _, message in channel.stored]

    # -- sending -----------------------------------------------------------------------------------------

    def _send(self, conn: Connection, frame) -> None:
        if conn.is_open():
            conn.transport.write(text_frame(frame.encode()))
            conn.active_at = self._loop.time()

    def _error(self, conn: Connection, channel: str | None, code: str, message: str) -> None:
        self.metrics.errors[code] += 1
        known = self.channels.get(channel) if channel is not None else None
        if known is not None:  # counted where the channel exists; a refusal never makes one
            known.counters.rejected[code] += 1
        self._send(conn, codec.Error(channel, code, message))

    def _fanout(self, channel: Channel, item: tuple[bytes, int | None]) -> None:
        frame, skip = item
        now = self._loop.time()
        cost, clock = self.delivery_cost_s, time.perf_counter
        delivered = 0
        slow = None
        for conn in channel.subscribers.values():
            if conn.id == skip or not conn.is_open():
                continue
            transport = conn.transport
            if transport.get_write_buffer_size() > SLOW_CONSUMER_BYTES:
                slow = slow or []
                slow.append(conn)
                continue
            if cost:
                until = clock() + cost
                while clock() < until:  # burn CPU, as a slower server would
                    pass
            transport.write(frame)
            conn.active_at = now
            delivered += 1
        channel.counters.frames_delivered += delivered
        for conn in slow or ():
            channel.counters.slow_consumers_dropped += 1
            log.warning("aborting slow consumer %s in channel %s", conn.id, channel.name)
            conn.transport.abort()

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        # Closed from now: its close takes a round trip, and what it sends meanwhile is not heard
        # (a dropped or expired connection's messages were once fanned out in that gap).
        conn.closed = True
        task = asyncio.ensure_future(conn.ws.close(code, close_reason(reason)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _going_away(self, conn: Connection, cause: str) -> None:
        if conn.closed:
            return
        self.metrics.server_closes[cause] += 1
        self._close(conn, GOING_AWAY, "Going away")

    # -- timers ------------------------------------------------------------------------------------------

    def _start_timers(self, conn: Connection) -> None:
        loop, timings = self._loop, self.timings
        now = conn.active_at = conn.heartbeat_at = loop.time()
        conn.timers["max"] = loop.call_later(timings.max_connection_s, self._going_away, conn, "max-duration")
        conn.timers["idle"] = loop.call_at(now + timings.idle_s, self._check_idle, conn)
        if conn.claims.heartbeat_timeout_s is not None:
            conn.timers["heartbeat"] = loop.call_at(now + timings.heartbeat_s(conn.claims.heartbeat_timeout_s),
                                                    self._check_heartbeat, conn)
        if conn.claims.keep_alive:
            conn.timers["keepalive"] = loop.call_at(now + timings.keep_alive_s, self._keep_alive, conn)

    def _check_idle(self, conn: Connection) -> None:
        due = conn.active_at + self.timings.idle_s
        if self._loop.time() >= due:
            self._going_away(conn, "idle")
        elif not conn.closed:
            conn.timers["idle"] = self._loop.call_at(due, self._check_idle, conn)

    def _check_heartbeat(self, conn: Connection) -> None:
        due = conn.heartbeat_at + self.timings.heartbeat_s(conn.claims.heartbeat_timeout_s)
        if self._loop.time() >= due:
            self._going_away(conn, "heartbeat")
        elif not conn.closed:
            conn.timers["heartbeat"] = self._loop.call_at(due, self._check_heartbeat, conn)

    def _keep_alive(self, conn: Connection) -> None:
        if conn.closed:
            return
        self._send(conn, codec.KEEP_ALIVE)
        conn.timers["keepalive"] = self._loop.call_later(self.timings.keep_alive_s, self._keep_alive, conn)

    # -- faults (the shared admin routes) ----------------------------------------------------------------

    def select(self, *, room_id=None, user_ids=None, connection_ids=None, fraction=None, seed=None) -> list[Connection]:
        """Connections subscribed to `room_id` (a channel), or all, filtered as every emulator does."""
        if room_id is None:
            members = list(self.connections.values())
        else:
            members = list(self.channels[room_id].subscribers.values()) if room_id in self.channels else []
        return select_members(members, user_ids=user_ids, connection_ids=connection_ids, fraction=fraction,
                              seed=seed)

    def drop(self, members: list[Connection], *, mode: str = "abrupt", code: int = 1001,
             reason: str = "") -> list[dict]:
        """Abrupt: the TCP connection is aborted, no close frame (clients see 1006). Clean: a close frame."""
        if mode not in ("abrupt", "clean"):
            raise ValueError("mode must be 'abrupt' or 'clean'")
        for conn in members:
            self.metrics.server_closes["fault"] += 1
            if mode == "abrupt":
                conn.transport.abort()
            else:
                self._close(conn, code, reason or "Dropped by fault injection")
        return [conn.describe() for conn in members]

    def expire_sessions(self, members: list[Connection]) -> list[dict]:
        """The 2-hour maximum, reached now: close 1001 "Going away"."""
        for conn in members:
            self._going_away(conn, "expire")
        return [conn.describe() for conn in members]

    def set_delay(self, room: Channel | None, delay_s: float, jitter_s: float = 0.0) -> None:
        if delay_s < 0 or jitter_s < 0:
            raise ValueError("delay and jitter must not be negative")
        for channel in [room] if room is not None else list(self.channels.values()):
            channel.line.set_delay(delay_s, jitter_s)
        if room is None:
            self.default_delay = (delay_s, jitter_s)

    def pause(self, room: Channel, mode: str = "drop") -> None:
        room.line.pause(mode)

    def resume(self, room: Channel) -> int:
        return room.line.resume()

    async def restart(self, downtime_s: float = 0.0, mode: str = "abrupt") -> int:
        """Stop listening, drop every connection, wait `downtime_s`, listen again on the same port."""
        if mode not in ("abrupt", "clean"):
            raise ValueError("mode must be 'abrupt' or 'clean'")
        members = list(self.connections.values())
        if mode == "abrupt":
            for conn in members:
                conn.transport.abort()
        await self.stop()
        if downtime_s > 0:
            await asyncio.sleep(downtime_s)
        await self.start()
        return len(members)

    def connection_count(self) -> int:
        return len(self.connections)

    def channel_metrics(self) -> dict[str, tuple[int, ChannelCounters]]:
        for channel in self.channels.values():
            channel.counters.dropped_paused = channel.line.dropped_paused
        return {name: (len(channel.subscribers), channel.counters) for name, channel in self.channels.items()}
