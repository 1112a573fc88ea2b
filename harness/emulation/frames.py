"""Server frames made once per fan-out and written straight to every member's transport.

Server frames are unmasked and the emulators negotiate no compression, so every member of a room
gets the same bytes: a frame is built once and written to each transport, what
`websockets.broadcast` does minus re-framing per connection. Close frames, pings and pongs still go
through websockets' protocol object, so the connection state machine stays websockets' own.
"""

from __future__ import annotations

from websockets.protocol import State

OPEN = State.OPEN


FIN_TEXT, FIN_BINARY = 0x81, 0x82  # FIN bit set, opcode 1 or 2: one unfragmented frame


def _framed(first_byte: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket frame (RFC 6455 §5.2) around `payload`."""
    n = len(payload)
    if n < 126:
        return bytes((first_byte, n)) + payload
    if n < 65536:
        return bytes((first_byte, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first_byte, 127)) + n.to_bytes(8, "big") + payload


def text_frame(payload: bytes) -> bytes:
    return _framed(FIN_TEXT, payload)


def binary_frame(payload: bytes) -> bytes:
    return _framed(FIN_BINARY, payload)


def write_framed(member, frame: bytes) -> None:
    """Write a ready frame to one member (`.connection`, `.transport`) unless its connection is closing:
    bytes written after websockets' close frame would break the protocol."""
    if member.connection.protocol.state is OPEN and not member.transport.is_closing():
        member.transport.write(frame)
