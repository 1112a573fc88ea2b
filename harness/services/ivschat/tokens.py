"""IVS Chat's own token source: CreateChatToken through boto3, against AWS or the emulator."""

from __future__ import annotations

from ..tokens import TokenFetchFailed, TokenProvider
from ..user_spec import UserSpec


class CreateChatTokenProvider(TokenProvider):
    """CreateChatToken through boto3 — the emulator (endpoint_url) or AWS (default credential chain)."""

    name = "boto3"

    def __init__(self, region: str, endpoint_url: str | None = None, *, max_pool_connections: int = 50) -> None:
        from botocore.config import Config

        from .boto import ivschat_client

        # No botocore retries: a throttled CreateChatToken is a fact the load test must report, and the
        # session's reconnect policy decides when to try again.
        config = Config(retries={"total_max_attempts": 1}, max_pool_connections=max_pool_connections,
                        connect_timeout=5, read_timeout=10)
        self.client = ivschat_client(region, endpoint_url, config=config)
        self.endpoint = endpoint_url or f"ivschat.{region}.amazonaws.com"

    def fetch(self, request: UserSpec) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        params = {"roomIdentifier": request.room, "userId": request.user_id,
                  "capabilities": list(request.capabilities)}
        if request.session_minutes:
            params["sessionDurationInMinutes"] = request.session_minutes
        if request.attributes:
            params["attributes"] = dict(request.attributes)
        try:
            return self.client.create_chat_token(**params)["token"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise TokenFetchFailed(error.get("Code", "ClientError"), error.get("Message", str(exc))) from None
        except BotoCoreError as exc:
            raise TokenFetchFailed(type(exc).__name__, str(exc)) from None
