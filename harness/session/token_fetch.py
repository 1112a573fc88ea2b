"""Tokens from the application's own endpoint, fetched on the loop thread with aiohttp.

Why on the loop and not in a greenlet like the boto3 sources: the connection that needs the token
lives on the loop, so the fetch does too — no crossing to the hub and back, and nothing to lose on
the way (a greenlet's answer reaches the loop only through the boundary). aiohttp is asyncio-native
and the process's gevent patching does not reach it: it connects through uvloop's own sockets.

One fetch per connect or reconnect, as the vendor's client asks its `tokenProvider` — nothing is
fetched ahead. Each answer is classified for the session (`TokenFetchFailed.cause` is the counter:
`token_fetch_failures.<cause>`):
- 2xx read by the declared JSON paths (`harness.services.token_endpoint.read_answer`); an unreadable answer
  fails with a cause (`bad_json`, `no_token`, …) and a message naming the path;
- 401 and 403 — and any other 4xx but 408 and 429, which no retry can mend — are final: the user
  is refused and stops, as an SDK whose token provider throws does;
- 408, 429 and 5xx, timeouts and refused connections fail this try; the population's reconnect
  policy decides when to try again;
- a certificate the client rejects is final too, its cause named as the connect's
  (`TLS unknown CA`, …). An https:// endpoint is checked against the CA registered for its origin,
  else the system store plus the target's own CA (`tls.app_context`).
The answer's body is never logged or quoted: it holds a token.
"""

from __future__ import annotations

import asyncio

from ..net.tls import app_context, certificate_failure
from ..services.base import TokenWanted, UserSpec
from ..services.token_endpoint import (
    BadAnswer,
    IssuedToken,
    TokenEndpoint,
    read_answer,
    request_of,
    resolved_headers,
)
from ..services.tokens import TokenFetchFailed, TokenProvider
from ..threads import marks

RETRIED_4XX = (408, 429)


def final_status(status: int) -> bool:
    """A status no retry can mend: the user is refused."""
    return 400 <= status < 500 and status not in RETRIED_4XX


class EndpointTokens(TokenProvider):
    """On the loop thread only (it owns the aiohttp session and the session ids of earlier answers)."""

    name = "endpoint"
    runs_on_loop = True

    def __init__(self, endpoint: TokenEndpoint, service: str = "", target=None) -> None:
        self.endpoint = endpoint
        # aiohttp's ssl= per URL template, built here (off the loop: a context reads a trust store).
        self._ssl = {url: app_context(url, target) for url in (endpoint.url, endpoint.subscribe_url) if url}
        self.service = service
        self.headers = resolved_headers(endpoint)  # read once; raises naming the variable, never its value
        self.timeout_s = endpoint.timeout_s
        self.purposes = frozenset({"subscribe"}) if endpoint.subscribe_tokens else frozenset()
        self._sessions: dict[str, str] = {}  # sender id → the session id its last answer gave
        self._http = None  # aiohttp.ClientSession, made on the loop at the first fetch

    def _client(self):
        if self._http is None:
            import aiohttp

            # One connection per fetch and no cap: each browser of a real fleet has its own, so the
            # endpoint sees every TCP (and TLS) handshake a fleet makes, not a warm shared pool; a cap
            # would queue a reconnect storm here and time the queue as the endpoint's latency. No
            # cookies: one user's answer must not shape another's request.
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                               cookie_jar=aiohttp.DummyCookieJar(),
                                               timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._http

    @marks.runs_on_loop
    def values(self, request: UserSpec, population: str, wanted: TokenWanted | None = None) -> dict[str, str]:
        return {"user_id": request.user_id, "room": request.room, "capabilities": ",".join(request.capabilities),
                "session": self._sessions.get(request.sender_id, ""),
                "session_minutes": str(request.session_minutes or ""), "population": population,
                "purpose": wanted.purpose if wanted else "connect", "channel": wanted.scope if wanted else "",
                "connection_id": wanted.connection_id if wanted else ""}

    @marks.runs_on_loop
    async def fetch_async(self, request: UserSpec, population: str = "",
                          wanted: TokenWanted | None = None) -> IssuedToken:
        """The connect's token, or with `wanted` one the open connection asked for (Hotsock's subscribe
        token, from `subscribe_url` or the same endpoint)."""
        import aiohttp

        endpoint = self.endpoint.for_purpose(wanted.purpose if wanted else None)
        url, body, content_type = request_of(endpoint, self.values(request, population, wanted))
        headers = dict(self.headers)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        try:
            async with self._client().request(endpoint.method, url, data=body.encode() if body else None,
                                              headers=headers, allow_redirects=False,
                                              ssl=self._ssl.get(endpoint.url, True)) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            raise TokenFetchFailed("timeout", f"no answer from the token endpoint within {self.timeout_s:g} s") \
                from None
        except aiohttp.ClientConnectorCertificateError as exc:
            cause = certificate_failure(exc.certificate_error) or "TLS certificate rejected"
            raise TokenFetchFailed(cause, f"token endpoint: {cause}", final=True) from None  # no retry mends it
        except aiohttp.ClientError as exc:
            raise TokenFetchFailed("connect", f"token endpoint: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            raise TokenFetchFailed(str(status), f"the token endpoint answered HTTP {status}",
                                   final=final_status(status))
        try:
            answer = read_answer(endpoint, raw)
        except BadAnswer as exc:
            raise TokenFetchFailed(exc.cause, str(exc)) from None
        if answer.session is not None and wanted is None:
            self._sessions[request.sender_id] = answer.session
        return IssuedToken(answer.token, answer.fields)

    @marks.runs_on_loop
    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()
            await asyncio.sleep(0)  # let aiohttp's transports finish closing before the loop stops
