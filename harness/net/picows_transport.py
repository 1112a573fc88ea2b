"""The picows transport: picows' Cython WebSocket client behind the transport contract.

picows parses frames in C and calls `on_ws_frame` once per frame. The receive timestamp is taken
at the first frame of each socket read and kept for every frame of that read (`last_in_buffer`
ends it), so it is the time the bytes were read give or take picows' C parsing of one frame
(nanoseconds): no Python work precedes it. Messages are reassembled from fragments here (picows
hands over raw frames), bounded by MAX_SIZE like the websockets transport: a longer message ends
the connection with 1009. Server pings are answered by picows itself; closes are answered here.
wss:// takes the target's context (`harness/net/tls.py`), which stamps the TLS phase's start; picows
reads `extra_headers` in its protocol's `connection_made`, which asyncio calls once TLS is
established, and `_StampedHeaders` ends the phase there.
The contract is `harness/net/transport.py`'s; `tests/test_transport_contract.py` checks it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    ws_connect,
)

from .tls import TlsPhase
from .transport import (
    ABNORMAL_CLOSURE,
    MESSAGE_TOO_BIG,
    ConnectParams,
    FrameListener,
    HandshakeFailed,
    Transport,
)

MAX_SIZE = 2**20  # bytes per message, as the websockets transport
# picows' read buffer starts at 16 KiB per connection and doubles whenever a read fills 90 % of it:
# chat frames are small and an idle connection never needs more, so it starts at picows' minimum,
# 2 KiB (a busy one grows its own). Measured (2,000 idle connections): 4 KiB → 2 KiB saved 2 KiB each.
READ_BUFFER_INIT = 2048
# picows runs over aiofastnet's transports when that is installed (it is a dependency); uvloop's own
# TCP transport is 5.6 KiB per connection smaller, at the same receive CPU per frame within noise
# (measured: 2,000 connections; `chatload bench receive`, 1,000 connections, two runs of each).
USE_AIOFASTNET = False
# Given a `logging.Logger`, picows makes a child Logger for every connection (and logs each connect at
# INFO, reading four socket options for it); an adapter is used as it is: one for all connections.
# picows logs every connect and every disconnect at INFO: two lines per connection, 40,000 for
# `-u 20000`. Per-connection events are counters (connects, closes.<code>), so this logger passes
# only warnings and errors (set "chatload.picows" to DEBUG to see picows' own account again).
_PICOWS_LOGGER = logging.getLogger("chatload.picows")
_PICOWS_LOGGER.setLevel(logging.WARNING)
_LOG = logging.LoggerAdapter(_PICOWS_LOGGER, {})
TEXT, BINARY, CONTINUATION, CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.CLOSE
_CLOSE_CODES = {code.value: code for code in WSCloseCode}


def _close_code(code: int):
    return _CLOSE_CODES.get(code, code)  # picows takes its enum or a plain int for codes it has no name for


class PicowsClient(WSListener, Transport):
    def __init__(self, listener: FrameListener) -> None:
        self.listener = listener
        self.transport = None  # picows' WSTransport, once connected
        self.open_ns = 0
        self.subprotocol = None
        self._read_ns = 0  # the stamp of the socket read whose frames are being handed over
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._fragments_ns = 0
        self._fragments_size = 0
        self._closed_reported = False
        self._close_received: tuple[int, str] | None = None
        self._failed_with: int | None = None
        self._tls: TlsPhase | None = None  # wss://

    # -- picows' listener -------------------------------------------------------------------------

    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        self.open_ns = time.time_ns()
        self.subprotocol = transport.response.headers.get("sec-websocket-protocol")
        if self._tls is not None:  # wss://: TCP connected → TLS established (picows read the headers then)
            self.tls_ns = self._tls.elapsed_ns
            self._ssl_object = transport.underlying_transport.get_extra_info("ssl_object")
        self.listener.on_open(self)  # before any frame

    def on_ws_frame(self, transport, frame: WSFrame) -> None:
        arrival_ns = self._read_ns or time.time_ns()  # first frame of this read: stamp it now
        self._read_ns = 0 if frame.last_in_buffer else arrival_ns
        if frame.payload_size > MAX_SIZE:  # picows' own max_frame_size lets such a frame through
            self._fail(MESSAGE_TOO_BIG, "message too big")
            return
        kind = frame.msg_type
        if frame.fin and kind is TEXT:
            self.listener.on_frame(frame.get_payload_as_bytes(), True, arrival_ns)
        elif frame.fin and kind is BINARY:
            self.listener.on_frame(frame.get_payload_as_bytes(), False, arrival_ns)
        elif kind is TEXT or kind is BINARY or kind is CONTINUATION:
            self._fragment(frame, arrival_ns)
        elif kind is CLOSE:
            self._close_received = (int(frame.get_close_code().value if hasattr(frame.get_close_code(), "value")
                                        else frame.get_close_code()), frame.get_close_reason() or "")
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self._report_closed()

    # -- the transport contract -------------------------------------------------------------------

    def send(self, payload: bytes, text: bool = True) -> bool:
        transport = self.transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            return False
        transport.send(TEXT if text else BINARY, payload)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(_close_code(code), reason.encode())
        # The server answers with its close and ends TCP; picows aborts after its own timeout if not.
        asyncio.get_running_loop().call_later(5.0, self.abort)

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(graceful=False)

    @property
    def is_open(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_disconnected and not transport.is_close_frame_sent

    def write_buffer_size(self) -> int:
        return self.transport.underlying_transport.get_write_buffer_size() if self.transport else 0

    # -- internals --------------------------------------------------------------------------------

    def _fragment(self, frame: WSFrame, arrival_ns: int) -> None:
        payload = frame.get_payload_as_bytes()
        if frame.msg_type is not CONTINUATION:
            self._fragments, self._fragments_text = [payload], frame.msg_type is TEXT
            self._fragments_ns, self._fragments_size = arrival_ns, len(payload)
        elif self._fragments is not None:
            self._fragments.append(payload)
            self._fragments_size += len(payload)
        if self._fragments_size > MAX_SIZE:
            self._fragments = None
            self._fail(MESSAGE_TOO_BIG, "message too big")
            return
        if frame.fin and self._fragments is not None:
            whole, self._fragments = b"".join(self._fragments), None
            self.listener.on_frame(whole, self._fragments_text, self._fragments_ns)

    def _fail(self, code: int, reason: str) -> None:
        self._failed_with = code
        if not self.transport.is_close_frame_sent:
            self.transport.send_close(_close_code(code), reason.encode())
        self.transport.disconnect()

    def _report_closed(self) -> None:
        if self._closed_reported:
            return
        self._closed_reported = True
        if self._close_received is not None:
            code, reason = self._close_received
            clean = self.transport is not None and self.transport.is_close_frame_sent
        elif self._failed_with is not None:
            code, reason, clean = self._failed_with, "", False
        else:
            code, reason, clean = ABNORMAL_CLOSURE, "", False
        self.listener.on_closed(code, reason, clean, time.time_ns())


class _StampedHeaders(list):
    """The upgrade request's extra headers, ending the TLS phase when picows first reads them: in its
    protocol's `connection_made`, i.e. once TLS is established (truthy even when empty, or it is not
    read)."""

    tls: TlsPhase | None = None

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        if self.tls is not None:
            self.tls.done()
        return super().__iter__()


async def connect(params: ConnectParams, listener: FrameListener, *, timeout: float = 10.0,
                  ssl_context=None, tls: TlsPhase | None = None, local_addr=None) -> PicowsClient:
    """Connect and complete the opening handshake within `timeout`; raise on refusal or timeout."""
    headers = _StampedHeaders(params.headers)
    if params.subprotocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(params.subprotocols)))
    client = PicowsClient(listener)
    client._tls = headers.tls = tls
    secure = {"ssl_context": ssl_context} if ssl_context is not None else {}
    if local_addr is not None:
        secure["local_addr"] = local_addr  # picows hands it on to loop.create_connection
    try:
        async with asyncio.timeout(timeout):
            await ws_connect(lambda: client, params.url, extra_headers=headers, websocket_handshake_timeout=None,
                             max_frame_size=MAX_SIZE, read_buffer_init_size=READ_BUFFER_INIT, max_redirects=0,
                             use_aiofastnet=USE_AIOFASTNET, logger_name=_LOG, **secure)
    except WSInvalidStatusError as exc:
        raise HandshakeFailed(_status_of(exc), str(exc)) from None
    except WSError as exc:
        raise HandshakeFailed(None, str(exc)) from None
    except BaseException:
        client.abort()
        raise
    if client.transport is None:
        # picows returns without an error when the connection is lost inside the opening handshake
        # (seen when a server stops listening while a client's upgrade is in flight): no open, no close
        # would ever follow, and a session would wait on it forever.
        raise HandshakeFailed(None, "connection lost during the opening handshake")
    return client


def _status_of(exc: WSInvalidStatusError) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status", None)
    return int(getattr(status, "value", status)) if status is not None else None
