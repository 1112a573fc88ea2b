"""Where a participant's token comes from: CreateParticipantToken (the default) or self-signed.

- `CreateParticipantTokens`: one CreateParticipantToken call per join through boto3 with botocore's
  retries off (`boto.no_retry_client`), against the emulator (`endpoint_url`) or AWS (the default
  credential chain). A throttled call is a fact the load test reports (`token_fetch_failures.
  ThrottlingException`); the session's reconnect policy decides when the user tries again. The
  quota is 50 TPS per account and region, not adjustable.
- `SelfSignedTokens`: an ES384 JWT signed with the user's own private key (whose public key was
  imported with ImportPublicKey), in the claim shape CreateParticipantToken issues. No API call per
  token, so no 50 TPS quota: the way to join hundreds of participants within seconds. The stage's
  events and WHIP URLs come from GetStage, once per stage and process.

The private key is named, never held by anything that travels: `private_key` in a scenario's
`[target]` is a PEM file's path or `env:NAME`, read where tokens are signed. Neither the key, nor a
token, nor a claim value ever reaches an exception message, a log line or a metric.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..tokens import KeySourceError, TokenFetchFailed, TokenProvider, read_secret
from ..user_spec import UserSpec
from .boto import control_client
from .tokens import PUBLISH, SUBSCRIBE, load_private_key, self_signed_token

ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_TOKEN_MINUTES = 720  # CreateParticipantToken's default duration


class PrivateKeyError(ValueError):
    """The private key named by a scenario cannot be used; the message names it, never shows it."""


def read_private_key(reference: str):
    """The ES384 private key a reference names: `env:NAME` (PEM text in that variable) or a PEM file."""
    try:
        pem = read_secret(reference)
    except KeySourceError as exc:
        raise PrivateKeyError(f"private key: {exc}") from None
    try:
        return load_private_key(pem)
    except (ValueError, TypeError):
        raise PrivateKeyError(f"private key {reference}: not an unencrypted PEM ECDSA P-384 private key") from None


def check_key_reference(reference: str) -> str | None:
    """Why a `private_key` reference cannot work here, or None (the key itself is not read)."""
    if reference.startswith(ENV_PREFIX):
        name = reference[len(ENV_PREFIX):]
        if not ENV_NAME.fullmatch(name):
            return f"{reference!r}: write env:NAME with a variable name"
        return None if os.environ.get(name) else f"the environment variable {name} is not set"
    return None if Path(reference).is_file() else f"no such file: {reference}"


def _capabilities(user: UserSpec) -> list[str]:
    granted = [c for c in user.capabilities if c in (PUBLISH, SUBSCRIBE)]
    return granted or [PUBLISH, SUBSCRIBE]


def _failed(exc: Exception) -> TokenFetchFailed:
    """botocore's error as a cause (its code) and a message that holds no token."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return TokenFetchFailed(error.get("Code") or "ClientError", error.get("Message") or type(exc).__name__)
    return TokenFetchFailed(type(exc).__name__, str(exc))


class CreateParticipantTokens(TokenProvider):
    """CreateParticipantToken per join, one HTTP request per call (no botocore retries)."""

    name = "create-participant-token"

    def __init__(self, region: str, endpoint_url: str | None = None, *, max_pool_connections: int = 50) -> None:
        from botocore.config import Config

        from .boto import no_retry_client

        self.client = no_retry_client(region, endpoint_url, config=Config(
            max_pool_connections=max_pool_connections, connect_timeout=5, read_timeout=10))

    def fetch(self, request: UserSpec) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        from .boto import create_participant_token

        try:
            answer = create_participant_token(
                self.client, request.room, user_id=request.user_id, capabilities=_capabilities(request),
                attributes=request.attributes, duration_minutes=request.session_minutes)
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None
        return answer["token"]


class SelfSignedTokens(TokenProvider):
    """Participant tokens signed here with the user's ES384 key: no call per token."""

    name = "self-signed"

    def __init__(self, private_key: str, region: str, endpoint_url: str | None = None, *,
                 key_id: str | None = None) -> None:
        self.reference = private_key
        self.key_id = key_id or None
        self.region, self.endpoint_url = region, endpoint_url
        self._key = None
        self._key_error: str | None = None
        self._endpoints: dict[str, tuple[str, str]] = {}  # stage ARN → (events URL, WHIP URL)
        self._looking_up: dict[str, object] = {}  # stage ARN → a lock: one GetStage per stage at a time
        # Made now, with the runtime, not at the first join: loading botocore's models takes ~0.5 s.
        self._client = control_client(region, endpoint_url)

    def _signing_key(self):
        if self._key is None and self._key_error is None:
            try:
                self._key = read_private_key(self.reference)
            except PrivateKeyError as exc:
                self._key_error = str(exc)
        if self._key_error is not None:
            raise TokenFetchFailed("private key", self._key_error)
        return self._key

    def _stage_endpoints(self, stage_arn: str) -> tuple[str, str]:
        """(events URL, WHIP URL) from GetStage, once per stage: the URLs the tokens must carry."""
        known = self._endpoints.get(stage_arn)
        if known is not None:
            return known
        import gevent.lock

        lock = self._looking_up.setdefault(stage_arn, gevent.lock.BoundedSemaphore())
        with lock:
            known = self._endpoints.get(stage_arn)
            if known is not None:
                return known
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                stage = self._client.get_stage(arn=stage_arn)["stage"]
            except (ClientError, BotoCoreError) as exc:
                failure = _failed(exc)
                raise TokenFetchFailed(f"GetStage {failure.cause}", str(failure)) from None
            endpoints = stage.get("endpoints") or {}
            known = self._endpoints[stage_arn] = (endpoints.get("events", ""), endpoints.get("whip", ""))
        return known

    def fetch(self, request: UserSpec) -> str:
        key = self._signing_key()
        events_url, whip_url = self._stage_endpoints(request.room)
        minutes = request.session_minutes or DEFAULT_TOKEN_MINUTES
        token, _ = self_signed_token(key, request.room, events_url=events_url, whip_url=whip_url, now=time.time(),
                                     duration_s=minutes * 60, user_id=request.user_id,
                                     capabilities=_capabilities(request), attributes=request.attributes,
                                     key_id=self.key_id)
        return token
