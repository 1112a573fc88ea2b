"""Test helpers for the Chime emulator: meetings through boto3, signaling connections, frames with deadlines.

Absence ("this attendee saw nothing else") is never checked by sleeping: `assert_next_is_sentinel`
sends a marker data message and requires it to be the very next frame every receiver gets.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

from botocore.config import Config
from websockets.asyncio.client import ClientConnection, connect

from harness.services.chime import codec, provision

from .chat import wait_closed  # noqa: F401  (re-exported: the same drain-until-closed for every service)

_names = itertools.count()
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def client(emulator, retries: bool = False):
    """A real boto3 `chime-sdk-meetings` client aimed at the emulator; no retries unless asked, so a
    429 reaches the test."""
    return emulator.boto3_client(**({} if retries else {"config": NO_RETRIES}))


def meeting(chime, *users: str, **options) -> provision.ProvisionedMeeting:
    """A fresh meeting with these attendees (ExternalUserIds), made through the control plane."""
    users = users or ("alice", "bob")
    return provision.create_meeting(chime, list(users), external_meeting_id=f"test-{next(_names)}", **options)


def token(meeting: provision.ProvisionedMeeting, user: str) -> str:
    return next(a.join_token for a in meeting.attendees if a.external_user_id == user)


def attendee_id(meeting: provision.ProvisionedMeeting, user: str) -> str:
    return next(a.attendee_id for a in meeting.attendees if a.external_user_id == user)


async def open_socket(meeting: provision.ProvisionedMeeting, user: str, *, close_on_error: bool = True,
                      join_token: str | None = None) -> ClientConnection:
    url = codec.signaling_url(meeting.signaling_url)
    if not close_on_error:
        url = url.replace("X-Amzn-Chime-Send-Close-On-Error=1", "X-Amzn-Chime-Send-Close-On-Error=0")
    ws = await connect(url, subprotocols=codec.subprotocols(join_token or token(meeting, user)), open_timeout=5)
    assert ws.subprotocol == codec.SUBPROTOCOL
    return ws


async def join(meeting: provision.ProvisionedMeeting, user: str, **options) -> ClientConnection:
    """Open a signaling connection and JOIN: JOIN_ACK then INDEX must come back."""
    ws = await open_socket(meeting, user, **options)
    await ws.send(codec.encode(codec.Join(), 1))
    assert isinstance(await next_frame(ws), codec.JoinAck)
    assert isinstance(await next_frame(ws), codec.Index)
    return ws


async def next_frame(ws: ClientConnection, timeout: float = 5.0) -> codec.Frame:
    return codec.decode(await asyncio.wait_for(ws.recv(), timeout))


async def next_messages(ws: ClientConnection, timeout: float = 5.0) -> tuple[codec.DataMessage, ...]:
    frame = await next_frame(ws, timeout)
    assert isinstance(frame, codec.DataMessages), frame
    return frame.messages


async def send(ws: ClientConnection, data: bytes | str, lifetime_ms: int = 0, topic: str = "chat") -> bytes:
    data = data.encode() if isinstance(data, str) else data
    await ws.send(codec.encode(codec.DataMessages((codec.DataMessage(topic, data, lifetime_ms),)), 1))
    return data


async def assert_next_is_sentinel(sender: ClientConnection, *receivers: ClientConnection) -> None:
    """Send a marker from `sender`; it must be the next frame at every receiver."""
    marker = await send(sender, "sentinel-" + uuid.uuid4().hex[:8])
    for ws in receivers:
        frame = await next_frame(ws)
        assert isinstance(frame, codec.DataMessages) and frame.messages[0].data == marker, (
            f"expected only the sentinel, got {frame}")


async def frames_until_closed(ws: ClientConnection, timeout: float = 5.0) -> list[codec.Frame]:
    """Every frame up to the close (the close itself is in ws.close_code)."""
    frames = []

    async def drain():
        try:
            while True:
                frames.append(codec.decode(await ws.recv()))
        except Exception:
            return
    await asyncio.wait_for(drain(), timeout)
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return frames
