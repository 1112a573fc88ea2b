"""Message review handlers: a room's `messageReviewHandler` judges every SEND_MESSAGE.

In the service the handler is a Lambda function. The emulator resolves the room's `uri` to:
- a Python callable registered with `ReviewHandlers.register(uri, fn)` (a Lambda ARN or any name),
- or an HTTP(S) URL (emulator extension), POSTed the same JSON event a Lambda would receive.
A handler gets the Lambda event `{"Content", "MessageId", "RoomArn", "Attributes", "Sender":
{"UserId", "Attributes", "Ip"}}` and answers `{"ReviewResult": "ALLOW"|"DENY", "Content"?,
"Attributes"?, "Reason"?}`. No answer within 200 ms, an error, or an unknown uri → the room's
`fallbackResult` (default ALLOW), as the service does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

log = logging.getLogger(__name__)

TIMEOUT_S = 0.2

Handler = Callable[[dict], dict | Awaitable[dict]]


@dataclass(frozen=True, slots=True)
class Verdict:
    allow: bool
    content: str
    attributes: dict[str, str] | None
    reason: str = ""
    fallback: bool = False  # the handler did not answer in time or failed


class ReviewHandlers:
    def __init__(self) -> None:
        self._callables: dict[str, Handler] = {}
        self._session: aiohttp.ClientSession | None = None
        self.invocations = 0
        self.fallbacks = 0

    def register(self, uri: str, handler: Handler) -> None:
        self._callables[uri] = handler

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def review(self, config: dict, event: dict) -> Verdict:
        self.invocations += 1
        uri = config.get("uri", "")
        try:
            async with asyncio.timeout(TIMEOUT_S):
                answer = await self._invoke(uri, event)
            return self._verdict(answer, event)
        except Exception as exc:  # timeout, transport error, bad answer: the service falls back
            self.fallbacks += 1
            log.info("review handler %s failed (%s); applying fallbackResult", uri, type(exc).__name__)
            allow = config.get("fallbackResult", "ALLOW") != "DENY"
            reason = "" if allow else "Message review handler did not answer; fallbackResult is DENY"
            return Verdict(allow, event["Content"], event["Attributes"], reason, fallback=True)

    async def _invoke(self, uri: str, event: dict) -> dict:
        handler = self._callables.get(uri)
        if handler is not None:
            answer = handler(event)
            return await answer if inspect.isawaitable(answer) else answer
        if uri.startswith(("http://", "https://")):
            if self._session is None:
                self._session = aiohttp.ClientSession()
            async with self._session.post(uri, json=event) as response:
                response.raise_for_status()
                return await response.json(content_type=None)
        raise LookupError(f"no review handler registered for {uri}")

    @staticmethod
    def _verdict(answer: dict, event: dict) -> Verdict:
        if not isinstance(answer, dict):
            raise TypeError("review handler answer must be a JSON object")
        result = answer.get("ReviewResult")
        if result not in ("ALLOW", "DENY"):
            raise ValueError(f"ReviewResult must be ALLOW or DENY, not {result!r}")
        content = answer.get("Content", event["Content"])
        attributes = answer.get("Attributes", event["Attributes"])
        if not isinstance(content, str):
            raise TypeError("review handler Content must be a string")
        return Verdict(result == "ALLOW", content, attributes, str(answer.get("Reason", "") or ""))
