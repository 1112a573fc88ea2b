"""`chatload`: the command line. Each subcommand lives with its subject; this file only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

# name, module, (add_arguments, run) in that module, one-line help, description attribute
SUBCOMMANDS = [
    ("run", "harness.run.runner", ("add_arguments", "run"), "run a scenario headless and write its report",
     "DESCRIPTION"),
    ("report", "harness.report.cli", ("add_report_arguments", "run_report"), "re-render a report's HTML",
     "REPORT_DESCRIPTION"),
    ("compare", "harness.report.cli", ("add_compare_arguments", "run_compare"),
     "render two reports side by side with deltas", "COMPARE_DESCRIPTION"),
    ("gate", "harness.gate.cli", ("add_arguments", "run"), "CI gate: thresholds and baseline regressions",
     "DESCRIPTION"),
    ("capacity", "harness.capacity.cli", ("add_arguments", "run"),
     "step the load to the knee; USL fit, load-generator sizing and cost", "DESCRIPTION"),
    ("worker", "harness.run.worker", ("add_arguments", "run"),
     "a Locust worker for `chatload run --workers N` on another machine", "DESCRIPTION"),
    ("emulator", "harness.emulation.cli", ("add_arguments", "run"), "run a service's emulator until Ctrl-C",
     "DESCRIPTION"),
    ("trace", "harness.trace.cli", ("add_arguments", "run"),
     "traces of real traffic: import service logs, summarise a trace's shape, scale it", "DESCRIPTION"),
    ("bench", "harness.bench.cli", ("add_arguments", "run"),
     "measure chatload's and the emulator's speed against baselines", "DESCRIPTION"),
]
# Passed through to a program with its own command line (listed in `chatload --help`).
PASSTHROUGH = [("locust", "Locust itself, with the --chat-* options in its --help: chatload locust -f "
                          "locustfiles/ivschat.py --help")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatload",
        description="Load testing and benchmarking for real-time chat services: Amazon IVS Chat, and any "
                    "service in harness/services/.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, (add_name, run_name), help_text, description in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=getattr(module, description, help_text),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        getattr(module, add_name)(sub)
        sub.set_defaults(func=getattr(module, run_name))
    for name, help_text in PASSTHROUGH:
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["locust"]:
        # Locust itself, with the --chat-* options in its --help (harness/locust/cli.py).
        from .locust.cli import main as locust_main

        return locust_main(argv[1:])
    if argv[:1] == ["emulator"]:
        # Its options depend on --service, so it parses its own command line.
        from .emulation.cli import main as emulator_main

        return emulator_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)
