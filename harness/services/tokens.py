"""Token providers: where a chat user's token comes from.

They run on the gevent side, in a greenlet per fetch (boto3 over gevent-patched sockets yields to
other users while it waits). Each gets the `UserSpec` of the connection (user id, room,
capabilities, session length, attributes) and returns a token string, or raises
`TokenFetchFailed` with a short `cause` (the AWS error code, "exhausted", "exit 3", …) that
reports group failures by. Tokens never reach a log line or a report: only their count and the
causes do.

Service-neutral providers live here; each service has its own default (IVS Chat: CreateChatToken
through boto3, in `harness/services/ivschat/tokens.py`):
- `StaticTokenProvider`: tokens listed in a file, one per line or a JSON list; each used once.
- `CommandTokenProvider`: an external command prints the token on stdout; it gets the request in
  the environment (CHATLOAD_SERVICE, CHATLOAD_USER_ID, CHATLOAD_ROOM — and CHATLOAD_ROOM_ARN, the
  same, for IVS scripts — CHATLOAD_CAPABILITIES comma-separated, CHATLOAD_SESSION_MINUTES).
"""

from __future__ import annotations

import collections
import json
import os
import shlex
from pathlib import Path

from .user_spec import UserSpec


class KeySourceError(ValueError):
    """A key source that cannot be read; the message names the source, never the key."""


def read_secret(source: str) -> bytes:
    """The bytes of a file, or of an environment variable when `source` is `env:NAME`; trailing
    newlines are dropped (a secret file written by `echo` still works)."""
    if source.startswith("env:"):
        name = source[4:]
        value = os.environ.get(name)
        if not value:
            raise KeySourceError(f"environment variable {name} is not set or empty")
        return value.encode().rstrip(b"\r\n")
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise KeySourceError(f"cannot read {source}: {exc.strerror or exc}") from None
    data = data.rstrip(b"\r\n")
    if not data:
        raise KeySourceError(f"{source} is empty")
    return data


class TokenFetchFailed(Exception):
    """`cause` is the counter (`token_fetch_failures.<cause>`); `final`: no retry can mend it (e.g. the
    application's endpoint answered 401), so the user is refused instead of retried."""

    def __init__(self, cause: str, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        self.final = final


class TokenProvider:
    """`fetch` runs in a greenlet. A provider with `runs_on_loop` set gives `async fetch_async(request,
    population)` instead, awaited on the loop thread (harness/session/token_fetch.py)."""

    name = "abstract"
    runs_on_loop = False
    timeout_s = 30.0  # the runtime's bound on one fetch, whatever the provider does inside
    # Tokens beyond the connect's it serves (`TokenWanted.purpose`), through `fetch_async(request,
    # population, wanted)` on the loop: e.g. {"subscribe"} for Hotsock's subscribe tokens.
    purposes: frozenset[str] = frozenset()

    def fetch(self, request: UserSpec) -> str:
        raise NotImplementedError


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

    def fetch(self, request: UserSpec) -> str:
        if not self._tokens:
            raise TokenFetchFailed("exhausted", f"all {self.total} tokens from {self.path} are used (single-use)")
        return self._tokens.popleft()


class CommandTokenProvider(TokenProvider):
    name = "command"

    def __init__(self, command: str, timeout: float = 10.0, service: str = "") -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the token command is empty")
        self.timeout = timeout
        self.service = service

    def fetch(self, request: UserSpec) -> str:
        from gevent import subprocess

        env = dict(os.environ, CHATLOAD_SERVICE=self.service, CHATLOAD_USER_ID=request.user_id,
                   CHATLOAD_ROOM=request.room, CHATLOAD_ROOM_ARN=request.room,
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
