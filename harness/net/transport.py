"""The transport contract: one WebSocket connection, as the session sees it.

A transport connects with `ConnectParams` (URL, subprotocols, headers), then calls its listener
on the loop thread:

    on_open(transport)                                         once, when the handshake completes,
                                                               before any frame (even one that came in
                                                               the same read as the 101)
    on_frame(payload: bytes, is_text: bool, arrival_ns: int)   each complete message
    on_closed(code: int, reason: str, clean: bool, at_ns: int) once, however the connection ended

`arrival_ns` is `time.time_ns()` taken when the bytes were read, before any parsing: it is the
receive timestamp of every latency the harness reports. Fragmented messages arrive whole (stamped
when their first bytes were read); a message over the transport's size limit ends the connection
with 1009. A refused handshake raises `HandshakeFailed` with the HTTP status.

The session calls `send(payload, text)`, `close(code, reason)` (closing handshake; `on_closed`
follows), `abort()` (drop at once), and reads `is_open`, `open_ns`, `subprotocol` and the TLS
facts `tls_ns`, `tls_session`, `tls_resumed`.

wss:// connects take the process's `ssl.SSLContext` for the target (`harness/net/tls.py`; built
off the loop, once) and time the TLS handshake as a phase of its own (`tls.TlsPhase`): `tls_ns` is
TCP connected → TLS established; `connect` below takes a place among the loop's handshakes first.

Implementations register in `TRANSPORTS`; `tests/test_transport_contract.py` runs the same
suite against each.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from .tls import TlsPhase, context_for

ABNORMAL_CLOSURE = 1006  # no close frame: the connection dropped
MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class ConnectParams:
    url: str
    subprotocols: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # subprotocols and headers may carry tokens: never print them
        return f"ConnectParams(url={self.url.split('?', 1)[0]!r}, …)"


class FrameListener(Protocol):
    def on_open(self, transport: Transport) -> None: ...

    def on_frame(self, payload: bytes, is_text: bool, arrival_ns: int) -> None: ...

    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None: ...


class HandshakeFailed(ConnectionError):
    """The server refused the upgrade (`status` is its HTTP status) or answered nonsense (None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class Transport(ABC):
    open_ns: int = 0  # time.time_ns() when the opening handshake's response arrived
    subprotocol: str | None = None  # the one the server selected
    tls_ns: int = 0  # wss://: how long the TLS handshake took (TCP connected → TLS established); 0 for ws://
    _ssl_object = None  # wss://: the connection's ssl.SSLObject, kept by the transport once open

    @property
    def tls_session(self):
        """wss://: the TLS session to offer when this user connects again (or None); read when asked."""
        from .tls import resumable_session

        return resumable_session(self._ssl_object)

    @property
    def tls_resumed(self) -> bool:
        """wss://: this handshake resumed the session it was offered."""
        return self._ssl_object is not None and self._ssl_object.session_reused

    @abstractmethod
    def send(self, payload: bytes, text: bool = True) -> bool:
        """Queue one message; False if the connection is no longer open (nothing sent)."""

    @abstractmethod
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; `on_closed` follows when the connection ends."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the connection now, without a closing handshake."""

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    def write_buffer_size(self) -> int:
        return 0


TRANSPORTS = {"websockets": "harness.net.websockets_transport", "picows": "harness.net.picows_transport"}
# picows by default: measured by `chatload bench receive` (2 cores), chatload's CPU per frame is 1.07×
# a bare picows client's on picows against 1.26× on websockets at 1,000 receivers (1.15× against 1.46×
# at 5,000, both beside other load), each ratio from one run's same stream. websockets stays
# available and passes the same contract tests.
DEFAULT_TRANSPORT = "picows"


def load(transport: str = DEFAULT_TRANSPORT):
    """The transport's module, imported. Call it before the loop connects anything (the runtime does):
    the first import of picows' transport took 41 ms of the loop's CPU on the first connect."""
    try:
        return importlib.import_module(TRANSPORTS[transport])
    except KeyError:
        raise ValueError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}") from None


async def connect(params: ConnectParams, listener: FrameListener, *, timeout: float = 10.0,
                  transport: str = DEFAULT_TRANSPORT, ssl_context: ssl.SSLContext | None = None,
                  tls_session=None, tls: TlsPhase | None = None, source: str | None = None) -> Transport:
    """Open a connection with the named transport within `timeout`; raise HandshakeFailed, OSError
    (ssl.SSLCertVerificationError for a rejected certificate) or TimeoutError when it cannot be
    opened. A wss:// URL uses `ssl_context`, else the process's default (system trust store), and
    offers `tls_session` (the user's previous connection's) for resumption. `tls`: a phase the
    caller already began (its place taken before its own clock started); else one is begun here,
    before the timeout starts. The phase is ended here either way. `source`: the local address to
    connect from (None: the system's choice); each (source, server address, port) has its own range of
    ephemeral ports, ~28k on Linux by default, so a generator holding more connections than that to
    one endpoint rotates its sources."""
    module = load(transport)
    ssl_context = context_for(params.url, ssl_context)
    local = {"local_addr": (source, 0)} if source else {}
    if ssl_context is None:
        return await module.connect(params, listener, timeout=timeout, **local)
    phase = tls
    try:
        if phase is None:
            phase = TlsPhase(offer=tls_session)
            await phase.begin()  # a place among the loop's handshakes in flight: not part of the timeout
        async with asyncio.timeout(timeout):
            return await module.connect(params, listener, timeout=timeout, ssl_context=ssl_context, tls=phase,
                                        **local)
    finally:
        if phase is not None:
            phase.end()  # a failed connect gives its place back too

