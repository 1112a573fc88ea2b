"""chatload's Hotsock token source: connect JWTs minted from a signing key the user names.

Hotsock has no token endpoint — the customer's backend signs its own JWTs — so chatload signs them
the same way (`tokens.mint`), from a key named by source in the target (`signing_key`: a file or
`env:NAME`; on the embedded emulator, the secret file the emulator wrote). The key is read once
per process and held only here: never in the `Target`, a log line or a report.

One fresh token per connection attempt (hotsock-js loads one per try), for the connection's user:
- `uid` = the user id (presence rosters list it; other members see the user by it);
- `channels` = one entry for the user's channel, from its capabilities (`client.SUBSCRIBE`,
  `PUBLISH`, and the explicit falses `NO_SUBSCRIBE`, `NO_PUBLISH`, which always win); a publishing
  user gets `echo` too, so its own copy acks each send;
- the channel's `alias` and `heartbeatTimeout` when the user's attributes carry them; `aud`, `iss` and the `kid` header when
  the installation checks them; `exp` ten minutes ahead (it only gates the connect: a Hotsock
  connection lasts its 2 hours whatever the token's expiry).
"""

from __future__ import annotations

from collections.abc import Mapping

import jwt

from ..tokens import KeySourceError, TokenFetchFailed, TokenProvider, read_secret
from ..user_spec import UserSpec
from .claims import channel_rule
from .client import ALIAS_ATTRIBUTE, EVENT, HEARTBEAT_ATTRIBUTE, NO_PUBLISH, NO_SUBSCRIBE, PUBLISH, SUBSCRIBE
from .tokens import connect_claims, mint

TOKEN_TTL_S = 600


def channel_claims(capabilities: tuple[str, ...], alias: str | None = None) -> dict:
    """The `channels` entry of a user's own channel for these capabilities (under `alias`, if any)."""
    publish = PUBLISH in capabilities and NO_PUBLISH not in capabilities
    rule = channel_rule(subscribe=True if SUBSCRIBE in capabilities else None, publish=[EVENT] if publish else (),
                        echo=publish, alias=alias)
    if NO_SUBSCRIBE in capabilities:
        rule["subscribe"] = False
    if NO_PUBLISH in capabilities:
        rule.setdefault("messages", {}).setdefault(EVENT, {})["publish"] = False
    return rule


def user_claims(user: UserSpec, *, audience: str | None = None, issuer: str | None = None,
                ttl_s: float = TOKEN_TTL_S, now: float | None = None) -> dict:
    extra: dict = {}
    attributes = user.attributes or {}
    heartbeat = attributes.get(HEARTBEAT_ATTRIBUTE)
    if heartbeat:
        extra["heartbeatTimeout"] = int(heartbeat)
    if audience:
        extra["aud"] = audience
    if issuer:
        extra["iss"] = issuer
    channel = channel_claims(user.capabilities, attributes.get(ALIAS_ATTRIBUTE) or None)
    return connect_claims({user.room: channel}, uid=user.user_id, ttl_s=ttl_s, now=now, **extra)


class SigningKeyTokens(TokenProvider):
    """Connect tokens signed with the installation's key (settings: `signing_key`, `key_id`,
    `algorithm`, `audience`, `issuer` — the target's)."""

    name = "hotsock-jwt"

    def __init__(self, settings: Mapping) -> None:
        self.source = settings.get("signing_key") or ""
        self.key_id = settings.get("key_id") or None
        self.algorithm = settings.get("algorithm") or "HS256"
        self.audience = settings.get("audience") or None
        self.issuer = settings.get("issuer") or None
        self._key: bytes | None = None

    def _signing_key(self) -> bytes:
        if self._key is None:
            if not self.source:
                raise TokenFetchFailed("no key", "no signing_key: name the installation's signing key "
                                                 "(a file or env:NAME) in [target]")
            try:
                self._key = read_secret(self.source)
            except KeySourceError as exc:  # names the source, never the key
                raise TokenFetchFailed("key unreadable", f"signing_key {self.source}: {exc}") from None
        return self._key

    def fetch(self, request: UserSpec) -> str:
        key = self._signing_key()
        claims = user_claims(request, audience=self.audience, issuer=self.issuer)
        try:
            return mint(claims, key, self.key_id, self.algorithm)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # e.g. an RS256 algorithm with an HMAC secret
            raise TokenFetchFailed("signing failed", f"cannot sign with {self.algorithm} and the key from "
                                                     f"{self.source}: {type(exc).__name__}") from None
