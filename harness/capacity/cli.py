"""`chatload capacity SCENARIO`: the stepped capacity search from the command line."""

from __future__ import annotations

import argparse
import sys

from .plan import CapacityError, load_plan

DESCRIPTION = """\
Step the load of a capacity file (a scenario plus a [capacity] table; see docs/capacity.md) — room
size, message rate or rooms — holding each step until steady, until the objective breaks or the
schedule's ceiling. Finds the knee (the last step meeting the objective, and its margin), fits the
Universal Scalability Law to throughput against load, sizes the load generator for a target room
size and projects the monthly cost at the knee (prices are inputs, not quotes).

Writes reports/capacity/<scenario>/<timestamp>/capacity.json and capacity.html, and every step's own
report under steps/. Progress goes to stderr. Exit code 0: a knee was found (or the ceiling met the
objective), 1: even the first step broke the objective, 2: the search failed or was interrupted
(Ctrl-C stops the step in progress, drains, and still writes what was measured, marked incomplete)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="capacity file, e.g. scenarios/capacity-room-size.toml")
    parser.add_argument("--processes", type=int, default=None,
                        help="Locust worker processes for every step (default: the scenario's, else one per core)")
    parser.add_argument("--report-dir", default="reports",
                        help="where reports go; the search writes to REPORT_DIR/capacity/<scenario>/<timestamp> "
                             "(default %(default)s)")
    parser.add_argument("--yes", action="store_true",
                        help="against a real room, do not ask before sending (IVS bills messages sent and delivered)")
    parser.add_argument("--quiet", action="store_true", help="no per-second progress within a step")
    parser.add_argument("--target-room-size", type=int, default=None,
                        help="size the load generator for rooms of this many members (default: [capacity.sizing], "
                             "else the schedule's largest room)")
    parser.add_argument("--cores-per-machine", type=int, default=None,
                        help="cores of a load-generator machine (default: [capacity.sizing], else this machine's)")
    parser.add_argument("--price-sent", type=float, default=None, metavar="PER_MILLION",
                        help="price per million messages sent (an input, overrides [capacity.prices])")
    parser.add_argument("--price-delivered", type=float, default=None, metavar="PER_MILLION",
                        help="price per million messages delivered (an input, overrides [capacity.prices])")


def run(args: argparse.Namespace) -> int:
    from .search import EXIT_ERROR, CapacitySearch

    try:
        plan = load_plan(args.scenario)
        _apply_overrides(plan, args)
    except CapacityError as exc:
        print(f"chatload capacity: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return CapacitySearch(plan, args).execute()


def _apply_overrides(plan, args: argparse.Namespace) -> None:
    sizing, prices = plan.spec.sizing, plan.spec.prices
    for flag, value in (("--processes", args.processes), ("--target-room-size", args.target_room_size),
                        ("--cores-per-machine", args.cores_per_machine)):
        if value is not None and value < 1:
            raise CapacityError(f"{flag}: must be at least 1, not {value}")
    for flag, value in (("--price-sent", args.price_sent), ("--price-delivered", args.price_delivered)):
        if value is not None and not value >= 0:
            raise CapacityError(f"{flag}: must be 0 or more, not {value}")
    if args.target_room_size is not None:
        sizing.target_room_size = args.target_room_size
    if args.cores_per_machine is not None:
        sizing.cores_per_machine = args.cores_per_machine
    if args.price_sent is not None:
        prices.per_million_sent, prices.given = args.price_sent, True
    if args.price_delivered is not None:
        prices.per_million_delivered, prices.given = args.price_delivered, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatload capacity", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
