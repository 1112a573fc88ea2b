"""Hotsock's WebSocket frames, sans-I/O, for both ends (`shared/spec/hotsock.md` §1.2–1.4).

Small explicit frame types (h11-style) and two parsers; no sockets, clocks or Locust, so the emulator
and the load client share one definition of the wire format.

- Client → server: `Subscribe`, `Unsubscribe`, `ClientMessage`, `Ping`, `Pong`, `Heartbeat`,
  `UmdUpdate`; each has `encode()`. The server side reads them with `parse_client_frame`, which
  also enforces the §1.4 limits (names, 32 KiB of `data`).
- Server → client: `Connected`, `Subscribed`, `Unsubscribed`, `Message`, `MemberAdded`,
  `MemberRemoved`, `MemberUpdated`, `Pong`, `KeepAlive`, `ServerPing`, `UmdUpdated`, `Error`, and
  `OtherEvent` for `hotsock.*` events this codec does not model (storage, reactions); each has
  `encode()`. The client side reads them with `parse_server_frame`.

Both parsers raise `FrameError` — and nothing else — for anything a peer sends that they cannot
use. It carries the `hotsock.error` code the emulator answers with (`code`), and the frame's
channel when that much was readable. `Error(channel, code, message).encode()` is that answer.

Server timestamps: no Hotsock frame carries one, but a `Message` id is a ULID, whose first 48 bits
are the millisecond it was issued (`Message.server_ms`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import orjson

from .. import untrusted
from .ulid import UlidError, timestamp_ms

DATA_MAX_BYTES = 32 * 1024  # `data` serialised as JSON, UTF-8
CHANNEL_MAX_CHARS = 256
EVENT_MAX_CHARS = 128
RESERVED_EVENT_PREFIX = "hotsock."

# Codes the service documents (spec §1.3).
NOT_SUBSCRIBED = "NOT_SUBSCRIBED"
ALREADY_SUBSCRIBED = "ALREADY_SUBSCRIBED"
SUBSCRIBE_PERMISSION_DENIED = "SUBSCRIBE_PERMISSION_DENIED"
INVALID_SUBSCRIBE_TOKEN = "INVALID_SUBSCRIBE_TOKEN"
PRESENCE_CHANNEL_USER_ID_REQUIRED = "PRESENCE_CHANNEL_USER_ID_REQUIRED"
PRESENCE_CHANNEL_CAPACITY_REACHED = "PRESENCE_CHANNEL_CAPACITY_REACHED"
# Emulator choices: the service's full list is unpublished (spec §1.3 [unv]).
INVALID_FRAME = "INVALID_FRAME"  # not JSON, not an object, binary, a field of the wrong type
INVALID_CHANNEL = "INVALID_CHANNEL"  # missing, or breaks the §1.4 channel-name rules
INVALID_EVENT = "INVALID_EVENT"  # breaks the §1.4 event-name rules, or an unknown hotsock.* event
DATA_TOO_LARGE = "DATA_TOO_LARGE"  # `data` over 32 KiB
PUBLISH_PERMISSION_DENIED = "PUBLISH_PERMISSION_DENIED"  # no publish/broadcast for this event here
UNSUPPORTED_EVENT = "UNSUPPORTED_EVENT"  # a real hotsock.* request the emulator does not emulate
INVALID_UMD_TOKEN = "INVALID_UMD_TOKEN"  # a hotsock.umdUpdate token that fails verification
UMD_UPDATE_PERMISSION_DENIED = "UMD_UPDATE_PERMISSION_DENIED"  # a valid umd token without umdUpdate

UNSUPPORTED_EVENTS = frozenset({"hotsock.channelStorageSet", "hotsock.channelStorageGet",
                                "hotsock.messageReaction"})
_BAD_CHANNEL_CHARS = re.compile(r"[\s*#,]")


class FrameError(ValueError):
    """A frame a peer sent that cannot be used; `code` is the `hotsock.error` code that answers it."""

    def __init__(self, code: str, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.channel = channel


def channel_problem(name: object) -> str | None:
    """Why `name` is not a valid channel name (1–256 characters, no `*`, `#`, `,` or whitespace)."""
    if not isinstance(name, str) or not name:
        return "channel must be a non-empty string"
    if len(name) > CHANNEL_MAX_CHARS:
        return f"channel names are at most {CHANNEL_MAX_CHARS} characters"
    if _BAD_CHANNEL_CHARS.search(name):
        return "channel names may not contain '*', '#', ',' or whitespace"
    return None


def event_problem(name: object) -> str | None:
    """Why `name` is not a valid message event name (≤128 characters, not `hotsock.…`/`#…`, no `*`)."""
    if not isinstance(name, str) or not name:
        return "event must be a non-empty string"
    if len(name) > EVENT_MAX_CHARS:
        return f"event names are at most {EVENT_MAX_CHARS} characters"
    if name.startswith(RESERVED_EVENT_PREFIX) or name.startswith("#"):
        return "event names may not start with 'hotsock.' or '#'"
    if "*" in name:
        return "event names may not contain '*'"
    return None


def is_presence(channel: str) -> bool:
    return channel.startswith("presence.")


def dumps(value) -> bytes:
    return orjson.dumps(value)


# -- client → server ---------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Subscribe:
    channel: str
    token: str | None = None  # a subscribe-scoped JWT with more permissions for this channel

    def encode(self) -> bytes:
        frame: dict = {"event": "hotsock.subscribe", "channel": self.channel}
        if self.token is not None:
            frame["data"] = {"token": self.token}
        return dumps(frame)


@dataclass(slots=True, frozen=True)
class Unsubscribe:
    channel: str

    def encode(self) -> bytes:
        return dumps({"event": "hotsock.unsubscribe", "channel": self.channel})


@dataclass(slots=True, frozen=True)
class ClientMessage:
    """A message a client sends on a channel; hotsock-js sends exactly `{channel, event, data}`."""

    channel: str
    event: str
    data: object = None

    def encode(self) -> bytes:
        return dumps({"channel": self.channel, "event": self.event, "data": self.data})


@dataclass(slots=True, frozen=True)
class UmdUpdate:
    token: str  # a umd-scoped JWT carrying the new `umd`
    channel: str | None = None  # None: a connection-level update

    def encode(self) -> bytes:
        frame: dict = {"event": "hotsock.umdUpdate"}
        if self.channel is not None:
            frame["channel"] = self.channel
        frame["data"] = {"token": self.token}
        return dumps(frame)


@dataclass(slots=True, frozen=True)
class _Fixed:
    """A frame with no fields: always the same bytes."""

    WIRE: ClassVar[bytes] = b""

    def encode(self) -> bytes:
        return self.WIRE


class Ping(_Fixed):
    __slots__ = ()
    WIRE = b'{"event":"hotsock.ping"}'


class Heartbeat(_Fixed):
    __slots__ = ()
    WIRE = b'{"event":"hotsock.heartbeat"}'


class Pong(_Fixed):
    """A client's answer to a server `hotsock.ping`."""

    __slots__ = ()
    WIRE = b'{"event":"hotsock.pong"}'


