"""Hotsock tokens: mint connect and subscribe JWTs from a key the user gives (PyJWT).

Hotsock has no token endpoint: the customer's backend signs JWTs itself, with an HMAC secret or a
private key whose public half is configured in the installation (two slots, each with an optional
Key ID that the token's `kid` header must then name). The load harness does the same with
`mint(claims, key, kid, alg)`; `claims.channel_rule` builds the `channels` entries, and
`connect_claims` / `subscribe_claims` the rest.

Key material comes from a file or an environment variable (`harness.services.tokens.read_secret`), and is
never printed: errors name the source, not its content.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import jwt

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ALGORITHMS = (*HMAC_ALGORITHMS, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")


def split_kid(value: str) -> tuple[str | None, str]:
    """`KID=SOURCE` → (KID, SOURCE); a plain SOURCE → (None, SOURCE). A path with '=' in it but a '/'
    before the '=' is a plain SOURCE."""
    kid, sep, rest = value.partition("=")
    if sep and kid and "/" not in kid and rest:
        return kid, rest
    return None, value


def mint(claims: Mapping, key: str | bytes, kid: str | None = None, alg: str = "HS256") -> str:
    """A signed JWT. `key` is the HMAC secret for HS*, else a PEM private key."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported JWT algorithm {alg!r}; one of {', '.join(ALGORITHMS)}")
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(dict(claims), key, algorithm=alg, headers=headers)


def connect_claims(channels: Mapping[str, Mapping], *, uid: str | None = None, umd=None, ttl_s: float = 60.0,
                   now: float | None = None, **extra) -> dict:
    """Claims of a connect token (`scope: connect`) valid for `ttl_s` seconds from `now`."""
    now = time.time() if now is None else now
    claims: dict = {"exp": int(now + ttl_s), "scope": "connect", "channels": {k: dict(v) for k, v in channels.items()}}
    if uid is not None:
        claims["uid"] = uid
    if umd is not None:
        claims["umd"] = umd
    return claims | extra


def subscribe_claims(channels: Mapping[str, Mapping], *, connection_id: str | None = None, uid: str | None = None,
                     ttl_s: float = 60.0, now: float | None = None, **extra) -> dict:
    """Claims of a subscribe token, bound to one connection (`connectionId`) or to a `uid`."""
    if connection_id is None and not uid:
        raise ValueError("a subscribe token names a connectionId or a uid")
    now = time.time() if now is None else now
    claims: dict = {"exp": int(now + ttl_s), "scope": "subscribe",
                    "channels": {k: dict(v) for k, v in channels.items()}}
    if connection_id is not None:
        claims["connectionId"] = connection_id
    if uid is not None:
        claims["uid"] = uid
    return claims | extra
