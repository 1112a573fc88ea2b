"""The report document (`chatload.report/1`): a run's results plus what the run was judged against.

A report is the results document (`harness/results/run_results.py`, `chatload.results/1`) with the same key names
(a tool that reads results reads reports too) and a few keys added: the scenario as run, the checks and
their verdict, whether the run completed, the fault timeline applied, component versions and readable
start/end times. docs/report-format.md documents every key.

Nothing secret may reach a report: `build_report` walks every string (keys too) and refuses to build a
document holding something shaped like an IVS chat token or an AWS key. It names where it found it,
never what it found.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from ..files import atomic

SCHEMA = "chatload.report/1"
RESULTS_SCHEMA = "chatload.results/1"
READABLE_SCHEMAS = (SCHEMA, RESULTS_SCHEMA)

CHECK_VERDICTS = ("pass", "fail", "error")
CHECK_KEYS = ("name", "rule", "metric", "op", "expected", "observed", "unit", "verdict", "detail")

# Distribution name of each component whose version the report states.
VERSIONED = {"chatload": "chatload", "locust": "locust", "websockets": "websockets", "uvloop": "uvloop"}

# What a secret looks like. IVS chat tokens are KMS-encrypted blobs: "AQICAH" then base64; the class
# takes both alphabets (base64url as the service returns them, and standard base64). A JSON Web
# Token (the token of services whose customers sign their own): three base64url parts, the first
# two JSON objects, so each starts "eyJ". An AWS key id, the name of the credentials-file key, and a
# PEM private key's header (services whose tokens the harness signs read such keys).
# The look-behind keeps `AKIA` inside a longer word (an encoded histogram, say) from matching.
SECRET_PATTERNS = (
    ("an IVS chat token", re.compile(r"AQICAH[A-Za-z0-9_\-+/]{40,}")),
    ("a JSON Web Token", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")),
    ("an AWS access key id", re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])")),
    ("an AWS secret access key", re.compile(r"aws_secret_access_key", re.IGNORECASE)),
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")),
)


class ReportInputError(Exception):
    """A document that cannot be read as a report: names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


# -- building -------------------------------------------------------------------------------------------


def build_report(results: dict, *, scenario: dict | None, checks: list[dict], complete: bool,
                 incomplete_reason: str | None = None, faults: list[dict] | None = None,
                 versions: dict | None = None, measured: list[str] | None = None,
                 min_connected: float | None = None, min_spawned: float | None = None) -> dict:
    """The report document for `results` (not modified). Raises ValueError on a malformed check or on
    anything that looks like a secret (see SECRET_PATTERNS).

    `measured` is what `harness.results.measured.problems` found: a run that measured nothing is an error,
    whatever its checks say."""
    if not isinstance(results, dict):
        raise ValueError(f"results must be a dict (a {RESULTS_SCHEMA} document), not {type(results).__name__}")
    if results.get("schema") not in READABLE_SCHEMAS:
        raise ValueError(f"results schema is {results.get('schema')!r}, expected {RESULTS_SCHEMA!r}")
    checks = [_checked(check, i) for i, check in enumerate(checks or [])]
    if scenario is not None:
        scenario = {"name": scenario.get("name"), "file": _text_or_none(scenario.get("file")),
                    **{k: v for k, v in scenario.items() if k not in ("name", "file")}}
        scenario.setdefault("as_run", None)

    report = copy.deepcopy(results)
    report["schema"] = SCHEMA
    report["results_schema"] = results.get("schema")
    meta = report.setdefault("metadata", {})
    meta["versions"] = {**default_versions(), **{k: v for k, v in (versions or {}).items() if v is not None}}
    started, ended = meta.get("started_at_ns"), meta.get("ended_at_ns")
    meta["started_at"] = iso8601(started)
    meta["ended_at"] = iso8601(ended)
    meta["duration_s"] = round((ended - started) / 1e9, 3) if _is_int(started) and _is_int(ended) else None
    report.update({
        "complete": bool(complete),
        "incomplete_reason": None if complete else (incomplete_reason or "not given"),
        "scenario": copy.deepcopy(scenario),
        "faults": copy.deepcopy(list(faults or [])),
        "checks": checks,
        "check_counts": {verdict: sum(c["verdict"] == verdict for c in checks) for verdict in CHECK_VERDICTS},
        "verdict": "error" if measured else overall_verdict(checks),
    })
    if measured is not None:
        report["measured"] = {"ok": not measured, "problems": list(measured), "min_connected": min_connected,
                              "min_spawned": min_spawned}
    report = finite_json(report)
    refuse_secrets(report)
    return report


def overall_verdict(checks: list[dict]) -> str:
    """"none" without checks; "error" if any check could not be evaluated (the run was not fully
    judged, whatever else failed); else "fail" if any failed; else "pass"."""
    verdicts = {check["verdict"] for check in checks}
    if not verdicts:
        return "none"
    for verdict in ("error", "fail"):
        if verdict in verdicts:
            return verdict
    return "pass"


def as_report(document: dict) -> dict:
    """A report as is; a results document as the report of a run with no checks."""
    if document.get("schema") == SCHEMA:
        return document
    return build_report(document, scenario=None, checks=[], complete=bool(document.get("complete")),
                        incomplete_reason=None if document.get("complete") else (
                            document.get("incomplete_reason") or "the results say incomplete"))


