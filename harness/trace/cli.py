"""`chatload trace`: import service records as a trace, summarise a trace's shape, scale it."""

from __future__ import annotations

import argparse
import json
import sys

from .loading import TraceLoadError, import_trace
from .model import KINDS
from .reader import TraceError, read_trace, write_trace
from .shape import scale, summary, summary_text

DESCRIPTION = """\
Traces: real traffic as the load (docs/traces.md).

  chatload trace import --format ivschat-log LOGS... -o trace.jsonl   IVS Chat logging records (S3/Firehose
                                                                      JSON lines, CloudWatch Logs exports)
  chatload trace import --format hotsock-pages PAGES... -o trace.jsonl   Hotsock listMessages pages
  chatload trace summary trace.jsonl        rate over time, bursts, sender skew, sizes (--json for JSON)
  chatload trace scale trace.jsonl -o big.jsonl --repeat 3 --audience 2.5   the same shape, longer or larger

A trace holds times, rooms, hashed user ids, sizes and kinds — never message content. Exit 0 done,
2 bad input (the file and the reason are printed).
"""
FORMATS = ("ivschat-log", "hotsock-pages")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="trace_action", metavar="ACTION")
    imp = actions.add_parser("import", help="service records → a trace")
    imp.add_argument("inputs", nargs="+", metavar="FILE", help="record files (gzip is read too)")
    imp.add_argument("--format", required=True, choices=FORMATS)
    imp.add_argument("-o", "--output", required=True, help="the trace file to write")
    imp.add_argument("--room", help="IVS Chat: the room of every record (default: room_<id> in the file name "
                                    "or log stream)")
    imp.add_argument("--event", action="append", default=[], metavar="NAME=KIND",
                     help=f"IVS Chat: an application event name and the kind it is ({', '.join(KINDS[1:])}); "
                          "names with join/leave/left/kick/ban/presence are recognised anyway")
    imp.add_argument("--salt", help="key for hashing user ids (default: random, so ids cannot be linked back)")
    summ = actions.add_parser("summary", help="a trace's shape")
    summ.add_argument("trace", metavar="FILE")
    summ.add_argument("--format", default="chatload", choices=("chatload", *FORMATS),
                      help="summarise service records directly (imported in memory)")
    summ.add_argument("--bin", type=float, default=1.0, help="seconds per rate bin (default 1)")
    summ.add_argument("--json", action="store_true", help="print JSON")
    sc = actions.add_parser("scale", help="a longer or larger trace of the same shape")
    sc.add_argument("trace", metavar="FILE")
    sc.add_argument("-o", "--output", required=True)
    sc.add_argument("--repeat", type=int, default=1, help="play the trace this many times end to end")
    sc.add_argument("--audience", type=float, default=1.0, help="every user this many times over")
    sc.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    try:
        if args.trace_action == "import":
            return _import(args)
        if args.trace_action == "summary":
            return _summary(args)
        if args.trace_action == "scale":
            return _scale(args)
    except (TraceError, TraceLoadError) as exc:
        print(f"chatload trace: {exc}", file=sys.stderr)
        return 2
    print("chatload trace: say import, summary or scale (chatload trace --help)", file=sys.stderr)
    return 2


def _event_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        name, _, kind = item.rpartition("=")
        if not name or kind not in KINDS[1:]:
            raise TraceLoadError(f"--event {item!r}: write NAME=KIND with KIND one of {', '.join(KINDS[1:])}")
        mapping[name] = kind
    return mapping


def _import(args) -> int:
    trace = import_trace(args.inputs, args.format, salt=args.salt, room=args.room, events=_event_map(args.event))
    write_trace(args.output, trace.events, trace.header)
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(_kinds(trace).items()))
    print(f"{args.output}: {len(trace.events):,} events ({kinds}) over {trace.duration_s:g} s")
    for reason, n in sorted(trace.header.get("ignored", {}).items()):
        print(f"  ignored: {n:,} × {reason}")
    _skipped(trace)
    return 0


def _kinds(trace) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in trace.events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    return counts


def _skipped(trace) -> None:
    if trace.reordered:
        print(f"  {trace.reordered:,} events were out of time order: sorted")
    for problem in trace.skipped[:10]:
        print(f"  skipped {problem}", file=sys.stderr)
    if len(trace.skipped) > 10:
        print(f"  … and {len(trace.skipped) - 10} more skipped", file=sys.stderr)


def _load(path: str, fmt: str):
    return read_trace(path) if fmt == "chatload" else import_trace([path], fmt)


def _summary(args) -> int:
    if args.bin <= 0:
        raise TraceLoadError("--bin must be more than 0 seconds")
    trace = _load(args.trace, args.format)
    facts = summary(trace, bin_s=args.bin)
    print(json.dumps(facts, indent=1) if args.json else summary_text(facts))
    if not args.json:
        _skipped(trace)
    return 0


def _scale(args) -> int:
    if args.repeat < 1 or args.audience <= 0:
        raise TraceLoadError("--repeat must be at least 1 and --audience more than 0")
    trace = read_trace(args.trace)
    events = scale(trace, repeat=args.repeat, audience=args.audience, seed=args.seed)
    header = {"source": f"scaled from {args.trace}", "repeat": args.repeat, "audience": args.audience,
              "seed": args.seed}
    write_trace(args.output, events, header)
    messages = sum(e.kind == "message" for e in events)
    print(f"{args.output}: {len(events):,} events ({messages:,} messages) over {events[-1].t if events else 0:g} s")
    return 0
