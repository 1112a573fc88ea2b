"""The Hotsock emulator as a child process, with the helpers tests and the harness use on it."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import orjson

from ....emulation.process import EmulatorProcess as _EmulatorProcess
from ....net.tls import http_context
from .. import tokens


class EmulatorProcess(_EmulatorProcess):
    service = "hotsock"

    @property
    def websocket_url(self) -> str:
        return self.info["websocket_url"]

    def hs256_secret(self) -> bytes:
        """The HMAC secret the emulator generated (only when it was started without keys)."""
        return Path(self.info["hs256_secret_file"]).read_bytes()

    def api_key(self) -> str:
        """The publish key the emulator generated (only when it was started without one)."""
        return Path(self.info["api_key_file"]).read_text()

    def mint(self, claims: Mapping) -> str:
        """A token signed with the generated HS256 secret."""
        return tokens.mint(claims, self.hs256_secret())

    def connect_url(self, token: str) -> str:
        return f"{self.websocket_url}?token={token}"

    def publish(self, channel: str, event: str, data=None, *, api_key: str | None = None, **extra) -> tuple[int, dict]:
        """POST /publish; (status, JSON body) whatever the status."""
        body = {"channel": channel, "event": event, "data": data, **extra}
        return post_json(self.info["publish_url"], body, api_key=self.api_key() if api_key is None else api_key)


def post_json(url: str, body, *, api_key: str | None = None, timeout: float = 10.0) -> tuple[int, dict]:
    """POST a JSON body (bytes are sent as they are); (status, JSON answer)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=http_context(url)) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
