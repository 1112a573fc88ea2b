"""Reports: the results of a run judged against its scenario, as `report.json` and a self-contained
`report.html`, and the comparison of two runs. docs/report-format.md documents the JSON."""

from .document import SCHEMA, ReportInputError, build_report, load_document, write_report

__all__ = ["SCHEMA", "ReportInputError", "build_report", "load_document", "write_report", "render_html",
           "render_compare_html"]


def render_html(report: dict) -> str:
    from .html import render_html as render

    return render(report)


def render_compare_html(a: dict, b: dict) -> str:
    from .compare import render_compare_html as render

    return render(a, b)
