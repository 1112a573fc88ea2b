"""`capacity.json` (schema `chatload.capacity/1`, see docs/capacity.md) and writing it with its page."""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path

from ..report.document import default_versions, finite_json, iso8601, refuse_secrets, write_atomic
from .plan import VARIES, CapacityPlan

SCHEMA = "chatload.capacity/1"


def build_document(*, plan: CapacityPlan, steps: list[dict], knee: dict, usl: dict, sizing: dict, cost: dict,
                   target: dict, complete: bool, incomplete_reason: str | None, error: str | None, exit_code: int,
                   started_ns: int, ended_ns: int, processes: int | None) -> dict:
    spec = plan.spec
    first = plan.steps[0].scenario if plan.steps and plan.steps[0].scenario else None
    document = {
        "schema": SCHEMA,
        "complete": complete,
        "incomplete_reason": None if complete else (incomplete_reason or "the search stopped before an answer"),
        "error": error,
        "outcome": knee["outcome"],
        "headline": headline(plan, knee, incomplete_reason),
        "exit_code": exit_code,
        "metadata": {
            "started_at_ns": started_ns, "ended_at_ns": ended_ns, "started_at": iso8601(started_ns),
            "ended_at": iso8601(ended_ns), "duration_s": round((ended_ns - started_ns) / 1e9, 3),
            "host": socket.gethostname(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "versions": default_versions(),
        },
        "scenario": {"name": plan.name, "file": plan.file, "capacity": spec.as_dict(), "base": plan.base},
        "target": target,
        "load": {
            "vary": spec.vary, "step_value": VARIES[spec.vary][0], "load": plan.load_label,
            "load_short": plan.load_short,
            "throughput": "deliveries per second over the steady window (every receiver, senders' echoes included)",
            "hold_s": spec.hold_s, "ramp_s": first.ramp_s if first else None,
            "processes": processes if processes is not None else (first.processes or None if first else None),
            "planned_steps": [{"index": s.index, "value": s.value, "load": plan.load_of(s)} for s in plan.steps],
        },
        "objective": list(spec.objective),
        "steps": steps,
        "knee": knee,
        "usl": usl,
        "sizing": sizing,
        "cost": cost,
    }
    return finite_json(document)


def headline(plan: CapacityPlan, knee: dict, incomplete_reason: str | None) -> str:
    label = plan.load_short
    k, b = knee.get("knee"), knee.get("breaking")
    outcome = knee["outcome"]
    if outcome == "knee":
        return (f"knee at {label} {k['load']:g} (step {k['index']}); the objective breaks at {label} {b['load']:g} "
                f"(step {b['index']})")
    if outcome == "ceiling":
        return f"every step met the objective, up to the ceiling: {label} {k['load']:g} (step {k['index']})"
    if outcome == "first_step_failed":
        return f"even the first step ({label} {b['load']:g}) broke the objective"
    so_far = f"; the last step that met it: {label} {k['load']:g} (step {k['index']})" if k else ""
    return f"no answer: {incomplete_reason or 'the search stopped'}{so_far}"


def write_capacity(folder: Path, document: dict) -> tuple[Path, Path]:
    """capacity.json, then capacity.html, each written whole or not at all (see report.document)."""
    from .html import render_capacity_html

    refuse_secrets(document)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = write_atomic(folder / "capacity.json",
                             lambda f: (json.dump(document, f, indent=1, allow_nan=False, ensure_ascii=False),
                                        f.write("\n")))
    page = render_capacity_html(document)
    html_path = write_atomic(folder / "capacity.html", lambda f: f.write(page))
    return json_path, html_path
