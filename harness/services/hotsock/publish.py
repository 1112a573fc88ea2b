"""Server publishes: `POST <publish URL>` with `Authorization: Bearer <API key>` (spec §1.5).

The customer's backend publishes through the installation's HTTP publish API (or its Lambda); a
chatload publisher does the same, with a keep-alive connection pool (urllib3, cooperative under
gevent's patched sockets). `eagerIdGeneration: true` asks for the message's id in the answer: its
ULID is the server's time of acceptance. The API key is named by source (a file or `env:NAME`),
read once per process and never shown; errors name the source, not the key.
"""

from __future__ import annotations

import orjson
import urllib3

from ...net.tls import http_context
from ..base import PublishRejected, ServiceError, category_of_http_status
from ..tokens import KeySourceError, read_secret


class PublishApi:
    def __init__(self, url: str, api_key_source: str, *, timeout_s: float = 10.0, pool_size: int = 20) -> None:
        if not url:
            raise ServiceError("publishing needs publish_url (the installation's <PublishHttpApiUrl>/publish)")
        if not api_key_source:
            raise ServiceError("publishing needs api_key (a file or env:NAME holding the 40-character key)")
        self.url = url
        self.api_key_source = api_key_source
        self._authorization: str | None = None
        # No retries: a refused or failed publish is a fact the run reports, once.
        self._pool = urllib3.PoolManager(maxsize=pool_size, block=False, retries=False,
                                         timeout=urllib3.Timeout(connect=5.0, read=timeout_s),
                                         ssl_context=http_context(url))  # an emulator's own CA over https://

    def _header(self) -> str:
        if self._authorization is None:
            try:
                key = read_secret(self.api_key_source).decode("ascii")
            except (KeySourceError, UnicodeDecodeError) as exc:
                raise ServiceError(f"api_key {self.api_key_source}: {exc}") from None
            self._authorization = f"Bearer {key}"
        return self._authorization

    def publish(self, channel: str, event: str, data) -> dict:
        """The service's answer (`{channel, event, id}`); `PublishRejected` for an error status."""
        body = orjson.dumps({"channel": channel, "event": event, "data": data, "eagerIdGeneration": True})
        response = self._pool.request("POST", self.url, body=body, headers={
            "Content-Type": "application/json", "Authorization": self._header()})
        try:
            answer = orjson.loads(response.data) if response.data else {}
        except orjson.JSONDecodeError:
            answer = {}
        if response.status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise PublishRejected(category_of_http_status(response.status),
                                  code if isinstance(code, str) else str(response.status),
                                  message if isinstance(message, str) else "")
        return answer if isinstance(answer, dict) else {}