ClientFrame = Subscribe | Unsubscribe | ClientMessage | UmdUpdate | Ping | Heartbeat | Pong

PING, PONG, HEARTBEAT = Ping(), Pong(), Heartbeat()


def _load_object(data: str | bytes, limit: int | None = untrusted.MAX_JSON_DEPTH) -> dict:
    try:  # a depth limit on client frames: orjson reads 1,024 levels but writes 254, and data is echoed
        frame = untrusted.loads(data, limit)
    except untrusted.Refused as refused:
        reason = "frame is not valid JSON" if refused.reason == "not JSON" else f"frame is {refused.reason}"
        raise FrameError(INVALID_FRAME, reason) from None
    if not isinstance(frame, dict):
        raise FrameError(INVALID_FRAME, "frame must be a JSON object")
    return frame


def _token_of(frame: dict, code: str, channel: str | None) -> str | None:
    data = frame.get("data")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise FrameError(INVALID_FRAME, "data must be an object holding a token", channel)
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise FrameError(code, "data.token must be a string", channel)
    return token


def parse_client_frame(data: str | bytes) -> ClientFrame:
    """One client text frame → a client frame; `FrameError` (with its `hotsock.error` code) otherwise."""
    frame = _load_object(data)
    event = frame.get("event")
    channel = frame.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise FrameError(INVALID_FRAME, "channel must be a string")
    if not isinstance(event, str):
        raise FrameError(INVALID_FRAME, "event must be a string", channel)
    if event.startswith(RESERVED_EVENT_PREFIX):
        if event in ("hotsock.ping", "hotsock.heartbeat", "hotsock.pong"):
            return PING if event == "hotsock.ping" else HEARTBEAT if event == "hotsock.heartbeat" else PONG
        if event == "hotsock.umdUpdate":
            if channel is not None and (problem := channel_problem(channel)):
                raise FrameError(INVALID_CHANNEL, problem, channel)
            token = _token_of(frame, INVALID_UMD_TOKEN, channel)
            if token is None:
                raise FrameError(INVALID_UMD_TOKEN, "hotsock.umdUpdate needs data.token", channel)
            return UmdUpdate(token, channel)
        if event not in ("hotsock.subscribe", "hotsock.unsubscribe"):
            if event in UNSUPPORTED_EVENTS:
                raise FrameError(UNSUPPORTED_EVENT, f"{event} is not emulated", channel)
            raise FrameError(INVALID_EVENT, "unknown hotsock.* event", channel)
        if problem := channel_problem(channel):
            raise FrameError(INVALID_CHANNEL, problem, channel)
        if event == "hotsock.unsubscribe":
            return Unsubscribe(channel)
        return Subscribe(channel, _token_of(frame, INVALID_SUBSCRIBE_TOKEN, channel))
    if problem := channel_problem(channel):
        raise FrameError(INVALID_CHANNEL, problem, channel)
    if problem := event_problem(event):
        raise FrameError(INVALID_EVENT, problem, channel)
    payload = frame.get("data")
    if payload is not None and len(dumps(payload)) > DATA_MAX_BYTES:
        raise FrameError(DATA_TOO_LARGE, f"data is over {DATA_MAX_BYTES} bytes of JSON", channel)
    return ClientMessage(channel, event, payload)


