"""`write_report(folder, report)`: a run's `report.json` and `report.html`, each written atomically,
the JSON first (it holds everything; `chatload report` renders the page again from it)."""

from __future__ import annotations

import json
from pathlib import Path

from .document import refuse_secrets, write_atomic
from .run_page import render_html


def write_report(folder: Path, report: dict) -> tuple[Path, Path]:
    """Write `report.json` and `report.html` in `folder` (created if needed); returns their paths.

    Each file is written to a temporary file in the same folder and renamed over the target, so a crash
    leaves either the previous file or the whole new one, never part of one. The JSON goes first: it
    holds everything, and if the HTML cannot be rendered, `chatload report` renders it from the JSON."""
    refuse_secrets(report)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = write_atomic(folder / "report.json",
                             lambda f: (json.dump(report, f, indent=1, allow_nan=False), f.write("\n")))
    page = render_html(report)
    html_path = write_atomic(folder / "report.html", lambda f: f.write(page))
    return json_path, html_path
