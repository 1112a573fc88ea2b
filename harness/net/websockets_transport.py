"""The websockets transport: an asyncio protocol over websockets' sans-I/O `ClientProtocol`.

Why not `websockets.asyncio.client.connect`: it queues each message and wakes a task per `recv()`.
On the receive path we want the arrival time taken the moment the bytes are read and the frame
handed to the chat layer synchronously, in the same callback: `data_received` stamps the time,
feeds websockets' parser and calls `listener.on_frame(payload, is_text, arrival_ns)` for each
message. websockets still owns the protocol: handshake checks, pings/pongs, the closing handshake.
The contract is `harness/net/transport.py`'s.
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

from .tls import TlsPhase
from .transport import ABNORMAL_CLOSURE, ConnectParams, FrameListener, HandshakeFailed, Transport

TEXT, BINARY, CONT, CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE
OPEN = State.OPEN
CLOSE_TIMEOUT_S = 5.0
MAX_SIZE = 2**20  # bytes per message; a bigger one ends the connection with 1009


class WebSocketClient(asyncio.Protocol, Transport):
    def __init__(self, params: ConnectParams, listener: FrameListener, max_size: int = MAX_SIZE) -> None:
        self.protocol = ClientProtocol(
            parse_uri(params.url), subprotocols=list(params.subprotocols) or None, max_size=max_size
        )
        self.headers = params.headers
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.open_ns = 0
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._fragments_ns = 0
        self._closed_reported = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._tls: TlsPhase | None = None  # wss://: its start stamped by the context, its end here

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self._tls is not None:  # asyncio calls this once the TLS handshake is done
            self._tls.done()
            self.tls_ns = self._tls.elapsed_ns
        request = self.protocol.connect()
        for name, value in self.headers:
            request.headers[name] = value
        self.protocol.send_request(request)
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
            if event.fin and opcode is TEXT:
                self.listener.on_frame(event.data, True, arrival_ns)
            elif event.fin and opcode is BINARY:
                self.listener.on_frame(event.data, False, arrival_ns)
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

    def send(self, payload: bytes, text: bool = True) -> bool:
        if self.protocol.state is not OPEN or self.transport.is_closing():
            return False
        if text:
            self.protocol.send_text(payload)
        else:
            self.protocol.send_binary(payload)
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
        # Not `state is OPEN`: a close frame in the same read as the 101 response (a server that
        # closes at once) has already moved the state on, yet the handshake succeeded.
        if self.protocol.handshake_exc is None:
            self.open_ns = arrival_ns
            self.subprotocol = self.protocol.subprotocol
            if self._tls is not None:
                self._ssl_object = self.transport.get_extra_info("ssl_object")  # its session: for a reconnect
            self.listener.on_open(self)  # before the frames that came in the same read
            self.opened.set_result(self)
            return
        exc = self.protocol.handshake_exc
        status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
        self.opened.set_exception(HandshakeFailed(status, str(exc) if exc else "handshake failed"))

    def _fragment(self, frame, arrival_ns: int) -> None:
        # Chat servers rarely fragment, but a fragmented message is still a message, stamped when
        # its first bytes arrived (websockets' max_size bounds the whole message, not each frame).
        if frame.opcode is not CONT:
            self._fragments, self._fragments_text, self._fragments_ns = [frame.data], frame.opcode is TEXT, arrival_ns
        elif self._fragments is not None:
            self._fragments.append(frame.data)
        if frame.fin and self._fragments is not None:
            payload, self._fragments = b"".join(self._fragments), None
            self.listener.on_frame(payload, self._fragments_text, self._fragments_ns)

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
        protocol = self.protocol
        received = protocol.close_rcvd
        if received is None and protocol.parser_exc is not None and protocol.close_sent is not None:
            received = protocol.close_sent  # we failed the connection (e.g. 1009 message too big)
        code = received.code if received is not None else ABNORMAL_CLOSURE
        reason = received.reason if received is not None else ""
        clean = protocol.close_rcvd is not None and protocol.close_sent is not None
        self.listener.on_closed(code, reason, clean, time.time_ns())


async def connect(params: ConnectParams, listener: FrameListener, *, timeout: float = 10.0,
                  ssl_context=None, tls: TlsPhase | None = None, local_addr=None) -> WebSocketClient:
    """Connect and complete the opening handshake within `timeout`; raise on refusal or timeout."""
    loop = asyncio.get_running_loop()
    parsed = parse_uri(params.url)
    client = WebSocketClient(params, listener)
    client._tls = tls
    secure = {"ssl": ssl_context, "server_hostname": parsed.host} if ssl_context is not None else {}
    if local_addr is not None:
        secure["local_addr"] = local_addr
    async with asyncio.timeout(timeout):
        try:
            await loop.create_connection(lambda: client, parsed.host, parsed.port, **secure)
            return await client.opened
        except BaseException:
            client.abort()
            raise