# -- server → client ---------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Member:
    """A presence channel member."""

    uid: str
    umd: object = None

    def to_json(self) -> dict:
        return {"uid": self.uid, "umd": self.umd}


@dataclass(slots=True, frozen=True)
class Meta:
    """Who sent a client-originated message (or whom a subscription is for)."""

    uid: str | None
    umd: object = None

    def to_json(self) -> dict:
        return {"uid": self.uid, "umd": self.umd}


NO_META = Meta(None, None)


@dataclass(slots=True, frozen=True)
class Connected:
    connection_id: str
    connection_expires_at: str  # RFC 3339, seconds, "Z"
    connection_secret: str
    meta: Meta = NO_META

    def encode(self) -> bytes:
        return dumps({"event": "hotsock.connected",
                      "data": {"connectionId": self.connection_id, "connectionExpiresAt": self.connection_expires_at,
                               "connectionSecret": self.connection_secret},
                      "meta": self.meta.to_json()})


@dataclass(slots=True, frozen=True)
class Subscribed:
    channel: str
    meta: Meta = NO_META
    members: tuple[Member, ...] | None = None  # presence channels only
    auto_subscribed: bool = False
    alias: str | None = None  # `meta.channelAlias`: the token's alias of this (real) channel

    def encode(self) -> bytes:
        data: dict = {}
        if self.members is not None:
            data["members"] = [m.to_json() for m in self.members]
        if self.auto_subscribed:
            data["autoSubscribed"] = True
        return dumps({"event": "hotsock.subscribed", "channel": self.channel, "data": data,
                      "meta": _subscription_meta(self.meta, self.alias)})


