"""ULIDs (https://github.com/ulid/spec): Hotsock's message ids, monotonic per channel.

26 characters of Crockford base32: a 48-bit Unix time in milliseconds, then 80 random bits. Within
one millisecond a `MonotonicUlid` increments the random part instead of drawing a new one, so ids of
one channel sort in the order they were issued — and a clock that steps backwards never makes an id
sort before the previous one (the last time is kept until the clock passes it).

Pure: the caller passes the time in (`time.time_ns() // 1_000_000` in the emulator) and may pass
the random source, so tests can issue many ids within one millisecond on purpose.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_DECODE = {c: i for i, c in enumerate(ALPHABET)} | {c.lower(): i for i, c in enumerate(ALPHABET)}
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
_TIME_MAX = (1 << 48) - 1


class UlidError(ValueError):
    """Text that is not a ULID."""


def encode(time_ms: int, randomness: int) -> str:
    if not 0 <= time_ms <= _TIME_MAX or not 0 <= randomness <= _RANDOM_MAX:
        raise ValueError("ULID time must fit 48 bits and randomness 80 bits")
    value = (time_ms << _RANDOM_BITS) | randomness
    out = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def decode(text: str) -> tuple[int, int]:
    """(time in ms, randomness) of a ULID; `UlidError` for anything else."""
    if not isinstance(text, str) or len(text) != 26:
        raise UlidError("a ULID is 26 characters")
    value = 0
    for char in text:
        digit = _DECODE.get(char)
        if digit is None:
            raise UlidError(f"{char!r} is not a Crockford base32 digit")
        value = value * 32 + digit
    if value >> 128:
        raise UlidError("a ULID's first character is at most 7")
    return value >> _RANDOM_BITS, value & _RANDOM_MAX


def timestamp_ms(text: str) -> int:
    """The millisecond Unix time a ULID was issued at (Hotsock frames carry no other server time)."""
    return decode(text)[0]


class MonotonicUlid:
    """ULIDs that strictly increase, one generator per channel."""

    __slots__ = ("_last_ms", "_last_random", "_random")

    def __init__(self, random_bits: Callable[[int], int] = secrets.randbits) -> None:
        self._last_ms = -1
        self._last_random = 0
        self._random = random_bits

    def __call__(self, now_ms: int) -> str:
        if now_ms > self._last_ms:
            # A fresh draw leaves headroom below the maximum, so increments within the millisecond
            # cannot overflow in practice (2**79 of them).
            self._last_ms, self._last_random = now_ms, self._random(_RANDOM_BITS - 1)
        elif self._last_random < _RANDOM_MAX:
            self._last_random += 1
        else:  # 2**80 ids in one millisecond: borrow the next one
            self._last_ms, self._last_random = self._last_ms + 1, 0
        return encode(self._last_ms, self._last_random)
