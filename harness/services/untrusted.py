"""Reading what a client controls, once for every emulator: JSON with a depth limit, JWT segments,
times in tokens, and close reasons (HTTP request bodies and headers: `request_body`). Pure: no I/O,
so the services' codecs use it too.

Every emulator is a server that other people's clients talk to — SDKs, bots, fuzzers — so nothing
read here may raise anything but the refusal it names: `Refused(status, reason)`, where the reason
is fit for an error frame, an HTTP body or a log (it never repeats the input).

- JSON: orjson reads 1,024 levels of nesting but writes only 254, and the standard library's
  decoder (PyJWT's) recurses in C until RecursionError. A value nested deeper than
  `MAX_JSON_DEPTH` is refused where it is read, so no later echo, repr or re-encoding can fail on it
  (emulator choice: 128 levels, far beyond any chat payload, with room under orjson's 254 for the
  envelopes an emulator wraps around client data).
- Close reasons: a close frame carries at most 123 bytes of UTF-8 (RFC 6455 §5.5: 125 minus the
  code); `close_reason` cuts by bytes on a character boundary, so websockets never refuses a close.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson

MAX_JSON_DEPTH = 128
MAX_CLOSE_REASON_BYTES = 123
MAX_TOKEN_CHARS = 16 * 1024  # a JWT longer than this is not one any service issues (emulator choice)
_CONTAINERS = (dict, list)


class Refused(ValueError):
    """Client input the emulator will not act on. `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def nested_deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` (parsed JSON) has containers nested more than `limit` levels (a scalar is 0,
    `[]` is 1). Level by level: the walk itself never recurses, and visits containers only."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for item in level:
            below += [child for child in (item.values() if type(item) is dict else item)
                      if type(child) is dict or type(child) is list]
        level = below
    return False


def loads(data: str | bytes, limit: int | None = MAX_JSON_DEPTH) -> Any:
    """orjson's `loads`, refusing (400) text that is not JSON or nests deeper than `limit`.

    The walk runs only when the text holds more opening brackets than `limit` (an upper bound of
    the depth), so an ordinary frame pays two `count` calls and no walk. `limit=None` checks no
    depth (a client reading its server's frames: the receive path is the hot path)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # orjson's own limit (1,024 levels) says so in its message
        raise Refused(400, f"JSON nested deeper than {limit} levels" if "depth" in str(exc) else "not JSON") from None
    if limit is not None and isinstance(value, _CONTAINERS) and _brackets(data) > limit and \
            nested_deeper_than(value, limit):
        raise Refused(400, f"JSON nested deeper than {limit} levels")
    return value


def _brackets(data: str | bytes | bytearray | memoryview) -> int:
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    data = bytes(data)
    return data.count(b"[") + data.count(b"{")


def close_reason(text: str) -> str:
    """`text` cut to the 123 UTF-8 bytes a close frame can carry, never inside a character."""
    raw = text.encode("utf-8", "replace")  # a lone surrogate becomes "?": websockets could not encode it
    return raw[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def seconds(value: Any, name: str) -> float:
    """A JWT time claim (`exp`, `nbf`, `iat`): a finite number of seconds, else `Refused(401)`.

    JSON numbers reach a token's claims as ints of any size or floats up to infinity (the standard
    library reads `1e999` as inf); an infinite `exp` would never expire and a huge int fails
    `float()`, so both are refused as the claim's own problem."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(401, f"claim {name} must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise Refused(401, f"claim {name} is out of range") from None
    if not math.isfinite(number) or abs(number) > 1e15:  # about 31 million years: no real token's time
        raise Refused(401, f"claim {name} is out of range")
    return number


def check_jwt_shape(token: str) -> None:
    """Refuse (401) a token too long for any real JWT, or whose header or claims nest deeper than
    `MAX_JSON_DEPTH`, before PyJWT's standard-library decoder recurses into it; and one with a
    non-ASCII character (a JWT is base64url and dots; aiohttp hands a header's other bytes on as
    surrogates, on which PyJWT's `.encode()` raises)."""
    if len(token) > MAX_TOKEN_CHARS:
        raise Refused(401, f"token longer than {MAX_TOKEN_CHARS} characters")
    if not token.isascii():
        raise Refused(401, "token has a non-ASCII character")
    for segment in token.split(".", 2)[:2]:
        try:
            decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except ValueError:
            return  # PyJWT says "not a JWT" in its own words
        if _brackets(decoded) > MAX_JSON_DEPTH:
            try:
                loads(decoded)
            except Refused as refused:
                raise Refused(401, f"token segment: {refused.reason}") from None
