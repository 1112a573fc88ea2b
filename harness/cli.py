"""`chatload`: the command line. Each subcommand lives with its subject; this file only dispatches."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatload",
        description="Load testing and benchmarking for WebSocket chat services (Amazon IVS Chat first).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from .emulator import cli as emulator_cli

    emulator = commands.add_parser("emulator", help="run the IVS Chat emulator until Ctrl-C",
                                   description=emulator_cli.DESCRIPTION)
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(func=emulator_cli.run)

    from .bench import cli as bench_cli

    bench = commands.add_parser("bench", help="measure chatload's and the emulator's speed against baselines",
                                description=bench_cli.DESCRIPTION)
    bench_cli.add_arguments(bench)
    bench.set_defaults(func=bench_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)