@dataclass(slots=True, frozen=True)
class Unsubscribed:
    channel: str
    meta: Meta = NO_META
    alias: str | None = None  # kept on the subscription: present whichever name the client used

    def encode(self) -> bytes:
        return dumps({"event": "hotsock.unsubscribed", "channel": self.channel, "data": {},
                      "meta": _subscription_meta(self.meta, self.alias)})


def _subscription_meta(meta: Meta, alias: str | None) -> dict:
    """A (un)subscribed frame's `meta`: `channelAlias` first where the channel has one (the vendor's example)."""
    return meta.to_json() if alias is None else {"channelAlias": alias, **meta.to_json()}


@dataclass(slots=True)  # not frozen: one per delivery on the client, where __init__ cost counts
class Message:
    id: str  # a ULID, monotonic per channel
    channel: str
    event: str
    data: object
    meta: Meta | None = None  # client-originated messages only

    def encode(self) -> bytes:
        frame: dict = {"id": self.id, "event": self.event, "channel": self.channel, "data": self.data}
        if self.meta is not None:
            frame["meta"] = self.meta.to_json()
        return dumps(frame)

    @property
    def server_ms(self) -> int | None:
        """When the service issued this message, in Unix milliseconds (from the ULID), or None."""
        try:
            return timestamp_ms(self.id)
        except UlidError:
            return None


@dataclass(slots=True, frozen=True)
class _MemberEvent:
    channel: str
    member: Member
    members: tuple[Member, ...]
    EVENT = ""

    def encode(self) -> bytes:
        return dumps({"event": self.EVENT, "channel": self.channel,
                      "data": {"member": self.member.to_json(), "members": [m.to_json() for m in self.members]}})


class MemberAdded(_MemberEvent):
    __slots__ = ()
    EVENT = "hotsock.memberAdded"


class MemberRemoved(_MemberEvent):
    __slots__ = ()
    EVENT = "hotsock.memberRemoved"


class MemberUpdated(_MemberEvent):
    __slots__ = ()
    EVENT = "hotsock.memberUpdated"


class ServerPong(_Fixed):
    __slots__ = ()
    WIRE = b'{"event":"hotsock.pong","data":"{}"}'  # `data` is a string in the service's example


class KeepAlive(_Fixed):
    __slots__ = ()
    WIRE = b'{"event":"hotsock.keepAlive","data":{}}'


class ServerPing(_Fixed):
    __slots__ = ()
    WIRE = b'{"event":"hotsock.ping"}'


@dataclass(slots=True, frozen=True)
class UmdUpdated:
    """The answer to a `hotsock.umdUpdate` that no `hotsock.memberUpdated` answers (connection-level,
    or a channel that is not a presence channel): an emulator choice, the service's is unpublished."""

    meta: Meta
    channel: str | None = None  # None: the connection-level umd

    def encode(self) -> bytes:
        frame: dict = {"event": "hotsock.umdUpdated"}
        if self.channel is not None:
            frame["channel"] = self.channel
        return dumps(frame | {"data": {}, "meta": self.meta.to_json()})


@dataclass(slots=True, frozen=True)
class Error:
    channel: str | None
    code: str
    message: str = ""

    def encode(self) -> bytes:
        return dumps({"event": "hotsock.error", "channel": self.channel,
                      "error": {"code": self.code, "message": self.message}})


@dataclass(slots=True, frozen=True)
class OtherEvent:
    """A `hotsock.*` server event this codec does not model."""

    event: str
    channel: str | None
    data: object


ServerFrame = (Connected | Subscribed | Unsubscribed | Message | MemberAdded | MemberRemoved | MemberUpdated
               | ServerPong | KeepAlive | ServerPing | UmdUpdated | Error | OtherEvent)

