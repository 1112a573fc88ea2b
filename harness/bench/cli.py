"""`chatload bench`: run named benchmarks (or all), print their tables, write their JSON reports."""

from __future__ import annotations

import argparse
import sys

from . import emulator_fanout
from .common import BenchError, BenchOptions, Progress, report_path, utc_stamp, write_json_atomically

# name → module with NAME, SUMMARY and run(options, progress). Later benchmarks (receive path,
# memory, fidelity, hub stall, scale-out) register here and get the shared options for free.
BENCHMARKS = {module.NAME: module for module in (emulator_fanout,)}

DESCRIPTION = """\
Measure speed against a baseline measured in the same run, on this machine, so the figures
compare like with like. Each benchmark starts its servers and load clients as child processes,
bounds every load in count and time, prints one table and writes a JSON report.

Benchmarks:
""" + "\n".join(f"  {name:<10} {module.SUMMARY}" for name, module in BENCHMARKS.items())

EPILOG = """\
examples:
  chatload bench                                   run every benchmark with its defaults
  chatload bench emulator --rooms-sizes 1000 --repeat 5
  chatload bench emulator --seconds 2 --repeat 1 --json /tmp/bench.json

exit status: 0 every verdict PASS, 1 some verdict SHORT, 2 bad arguments, 3 a benchmark could not
run, 130 interrupted (Ctrl-C stops every child process cleanly)."""


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or any(size < 1 or size > 15_000 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be between 1 and 15000 connections")
    return sizes


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("benchmarks", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--rooms-sizes", "--room-sizes", dest="sizes", type=_sizes, metavar="N,N…",
                        help="connections per room to measure, comma-separated "
                             f"(emulator default: {','.join(map(str, emulator_fanout.DEFAULT_SIZES))})")
    parser.add_argument("--seconds", type=_positive(float), metavar="S",
                        help=f"measured window per run (default {emulator_fanout.DEFAULT_SECONDS:g})")
    parser.add_argument("--warmup", type=float, metavar="S",
                        help=f"load before the window starts (default {emulator_fanout.DEFAULT_WARMUP:g})")
    parser.add_argument("--repeat", type=_positive(int), default=3, metavar="K",
                        help="runs per figure; the table shows median [min–max] (default %(default)s)")
    parser.add_argument("--rate", type=_positive(float), metavar="MSG/S",
                        help=f"messages per second sent into the room (default and maximum "
                             f"{emulator_fanout.MAX_ROOM_RATE}, the emulator's room limit)")
    parser.add_argument("--connect-concurrency", type=_positive(int), default=200, metavar="C",
                        help="handshakes in flight while opening receivers (default %(default)s)")
    parser.add_argument("--drain-timeout", type=_positive(float), default=60.0, metavar="S",
                        help="longest wait after sending for the server to deliver what it owes (default %(default)s)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the server to a core of its own and the load clients to the others; off by "
                             "default: on 2 cores it pushed loopback softirq work to ksoftirqd and starved the clients")
    parser.add_argument("--json", dest="json_path", metavar="PATH",
                        help="report file, or directory for <timestamp>-<name>.json "
                             "(default reports/bench/<timestamp>-<name>.json)")


def run(args: argparse.Namespace) -> int:
    names = list(dict.fromkeys(args.benchmarks)) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"chatload bench: unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    options = BenchOptions(sizes=args.sizes, seconds=args.seconds, warmup=args.warmup, repeat=args.repeat,
                           rate=args.rate, connect_concurrency=args.connect_concurrency,
                           drain_timeout=args.drain_timeout, json_path=args.json_path, pin=args.pin)
    progress = Progress()
    stamp = utc_stamp()
    status = 0
    for name in names:
        try:
            result = BENCHMARKS[name].run(options, progress)
        except KeyboardInterrupt:
            progress.note(f"chatload bench {name}: interrupted; child processes stopped")
            return 130
        except BenchError as exc:
            progress.note(f"chatload bench {name}: {exc}")
            status = max(status, 3)
            continue
        progress.done()
        path = report_path(options.json_path, name, stamp, several=len(names) > 1)
        write_json_atomically(path, result.document)
        print(result.table)
        print(f"report: {path}")
        sys.stdout.flush()
        if result.passed is False:
            status = max(status, 1)
    return status
