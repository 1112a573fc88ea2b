"""Verifying Hotsock JWTs the way an installation does: two key slots, `kid`, `aud`/`iss` when configured.

A slot holds an HMAC secret (HS256/384/512) or a public key (RSA: RS*/PS*; EC: ES* by curve;
Ed25519/Ed448: EdDSA). A slot given a Key ID accepts only tokens whose `kid` header names it; a slot
without one accepts any `kid` (spec §1.1). `exp` is required and checked, `nbf` when present, with
no leeway (emulator choice); `aud` and `iss` only when the emulator was given them. The `alg: none`
token is never accepted. Then `claims.Claims.from_payload` checks the rest, and the scope asked for
must be among the token's.

`TokenInvalid` says why in words fit for a log or an HTTP body: never the token, never a key.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from ....emulation.memory import Expiring
from ... import untrusted
from ...tokens import KeySourceError
from ..claims import Claims, ClaimsError
from ..tokens import HMAC_ALGORITHMS

MAX_SLOTS = 2
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class TokenInvalid(Exception):
    """A token the installation refuses; the message is safe to show (no token, no key)."""


@dataclass(frozen=True)
class KeySlot:
    kid: str | None
    key: object  # the HMAC secret (bytes) or a cryptography public key
    algorithms: tuple[str, ...]
    kind: str  # what people see: "HMAC secret", "EC P-256 public key", …

    def describe(self) -> dict:
        return {"kid": self.kid, "kind": self.kind, "algorithms": list(self.algorithms)}


def secret_slot(secret: bytes, kid: str | None = None) -> KeySlot:
    return KeySlot(kid, secret, HMAC_ALGORITHMS, "HMAC secret")


def public_key_slot(pem: bytes, kid: str | None = None) -> KeySlot:
    """A slot from a PEM public key, or from a private key (its public half is kept)."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeySourceError("not a PEM public key or unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPublicKey):
        return KeySlot(kid, key, ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA public key")
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        if alg is None:
            raise KeySourceError(f"EC curve {key.curve.name} has no JWT algorithm Hotsock accepts")
        return KeySlot(kid, key, (alg,), f"EC {key.curve.name} public key")
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return KeySlot(kid, key, ("EdDSA",), "EdDSA public key")
    raise KeySourceError("unsupported public key type")


class Verifier:
    def __init__(self, slots: list[KeySlot], *, audience: str | None = None, issuer: str | None = None) -> None:
        if not 1 <= len(slots) <= MAX_SLOTS:
            raise ValueError(f"an installation has 1 to {MAX_SLOTS} key slots, not {len(slots)}")
        self.slots = slots
        self.audience = audience
        self.issuer = issuer
        self._used_jtis = Expiring()  # single-use tokens seen, until they expire

    def verify(self, token: str, scope: str, now: float) -> Claims:
        """The claims of a valid token carrying `scope`; `TokenInvalid` otherwise. `now` (Unix
        seconds) only prunes the single-use bookkeeping: PyJWT checks `exp`/`nbf` on its own clock."""
        try:
            untrusted.check_jwt_shape(token)
            header = jwt.get_unverified_header(token)
        except untrusted.Refused as refused:
            raise TokenInvalid(refused.reason) from None
        except jwt.PyJWTError:
            raise TokenInvalid("not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenInvalid("kid header must be a string")
        slots = [s for s in self.slots if alg in s.algorithms and (s.kid is None or s.kid == kid)]
        if not slots:
            raise TokenInvalid("no key slot for this token's alg and kid")
        payload = None
        for slot in slots:
            try:
                payload = jwt.decode(
                    token, slot.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                    options={"require": ["exp"], "verify_aud": self.audience is not None},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise TokenInvalid("token has expired") from None
            except jwt.ImmatureSignatureError:
                raise TokenInvalid("token is not valid yet (nbf)") from None
            except jwt.InvalidAudienceError:
                raise TokenInvalid("wrong or missing aud") from None
            except jwt.InvalidIssuerError:
                raise TokenInvalid("wrong or missing iss") from None
            except jwt.MissingRequiredClaimError as exc:
                raise TokenInvalid(f"missing required claim {exc.claim}") from None
            except OverflowError:  # PyJWT's int() of an `exp` or `nbf` of 1e999 (read as infinity)
                raise TokenInvalid("exp or nbf out of range") from None
            except (jwt.PyJWTError, ValueError, TypeError):
                raise TokenInvalid("token cannot be decoded") from None
        if payload is None:
            raise TokenInvalid("signature verification failed")
        try:
            claims = Claims.from_payload(payload)
        except ClaimsError as exc:
            raise TokenInvalid(str(exc)) from None
        if scope not in claims.scopes:
            raise TokenInvalid(f"token lacks the {scope} scope")
        if claims.single_use:
            self._spend(claims, now)
        return claims

    def _spend(self, claims: Claims, now: float) -> None:
        if self._used_jtis.get(claims.jti, now=now):
            raise TokenInvalid("single-use token already used")
        self._used_jtis.put(claims.jti, claims.exp)
