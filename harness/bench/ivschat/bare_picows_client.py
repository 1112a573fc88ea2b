"""The bare picows baseline: what a minimal picows chat client does, nothing more.

One `picows.ws_connect` per connection with a listener whose `on_ws_frame` does

    orjson.loads(frame.get_payload_as_memoryview())

(picows' defaults otherwise: its 16 KiB initial read buffer, automatic pongs; the emulator's frames
are small and unfragmented, so no reassembly). It runs on uvloop like chatload's loop thread, so the
comparison with chatload on its picows transport is about chatload's own per-frame work. With
`stamp` it also times each message the way a careful client would: `time.time_ns()` as `on_ws_frame`
is entered, before parsing, minus the intended send time the sender put in `Attributes["cl.t"]`.

Same stdin/stdout protocol as `bare_websockets_client` (see `rig.ClientChild`); only the connections differ.
"""

from __future__ import annotations

import sys
import time

import orjson
from picows import WSListener, WSMsgType, ws_connect

from ..child_protocol import run_on_uvloop
from ..counting_connection import abort_with_reset
from .bare_websockets_client import BareReceivers, main_async

TEXT, CLOSE = WSMsgType.TEXT, WSMsgType.CLOSE


class BareListener(WSListener):
    def __init__(self, receivers: PicowsReceivers) -> None:
        self.receivers = receivers

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type is TEXT:
            receivers = self.receivers
            if receivers.stamp:
                arrival_us = time.time_ns() // 1000
                receivers.timed(orjson.loads(frame.get_payload_as_memoryview()), arrival_us)
            else:
                orjson.loads(frame.get_payload_as_memoryview())
                receivers.frames += 1
        elif frame.msg_type is CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.receivers.connection_lost()


class PicowsReceivers(BareReceivers):
    def __init__(self, config: dict) -> None:
        super().__init__(config)
        # `read_buffer`: picows' initial read buffer, to compare with chatload's at the same size
        # (`chatload bench asrun`); absent, picows' default.
        self.buffer = {"read_buffer_init_size": config["read_buffer"]} if config.get("read_buffer") else {}

    async def open(self, token: str):
        transport, _ = await ws_connect(lambda: BareListener(self), self.endpoint,
                                        extra_headers=[("Sec-WebSocket-Protocol", token)],
                                        websocket_handshake_timeout=self.connect_timeout,
                                        ssl_context=self.ssl_context, **self.buffer)
        return transport

    def abort(self, transport) -> None:
        abort_with_reset(transport.underlying_transport)


def main() -> int:
    return run_on_uvloop(lambda: main_async(PicowsReceivers))


if __name__ == "__main__":
    sys.exit(main())
