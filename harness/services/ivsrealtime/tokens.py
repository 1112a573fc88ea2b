"""Participant tokens: ES384 JWTs with the claims the web broadcast SDK reads (spec §3.2).

Both ends use this module: the emulator signs the tokens CreateParticipantToken returns with a key
pair it makes at start, and verifies every token offered at join against that key and the public
keys imported into it (ImportPublicKey or `--public-key`); a load harness signs its own tokens with
`sign_participant_token` and its private key (IVS "self-signed tokens": no CreateParticipantToken
call, so no 50 TPS quota).

Claims: `resource` (stage ARN), `jti` (participant id), `topic` (stage id), `events_url`,
`whip_url`, `user_id`, `attributes`, `capabilities {allow_publish, allow_subscribe}`, `version`,
`iat`, `exp` (seconds; fractional when the emulator scales time). Tokens never appear in logs,
errors or metrics; nothing here formats one into a message.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .. import untrusted

ALGORITHM = "ES384"
VERSION = "1.0"
PUBLISH = "PUBLISH"
SUBSCRIBE = "SUBSCRIBE"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class TokenError(ValueError):
    """A token that cannot be used. `code` is the JOIN_ERROR code the events socket answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_participant_id() -> str:
    """12 characters of [A-Za-z0-9]: fits both ParticipantTokenId and ParticipantId patterns."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def public_key_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str | bytes) -> ec.EllipticCurvePublicKey:
    """A P-384 public key from PEM; ValueError for anything else (another curve, RSA, garbage)."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except UnsupportedAlgorithm:  # a key type or curve cryptography cannot load: the caller's mistake
        raise ValueError("the public key's algorithm or curve is not supported (tokens are ES384)") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError("the public key must be an ECDSA P-384 key (tokens are ES384)")
    return key


def load_private_key(pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError("the private key must be an ECDSA P-384 key (tokens are ES384)")
    return key


@dataclass(frozen=True)
class ParticipantClaims:
    """What a participant token says. `expires_at` and `issued_at` are Unix seconds."""

    stage_arn: str
    participant_id: str
    events_url: str
    whip_url: str
    expires_at: float
    issued_at: float
    user_id: str = ""
    capabilities: frozenset[str] = frozenset({PUBLISH, SUBSCRIBE})
    attributes: Mapping[str, str] = field(default_factory=dict)
    version: str = VERSION

    @property
    def stage_id(self) -> str:
        return self.stage_arn.rsplit("/", 1)[-1]

    @property
    def topic(self) -> str:
        return self.stage_id

    def to_jwt(self) -> dict:
        return {
            "resource": self.stage_arn,
            "jti": self.participant_id,
            "topic": self.topic,
            "events_url": self.events_url,
            "whip_url": self.whip_url,
            "user_id": self.user_id,
            "attributes": dict(self.attributes),
            "capabilities": {"allow_publish": PUBLISH in self.capabilities,
                             "allow_subscribe": SUBSCRIBE in self.capabilities},
            "version": self.version,
            "iat": _seconds(self.issued_at),
            "exp": _seconds(self.expires_at),
        }

    @classmethod
    def from_jwt(cls, claims: Mapping) -> ParticipantClaims:
        """Raise TokenError(TOKEN_INVALID) when a claim is missing or of the wrong type."""
        def text(name: str, required: bool = True) -> str:
            value = claims.get(name)
            if value is None and not required:
                return ""
            if not isinstance(value, str) or (required and not value):
                raise TokenError("TOKEN_INVALID", f"claim {name} must be a non-empty string")
            return value

        def number(name: str) -> float:
            try:  # finite and in range: an infinite or NaN exp would never expire
                return untrusted.seconds(claims.get(name), name)
            except untrusted.Refused as refused:
                raise TokenError("TOKEN_INVALID", refused.reason) from None

        capabilities = claims.get("capabilities") or {}
        attributes = claims.get("attributes") or {}
        if not isinstance(capabilities, dict) or not isinstance(attributes, dict) or not all(
                isinstance(v, str) for v in attributes.values()):
            raise TokenError("TOKEN_INVALID", "claims capabilities and attributes must be objects")
        granted = frozenset(name for name, flag in ((PUBLISH, capabilities.get("allow_publish")),
                                                    (SUBSCRIBE, capabilities.get("allow_subscribe"))) if flag is True)
        return cls(stage_arn=text("resource"), participant_id=text("jti"), events_url=text("events_url", False),
                   whip_url=text("whip_url", False), expires_at=number("exp"),
                   issued_at=number("iat") if "iat" in claims else 0.0, user_id=text("user_id", False),
                   capabilities=granted, attributes=dict(attributes), version=text("version", False) or VERSION)


def _seconds(value: float) -> int | float:
    """Whole seconds as an integer (what real tokens carry); a scaled emulator keeps milliseconds."""
    return int(value) if float(value).is_integer() else round(value, 3)


def sign_participant_token(claims: ParticipantClaims, private_key: ec.EllipticCurvePrivateKey,
                           key_id: str | None = None) -> str:
    """A self-signed participant token (ES384) in the claim shape IVS issues; `key_id` (the imported
    public key's ARN) goes in the header as `kid` when given (whether the service wants it is inferred)."""
    headers = {"typ": "JWT", **({"kid": key_id} if key_id else {})}
    return jwt.encode(claims.to_jwt(), private_key, algorithm=ALGORITHM, headers=headers)


def self_signed_token(private_key: ec.EllipticCurvePrivateKey, stage_arn: str, *, events_url: str, whip_url: str,
                      now: float, duration_s: float = 720 * 60, user_id: str = "",
                      capabilities: Iterable[str] = (PUBLISH, SUBSCRIBE), attributes: Mapping[str, str] | None = None,
                      participant_id: str | None = None, key_id: str | None = None) -> tuple[str, ParticipantClaims]:
    """Claims for one participant, signed: what a harness does instead of CreateParticipantToken."""
    claims = ParticipantClaims(stage_arn=stage_arn, participant_id=participant_id or new_participant_id(),
                               events_url=events_url, whip_url=whip_url, expires_at=now + duration_s, issued_at=now,
                               user_id=user_id, capabilities=frozenset(capabilities), attributes=dict(attributes or {}))
    return sign_participant_token(claims, private_key, key_id), claims


def unverified_claims(token: str) -> dict:
    """The claims of a token without checking its signature (what the SDK does). TokenError if unreadable."""
    try:
        untrusted.check_jwt_shape(token)
        return jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, untrusted.Refused):
        raise TokenError("TOKEN_INVALID", "not a JWT") from None


