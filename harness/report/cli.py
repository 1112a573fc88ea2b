"""`chatload report REPORT.json` (render the HTML again) and `chatload compare A.json B.json`.

Both read reports (`chatload.report/1`) and Locust runs' results (`chatload.results/1`, shown as a
report with no checks). Exit status: 0 written, 2 an input cannot be read (the message names the file
and the reason), 1 the output cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .document import ReportInputError, as_report, load_document, shape_differences, write_atomic

REPORT_DESCRIPTION = """\
Render a report's HTML page again from its JSON (after an upgrade, or to share one page).
Reads report.json (chatload.report/1) or a Locust run's results.json (chatload.results/1,
rendered as a report with no checks)."""

REPORT_EPILOG = """\
examples:
  chatload report reports/default/20261122T055539Z/report.json
  chatload report reports/locust/20261122T055539Z/results.json -o /tmp/run.html

exit status: 0 written, 1 the HTML could not be written, 2 the input cannot be read (missing, not
JSON, not a report)."""

COMPARE_DESCRIPTION = """\
Compare two runs side by side: key numbers with absolute and relative deltas (B against A, coloured
better or worse), both latency distributions on one chart, and the checks of both. Each input is a
report.json or a results.json."""

COMPARE_EPILOG = """\
examples:
  chatload compare reports/default/20261121T101500Z/report.json reports/default/20261122T055539Z/report.json
  chatload compare before.json after.json -o /tmp/compare.html

exit status: 0 written, 1 the HTML could not be written, 2 an input cannot be read."""


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = parser.description or REPORT_DESCRIPTION
    parser.epilog = REPORT_EPILOG
    parser.add_argument("report", metavar="REPORT.json", help="report.json or results.json")
    parser.add_argument("-o", "--output", metavar="OUT.html",
                        help="where to write the page (default: next to the JSON, same name, .html)")
    parser.set_defaults(func=run_report)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = parser.description or COMPARE_DESCRIPTION
    parser.epilog = COMPARE_EPILOG
    parser.add_argument("a", metavar="A.json", help="the baseline run: report.json or results.json")
    parser.add_argument("b", metavar="B.json", help="the run compared with it")
    parser.add_argument("-o", "--output", metavar="OUT.html",
                        help="where to write the page (default: compare.html beside B, the newer run's report)")
    parser.set_defaults(func=run_compare)


def run_report(args: argparse.Namespace) -> int:
    from .run_page import render_html

    source = Path(args.report)
    try:
        report = load_document(source)
    except ReportInputError as exc:
        return _fail("report", str(exc), 2)
    output = Path(args.output) if args.output else source.with_suffix(".html")
    if output == source:  # an input called *.html: never overwrite it
        output = source.with_name(source.name + ".html")
    try:
        page = render_html(report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return _fail("report", f"{source}: cannot render it (a key has an unexpected shape): "
                               f"{type(exc).__name__}: {exc}", 2)
    return _write("report", output, page)


def run_compare(args: argparse.Namespace) -> int:
    from .compare import render_compare_html

    try:
        a, b = load_document(args.a), load_document(args.b)
    except ReportInputError as exc:
        return _fail("compare", str(exc), 2)
    try:
        page = render_compare_html(a, b)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return _fail("compare", f"{args.a} or {args.b}: cannot render them (a key has an unexpected shape): "
                                f"{type(exc).__name__}: {exc}", 2)
    differences = shape_differences(as_report(b), as_report(a), here="in B", there="in A")
    if differences:
        print(f"chatload compare: warning: the runs applied different loads ({'; '.join(differences)}): "
              "their figures compare unlike runs", file=sys.stderr)
    output = Path(args.output) if args.output else Path(args.b).with_name("compare.html")
    return _write("compare", output, page)


def _write(command: str, output: Path, page: str) -> int:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(output, lambda f: f.write(page))
    except OSError as exc:
        return _fail(command, f"{output}: cannot write: {exc.strerror or exc}", 1)
    print(output.resolve())  # the whole path: a bare name says nothing about where it went
    return 0


def _fail(command: str, message: str, status: int) -> int:
    print(f"chatload {command}: {message}", file=sys.stderr)
    return status