def run_shape(report: dict) -> dict:
    """What load a run applied, as far as its document says: service, users (by kind), duration. A
    comparison of two runs of different shapes compares unlike things (505 users against 55)."""
    as_run = (report.get("scenario") or {}).get("as_run") or {}
    meta = report.get("metadata") or {}
    populations = as_run.get("populations") or []
    mix: dict[str, int] = {}
    for population in populations:
        if isinstance(population, dict):
            mix[str(population.get("kind"))] = mix.get(str(population.get("kind")), 0) + (population.get("users") or 0)
    users = sum(mix.values()) if mix else ((meta.get("planned_users") or {}).get("total")
                                           or (meta.get("options") or {}).get("num_users"))
    return {"service": (as_run.get("target") or {}).get("service") or (meta.get("target") or {}).get("service"),
            "users": users, "mix": mix or None, "duration_s": as_run.get("duration_s")}


def shape_differences(report: dict, baseline: dict, *, here: str = "here",
                      there: str = "in the baseline") -> list[str]:
    """How the baseline's load differs from the report's ("users 505 in the baseline, 55 here"); []
    when they match or a document does not say."""
    now, then = run_shape(report), run_shape(baseline)
    found = []
    for key, words in (("service", "service"), ("users", "users"), ("mix", "users by kind"),
                       ("duration_s", "duration (s)")):
        if now[key] is None or then[key] is None or now[key] == then[key]:
            continue
        if key == "mix" and now["users"] != then["users"]:
            continue  # the totals say it already
        found.append(f"{words} {_shape_value(then[key])} {there}, {_shape_value(now[key])} {here}")
    return found


def scenario_name(report: dict) -> str:
    scenario = report.get("scenario") or {}
    if scenario.get("name"):
        return str(scenario["name"])
    locustfile = (report.get("metadata") or {}).get("locustfile")
    return f"{locustfile} (no scenario)" if locustfile else "chatload run"


def _shape_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{n} {kind}" for kind, n in value.items())
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def default_versions() -> dict:
    versions: dict[str, str | None] = {}
    for key, distribution in VERSIONED.items():
        try:
            versions[key] = importlib_metadata.version(distribution)
        except importlib_metadata.PackageNotFoundError:
            versions[key] = None
    versions["python"] = platform.python_version()
    return versions


def iso8601(ns) -> str | None:
    """Epoch nanoseconds as ISO 8601 UTC with microseconds ("2026-11-22T05:55:31.256627Z")."""
    if not _is_int(ns):
        return None
    moment = datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _checked(check: dict, index: int) -> dict:
    if not isinstance(check, dict):
        raise ValueError(f"checks[{index}] must be a dict, not {type(check).__name__}")
    verdict = check.get("verdict")
    if verdict not in CHECK_VERDICTS:
        raise ValueError(f"checks[{index}] ({check.get('name')!r}): verdict must be one of "
                         f"{', '.join(CHECK_VERDICTS)}, not {verdict!r}")
    if not check.get("name") and not check.get("rule"):
        raise ValueError(f"checks[{index}]: a check needs a name or a rule")
    stored = {key: check.get(key) for key in CHECK_KEYS}
    stored["name"] = stored["name"] or stored["rule"]
    stored.update({k: v for k, v in check.items() if k not in CHECK_KEYS})  # extra keys are kept
    return copy.deepcopy(stored)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_or_none(value) -> str | None:
    return None if value is None else str(value)


def finite_json(value):
    """`value` with NaN and infinities as None: JSON has neither, so reports and capacity documents write
    them as null (documented)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


# -- the secret scan ------------------------------------------------------------------------------------


def find_secrets(document) -> list[tuple[str, str]]:
    """(where, what) for every string, key or value, that looks like a secret. `what` names the kind
    of secret, never its text."""
    found = []
    for where, text in _strings(document, "$"):
        for kind, pattern in SECRET_PATTERNS:
            if pattern.search(text):
                found.append((where, kind))
    return found


def refuse_secrets(document) -> None:
    found = find_secrets(document)
    if found:
        shown = "; ".join(f"{where} looks like {kind}" for where, kind in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise ValueError(f"refusing to write a report holding secrets: {shown}{more}")


def _strings(value, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield f"{where} (key)", key
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")


# -- reading and writing --------------------------------------------------------------------------------


def load_document(path: Path | str) -> dict:
    """A report or results document from a file, as a report. Raises ReportInputError naming the file
    and the reason (missing, unreadable, not JSON, wrong schema, holds a secret)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportInputError(path, "no such file") from None
    except IsADirectoryError:
        raise ReportInputError(path, "is a directory, not a report file") from None
    except UnicodeDecodeError as exc:
        raise ReportInputError(path, f"not JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ReportInputError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportInputError(path, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(document, dict):
        raise ReportInputError(path, f"not a chatload report: the JSON is a {type(document).__name__}, "
                                     "not an object")
    schema = document.get("schema")
    if schema not in READABLE_SCHEMAS:
        raise ReportInputError(path, f"wrong schema {schema!r}: expected {SCHEMA!r} or {RESULTS_SCHEMA!r}")
    try:
        return as_report(document) if schema == RESULTS_SCHEMA else _scanned(document)
    except ValueError as exc:
        raise ReportInputError(path, str(exc)) from None


def _scanned(report: dict) -> dict:
    refuse_secrets(report)
    return report


def write_atomic(path: Path, write) -> Path:
    """Call `write(file)` on a temporary file next to `path`, then rename it to `path`."""
    return atomic.write_atomic(path, write)
