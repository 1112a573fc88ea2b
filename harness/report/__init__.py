"""Reports: the results of a run judged against its scenario, as `report.json` and a self-contained
`report.html`, and the comparison of two runs. docs/report-format.md documents the JSON.

The modules, from the bottom: `numbers` (the number formatter and a run's key numbers), `figures`
(Plotly figures), `console` (plain text), `document` (the JSON: build, read, the secret scan),
`html_kit` (the HTML kit every chatload page uses), the run's page (`run_sections`,
`service_section`, `accounting_section`, `run_page.render_html`), `compare.render_compare_html`,
`writing.write_report` (report.json and report.html), and `cli`. This package imports only the
document's names: importing a module of it loads no HTML, and no module here imports the package."""

from .document import SCHEMA, ReportInputError, build_report, load_document

__all__ = ["SCHEMA", "ReportInputError", "build_report", "load_document"]
