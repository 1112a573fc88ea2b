"""`chatload bench`: run named benchmarks (or all), print their tables, write their JSON reports."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ..net.transport import DEFAULT_TRANSPORT, TRANSPORTS
from .common import BenchError, BenchOptions, Progress, report_path, utc_stamp, write_json_atomically
from .ivschat import asrun, connect, emulator_fanout, fidelity, hubstall, memory, receive, scaleout

# name → module with NAME, SUMMARY and run(options, progress); each gets the shared options.
BENCHMARKS = {module.NAME: module for module in (emulator_fanout, receive, memory, fidelity, hubstall, scaleout,
                                                 connect, asrun)}

# `--quick` for benchmarks that do not read options.extra["quick"] themselves: their small settings.
QUICK_DEFAULTS = {emulator_fanout.NAME: {"sizes": [50], "seconds": 1.0, "warmup": 0.5}}

DESCRIPTION = """\
Measure speed against a baseline measured in the same run, on this machine, so the figures
compare like with like. Each benchmark starts its servers and load clients as child processes,
bounds every load in count and time, prints one table and writes a JSON report.

Benchmarks (each one runs on an IVS Chat emulator room: its baselines speak IVS Chat; see
harness/bench/ivschat/):
""" + "\n".join(f"  {name:<10} {module.SUMMARY}" for name, module in BENCHMARKS.items())

EPILOG = """\
examples:
  chatload bench                                   run every benchmark with its defaults (~15 min on 2 cores)
  chatload bench --quick                           every benchmark at small sizes, one repeat (~1 min): CI smoke
  chatload bench receive memory fidelity hubstall scaleout   chatload's own costs only
  chatload bench emulator --rooms-sizes 1000 --repeat 5
  chatload bench receive --rooms-sizes 2000 --seconds 2 --repeat 1 --json /tmp/bench.json
  chatload bench connect --tls --connections 1000  a TLS connect ramp: the loop's longest stall, CPU ratio
  chatload bench receive memory --tls              the receive path and idle memory over wss://

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
                        help="connections to measure, comma-separated; per benchmark: emulator and receive: "
                             "receivers in the room (1000,5000); memory: idle connections per client (10000); "
                             "fidelity: low-load receivers per client (100, first size only); hubstall: receivers "
                             "(200); scaleout: receivers split over the processes (2000); asrun: connections per "
                             "client (1000 at 20 msg/s and 4000 at 1 msg/s; --rate sets the rate)")
    parser.add_argument("--connections", dest="sizes", type=_sizes, metavar="N,N…",
                        help="the same as --rooms-sizes (for connect: connections per ramp, default 1000)")
    parser.add_argument("--tls", action="store_true",
                        help="connect, receive and memory: the emulator serves wss:// with a CA made for the run; "
                             "chatload and the bare clients trust it through one context each")
    parser.add_argument("--seconds", type=_positive(float), metavar="S",
                        help="measured window per run (default per benchmark: emulator "
                             f"{emulator_fanout.DEFAULT_SECONDS:g}, receive 4, fidelity 15 at low load and 4 at high "
                             "load, hubstall 8, scaleout 3, asrun 6 or until 100,000 deliveries)")
    parser.add_argument("--warmup", type=float, metavar="S",
                        help="load before the window starts (default per benchmark: emulator "
                             f"{emulator_fanout.DEFAULT_WARMUP:g}, receive, hubstall and scaleout 1)")
    parser.add_argument("--repeat", type=_positive(int), metavar="K",
                        help="runs per figure; the table shows median [min–max] (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="every benchmark at small sizes, short windows, one repeat (~1 min in all): a smoke "
                             "test for CI; figures are indicative only")
    parser.add_argument("--rate", type=_positive(float), metavar="MSG/S",
                        help=f"messages per second sent into the room (default and maximum "
                             f"{emulator_fanout.MAX_ROOM_RATE}, the emulator's room limit; fidelity uses its own "
                             "1 msg/s and 100 msg/s)")
    parser.add_argument("--connect-concurrency", type=_positive(int), default=200, metavar="C",
                        help="handshakes in flight while opening receivers (default %(default)s)")
    parser.add_argument("--drain-timeout", type=_positive(float), default=60.0, metavar="S",
                        help="longest wait after sending for the server to deliver what it owes (default %(default)s)")
    parser.add_argument("--pin", action="store_true",
                        help="emulator benchmark: pin the server to a core of its own and the load clients to the others; off by "
                             "default: on 2 cores it pushed loopback softirq work to ksoftirqd and starved the clients")
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), metavar="NAME",
                        help=f"the transport chatload's receivers use ({', '.join(sorted(TRANSPORTS))}; default: "
                             f"chatload's own default, {DEFAULT_TRANSPORT})")
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
    quick = bool(getattr(args, "quick", False))
    repeat = args.repeat or (1 if quick else 3)
    options = BenchOptions(sizes=args.sizes, seconds=args.seconds, warmup=args.warmup, repeat=repeat,
                           rate=args.rate, connect_concurrency=args.connect_concurrency,
                           drain_timeout=args.drain_timeout, json_path=args.json_path, pin=args.pin,
                           extra={"quick": quick, "transport": getattr(args, "transport", None),
                                  "tls": bool(getattr(args, "tls", False))})
    progress = Progress()
    stamp = utc_stamp()
    status = 0
    for name in names:
        own = options
        if quick and name in QUICK_DEFAULTS:  # explicit options still win
            own = dataclasses.replace(options, **{key: value for key, value in QUICK_DEFAULTS[name].items()
                                                  if getattr(options, key) is None})
        try:
            result = BENCHMARKS[name].run(own, progress)
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