SERVER_PONG, KEEP_ALIVE, SERVER_PING = ServerPong(), KeepAlive(), ServerPing()
_MEMBER_EVENTS = {cls.EVENT: cls for cls in (MemberAdded, MemberRemoved, MemberUpdated)}


def _bad(what: str, channel=None) -> FrameError:
    return FrameError(INVALID_FRAME, what, channel if isinstance(channel, str) else None)


def _meta(value) -> Meta:
    if value is None:
        return NO_META
    if not isinstance(value, dict) or not isinstance(value.get("uid"), str | None):
        raise _bad("meta must be an object with a string or null uid")
    return Meta(value.get("uid"), value.get("umd"))


def _member(value) -> Member:
    if not isinstance(value, dict) or not isinstance(value.get("uid"), str):
        raise _bad("a member is an object with a string uid")
    return Member(value["uid"], value.get("umd"))


def _members(value) -> tuple[Member, ...]:
    if not isinstance(value, list):
        raise _bad("members must be a list")
    return tuple(_member(m) for m in value)


def parse_server_frame(data: str | bytes) -> ServerFrame:
    """One server text frame → a server frame; `FrameError` (code INVALID_FRAME) for anything unusable."""
    frame = _load_object(data, limit=None)  # the client's receive path: no depth walk
    event = frame.get("event")
    channel = frame.get("channel")
    if not isinstance(event, str):
        raise _bad("event must be a string", channel)
    if channel is not None and not isinstance(channel, str):
        raise _bad("channel must be a string")
    if not event.startswith(RESERVED_EVENT_PREFIX):  # a channel message: the hot path
        message_id = frame.get("id")
        if not isinstance(message_id, str) or channel is None:
            raise _bad("a channel message has a string id and channel", channel)
        meta = frame.get("meta")
        return Message(message_id, channel, event, frame.get("data"), None if meta is None else _meta(meta))
    body = frame.get("data")
    if event == "hotsock.error":
        error = frame.get("error")
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            raise _bad("hotsock.error needs error.code, a string", channel)
        message = error.get("message")
        return Error(channel, error["code"], message if isinstance(message, str) else "")
    if event in _MEMBER_EVENTS:
        if channel is None or not isinstance(body, dict):
            raise _bad(f"{event} needs a channel and data", channel)
        return _MEMBER_EVENTS[event](channel, _member(body.get("member")), _members(body.get("members")))
    if event in ("hotsock.subscribed", "hotsock.unsubscribed"):
        if channel is None or not isinstance(body, dict):
            raise _bad(f"{event} needs a channel and data", channel)
        raw_meta = frame.get("meta")
        meta = _meta(raw_meta)
        alias = raw_meta.get("channelAlias") if raw_meta is not None else None
        if alias is not None and not isinstance(alias, str):
            raise _bad("meta.channelAlias must be a string", channel)
        if event == "hotsock.unsubscribed":
            return Unsubscribed(channel, meta, alias)
        members = body.get("members")
        return Subscribed(channel, meta, None if members is None else _members(members),
                          body.get("autoSubscribed") is True, alias)
    if event == "hotsock.connected":
        if not isinstance(body, dict):
            raise _bad("hotsock.connected needs data")
        fields = [body.get(key) for key in ("connectionId", "connectionExpiresAt", "connectionSecret")]
        if not all(isinstance(value, str) for value in fields):
            raise _bad("hotsock.connected needs string connectionId, connectionExpiresAt, connectionSecret")
        return Connected(*fields, _meta(frame.get("meta")))
    if event == "hotsock.pong":
        return SERVER_PONG
    if event == "hotsock.keepAlive":
        return KEEP_ALIVE
    if event == "hotsock.ping":
        return SERVER_PING
    if event == "hotsock.umdUpdated":
        return UmdUpdated(_meta(frame.get("meta")), channel)
    return OtherEvent(event, channel, body)