def verify_participant_token(token: str, keys: Iterable[ec.EllipticCurvePublicKey], now: float) -> ParticipantClaims:
    """Check the signature against each key in turn, then the claims and the expiry at `now`.

    Raises TokenError: TOKEN_MISSING (empty), TOKEN_INVALID (not a JWT of the right shape),
    TOKEN_INVALID_SIGNATURE (no key verifies it), TOKEN_EXPIRED. Expiry and `nbf` are checked
    here, not by PyJWT, so a caller's clock (scaled or fixed in tests) decides.
    """
    if not token:
        raise TokenError("TOKEN_MISSING", "no participant token offered")
    try:
        untrusted.check_jwt_shape(token)
        header = jwt.get_unverified_header(token)
    except untrusted.Refused as refused:
        raise TokenError("TOKEN_INVALID", refused.reason) from None
    except jwt.PyJWTError:
        raise TokenError("TOKEN_INVALID", "not a JWT") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("TOKEN_INVALID", f"participant tokens are signed with {ALGORITHM}")
    payload = None
    for key in keys:
        try:
            payload = jwt.decode(token, key, algorithms=[ALGORITHM],
                                 options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                          "verify_aud": False, "verify_iss": False})
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise TokenError("TOKEN_INVALID", "not a valid JWT") from None
    if payload is None:
        raise TokenError("TOKEN_INVALID_SIGNATURE", "the token's signature matches no known key")
    if not isinstance(payload, dict):
        raise TokenError("TOKEN_INVALID", "the claims are not an object")
    claims = ParticipantClaims.from_jwt(payload)
    if now >= claims.expires_at:
        raise TokenError("TOKEN_EXPIRED", "the participant token has expired")
    if "nbf" in payload:  # PyJWT's own check is off (our clock decides): a token for later is refused
        try:
            not_before = untrusted.seconds(payload["nbf"], "nbf")
        except untrusted.Refused as refused:
            raise TokenError("TOKEN_INVALID", refused.reason) from None
        if now < not_before:
            raise TokenError("TOKEN_INVALID", "the participant token is not valid yet (nbf)")
    return claims
