"""The smallest WebSocket client that can take part in a fan-out benchmark.

A benchmark receiver must cost as little as possible per frame, or the load client, not the server
under test, sets the figures. So this client does the opening handshake itself (RFC 6455 §4.1,
checking the status, `Sec-WebSocket-Accept` and the echoed subprotocol), then only walks frame
headers: it counts data frames and bytes without decoding, answers pings (both servers ping every
20 s and would drop a silent client) and answers a close. Frames are handed to `on_text` only when a
caller asks for them (the sender, which reads its own echoes).

The same class is used against every server under test, so any client-side cost is the same for all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from collections.abc import Callable

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HANDSHAKE_BYTES = 16 * 1024
_OP_TEXT, _OP_CLOSE, _OP_PING = 0x1, 0x8, 0x9


class HandshakeError(ConnectionError):
    pass


class Tally:
    """Counts shared by many connections of one process (one attribute add per frame batch)."""

    __slots__ = ("frames", "bytes", "opened", "lost", "closed_by_server")

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.opened = 0
        self.lost = 0  # connections that ended while we still wanted them
        self.closed_by_server = 0


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client → server frame: FIN set, masked with a fresh key (RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    if n:
        stream = (key * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return header + key + payload


def _accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


class CountingClient(asyncio.Protocol):
    """One client connection: handshake, then count frames; `handshake` resolves when it is open."""

    def __init__(self, host: str, port: int, tally: Tally, *, subprotocol: str | None = None,
                 on_text: Callable[[bytes], None] | None = None) -> None:
        self.host, self.port = host, port
        self.tally = tally
        self.subprotocol = subprotocol
        self.on_text = on_text
        self.key = base64.b64encode(os.urandom(16))
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.is_open = False
        self.closing = False  # we asked for the end: not counted as lost
        self.frames = 0
        self._buffer = b""

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        lines = [
            b"GET / HTTP/1.1",
            b"Host: %s:%d" % (self.host.encode(), self.port),
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Key: " + self.key,
            b"Sec-WebSocket-Version: 13",
        ]
        if self.subprotocol:
            lines.append(b"Sec-WebSocket-Protocol: " + self.subprotocol.encode())
        transport.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if not self.is_open:
            self._handshake_data(data)
            return
        self.tally.bytes += len(data)
        end = len(data)
        pos = 0
        count = 0
        on_text = self.on_text
        # Walk the frame headers only; server frames are unmasked (a masked one is a protocol error).
        while end - pos >= 2:
            b0 = data[pos]
            length = data[pos + 1]
            if length < 126:
                header = 2
            elif length == 126:
                if end - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                header = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                header = 10
            else:
                self._fail("server sent a masked frame")
                return
            stop = pos + header + length
            if stop > end:
                break
            opcode = b0 & 0x0F
            if opcode < 8:
                if b0 & 0x80:
                    count += 1
                    if on_text is not None and opcode == _OP_TEXT:
                        on_text(data[pos + header:stop])
            elif opcode == _OP_PING:
                self.transport.write(masked_frame(0xA, data[pos + header:stop]))
            elif opcode == _OP_CLOSE:
                self.tally.closed_by_server += 1
                if not self.closing:
                    self.closing = True
                    self.transport.write(masked_frame(_OP_CLOSE, data[pos + header:pos + header + 2]))
            pos = stop
        if count:
            self.frames += count
            self.tally.frames += count
        if pos < end:
            self._buffer = data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or HandshakeError("connection closed during the handshake"))
        elif self.is_open and not self.closing:
            self.tally.lost += 1
        self.is_open = False

    # -- handshake ---------------------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            if len(data) > _MAX_HANDSHAKE_BYTES:
                self._fail("handshake response too large")
            else:
                self._buffer = data
            return
        lines = data[:head_end].split(b"\r\n")
        rest = data[head_end + 4:]
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"101":
            self._fail(f"server answered {lines[0].decode(errors='replace')!r}"
                       f"{': ' + rest[:200].decode(errors='replace').strip() if rest else ''}")
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != _accept_value(self.key):
            self._fail("bad Sec-WebSocket-Accept")
            return
        if self.subprotocol and headers.get(b"sec-websocket-protocol", b"").decode() != self.subprotocol:
            self._fail("server did not echo the subprotocol")
            return
        self.is_open = True
        self.tally.opened += 1
        self.handshake.set_result(None)
        if rest:
            self.data_received(rest)

    def _fail(self, reason: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError(reason))
        self.closing = True
        self.transport.abort()

    # -- sending and ending ------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        self.transport.write(masked_frame(_OP_TEXT, payload))

    def abort(self) -> None:
        """End at once with a TCP reset, so no TIME_WAIT sockets pile up between benchmark runs."""
        self.closing = True
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()


async def connect(host: str, port: int, tally: Tally, *, subprotocol: str | None = None,
                  on_text: Callable[[bytes], None] | None = None, timeout: float = 15.0,
                  ssl_context=None) -> CountingClient:
    """Open one connection and wait for its handshake (over TLS with `ssl_context`); raises on failure
    or after `timeout`."""
    loop = asyncio.get_running_loop()

    def factory() -> CountingClient:
        return CountingClient(host, port, tally, subprotocol=subprotocol, on_text=on_text)

    async def open_it() -> CountingClient:
        tls = {"ssl": ssl_context, "server_hostname": host} if ssl_context is not None else {}
        _, protocol = await loop.create_connection(factory, host, port, **tls)
        try:
            await protocol.handshake
        except BaseException:  # a failed or timed-out handshake must not leave a socket behind
            protocol.abort()
            raise
        return protocol

    return await asyncio.wait_for(open_it(), timeout)
