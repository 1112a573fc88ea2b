"""Identifiers the emulator hands out: frame and room Ids, chat tokens.

Frame Ids must be unique for the life of an emulator (the official SDK silently drops a frame whose
Id it has already seen), so they come from a counter behind a per-process random prefix rather than
from chance alone — and a counter is cheaper than a random draw on the fan-out path.
"""

from __future__ import annotations

import itertools
import secrets

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_id(length: int = 12) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class FrameIdGenerator:
    """12-character `[A-Za-z0-9]` Ids: 4 random characters, then an 8-digit base-62 counter."""

    def __init__(self) -> None:
        self._prefix = random_id(4)
        self._counter = itertools.count(secrets.randbelow(62**6))

    def __call__(self) -> str:
        n = next(self._counter)
        digits = []
        for _ in range(8):
            n, r = divmod(n, 62)
            digits.append(ALPHABET[r])
        return self._prefix + "".join(reversed(digits))


def new_chat_token() -> str:
    """An opaque token made of RFC 7230 token characters (unpadded base64url), as the spec requires."""
    return "AQICAH" + secrets.token_urlsafe(96)
