"""Asking before a run that a real service bills per message: one question for `chatload run`,
`chatload capacity` and a plain `locust -f` run against a real room."""

from __future__ import annotations

import sys


def ask_before_billing(subject: str, note: str, yes: bool, flag: str = "--yes") -> str | None:
    """Say what a real service will bill (`note`, the service's own words) and ask, unless `yes`
    (given as `flag` on the command line). Returns why not to go ahead, or None to go ahead."""
    print(f"{subject}\n  {note}", file=sys.stderr)
    if yes:
        return None
    if not sys.stdin.isatty():
        return f"refusing to send to a real service without confirmation: pass {flag}"
    if input("  Go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
        return "cancelled; nothing was sent"
    return None
