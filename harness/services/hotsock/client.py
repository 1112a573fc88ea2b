"""Hotsock's client protocol: `codec` frames ⇄ neutral events, sans-I/O (spec §1.2–1.3, §1.6).

One connection subscribes to one channel, the user's room, as hotsock-js does with a bound channel:
the session is usable at `hotsock.connected` (READY: the connect latency ends there), the protocol
then sends `hotsock.subscribe` itself, and `hotsock.subscribed` is the membership (`Joined`: the
ledger owes deliveries from then on) and the subscribe latency (`Measured("subscribe")`). A new
connection subscribes again (hotsock-js resubscribes every bound channel); nothing is replayed.

- **Identity** of a measured message travels in `data`, the only field a server publish and a client
  message share: `{"cl.s": sender, "cl.n": seq, "cl.t": intended µs, "text": …}`. A channel
  message without `cl.s` is someone else's (FOREIGN).
- **Server time**: Hotsock frames carry none, but a message id is a ULID naming the millisecond it
  was issued. A message cannot have been accepted before it was meant to be sent, so its server
  time is the later of that millisecond's start and its intended send time: a lower bound, finer
  than a millisecond whenever the send was on time. (`from_server` is then an upper bound.)
- **Acks**: a chatter's token has `echo`, so its own copy coming back is its ack (`Acked` with the
  echo, which is also a delivery to it). Server publishes are acked by `POST /publish` itself
  (`HotsockService.publish`).
- **Errors**: `hotsock.error` carries a channel and a code but no request id, so an error is matched
  to the oldest pending request *on that channel*, of the kind its code is about (subscribe codes
  to the subscribe, NOT_SUBSCRIBED to an unsubscribe, the rest to sends), else to the oldest of any
  kind there, else to none (`Rejected(None, …)`: untied). Successes come back through the delivery
  line while errors come straight back, so under an injected delivery delay an error can overtake
  an earlier send's echo and be charged to that send: the matching is exact only while answers
  keep the order of requests. Codes map to neutral categories in `CATEGORY_OF_CODE`.
- **Presence** (`presence.*` channels): a subscribe is an `Origin("presence_join")` for this user at
  the time it was sent; every `hotsock.memberAdded` another member receives is its
  `Observed("presence_join")`; the same for an unsubscribe and `hotsock.memberRemoved`
  ("presence_leave"). A memberRemoved that follows a *drop* has no origin (the dropped client
  cannot know when the server noticed): it counts as `unmatched`. Every member keeps the roster it
  was given at subscribe, applies each event's change and compares the result with the full list
  the event carries: a difference is `events.roster_mismatch` (and the list is taken as the truth).
- **What should never arrive**: a message on a channel this connection is not subscribed to (refused,
  never asked, or left) is `events.delivered_unsubscribed`; a message its sender marked as one the
  service must refuse (`cl.f`, sent by users whose token forbids publishing) is
  `events.forbidden_delivered`. Both still count as deliveries in the ledger.
- **Keepalive** as hotsock-js: `hotsock.heartbeat` every 0.9 × the token's `heartbeatTimeout` (the
  user's `heartbeatTimeout` attribute; hotsock-js sends it up to 10 % early), else nothing — the
  client never sends `hotsock.ping` by itself, so a connection with no traffic either way meets
  API Gateway's 10-minute idle timeout (1001, and it comes back). A server `hotsock.ping` is
  answered with `hotsock.pong`, as hotsock-js does. A close 1001 "Going away" (the 2-hour maximum, a missed heartbeat, idleness)
  is `MustReconnect`: come back with a fresh token, whatever the reconnect policy.
- **Alias** (the user's `alias` attribute, which its token grants its channel under): subscribe,
  unsubscribe and sends name the alias, as an application using hotsock-js does; the server's
  frames name the real channel (the user's room), so the receive path is unchanged.
  `hotsock.subscribed` without the alias in `meta.channelAlias` is `events.alias_missing`: hotsock-js
  could not route the channel's messages to the alias's bindings. An error naming the alias is
  the channel's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..base import (
    FOREIGN,
    READY,
    Acked,
    Category,
    ClientProtocol,
    Delivered,
    Joined,
    Left,
    Measured,
    MustReconnect,
    Observed,
    Origin,
    ProtocolError,
    Rejected,
    Request,
    ServiceEvent,
    TokenWanted,
    UserSpec,
)
from . import codec

EVENT = "chat"  # the event name of every measured message
SENDER, SEQ, INTENDED, TEXT, FORBIDDEN = "cl.s", "cl.n", "cl.t", "text", "cl.f"

# User capabilities, in claim words: what the token provider grants on the user's channel.
SUBSCRIBE, PUBLISH = "subscribe", "publish"
NO_SUBSCRIBE, NO_PUBLISH = "subscribe=false", "publish=false"  # an explicit false: always wins
HEARTBEAT_ATTRIBUTE = "heartbeatTimeout"  # seconds, the token claim; the protocol heartbeats at 0.9 ×
ALIAS_ATTRIBUTE = "alias"  # the name the user's token gives its channel, and the name it uses on the wire

PRESENCE_JOIN, PRESENCE_LEAVE = "presence_join", "presence_leave"
GOING_AWAY = 1001

SUBSCRIBE_CODES = frozenset({codec.SUBSCRIBE_PERMISSION_DENIED, codec.INVALID_SUBSCRIBE_TOKEN,
                             codec.ALREADY_SUBSCRIBED, codec.PRESENCE_CHANNEL_USER_ID_REQUIRED,
                             codec.PRESENCE_CHANNEL_CAPACITY_REACHED})
CATEGORY_OF_CODE = {
    codec.SUBSCRIBE_PERMISSION_DENIED: Category.FORBIDDEN,
    codec.PUBLISH_PERMISSION_DENIED: Category.FORBIDDEN,
    codec.UMD_UPDATE_PERMISSION_DENIED: Category.FORBIDDEN,
    codec.PRESENCE_CHANNEL_USER_ID_REQUIRED: Category.FORBIDDEN,  # the token lacks a uid
    codec.NOT_SUBSCRIBED: Category.FORBIDDEN,  # acting on a channel one is not in
    codec.INVALID_SUBSCRIBE_TOKEN: Category.UNAUTHORIZED,
    codec.INVALID_UMD_TOKEN: Category.UNAUTHORIZED,
    codec.PRESENCE_CHANNEL_CAPACITY_REACHED: Category.TOO_LARGE,  # the roster would exceed its size
    codec.DATA_TOO_LARGE: Category.TOO_LARGE,
    codec.ALREADY_SUBSCRIBED: Category.INVALID,
    codec.INVALID_FRAME: Category.INVALID,
    codec.INVALID_CHANNEL: Category.INVALID,
    codec.INVALID_EVENT: Category.INVALID,
    codec.UNSUPPORTED_EVENT: Category.INVALID,
}  # any other code: INVALID, with the code kept beside it

# The 48-bit millisecond time of a ULID is its first 10 Crockford base32 characters; `int(…, 32)`
# reads them once translated to Python's digits (0-9a-v), a few times faster than the character
# loop of `ulid.decode`. This runs once per delivery, and every recipient in a process gets the
# same id one after the other, so the last time read is kept: the common case is one compare.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_PYTHON = str.maketrans(_CROCKFORD + _CROCKFORD.lower(), "0123456789abcdefghijklmnopqrstuv" * 2)
_last_time: tuple[str, int] = ("", 0)  # (first 10 characters, ms); replaced whole, so safe across threads


def ulid_ms(message_id: str) -> int | None:
    """The millisecond a ULID was issued at, or None when it is not a ULID."""
    global _last_time
    last = _last_time
    if message_id[:10] == last[0] and len(message_id) == 26:
        return last[1]
    if _ULID.fullmatch(message_id) is None:
        return None
    ms = int(message_id[:10].translate(_TO_PYTHON), 32)
    _last_time = (message_id[:10], ms)
    return ms


def server_time_ns(message_id: str, intended_us: int) -> int | None:
    """When the service accepted a message: the ULID's millisecond, raised to the intended send
    time when that is later (nothing is accepted before it is sent). None without a ULID."""
    ms = ulid_ms(message_id)
    if ms is None:
        return None
    ns, intended_ns = ms * 1_000_000, intended_us * 1000
    return intended_ns if intended_ns > ns else ns


def identity_data(sender: str, seq: int, intended_us: int, text: str, extra: Mapping | None = None) -> dict:
    """The `data` of a measured message (client messages and server publishes alike)."""
    data = {SENDER: sender, SEQ: seq, INTENDED: intended_us, TEXT: text}
    if extra:
        data.update(extra)
    return data


def category_of_code(code: str) -> Category:
    return CATEGORY_OF_CODE.get(code, Category.INVALID)


class HotsockProtocol(ClientProtocol):
    text_frames = True
    ready_on_open = False  # usable at hotsock.connected
    joins_rooms = True  # a member of the channel from hotsock.subscribed
    ready_timeout_s = 5.0  # hotsock-js gives up on a connection with no hotsock.connected within 5 s
    acks_sends = True  # a chatter's echo, or a hotsock.error

    def __init__(self, user: UserSpec) -> None:
        super().__init__(user)
        self.channel = user.room
        self.alias = (user.attributes or {}).get(ALIAS_ATTRIBUTE) or None
        self.wire_channel = self.alias or self.channel  # the name this client sends
        self.presence = codec.is_presence(self.channel)
        self.connected = False
        self.connection_id: str | None = None
        # channel → "subscribing" | "subscribed"; absent: not subscribed (never asked, refused, left)
        self.subscriptions: dict[str, str] = {}
        self.roster: set[str] | None = None  # presence channels: the uids this member believes present
        self.forbidden = NO_PUBLISH in user.capabilities  # the service must refuse what this user sends
        heartbeat = (user.attributes or {}).get(HEARTBEAT_ATTRIBUTE)
        self.heartbeat_s = float(heartbeat) if heartbeat else None
        self.keepalive_s = 0.9 * self.heartbeat_s if self.heartbeat_s else None

    # -- frames in --------------------------------------------------------------------------------

    def receive(self, payload: bytes, is_text: bool, at_ns: int):
        if not is_text:
            return ProtocolError("binary frame from server")
        try:
            frame = codec.parse_server_frame(payload)
        except codec.FrameError as exc:
            return ProtocolError(str(exc))
        kind = frame.__class__
        if kind is codec.Message:  # the hot path first
            return self._message(frame)
        if kind is codec.Error:
            return self._error(frame)
        if kind is codec.MemberAdded or kind is codec.MemberRemoved or kind is codec.MemberUpdated:
            return self._member_event(frame)
        if kind is codec.Subscribed:
            return self._subscribed(frame, at_ns)
        if kind is codec.Unsubscribed:
            return self._unsubscribed(frame)
        if kind is codec.Connected:
            return self._connected(frame, at_ns)
        if kind is codec.ServerPing:
            self.outbox.append(codec.PONG.encode())
            return ServiceEvent("ping")
        if kind is codec.KeepAlive:
            return ServiceEvent("keepAlive")
        if kind is codec.ServerPong:
            return None  # the answer to our keepalive ping
        if kind is codec.UmdUpdated:
            return ServiceEvent("umdUpdated")
        return ServiceEvent(frame.event[:40])  # OtherEvent: storage, reactions, …

    def _message(self, message: codec.Message):
        data = message.data
        if data.__class__ is not dict or SENDER not in data:
            return FOREIGN
        sender, seq, intended_us = data[SENDER], data.get(SEQ), data.get(INTENDED)
        if sender.__class__ is not str or seq.__class__ is not int or intended_us.__class__ is not int:
            return ProtocolError("chatload message with unreadable cl.* fields")
        delivered = Delivered(sender, seq, intended_us, server_time_ns(message.id, intended_us))
        if sender == self.user.sender_id:
            request = self.pending.pop(("send", message.channel, seq), None)
            if request is not None:
                delivered = Acked(request, delivered.server_ns, delivered)
        if self.subscriptions.get(message.channel) is None:
            return delivered, ServiceEvent("delivered_unsubscribed")
        if FORBIDDEN in data:
            return delivered, ServiceEvent("forbidden_delivered")
        return delivered

    def _connected(self, connected: codec.Connected, at_ns: int):
        if self.connected:
            return ServiceEvent("connected_again")
        self.connected = True
        self.connection_id = connected.connection_id
        request = Request("subscribe", 0, at_ns, at_ns)
        if "subscribe" in self.token_purposes:
            # hotsock-js asks its subscribeTokenFn({channel, connectionId}) first, with the name it
            # subscribes by (the alias, if any): the subscribe is timed from here, the fetch
            # included, as its user would wait.
            self._subscribing(request)
            return READY, TokenWanted("subscribe", self.wire_channel, connected.connection_id)
        self.outbox.append(self._subscribe(request))
        return READY

    def token_arrived(self, wanted: TokenWanted, token: str | None) -> None:
        # Only the user's own channel is ever asked for, by its wire name (`wanted.scope`).
        if self.subscriptions.get(self.channel) != "subscribing":
            return  # left meanwhile
        if token is None:  # no token, no subscribe (hotsock-js's subscribe fails the same way)
            self.subscriptions.pop(self.channel, None)
            self.pending.pop(("subscribe", self.channel), None)
            return
        self.outbox.append(codec.Subscribe(self.wire_channel, token).encode())

    def _subscribed(self, subscribed: codec.Subscribed, at_ns: int):
        channel = subscribed.channel
        if channel != self.channel:
            return ServiceEvent("subscribed_other")  # not asked for (an autoSubscribe of the token's)
        self.subscriptions[channel] = "subscribed"
        request = self.pending.pop(("subscribe", channel), None)
        events: list = [Joined(channel)]
        if self.alias is not None and subscribed.alias != self.alias:
            events.append(ServiceEvent("alias_missing"))
        if request is not None:
            events += [Acked(request), Measured("subscribe", (at_ns - request.intended_ns) // 1000)]
        if self.presence:
            members = subscribed.members or ()
            self.roster = {member.uid for member in members}
            if self.user.user_id not in self.roster:
                events.append(ServiceEvent("roster_mismatch"))
            if request is not None:
                events.append(Origin(PRESENCE_JOIN, self.user.user_id, request.intended_ns, channel))
        return tuple(events)

    def _unsubscribed(self, unsubscribed: codec.Unsubscribed):
        channel = unsubscribed.channel
        self.subscriptions.pop(channel, None)
        request = self.pending.pop(("unsubscribe", channel), None)
        events: list = [Left(channel)]
        if request is not None:
            events.append(Acked(request))
            if self.presence and channel == self.channel:
                events.append(Origin(PRESENCE_LEAVE, self.user.user_id, request.intended_ns, channel))
        self.roster = None
        return tuple(events)

    def _member_event(self, event):
        name = event.EVENT[len(codec.RESERVED_EVENT_PREFIX):]
        events: list = [ServiceEvent(name)]
        uid = event.member.uid
        if event.__class__ is codec.MemberAdded:
            events.append(Observed(PRESENCE_JOIN, uid, event.channel))
        elif event.__class__ is codec.MemberRemoved:
            events.append(Observed(PRESENCE_LEAVE, uid, event.channel))
        if self.roster is not None and event.channel == self.channel:
            if event.__class__ is codec.MemberAdded:
                self.roster.add(uid)
            elif event.__class__ is codec.MemberRemoved:
                self.roster.discard(uid)
            listed = {member.uid for member in event.members}
            if listed != self.roster:
                events.append(ServiceEvent("roster_mismatch"))
                self.roster = listed
        return tuple(events)

    def _error(self, error: codec.Error):
        channel = self.channel if error.channel == self.wire_channel else error.channel
        request = self._request_answered_by(error.code, channel) if channel is not None else None
        category = category_of_code(error.code)
        rejected = Rejected(request, category, error.code, error.message)
        if request is not None and request.kind == "subscribe":
            if self.subscriptions.get(channel) == "subscribing":
                del self.subscriptions[channel]
            return rejected, ServiceEvent(f"subscribe_rejected.{category}")
        return rejected

    def _request_answered_by(self, code: str, channel: str) -> Request | None:
        """The oldest pending request on `channel` this error is about (see the module docstring)."""
        kind = "subscribe" if code in SUBSCRIBE_CODES else "unsubscribe" if code == codec.NOT_SUBSCRIBED else "send"
        oldest_here = None
        for key in self.pending:
            if key[1] != channel:
                continue
            if key[0] == kind:
                return self.pending.pop(key)
            if oldest_here is None:
                oldest_here = key
        return self.pending.pop(oldest_here) if oldest_here is not None else None

    # -- frames out -------------------------------------------------------------------------------

    def _subscribing(self, request: Request) -> None:
        self.subscriptions[self.channel] = "subscribing"
        self.pending[("subscribe", self.channel)] = request

    def _subscribe(self, request: Request) -> bytes:
        self._subscribing(request)
        return codec.Subscribe(self.wire_channel).encode()

    def send_message(self, request: Request, content: str, extra: Mapping[str, str] | None) -> bytes:
        self.pending[("send", self.channel, request.seq)] = request
        data = identity_data(self.user.sender_id, request.seq, request.intended_ns // 1000, content, extra)
        if self.forbidden:
            data[FORBIDDEN] = 1
        return codec.ClientMessage(self.wire_channel, EVENT, data).encode()

    def encode_request(self, name: str, request: Request, *args) -> bytes | TokenWanted:
        """`subscribe` / `unsubscribe`: the user's channel (a presence member's join and leave)."""
        if name == "subscribe":
            if "subscribe" in self.token_purposes:  # hotsock-js asks subscribeTokenFn on every subscribe
                self._subscribing(request)
                return TokenWanted("subscribe", self.wire_channel, self.connection_id or "")
            return self._subscribe(request)
        if name == "unsubscribe":
            self.pending[("unsubscribe", self.channel)] = request
            return codec.Unsubscribe(self.wire_channel).encode()
        return super().encode_request(name, request, *args)

    def keepalive(self) -> bytes:
        return codec.HEARTBEAT.encode()  # only scheduled with a heartbeatTimeout

    def closed(self, code: int, reason: str, clean: bool):
        if code == GOING_AWAY:
            return MustReconnect("going away")
        return None
