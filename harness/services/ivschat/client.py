"""IVS Chat's client protocol: the messaging socket's frames ⇄ neutral events, sans-I/O.

- Message identity travels in `Attributes`: `cl.s` (sender id), `cl.n` (per-sender sequence
  number) and `cl.t` (intended send time, µs since the epoch on the corrected clock).
- Every request carries a RequestId; the answer is the sender's own MESSAGE echo (a send), an
  EVENT (a delete or a kick) or an ERROR with the same RequestId. So a send's ack is its echo,
  which is also a delivery to the sender (the sender is a member of its room).
- ERROR 401 means the session expired: the server closes next, and the official SDK reconnects
  with a fresh token (MustReconnect). `aws:DISCONNECT_USER` naming this user is a kick.
- Binary frames are not part of the protocol: a protocol error, counted.
- A moderator (DELETE_MESSAGE capability) keeps the ids of the last messages it received, for its
  deletes; nobody else pays for them.
- A room's fan-out brings the very same MESSAGE bytes to every member, and a load generator holds
  many members of one room: what a MESSAGE frame says is read once per process (`ReadMessages`) and
  each later copy, byte for byte the same, is looked up instead of parsed again (reading is a pure
  function of the bytes, so the result is the same). Every copy is still a delivery of its own:
  stamped by its transport, judged by its connection's ledger, timed into the histograms.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

from ..base import (
    FOREIGN,
    Acked,
    ClientProtocol,
    Delivered,
    Kicked,
    MustReconnect,
    ProtocolError,
    Rejected,
    Request,
    ServiceEvent,
    UserSpec,
    category_of_http_status,
)
from . import codec

SENDER, SEQ, INTENDED = "cl.s", "cl.n", "cl.t"
READ_MESSAGES_MAX = 4096  # distinct frames remembered: ~1.5 MiB, seconds of a busy room's backlog


def identity_attributes(sender: str, seq: int, intended_us: int) -> dict[str, str]:
    """The `Attributes` that carry a measured message's identity (benchmarks stamp theirs so too)."""
    return {SENDER: sender, SEQ: str(seq), INTENDED: str(intended_us)}


class IvsChatProtocol(ClientProtocol):
    text_frames = True
    ready_on_open = True  # the token was checked at the upgrade: open is usable
    acks_sends = True

    def __init__(self, user: UserSpec) -> None:
        super().__init__(user)
        self._request_ids = 0
        self.recent_ids: collections.deque[str] | None = (
            collections.deque(maxlen=32) if codec.DELETE_MESSAGE in user.capabilities else None)

    # -- frames in --------------------------------------------------------------------------------

    def receive(self, payload: bytes, is_text: bool, at_ns: int):
        if not is_text:
            return ProtocolError("binary frame from server")
        if payload.__class__ is not bytes:  # websockets hands over a bytearray: a key must be immutable
            payload = bytes(payload)
        read = _read_messages.get(payload)  # the hot path: another member already read these bytes
        if read is None:
            try:
                frame = codec.parse_server_frame(payload)
            except codec.ProtocolViolation as exc:
                return ProtocolError(str(exc))
            kind = frame.__class__
            if kind is codec.ChatError:
                return self._error(frame)
            if kind is not codec.ChatMessage:
                return self._event(frame)
            read = _read_messages.remember(payload, frame)
        message, meaning = read
        if self.recent_ids is not None:
            self.recent_ids.append(message.id)
        if meaning.__class__ is Delivered and meaning.sender == self.user.sender_id:
            request = self.pending.pop(message.request_id, None)
            if request is not None:
                return Acked(request, meaning.server_ns, meaning)
        return meaning

    def _error(self, error: codec.ChatError):
        request = self.pending.pop(error.request_id, None) if error.request_id else None
        rejected = Rejected(request, category_of_http_status(error.code), str(error.code), error.message)
        if error.code == 401:
            return rejected, MustReconnect("session expired")  # the server closes next
        return rejected

    def _event(self, event: codec.ChatEvent):
        events = [ServiceEvent(event.event_name)]
        if (event.event_name == codec.EVENT_DISCONNECT_USER and event.attributes
                and event.attributes.get("UserId") == self.user.user_id):
            events.append(Kicked(event.attributes.get("Reason") or ""))
        request = self.pending.pop(event.request_id, None) if event.request_id else None
        if request is not None:
            events.append(Acked(request, None))  # a delete or a kick took effect
        return events[0] if len(events) == 1 else tuple(events)

    # -- requests out -----------------------------------------------------------------------------

    def _track(self, request: Request, tag: str) -> str:
        """A RequestId unique for this sender (sends use their sequence number), now pending."""
        if request.kind == "send":
            request_id = f"{self.user.sender_id}.{request.seq}"
        else:
            self._request_ids += 1
            request_id = f"{self.user.sender_id}.{tag}{self._request_ids}"
        self.pending[request_id] = request
        return request_id

    def send_message(self, request: Request, content: str, extra: Mapping[str, str] | None) -> bytes:
        attributes = identity_attributes(self.user.sender_id, request.seq, request.intended_ns // 1000)
        if extra:
            attributes.update(extra)
        return codec.encode_send_message(self._track(request, ""), content, attributes)

    def encode_request(self, name: str, request: Request, *args) -> bytes:
        if name == "delete":
            message_id, reason = (*args, None)[:2]
            return codec.encode_delete_message(self._track(request, "d"), message_id, reason)
        if name == "disconnect":
            user_id, reason = (*args, None)[:2]
            return codec.encode_disconnect_user(self._track(request, "k"), user_id, reason)
        return super().encode_request(name, request, *args)

    def recent_message_ids(self) -> list[str]:
        return list(self.recent_ids or ())


def message_meaning(message: codec.ChatMessage):
    """What a MESSAGE means to any receiver: a chatload delivery (`Delivered`, the same for every
    member of the room), another client's message (`FOREIGN`), or a `ProtocolError`."""
    attributes = message.attributes
    if not attributes or SENDER not in attributes:
        return FOREIGN
    try:
        return Delivered(attributes[SENDER], int(attributes[SEQ]), int(attributes[INTENDED]),
                         codec.parse_send_time(message.send_time))
    except (KeyError, ValueError, TypeError):
        return ProtocolError("chatload message with unreadable cl.* attributes or SendTime")


class ReadMessages:
    """MESSAGE frames this process has read lately: exact bytes → (message, meaning).

    Shared by every connection of the process (they all live on its loop thread). Each operation is
    a single dict call, atomic under the GIL, and an entry is only ever right for its key, so even a
    second thread reading frames could not get a wrong answer. Bounded by starting afresh: a room's
    copies of one message arrive within moments of each other, so the recent ones are all it needs.
    The `Delivered` it hands out is shared: consumers only read it.
    """

    def __init__(self, limit: int = READ_MESSAGES_MAX) -> None:
        self.limit = limit
        self._read: dict[bytes, tuple[codec.ChatMessage, object]] = {}
        self.get = self._read.get

    def remember(self, payload: bytes, message: codec.ChatMessage) -> tuple[codec.ChatMessage, object]:
        read = (message, message_meaning(message))
        if len(self._read) >= self.limit:
            self._read.clear()
        self._read[payload] = read
        return read

    def __len__(self) -> int:
        return len(self._read)


_read_messages = ReadMessages()
