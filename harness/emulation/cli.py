"""`chatload emulator --service NAME`: run one service's emulator in the foreground until Ctrl-C.

What every emulator shares lives here: the addresses to bind, the one-line JSON ready message for
programs (`--json`, read by `EmulatorProcess`), the banner for people, clean shutdown on Ctrl-C or
SIGTERM. Each service's `harness/services/<name>/emulator/options.py` (found by that path: an
emulator can run before its service's adapter exists) adds its own options and builds its emulator:

    TITLE                          the service's name for people ("Amazon IVS Chat")
    add_arguments(parser)          the service's own options
    build(args) -> emulator        raises EmulatorOptionError (a clear message, exit 2)
    banner(emulator) -> [lines]    what a person needs to point a client at it
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import pkgutil
import signal
import sys

import orjson

from .. import services
from ..services import registry
from .option_error import EmulatorOptionError

DESCRIPTION = """\
Run an emulator of a chat service on this machine: its data plane (what the vendor's SDKs and
chatload's users connect to) and its control plane, plus loopback-only fault injection under
/_emulator/ and Prometheus metrics at /metrics on the control port. `--service NAME --help` lists a
service's own options."""


def emulated_services() -> list[str]:
    """Services with an emulator package, the default first."""
    found = [m.name for m in pkgutil.iter_modules(services.__path__)
             if m.ispkg and importlib.util.find_spec(f"harness.services.{m.name}.emulator.options") is not None]
    return sorted(found, key=lambda name: (name != registry.DEFAULT, name))


def _emulator_options(service: str):
    return importlib.import_module(f"harness.services.{service}.emulator.options")


def add_arguments(parser: argparse.ArgumentParser, service: str | None = None) -> None:
    with_emulators = emulated_services()
    # The one default service is the command line's, for backward compatibility: the README documents
    # `chatload emulator` without --service (the registry's default, IVS Chat). Code that starts an
    # emulator names its service (`EmulatorProcess(service=…)`).
    parser.add_argument("--service", choices=with_emulators, default=registry.DEFAULT,
                        help=f"which service to emulate (default %(default)s; one of {', '.join(with_emulators)})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind both planes to (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="data-plane port; 0 picks a free one (default)")
    parser.add_argument("--control-port", type=int, default=0,
                        help="control-plane/admin HTTP port; 0 picks a free one (default)")
    parser.add_argument("--tls", action="store_true",
                        help="serve wss:// and https:// with a CA and a server certificate made for this run "
                             "(the CA file's path is printed: clients and boto3's verify= trust it)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line with the endpoints instead of the human banner (for programs)")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level for stderr (default %(default)s)")
    if service is not None:
        group = parser.add_argument_group(f"{service} emulator options")
        _emulator_options(service).add_arguments(group)


async def serve(args: argparse.Namespace) -> int:
    options = _emulator_options(args.service)
    try:
        emulator = options.build(args)
    except EmulatorOptionError as exc:
        print(f"chatload emulator: {exc}", file=sys.stderr)
        return 2
    certificates = None
    if getattr(args, "tls", False):
        from .tls import make_certificates
        from .two_ports import TwoPortEmulator

        if not isinstance(emulator, TwoPortEmulator):
            print(f"chatload emulator: the {options.TITLE} emulator does not serve TLS", file=sys.stderr)
            return 2
        certificates = make_certificates(hosts=(args.host, "localhost"))
        emulator.ssl_context = certificates.server_context()
    try:
        return await _serve_until_stopped(args, options, emulator, certificates)
    finally:
        if certificates is not None:
            certificates.remove()


async def _serve_until_stopped(args: argparse.Namespace, options, emulator, certificates) -> int:
    try:
        await emulator.start()
    except OSError as exc:
        print(f"chatload emulator: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = emulator.describe() | {"pid": os.getpid(), "service": args.service}
    if certificates is not None:
        info["ca_file"] = str(certificates.ca_file)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(info) + b"\n")
    else:
        print(f"chatload {options.TITLE} emulator (pid {info['pid']})")
        for line in options.banner(emulator):
            print(f"  {line}")
        if certificates is not None:
            print(f"  TLS CA file        : {certificates.ca_file}   (trust it: boto3 verify=, [target] ca_file)")
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


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The service's own options join the common ones once `--service` is known."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--service", default=registry.DEFAULT)
    known, _ = probe.parse_known_args(argv)
    service = known.service if known.service in emulated_services() else None
    parser = argparse.ArgumentParser(prog="chatload emulator", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, service)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(build_parser(argv).parse_args(argv))
