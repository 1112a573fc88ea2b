"""`chatload emulator`: run the IVS Chat emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import orjson

from .limits import ALGORITHMS
from .server import Emulator

DESCRIPTION = """\
Run an emulator of Amazon IVS Chat on this machine: the messaging WebSocket (what the chat SDKs and
chatload's users connect to) and a boto3-compatible control plane (CreateRoom, CreateChatToken, …),
plus loopback-only fault injection under /_emulator/ and Prometheus metrics at /metrics.
Point boto3 at it with endpoint_url=<control endpoint> and any credentials."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind both planes to (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="messaging WebSocket port; 0 picks a free one (default)")
    parser.add_argument("--control-port", type=int, default=0,
                        help="control-plane/admin HTTP port; 0 picks a free one (default)")
    parser.add_argument("--rooms-file", metavar="FILE",
                        help="TOML or JSON file of rooms to create at start (see the README)")
    parser.add_argument("--region", default="us-east-1", help="region in room ARNs (default %(default)s)")
    parser.add_argument("--rate-limit", choices=sorted(ALGORITHMS), default="fixed-window",
                        help="per-room message rate algorithm (default %(default)s; 'off' lets everything through)")
    parser.add_argument("--throttle", action="store_true",
                        help="enforce the service's control-plane TPS quotas (ThrottlingException 429)")
    parser.add_argument("--throttle-limit", action="append", default=[], metavar="OPERATION=TPS",
                        help="throttle with this quota for one operation, e.g. CreateChatToken=20 (repeatable; "
                             "implies --throttle)")
    parser.add_argument("--max-connections", type=int, default=50_000,
                        help="concurrent connection quota; handshakes beyond it get HTTP 429 (default %(default)s)")
    parser.add_argument("--token-minutes", type=float, default=60.0,
                        help="chat token lifetime in minutes (default %(default)s)")
    parser.add_argument("--delivery-cost-us", type=float, default=0.0,
                        help="artificial CPU cost per frame fanned out, in µs (capacity tests; default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line with the endpoints instead of the human banner (for programs)")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level for stderr (default %(default)s)")


async def serve(args: argparse.Namespace) -> int:
    limits = {}
    for item in args.throttle_limit:
        operation, _, tps = item.partition("=")
        try:
            limits[operation] = float(tps)
        except ValueError:
            print(f"chatload emulator: --throttle-limit {item!r}: write OPERATION=TPS, e.g. CreateChatToken=20",
                  file=sys.stderr)
            return 2
    emulator = Emulator(
        host=args.host, port=args.port, control_port=args.control_port, region=args.region,
        rate_algorithm=args.rate_limit, throttle=limits or args.throttle, max_connections=args.max_connections,
        token_minutes=args.token_minutes,
    )
    emulator.dataplane.delivery_cost_s = args.delivery_cost_us / 1e6
    if args.rooms_file:
        from .rooms_file import RoomsFileError, load_rooms_file

        try:
            load_rooms_file(args.rooms_file, emulator)
        except RoomsFileError as exc:
            print(f"chatload emulator: {exc}", file=sys.stderr)
            return 2
    try:
        await emulator.start()
    except OSError as exc:
        print(f"chatload emulator: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = emulator.describe() | {"pid": os.getpid()}
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(info) + b"\n")
    else:
        print(f"chatload IVS Chat emulator (pid {info['pid']})")
        print(f"  messaging endpoint : {emulator.messaging_endpoint}")
        print(f"  control endpoint   : {emulator.control_endpoint}   (boto3 endpoint_url, any credentials)")
        print(f"  faults and metrics : {emulator.control_endpoint}/_emulator/…  {emulator.control_endpoint}/metrics")
        for room in info["rooms"]:
            print(f"  room               : {room['arn']}  {room['name']}")
        print("Ctrl-C to stop.")
    sys.stdout.flush()
    await stop.wait()
    await emulator.stop()
    if not args.json:
        print("emulator stopped.")
    return 0


def run(args: argparse.Namespace) -> int:
    import uvloop

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return uvloop.run(serve(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatload emulator", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
