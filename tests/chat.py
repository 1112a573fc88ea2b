"""Test helpers: open chat connections against the emulator and read frames with deadlines.

Absence ("this member saw nothing else") is never checked by sleeping: `assert_next_is_sentinel`
sends a marker message and requires it to be the very next frame the member receives.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import uvloop
from websockets.asyncio.client import ClientConnection, connect

from harness.services.ivschat import codec

_users = itertools.count()
ALL_CAPABILITIES = ["SEND_MESSAGE", "DELETE_MESSAGE", "DISCONNECT_USER"]


def run(coro):
    return uvloop.run(coro)


def token_for(ivschat_client, room: dict, user_id: str | None = None, capabilities=(), **kwargs) -> str:
    return ivschat_client.create_chat_token(
        roomIdentifier=room["arn"], userId=user_id or f"user-{next(_users)}", capabilities=list(capabilities),
        **kwargs,
    )["token"]


async def join(emulator, ivschat_client, room: dict, user_id: str | None = None, capabilities=(), **kwargs
               ) -> ClientConnection:
    token = token_for(ivschat_client, room, user_id, capabilities, **kwargs)
    ws = await connect(emulator.messaging_endpoint, subprotocols=[token], open_timeout=5)
    assert ws.subprotocol == token, "the server must echo the token as the selected subprotocol"
    return ws


async def next_raw(ws: ClientConnection, timeout: float = 5.0) -> str:
    return await asyncio.wait_for(ws.recv(), timeout)


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> codec.ServerEvent:
    return codec.parse_server_frame(await next_raw(ws, timeout))


async def send(ws: ClientConnection, content: str, attributes=None, request_id: str | None = None) -> str:
    request_id = request_id or str(uuid.uuid4())
    await ws.send(codec.encode_send_message(request_id, content, attributes).decode())
    return request_id


async def assert_next_is_sentinel(sender: ClientConnection, *receivers: ClientConnection) -> None:
    """Send a marker from `sender` and require it as the next frame at the sender and every receiver."""
    request_id = await send(sender, "sentinel-" + uuid.uuid4().hex[:8])
    for ws in (sender, *receivers):
        event = await next_event(ws)
        assert isinstance(event, codec.ChatMessage) and event.request_id == request_id, (
            f"expected only the sentinel, got {event}")


async def wait_closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Drain until the connection closes; return (code, reason) as the client saw them."""
    async def drain():
        try:
            while True:
                await ws.recv()
        except Exception:
            return
    await asyncio.wait_for(drain(), timeout)
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code, ws.close_reason
