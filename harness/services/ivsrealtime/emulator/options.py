"""`chatload emulator --service ivsrealtime`: the IVS Real-Time emulator's own options.

The events WebSocket (what the web broadcast SDK and chatload's users join) and a boto3-compatible
`ivs-realtime` control plane; point boto3 at it with endpoint_url=<control endpoint> and any
credentials. Media (WHIP/WebRTC) is not emulated: the WHIP endpoint answers 501.
"""

from __future__ import annotations

import argparse

from ....emulation.option_error import EmulatorOptionError
from .dataplane import ROSTER_MODES, TOKEN_REUSE_MODES
from .server import Emulator
from .state import MAX_PUBLISHERS, MAX_STAGES, MAX_SUBSCRIBERS

TITLE = "Amazon IVS Real-Time"


def add_arguments(parser) -> None:
    parser.add_argument("--region", default="us-east-1", help="region in stage ARNs (default %(default)s)")
    parser.add_argument("--stage", action="append", default=[], metavar="NAME",
                        help="create a stage with this name at start (repeatable)")
    parser.add_argument("--public-key", action="append", default=[], metavar="FILE",
                        help="PEM file of an ECDSA P-384 public key whose self-signed participant tokens are "
                             "accepted, as after ImportPublicKey (repeatable)")
    parser.add_argument("--throttle", action="store_true",
                        help="enforce the control-plane TPS quotas (429 ThrottlingException): "
                             "CreateParticipantToken 50, other stage operations 5, public keys 3")
    parser.add_argument("--throttle-limit", action="append", default=[], metavar="OPERATION=TPS",
                        help="throttle with this quota for one operation, e.g. CreateParticipantToken=10 "
                             "(repeatable; implies --throttle)")
    parser.add_argument("--max-stages", type=int, default=MAX_STAGES,
                        help="stages per region; CreateStage beyond it answers 402 (default %(default)s)")
    parser.add_argument("--max-publishers", type=int, default=MAX_PUBLISHERS,
                        help="publishers per stage (the service's is fixed at %(default)s)")
    parser.add_argument("--max-subscribers", type=int, default=MAX_SUBSCRIBERS,
                        help="subscribers per stage (default %(default)s, adjustable in the service)")
    parser.add_argument("--token-reuse", choices=TOKEN_REUSE_MODES, default="replace",
                        help="a token joining while its participant is connected: replace the earlier connection "
                             "(DISCONNECT TOKEN_REUSED, the SDK's documented behaviour; default), refuse the new "
                             "one, or refuse any second use (single-use)")
    parser.add_argument("--roster", choices=ROSTER_MODES, default="all",
                        help="who STAGE_STATE lists: every joined participant (default) or publishers only")
    parser.add_argument("--minute-seconds", type=float, default=60.0,
                        help="real seconds per service minute, for token durations (tests use e.g. 0.5; "
                             "default %(default)s)")
    parser.add_argument("--delivery-cost-us", type=float, default=0.0,
                        help="artificial CPU cost per frame fanned out, in µs (capacity tests; default 0)")


def throttle_limits(items: list[str]) -> dict[str, float]:
    limits = {}
    for item in items:
        operation, _, tps = item.partition("=")
        try:
            limits[operation] = float(tps)
        except ValueError:
            raise EmulatorOptionError(f"--throttle-limit {item!r}: write OPERATION=TPS") from None
        if limits[operation] <= 0:
            raise EmulatorOptionError(f"--throttle-limit {item!r}: the quota must be positive")
    return limits


def build(args: argparse.Namespace) -> Emulator:
    for name in ("max_stages", "max_publishers", "max_subscribers"):
        if getattr(args, name) < 0:
            raise EmulatorOptionError(f"--{name.replace('_', '-')} must not be negative")
    if args.minute_seconds <= 0:
        raise EmulatorOptionError("--minute-seconds must be positive")
    limits = throttle_limits(args.throttle_limit)
    emulator = Emulator(
        host=args.host, port=args.port, control_port=args.control_port, region=args.region,
        minute_s=args.minute_seconds, max_stages=args.max_stages, max_publishers=args.max_publishers,
        max_subscribers=args.max_subscribers, token_reuse=args.token_reuse, roster=args.roster,
        throttle=limits or args.throttle,
    )
    emulator.dataplane.delivery_cost_s = args.delivery_cost_us / 1e6
    for path in args.public_key:
        try:
            with open(path, encoding="utf-8") as handle:
                emulator.state.import_public_key(handle.read(), name="from-command-line")
        except (OSError, ValueError) as exc:
            raise EmulatorOptionError(f"--public-key {path}: {exc}") from None
    for name in args.stage:
        emulator.create_stage(name)
    return emulator


def banner(emulator: Emulator) -> list[str]:
    lines = [f"events endpoint    : {emulator.messaging_endpoint}",
             f"control endpoint   : {emulator.control_endpoint}   (boto3 ivs-realtime endpoint_url, any credentials)",
             f"WHIP endpoint      : {emulator.endpoints()['whip']}   (501: media is not emulated)",
             f"faults and metrics : {emulator.control_endpoint}/_emulator/…  {emulator.control_endpoint}/metrics"]
    lines += [f"stage              : {stage['arn']}  {stage['name']}" for stage in emulator.describe()["stages"]]
    return lines
