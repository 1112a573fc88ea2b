"""`chatload emulator --service hotsock`: the Hotsock emulator's own options.

Keys are named by source, never given on the command line: SOURCE is a file path or `env:NAME`
(an environment variable). Up to two signing-key slots, as an installation has; a slot given as
`KID=SOURCE` accepts only tokens whose `kid` header is KID. With no key at all the emulator makes an
HS256 secret and writes it to a 0600 file (`hs256_secret_file` in `--json`); with no API key it
does the same for the publish key (`api_key_file`). Keys are never printed.
"""

from __future__ import annotations

import argparse

from ....emulation.cli import EmulatorOptionError
from ...tokens import KeySourceError, read_secret
from ..tokens import split_kid
from .auth import MAX_SLOTS, public_key_slot, secret_slot
from .dataplane import PRESENCE_CAPACITY_BYTES
from .server import API_KEY_CHARS, Emulator, valid_api_key

TITLE = "Hotsock"


def add_arguments(parser) -> None:
    parser.add_argument("--signing-key", action="append", default=[], metavar="[KID=]SOURCE",
                        help="a PEM public key (or private key: its public half is used) for RS*/PS*/ES*/EdDSA "
                             "tokens; SOURCE is a file or env:NAME (repeatable, two slots in all)")
    parser.add_argument("--hs256-secret", action="append", default=[], metavar="[KID=]SOURCE",
                        help="an HMAC secret for HS256/384/512 tokens; SOURCE is a file or env:NAME "
                             "(default: a generated one, its file path in the --json line)")
    parser.add_argument("--audience", metavar="AUD", help="require this `aud` claim (default: not checked)")
    parser.add_argument("--issuer", metavar="ISS", help="require this `iss` claim (default: not checked)")
    parser.add_argument("--api-key", action="append", default=[], metavar="SOURCE",
                        help=f"a {API_KEY_CHARS}-character key for POST /publish; SOURCE is a file or env:NAME "
                             "(up to two; default: a generated one, its file path in the --json line)")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="FACTOR",
                        help="multiply the 2 h maximum, 10 min idle, 9.5 min keepAlive, heartbeatTimeout and 5 min "
                             "deduplication by FACTOR (0.001: 2 h take 7.2 s; default 1)")
    parser.add_argument("--presence-capacity-bytes", type=int, default=PRESENCE_CAPACITY_BYTES, metavar="N",
                        help="member payload bytes a presence channel holds (default %(default)s)")
    parser.add_argument("--region", default="us-east-1", help="the installation's region (default %(default)s)")
    parser.add_argument("--delivery-cost-us", type=float, default=0.0,
                        help="artificial CPU cost per frame fanned out, in µs (capacity tests; default 0)")


def _read(option: str, value: str) -> tuple[str | None, bytes]:
    kid, source = split_kid(value)
    try:
        return kid, read_secret(source)
    except KeySourceError as exc:
        raise EmulatorOptionError(f"{option} {source}: {exc}") from None


def build(args: argparse.Namespace) -> Emulator:
    slots = []
    for value in args.hs256_secret:
        kid, secret = _read("--hs256-secret", value)
        slots.append(secret_slot(secret, kid))
    for value in args.signing_key:
        kid, pem = _read("--signing-key", value)
        try:
            slots.append(public_key_slot(pem, kid))
        except KeySourceError as exc:
            raise EmulatorOptionError(f"--signing-key {split_kid(value)[1]}: {exc}") from None
    if len(slots) > MAX_SLOTS:
        raise EmulatorOptionError(f"an installation has {MAX_SLOTS} key slots; {len(slots)} keys were given")
    kids = [slot.kid for slot in slots if slot.kid is not None]
    if len(kids) != len(set(kids)):
        raise EmulatorOptionError("two key slots have the same KID")
    if len(args.api_key) > 2:
        raise EmulatorOptionError("an installation has two API keys at most")
    api_keys = [_read("--api-key", value)[1] for value in args.api_key]
    for value, key in zip(args.api_key, api_keys, strict=True):
        if not valid_api_key(key):
            raise EmulatorOptionError(f"--api-key {value}: an API key is {API_KEY_CHARS} printable ASCII characters")
    if not args.time_scale > 0:
        raise EmulatorOptionError("--time-scale must be a positive number")
    if args.presence_capacity_bytes < 1:
        raise EmulatorOptionError("--presence-capacity-bytes must be at least 1")
    emulator = Emulator(host=args.host, port=args.port, control_port=args.control_port, key_slots=slots,
                        api_keys=api_keys, audience=args.audience, issuer=args.issuer, time_scale=args.time_scale,
                        presence_capacity_bytes=args.presence_capacity_bytes, region=args.region)
    emulator.dataplane.delivery_cost_s = args.delivery_cost_us / 1e6
    return emulator


def banner(emulator: Emulator) -> list[str]:
    info = emulator.describe()
    lines = [f"WebSocket URL      : {info['websocket_url']}?token=<JWT>",
             f"publish URL        : {info['publish_url']}   (Authorization: Bearer <API key>)",
             f"HTTP API URL       : {info['http_api_url']}connection/listMessages",
             f"faults and metrics : {emulator.control_endpoint}/_emulator/…  {emulator.control_endpoint}/metrics"]
    for slot in info["key_slots"]:
        lines.append(f"key slot           : {slot['kind']}" + (f", kid {slot['kid']}" if slot["kid"] else ""))
    if "hs256_secret_file" in info:
        lines.append(f"HS256 secret file  : {info['hs256_secret_file']}   (generated; sign tokens with it)")
    if "api_key_file" in info:
        lines.append(f"API key file       : {info['api_key_file']}   (generated)")
    if info["time_scale"] != 1:
        lines.append(f"time scale         : {info['time_scale']:g} (2 h last {7200 * info['time_scale']:g} s)")
    return lines
