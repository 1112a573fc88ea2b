"""The baseline for the fan-out benchmark: a bare websockets broadcast server on uvloop.

It accepts any connection and, for each text message received, calls
`websockets.asyncio.server.broadcast(server.connections, message)` — the textbook websockets
chat server, with no parsing, validation or rate limiting. Compression is off (the benchmark
client offers none anyway) and every other setting is websockets' default, including the 20 s
pings the emulator also sends.

Run as a child process: `python -m harness.bench.bare_server --json` prints one JSON line
(`{"endpoint", "host", "port", "pid"}`) once it listens, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


async def serve_until_stopped(host: str, port: int, as_json: bool) -> int:
    server = None

    async def handler(connection: ServerConnection) -> None:
        try:
            async for message in connection:
                if isinstance(message, str):
                    broadcast(server.connections, message)
        except ConnectionClosed:
            pass

    server = await serve(handler, host, port, compression=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound_port = server.sockets[0].getsockname()[1]
    info = {"endpoint": f"ws://{host}:{bound_port}", "host": host, "port": bound_port, "pid": os.getpid()}
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(info) + b"\n")
    else:
        print(f"bare websockets broadcast server on {info['endpoint']} (pid {info['pid']}); Ctrl-C to stop")
    sys.stdout.flush()
    await stop.wait()
    server.close()
    await server.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m harness.bench.bare_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--json", action="store_true", help="print one JSON line with the endpoint when ready")
    args = parser.parse_args(argv)
    return uvloop.run(serve_until_stopped(args.host, args.port, args.json))


if __name__ == "__main__":
    sys.exit(main())
