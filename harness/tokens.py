"""Token providers: where a chat user's single-use token comes from.

They run on the gevent side, in a greenlet per fetch (boto3 over gevent-patched sockets yields to
other users while it waits). Each returns a token string or raises `TokenFetchFailed` with a short
`cause` (the AWS error code, "exhausted", "exit 3", …) that reports group failures by.
Tokens never reach a log line or a report: only their count and the causes do.

- `Boto3TokenProvider`: CreateChatToken through boto3 — the emulator (endpoint_url) or AWS
  (default credential chain, region).
- `StaticTokenProvider`: tokens listed in a file, one per line or a JSON list; each used once.
- `CommandTokenProvider`: an external command prints the token on stdout; it gets the request in
  the environment (CHATLOAD_USER_ID, CHATLOAD_ROOM_ARN, CHATLOAD_CAPABILITIES comma-separated,
  CHATLOAD_SESSION_MINUTES).
"""

from __future__ import annotations

import collections
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TokenRequest:
    user_id: str
    room_arn: str
    capabilities: tuple[str, ...]
    session_minutes: int | None = None
    attributes: dict[str, str] | None = None


class TokenFetchFailed(Exception):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class TokenProvider:
    name = "abstract"

    def fetch(self, request: TokenRequest) -> str:
        raise NotImplementedError


class Boto3TokenProvider(TokenProvider):
    name = "boto3"

    def __init__(self, region: str, endpoint_url: str | None = None, *, max_pool_connections: int = 50) -> None:
        from botocore.config import Config

        from .ivschat_client import ivschat_client

        # No botocore retries: a throttled CreateChatToken is a fact the load test must report, and the
        # session's reconnect policy decides when to try again.
        config = Config(retries={"total_max_attempts": 1}, max_pool_connections=max_pool_connections,
                        connect_timeout=5, read_timeout=10)
        self.client = ivschat_client(region, endpoint_url, config=config)
        self.endpoint = endpoint_url or f"ivschat.{region}.amazonaws.com"

    def fetch(self, request: TokenRequest) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        params = {"roomIdentifier": request.room_arn, "userId": request.user_id,
                  "capabilities": list(request.capabilities)}
        if request.session_minutes:
            params["sessionDurationInMinutes"] = request.session_minutes
        if request.attributes:
            params["attributes"] = request.attributes
        try:
            return self.client.create_chat_token(**params)["token"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise TokenFetchFailed(error.get("Code", "ClientError"), error.get("Message", str(exc))) from None
        except BotoCoreError as exc:
            raise TokenFetchFailed(type(exc).__name__, str(exc)) from None


class StaticTokenProvider(TokenProvider):
    name = "static"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        text = self.path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            tokens = json.loads(text)
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ValueError(f"{self.path}: a JSON token file must be a list of strings")
        else:
            tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not tokens:
            raise ValueError(f"{self.path}: no tokens in the file")
        self._tokens = collections.deque(tokens)
        self.total = len(tokens)

    def fetch(self, request: TokenRequest) -> str:
        if not self._tokens:
            raise TokenFetchFailed("exhausted", f"all {self.total} tokens from {self.path} are used (single-use)")
        return self._tokens.popleft()


class CommandTokenProvider(TokenProvider):
    name = "command"

    def __init__(self, command: str, timeout: float = 10.0) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the token command is empty")
        self.timeout = timeout

    def fetch(self, request: TokenRequest) -> str:
        from gevent import subprocess

        env = dict(os.environ, CHATLOAD_USER_ID=request.user_id, CHATLOAD_ROOM_ARN=request.room_arn,
                   CHATLOAD_CAPABILITIES=",".join(request.capabilities),
                   CHATLOAD_SESSION_MINUTES=str(request.session_minutes or ""))
        try:
            proc = subprocess.run(self.argv, env=env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise TokenFetchFailed("timeout", f"token command ran longer than {self.timeout} s") from None
        except OSError as exc:
            raise TokenFetchFailed("not runnable", f"token command {self.argv[0]!r}: {exc.strerror}") from None
        if proc.returncode != 0:
            # stderr may be shown (it is the command's own diagnostics), stdout never (it may be a token).
            raise TokenFetchFailed(f"exit {proc.returncode}", proc.stderr.strip()[-300:] or "no message")
        out = proc.stdout.strip()
        if out.startswith("{"):
            try:
                out = json.loads(out)["token"]
            except (ValueError, KeyError, TypeError):
                raise TokenFetchFailed("bad output", "token command printed JSON without a string 'token'") from None
        if not out:
            raise TokenFetchFailed("bad output", "token command printed nothing")
        return out
