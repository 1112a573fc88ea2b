"""Connections that only count frames, on chatload's own transports: the emulator benchmark's
receivers and every benchmark's sender.

A benchmark receiver must cost as little as possible per frame, or the load client, not the server
under test, sets the figures: `CountingListener` counts each message and its payload bytes and
parses nothing (a caller that wants the frames, the sender reading its own echoes, passes
`on_text`). The WebSocket work itself (handshake, framing, masking, pongs, closes) is the transport's
(`harness/net/`, picows by default), so bench/ carries no WebSocket client of its own beyond the
baselines (`ivschat/bare_websockets_client`, `ivschat/bare_picows_client`), whose whole point is to be someone else's.

The same listener and transport are used against every server under test, so any client-side cost
is the same for all.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from ..net.transport import ABNORMAL_CLOSURE, DEFAULT_TRANSPORT, ConnectParams, Transport, connect


class Tally:
    """Counts shared by many connections of one process (one attribute add per frame)."""

    __slots__ = ("frames", "bytes", "opened", "lost", "closed_by_server")

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0  # payload bytes of the messages counted (frame headers are the transport's)
        self.opened = 0
        self.lost = 0  # connections that ended while we still wanted them
        self.closed_by_server = 0  # ... of which the server ended with a close frame


class CountingListener:
    """The transport's listener for one connection: counts messages into the shared `Tally`."""

    __slots__ = ("tally", "on_text", "frames", "transport", "closing")

    def __init__(self, tally: Tally, on_text: Callable[[bytes], None] | None = None) -> None:
        self.tally = tally
        self.on_text = on_text
        self.frames = 0
        self.transport: Transport | None = None
        self.closing = False  # we asked for the end: not counted as lost

    def on_open(self, transport: Transport) -> None:
        self.transport = transport
        self.tally.opened += 1

    def on_frame(self, payload: bytes, is_text: bool, arrival_ns: int) -> None:
        self.frames += 1
        tally = self.tally
        tally.frames += 1
        tally.bytes += len(payload)
        if is_text and self.on_text is not None:
            self.on_text(payload)

    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None:
        if self.closing:
            return
        self.tally.lost += 1
        if code != ABNORMAL_CLOSURE:
            self.tally.closed_by_server += 1

    @property
    def is_open(self) -> bool:
        return self.transport is not None and self.transport.is_open

    def send_text(self, payload: str | bytes) -> None:
        self.transport.send(payload.encode() if isinstance(payload, str) else payload, True)

    def abort(self) -> None:
        """End at once with a TCP reset, so no TIME_WAIT sockets pile up between benchmark runs."""
        self.closing = True
        if self.transport is not None:
            reset(self.transport)


async def open_counting(endpoint: str, tally: Tally, *, token: str | None = None,
                        on_text: Callable[[bytes], None] | None = None, timeout: float = 15.0,
                        ssl_context=None, transport: str = DEFAULT_TRANSPORT) -> CountingListener:
    """Open one counting connection (`token` as its subprotocol, IVS Chat's way; none for the bare
    server) through chatload's transport; raises on a refused handshake, OSError or `timeout`."""
    listener = CountingListener(tally, on_text)
    params = ConnectParams(endpoint, (token,) if token else ())
    await connect(params, listener, timeout=timeout, transport=transport, ssl_context=ssl_context)
    return listener


def reset(transport: Transport) -> None:
    """Drop one of chatload's transports with a TCP reset (SO_LINGER 0), whichever implementation:
    picows wraps the asyncio transport that holds the socket, websockets' is that transport."""
    inner = getattr(transport, "transport", None)
    if inner is None:  # not connected yet
        transport.abort()
        return
    abort_with_reset(getattr(inner, "underlying_transport", inner))


def abort_with_reset(transport) -> None:
    """An asyncio transport ended at once with a TCP reset, so no TIME_WAIT sockets pile up."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
