"""A WebSocket client connection as an asyncio protocol over websockets' sans-I/O `ClientProtocol`.

Why not `websockets.asyncio.client.connect`: it queues each message and wakes a task per `recv()`.
On the receive path we want the arrival time taken the moment the bytes are read and the frame
handed to the chat layer synchronously, in the same callback: `data_received` stamps the time,
feeds websockets' parser and calls `listener.on_text(payload, arrival_ns)` for each text frame.
websockets still owns the protocol: handshake checks, pings/pongs, the closing handshake.

The listener (the chat session) gets, on the loop thread:
`on_text(payload: bytes, arrival_ns)`, `on_closed(code, reason, clean, at_ns)` once.
"""

from __future__ import annotations

import asyncio
import time

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

TEXT, BINARY, CONT, CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE
OPEN = State.OPEN
CLOSE_TIMEOUT_S = 5.0
ABNORMAL = 1006


class HandshakeFailed(ConnectionError):
    """The server refused the upgrade (`status` is its HTTP status) or answered nonsense (None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebSocketClient(asyncio.Protocol):
    def __init__(self, uri: str, subprotocol: str | None, listener, max_size: int = 2**20) -> None:
        self.protocol = ClientProtocol(
            parse_uri(uri), subprotocols=[subprotocol] if subprotocol else None, max_size=max_size
        )
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.open_ns = 0
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._closed_reported = False
        self._close_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        arrival_ns = time.time_ns()  # before parsing or any queueing: this is the receive timestamp
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if event.__class__ is Response:
                self._handshake_done(event, arrival_ns)
                continue
            opcode = event.opcode
            if opcode is TEXT and event.fin:
                self.listener.on_text(event.data, arrival_ns)
            elif opcode is TEXT or opcode is BINARY or opcode is CONT:
                self._fragment(event, arrival_ns)
        self._flush()

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._flush()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during the handshake"))
            return
        self._report_closed()

    # -- sending ----------------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> bool:
        """Queue one text frame; False if the connection is no longer open (nothing sent)."""
        if self.protocol.state is not OPEN or self.transport.is_closing():
            return False
        self.protocol.send_text(payload)
        self._flush()
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; `on_closed` follows when the TCP connection ends."""
        if self.protocol.state is OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_open(self) -> bool:
        return self.protocol.state is OPEN

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport else 0

    # -- internals --------------------------------------------------------------------------------

    def _handshake_done(self, response: Response, arrival_ns: int) -> None:
        if self.opened.done():
            return
        if self.protocol.state is OPEN:
            self.open_ns = arrival_ns
            self.opened.set_result(self)
            return
        exc = self.protocol.handshake_exc
        status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
        self.opened.set_exception(HandshakeFailed(status, str(exc) if exc else "handshake failed"))

    def _fragment(self, frame, arrival_ns: int) -> None:
        # Chat servers do not fragment, but a fragmented text message is still a message.
        if frame.opcode is not CONT:
            self._fragments, self._fragments_text = [frame.data], frame.opcode is TEXT
        elif self._fragments is not None:
            self._fragments.append(frame.data)
        if frame.fin and self._fragments is not None:
            payload, self._fragments = b"".join(self._fragments), None
            if self._fragments_text:
                self.listener.on_text(payload, arrival_ns)
            else:
                self.listener.on_binary(payload, arrival_ns)

    def _flush(self) -> None:
        transport = self.transport
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected() and self._close_timer is None:
            # The server should end TCP after the closing handshake; don't wait for it forever.
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT_S, transport.abort)

    def _report_closed(self) -> None:
        if self._closed_reported:
            return
        self._closed_reported = True
        received = self.protocol.close_rcvd
        code = received.code if received is not None else ABNORMAL
        reason = received.reason if received is not None else ""
        clean = received is not None and self.protocol.close_sent is not None
        self.listener.on_closed(code, reason, clean, time.time_ns())


async def open_websocket(uri: str, subprotocol: str | None, listener, *, timeout: float = 10.0) -> WebSocketClient:
    """Connect and complete the opening handshake within `timeout`; raise on refusal or timeout."""
    loop = asyncio.get_running_loop()
    parsed = parse_uri(uri)
    client = WebSocketClient(uri, subprotocol, listener)
    async with asyncio.timeout(timeout):
        try:
            await loop.create_connection(lambda: client, parsed.host, parsed.port,
                                         ssl=True if parsed.secure else None)
            return await client.opened
        except BaseException:
            client.abort()
            raise
