"""picows logs every connect and disconnect at INFO: 2,000 of 2,046 lines of a fan-out's locust.log.
Per-connection events are counters (connects, closes.<code>), so the picows transport's connections
log nothing below WARNING (issue 24, point 9)."""

from __future__ import annotations

import asyncio
import logging

from .test_transport_contract import _open, _run


def test_picows_connections_log_nothing_per_connection(caplog):
    async def case(base, transport):
        for _ in range(3):
            ws, listener = await _open(base, "/echo", transport)
            ws.close()
            await asyncio.wait_for(listener.closed, 5)

    with caplog.at_level(logging.DEBUG):  # whatever level the application's logging is at
        _run(case, "picows")
    chatter = [f"{r.name}: {r.getMessage()}" for r in caplog.records
               if r.levelno < logging.WARNING and not r.name.startswith("websockets.")]  # the test's server
    assert chatter == [], chatter[:4]
