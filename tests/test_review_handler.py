"""Message review handlers: a Python callable and an HTTP endpoint, with the 200 ms fallback.

These embed the emulator in the test's own loop so a Python callable can be registered.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from websockets.asyncio.client import connect

from harness.services.ivschat import codec
from harness.services.ivschat.emulator import Emulator

from .chat import next_event, run, send

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:review"


async def open_room(emulator: Emulator, handler_config: dict):
    room = emulator.create_room(message_review_handler=handler_config, maximum_message_rate_per_second=100)
    token, _ = emulator.state.create_token(room, "writer", ["SEND_MESSAGE"])
    return await connect(emulator.messaging_endpoint, subprotocols=[token])


def test_callable_allows_rewrites_and_denies():
    seen = []

    def handler(event):
        seen.append(event)
        if "badword" in event["Content"]:
            return {"ReviewResult": "DENY", "Reason": "language"}
        return {"ReviewResult": "ALLOW", "Content": event["Content"].upper(), "Attributes": {"reviewed": "yes"}}

    async def scenario():
        async with Emulator() as emulator:
            emulator.review.register(LAMBDA, handler)
            ws = await open_room(emulator, {"uri": LAMBDA, "fallbackResult": "ALLOW"})
            await send(ws, "hello", {"a": "b"})
            message = await next_event(ws)
            assert (message.content, message.attributes) == ("HELLO", {"reviewed": "yes"})
            request_id = await send(ws, "a badword")
            error = await next_event(ws)
            assert isinstance(error, codec.ChatError) and (error.code, error.request_id) == (406, request_id)
            assert "language" in error.message
            assert seen[0]["Sender"]["UserId"] == "writer" and seen[0]["Attributes"] == {"a": "b"}
            assert seen[0]["MessageId"] == message.id and seen[0]["RoomArn"].startswith("arn:aws:ivschat:")
            await ws.close()

    run(scenario())


def test_slow_handler_falls_back_after_200_ms():
    async def slow(event):
        await asyncio.sleep(1.0)
        return {"ReviewResult": "ALLOW"}

    async def scenario():
        async with Emulator() as emulator:
            emulator.review.register(LAMBDA, slow)
            deny = await open_room(emulator, {"uri": LAMBDA, "fallbackResult": "DENY"})
            await send(deny, "anything")
            error = await next_event(deny, timeout=2)
            assert isinstance(error, codec.ChatError) and error.code == 406
            allow = await open_room(emulator, {"uri": LAMBDA})  # fallbackResult defaults to ALLOW
            loop = asyncio.get_running_loop()
            started = loop.time()
            await send(allow, "anything")
            assert isinstance(await next_event(allow, timeout=2), codec.ChatMessage)
            assert 0.2 <= loop.time() - started < 0.9, "fallback applies at the 200 ms timeout"
            assert emulator.review.fallbacks == 2
            await deny.close()
            await allow.close()

    run(scenario())


def test_http_handler():
    async def review(request):
        event = await request.json()
        verdict = "DENY" if event["Content"] == "no" else "ALLOW"
        return web.json_response({"ReviewResult": verdict, "Reason": "http says no"})

    async def scenario():
        app = web.Application()
        app.router.add_post("/review", review)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/review"
        try:
            async with Emulator() as emulator:
                ws = await open_room(emulator, {"uri": url, "fallbackResult": "ALLOW"})
                await send(ws, "yes")
                assert (await next_event(ws)).content == "yes"
                await send(ws, "no")
                error = await next_event(ws)
                assert error.code == 406 and "http says no" in error.message
                await ws.close()
        finally:
            await runner.cleanup()

    run(scenario())
