"""The toy service's client protocol: frames ⇄ neutral events. The identity of a measured message
travels in `meta` as {"s": sender, "n": seq, "t": intended µs}; the sender's own copy acks it."""

from __future__ import annotations

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
    category_of_http_status,
)
from . import codec


class ToyProtocol(ClientProtocol):
    def receive(self, payload: bytes, is_text: bool, at_ns: int):
        if not is_text:
            return ProtocolError("binary frame from server")
        try:
            frame = codec.decode(payload)
        except codec.BadFrame as exc:
            return ProtocolError(str(exc))
        op = frame["op"]
        if op == "msg":
            meta = frame.get("meta")
            if not isinstance(meta, dict) or "s" not in meta:
                return FOREIGN
            try:
                delivered = Delivered(str(meta["s"]), int(meta["n"]), int(meta["t"]), int(frame["ts"]))
            except (KeyError, TypeError, ValueError):
                return ProtocolError("message with unreadable meta or ts")
            request = self.pending.pop(frame.get("ref"), None) if delivered.sender == self.user.sender_id else None
            return Acked(request, delivered.server_ns, delivered) if request is not None else delivered
        if op == "error":
            status = frame.get("status")
            if not isinstance(status, int):
                return ProtocolError("error without an integer status")
            request = self.pending.pop(frame.get("ref"), None)
            return Rejected(request, category_of_http_status(status), str(status), str(frame.get("reason", "")))
        if op == "kicked":
            return ServiceEvent("kicked"), Kicked()
        if op == "expired":
            return ServiceEvent("expired"), MustReconnect("session expired")
        return ServiceEvent(op[:40])

    def send_message(self, request: Request, content: str, extra: Mapping[str, str] | None) -> bytes:
        ref = f"{self.user.sender_id}.{request.seq}"
        self.pending[ref] = request
        meta = {"s": self.user.sender_id, "n": request.seq, "t": request.intended_ns // 1000, **(extra or {})}
        return codec.encode_send(ref, content, meta)
