"""The transport contract (`harness/net/transport.py`), run against every registered transport.

A real websockets server on loopback plays each case: text, binary, fragmented and oversize
messages, close codes, an abrupt drop, a refused handshake, subprotocols and headers, sending both
kinds of frame. Any further transport must pass the same suite to be registered.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop
from websockets.asyncio.server import serve

from harness.net.tls import certificate_failure
from harness.net.transport import (
    ABNORMAL_CLOSURE,
    MESSAGE_TOO_BIG,
    TRANSPORTS,
    ConnectParams,
    HandshakeFailed,
    connect,
)

pytestmark = pytest.mark.parametrize("transport", sorted(TRANSPORTS))


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, bool, int, int]] = []  # payload, is_text, arrival_ns, seen_ns
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.new_frame = asyncio.Event()
        self.opened_with = None

    def on_open(self, transport) -> None:
        assert self.opened_with is None and not self.frames, "on_open: once, before any frame"
        self.opened_with = transport

    def on_frame(self, payload: bytes, is_text: bool, arrival_ns: int) -> None:
        assert self.opened_with is not None, "a frame before on_open"
        self.frames.append((bytes(payload), is_text, arrival_ns, time.time_ns()))
        self.new_frame.set()

    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None:
        assert not self.closed.done(), "on_closed is called once"
        self.closed.set_result((code, reason, clean))

    async def frames_at_least(self, n: int, timeout: float = 5.0) -> list:
        async with asyncio.timeout(timeout):
            while len(self.frames) < n:
                self.new_frame.clear()
                await self.new_frame.wait()
        return self.frames


async def _handler(ws) -> None:
    path = ws.request.path
    if path == "/text":
        await ws.send("hello")
    elif path == "/binary":
        await ws.send(b"\x00\x01\xff")
    elif path == "/fragmented":
        await ws.send(["frag", "ment", "ed"])  # one text message in three frames
    elif path == "/oversize":
        await ws.send("x" * (2**20 + 10))
    elif path == "/close":
        await ws.close(4001, "bye")
        return
    elif path == "/drop":
        ws.transport.abort()
        return
    elif path == "/headers":
        await ws.send(f"{ws.subprotocol}|{ws.request.headers.get('X-Chatload-Test')}")
    elif path == "/peer":
        await ws.send(ws.remote_address[0])
    async for message in ws:  # /echo and the rest: echo each message as it came
        await ws.send(message)


def _refuse(connection, request):
    if request.path.startswith("/refuse/"):
        return connection.respond(int(request.path.rsplit("/", 1)[1]), "no\n")
    return None


def _run(case, transport: str):
    async def main():
        async with serve(_handler, "127.0.0.1", 0, process_request=_refuse, max_size=None,
                         select_subprotocol=lambda conn, offered: offered[0] if offered else None) as server:
            port = server.sockets[0].getsockname()[1]
            return await case(f"ws://127.0.0.1:{port}", transport)
    return uvloop.run(main())


async def _open(base: str, path: str, transport: str, **params):
    listener = Recorder()
    before = time.time_ns()
    ws = await connect(ConnectParams(base + path, **params), listener, timeout=5, transport=transport)
    assert before <= ws.open_ns <= time.time_ns() and listener.opened_with is ws
    return ws, listener


def test_text_message_is_stamped_before_it_is_handed_over(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/text", transport)
        ((payload, is_text, arrival_ns, seen_ns),) = await listener.frames_at_least(1)
        assert (payload, is_text) == (b"hello", True)
        assert ws.open_ns <= arrival_ns <= seen_ns
        ws.close()
        assert (await asyncio.wait_for(listener.closed, 5))[0] == 1000
    _run(case, transport)


def test_binary_message(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/binary", transport)
        assert [(p, t) for p, t, _, _ in await listener.frames_at_least(1)] == [(b"\x00\x01\xff", False)]
        ws.abort()
    _run(case, transport)


def test_fragmented_message_arrives_whole(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/fragmented", transport)
        assert [(p, t) for p, t, _, _ in await listener.frames_at_least(1)] == [(b"fragmented", True)]
        ws.abort()
    _run(case, transport)


def test_oversize_message_ends_the_connection_with_1009(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/oversize", transport)
        code, _, _ = await asyncio.wait_for(listener.closed, 5)
        assert code == MESSAGE_TOO_BIG and not listener.frames and not ws.is_open
    _run(case, transport)


def test_close_code_and_reason_from_the_server(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/close", transport)
        assert await asyncio.wait_for(listener.closed, 5) == (4001, "bye", True)
        assert not ws.is_open and ws.send(b"late") is False
    _run(case, transport)


def test_abrupt_drop_is_1006_and_not_clean(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/drop", transport)
        code, _, clean = await asyncio.wait_for(listener.closed, 5)
        assert (code, clean) == (ABNORMAL_CLOSURE, False)
    _run(case, transport)


@pytest.mark.parametrize("status", [401, 403, 429])
def test_refused_handshake_raises_with_the_status(transport, status):
    async def case(base, transport):
        with pytest.raises(HandshakeFailed) as info:
            await connect(ConnectParams(f"{base}/refuse/{status}"), Recorder(), timeout=5, transport=transport)
        assert info.value.status == status
    _run(case, transport)


def test_nothing_listening_raises_oserror(transport):
    async def case(base, transport):
        with pytest.raises(OSError):
            await connect(ConnectParams("ws://127.0.0.1:9/"), Recorder(), timeout=5, transport=transport)
    _run(case, transport)


def test_a_connection_lost_inside_the_opening_handshake_raises(transport):
    """The server reads the upgrade and hangs up (a server stopping mid-handshake): connect must raise,
    not return a transport that will never open or close (picows once did: its session waited forever)."""
    async def case(base, transport):
        async def hang_up(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.transport.abort()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        listener = Recorder()
        with pytest.raises((HandshakeFailed, OSError)):
            await connect(ConnectParams(f"ws://127.0.0.1:{port}/"), listener, timeout=5, transport=transport)
        assert listener.opened_with is None
        server.close()
    _run(case, transport)


def test_subprotocol_and_headers_reach_the_server(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/headers", transport, subprotocols=("tok-en_1",),
                                   headers=(("X-Chatload-Test", "yes"),))
        assert ws.subprotocol == "tok-en_1"
        assert [p for p, _, _, _ in await listener.frames_at_least(1)] == [b"tok-en_1|yes"]
        ws.abort()
    _run(case, transport)


@pytest.mark.parametrize("source", ["127.0.0.2", "127.0.0.3"])
def test_a_connection_comes_from_the_source_address_asked(transport, source):
    """`source` (the run's rotation of local addresses): the server sees the connection come from it."""
    async def case(base, transport):
        listener = Recorder()
        ws = await connect(ConnectParams(base + "/peer"), listener, timeout=5, transport=transport, source=source)
        assert [p for p, _, _, _ in await listener.frames_at_least(1)] == [source.encode()]
        ws.abort()
    _run(case, transport)


def test_sends_text_and_binary(transport):
    async def case(base, transport):
        ws, listener = await _open(base, "/echo", transport)
        assert ws.send(b"ping", True) and ws.send(b"\x01\x02", False)
        frames = await listener.frames_at_least(2)
        assert [(p, t) for p, t, _, _ in frames] == [(b"ping", True), (b"\x01\x02", False)]
        ws.close(1000, "done")
        assert await asyncio.wait_for(listener.closed, 5) == (1000, "done", True)
    _run(case, transport)


def test_tls_wss_connects_to_a_server_its_context_trusts(transport, tmp_path):
    from harness.emulation.tls import make_certificates
    from harness.net.tls import build_context

    certificates = make_certificates(tmp_path, hosts=("localhost",))

    async def main():
        async with serve(_handler, "127.0.0.1", 0, ssl=certificates.server_context()) as server:
            port = server.sockets[0].getsockname()[1]
            listener = Recorder()
            ws = await connect(ConnectParams(f"wss://localhost:{port}/text"), listener, timeout=5, transport=transport,
                               ssl_context=build_context(str(certificates.ca_file)))
            frames = await listener.frames_at_least(1)
            ws.close()
            await asyncio.wait_for(listener.closed, 5)
            return frames, ws.tls_ns
    frames, tls_ns = uvloop.run(main())
    assert [p for p, _, _, _ in frames] == [b"hello"] and tls_ns > 0


def test_tls_refuses_an_untrusted_certificate(transport, tmp_path):
    from harness.emulation.tls import make_certificates

    certificates = make_certificates(tmp_path, hosts=("localhost",))  # its CA is in no trust store

    async def main():
        async with serve(_handler, "127.0.0.1", 0, ssl=certificates.server_context()) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(OSError) as refused:
                await connect(ConnectParams(f"wss://localhost:{port}/text"), Recorder(), timeout=5,
                              transport=transport)
            return refused.value
    # A refusal of the certificate, not any OSError (a reset, a refused port): named as such.
    assert certificate_failure(uvloop.run(main())) == "TLS unknown CA"


def test_connect_params_never_show_tokens_when_printed(transport):
    params = ConnectParams("wss://host/v1?token=secret-jwt", ("secret-token",), (("Authorization", "Bearer s3"),))
    assert "secret" not in repr(params) and "s3" not in repr(params)
