"""`chatload emulator --service chime`: the Chime SDK meetings emulator's own options.

The meeting signaling WebSocket (what the Chime SDK and chatload's users connect to, at each
meeting's `MediaPlacement.SignalingUrl`) and a boto3-compatible `chime-sdk-meetings` control plane
(CreateMeeting, BatchCreateAttendee, …); point boto3 at it with endpoint_url=<control endpoint>.
"""

from __future__ import annotations

import argparse

from ....emulation.option_error import EmulatorOptionError
from ....emulation.throttle import Rate
from .limits import API_RATE, DATA_HARD, DATA_SOFT
from .server import ChimeEmulator
from .state import MAX_ACTIVE_MEETINGS

TITLE = "Amazon Chime SDK meetings"


def _rate(text: str) -> Rate:
    """RATE/BURST, e.g. 100/200."""
    rate, _, burst = text.partition("/")
    try:
        return Rate(float(rate), float(burst or rate))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write RATE/BURST with RATE > 0 and BURST >= 1, e.g. 100/200") \
            from None


def add_arguments(parser) -> None:
    parser.add_argument("--region", default="us-east-1", help="region in meeting ARNs (default %(default)s)")
    parser.add_argument("--throttle", action="store_true",
                        help=f"enforce the control-plane quota ({API_RATE.per_second:g}/s, burst {API_RATE.burst:g} "
                             "per operation): ThrottlingException 429 beyond it")
    parser.add_argument("--throttle-rate", type=_rate, metavar="RATE/BURST",
                        help="throttle the control plane at this rate instead (implies --throttle)")
    parser.add_argument("--data-soft-limit", type=_rate, default=DATA_SOFT, metavar="RATE/BURST",
                        help="per-attendee data messages beyond which they come back throttled (default "
                             f"{DATA_SOFT.per_second:g}/{DATA_SOFT.burst:g})")
    parser.add_argument("--data-hard-limit", type=_rate, default=DATA_HARD, metavar="RATE/BURST",
                        help="per-attendee data messages beyond which the connection is closed with 4429 (default "
                             f"{DATA_HARD.per_second:g}/{DATA_HARD.burst:g})")
    parser.add_argument("--replay-messages", type=int, default=1024,
                        help="messages with a lifetime kept per meeting for late joiners (default %(default)s)")
    parser.add_argument("--replay-seconds", type=float, default=300.0,
                        help="longest a message is kept for replay, whatever its lifetime (default %(default)s = "
                             "the service's 5 minutes; lower it to time-scale tests)")
    parser.add_argument("--max-meetings", type=int, default=MAX_ACTIVE_MEETINGS,
                        help="active meetings before CreateMeeting answers LimitExceeded (default %(default)s)")
    parser.add_argument("--delivery-cost-us", type=float, default=0.0,
                        help="artificial CPU cost per frame fanned out, in µs (capacity tests; default 0)")


def build(args: argparse.Namespace) -> ChimeEmulator:
    if args.replay_messages < 0 or args.replay_seconds < 0:
        raise EmulatorOptionError("--replay-messages and --replay-seconds must not be negative")
    if args.max_meetings < 1:
        raise EmulatorOptionError("--max-meetings must be at least 1")
    if args.delivery_cost_us < 0:
        raise EmulatorOptionError("--delivery-cost-us must not be negative")
    emulator = ChimeEmulator(
        host=args.host, port=args.port, control_port=args.control_port, region=args.region,
        throttle=args.throttle_rate or args.throttle, soft_limit=args.data_soft_limit,
        hard_limit=args.data_hard_limit, replay_messages=args.replay_messages, replay_seconds=args.replay_seconds,
        max_meetings=args.max_meetings,
    )
    emulator.signaling.delivery_cost_s = args.delivery_cost_us / 1e6
    return emulator


def banner(emulator: ChimeEmulator) -> list[str]:
    return [f"signaling endpoint : {emulator.signaling.signaling_base}/<MeetingId>   (the meetings' SignalingUrl)",
            f"control endpoint   : {emulator.control_endpoint}   (boto3 chime-sdk-meetings endpoint_url, any "
            "credentials)",
            f"faults and metrics : {emulator.control_endpoint}/_emulator/…  {emulator.control_endpoint}/metrics"]
