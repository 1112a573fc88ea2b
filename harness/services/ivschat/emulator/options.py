"""`chatload emulator --service ivschat`: the IVS Chat emulator's own options.

The messaging WebSocket (what the chat SDKs and chatload's users connect to) and a boto3-compatible
control plane (CreateRoom, CreateChatToken, …); point boto3 at it with endpoint_url=<control
endpoint> and any credentials.
"""

from __future__ import annotations

import argparse

from ....emulation.option_error import EmulatorOptionError
from .limits import ALGORITHMS
from .server import Emulator

TITLE = "Amazon IVS Chat"

def add_arguments(parser) -> None:
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


def build(args: argparse.Namespace) -> Emulator:
    limits = {}
    for item in args.throttle_limit:
        operation, _, tps = item.partition("=")
        try:
            limits[operation] = float(tps)
        except ValueError:
            raise EmulatorOptionError(f"--throttle-limit {item!r}: write OPERATION=TPS, e.g. CreateChatToken=20") \
                from None
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
            raise EmulatorOptionError(str(exc)) from None
    return emulator


def banner(emulator: Emulator) -> list[str]:
    lines = [f"messaging endpoint : {emulator.messaging_endpoint}",
             f"control endpoint   : {emulator.control_endpoint}   (boto3 endpoint_url, any credentials)",
             f"faults and metrics : {emulator.control_endpoint}/_emulator/…  {emulator.control_endpoint}/metrics"]
    lines += [f"room               : {room['arn']}  {room['name']}" for room in emulator.describe()["rooms"]]
    return lines
