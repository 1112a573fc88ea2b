"""The HTML kit of every chatload page (the run's report, the comparison of two runs, the capacity
report): escaping, tags, tables, badges, chart placeholders, readable times, and the page shell
(inline CSS and plotly.js, no network, light theme, laptop-sized).

Every text that comes from a document is escaped (`esc`); HTML built here is marked as such with
`Html`. Figures travel as one JSON block that a short script hands to Plotly: the page never
evaluates data as code. A chart without data becomes a "no data" note instead of an empty plot, so
every element with `data-chart` is a chart that must render (the browser tests check each one).
Nothing here knows what a page is about.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache

from .numbers import format_value


class Html(str):
    """Text that is already HTML (built here from escaped parts)."""


def esc(value) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts) -> Html:
    return Html("".join(esc(part) for part in parts))


def tag(name: str, content="", **attrs) -> Html:
    shown = "".join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
                    for key, value in attrs.items() if value is not None and value is not False)
    return Html(f"<{name}{shown}>{esc(content) if not isinstance(content, list) else join(content)}</{name}>")


def badge(verdict: str, text: str | None = None, *, large: bool = False) -> Html:
    kind = {"pass": "pass", "complete": "pass", "fail": "fail", "error": "error", "incomplete": "warn",
            "warning": "warn"}.get(verdict, "none")
    return tag("span", (text or verdict).upper(), class_=f"badge {kind}{' large' if large else ''}")


def table(headers: list, rows: list[list], *, numeric: set[int] = frozenset(), classes: str = "") -> Html:
    head = tag("tr", [tag("th", h, class_="num" if i in numeric else None) for i, h in enumerate(headers)])
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "num" if i in numeric else None
            if isinstance(cell, tuple):  # (content, extra class)
                cell, extra = cell
                cls = f"{cls or ''} {extra}".strip()
            cells.append(tag("td", cell, class_=cls))
        body.append(tag("tr", cells))
    return tag("table", [tag("thead", [head]), tag("tbody", body)], class_=classes or None)


def no_data(text: str = "no data") -> Html:
    return tag("p", text, class_="nodata")


def chart(chart_id: str, figure: dict | None, charts: dict, *, empty: str = "no data") -> Html:
    """A chart placeholder with a stable id; without a figure, a "no data" note (no data-chart)."""
    if figure is None:
        return tag("div", empty, id=f"chart-{chart_id}", class_="chart nodata")
    charts[chart_id] = figure
    return tag("div", "", id=f"chart-{chart_id}", class_="chart", data_chart=chart_id)


def note(text: str) -> Html:
    return tag("p", text, class_="note")


def ms(us) -> str:
    return format_value(us / 1000, "ms") if isinstance(us, int | float) and not isinstance(us, bool) else "—"


def when(iso: str | None) -> str:
    """"2026-11-22T05:55:31.256627Z" → "2026-11-22 05:55:31 UTC"."""
    if not iso:
        return "—"
    return iso.replace("T", " ").split(".")[0].rstrip("Z") + " UTC"


def duration(seconds) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)


# -- page shell -----------------------------------------------------------------------------------------


def page_header(eyebrow: str, title: str, description, verdicts: list, facts: list[tuple]) -> Html:
    """The top of a chatload page: what it is (eyebrow), the title and a description (left out when
    empty), the verdict badges on the right, then the facts (label, value) as a grid."""
    return tag("header", [tag("div", [
        tag("div", [
            tag("div", [tag("div", eyebrow, class_="eyebrow"), tag("h1", title),
                        tag("p", description, class_="desc") if description else ""]),
            tag("div", verdicts, class_="verdicts"),
        ], class_="headline"),
        tag("dl", [tag("div", [tag("dt", k), tag("dd", v)]) for k, v in facts], class_="facts"),
    ], class_="wrap")], class_="top")


def sectioned_page(title: str, head: Html, top: Html, sections, foot: Html, charts: dict) -> str:
    """The page every chatload report uses: header, a sticky section nav, the sections as cards."""
    body = [head, nav(sections), tag("main", [top, *(
        tag("section", [tag("h2", heading), content], id=section_id, class_="card")
        for section_id, heading, content in sections)], class_="wrap"), foot]
    return page(title, join(body), charts)


def nav(sections) -> Html:
    return tag("nav", [tag("div", [tag("a", heading, href=f"#{section_id}") for section_id, heading, _ in sections],
                           class_="wrap")])


def page(title: str, body: Html, charts: dict[str, dict]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n"
        f"<script>{plotly_js()}</script>\n</head>\n<body>\n{body}\n"
        f"<script type=\"application/json\" id=\"chart-data\">{json_for_script(charts)}</script>\n"
        f"<script>{BOOT}</script>\n</body>\n</html>\n"
    )


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    if "</script" in script.lower():  # would end the inline <script> early
        raise RuntimeError("plotly.js contains '</script': cannot inline it")
    return script


def json_for_script(value) -> str:
    """JSON that is safe inside <script>: no "</script>", "<!--" or line separators can appear."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


BOOT = """
(function () {
  var figures = JSON.parse(document.getElementById("chart-data").textContent);
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var fig = figures[el.getAttribute("data-chart")];
    if (!fig) { console.error("chatload report: no figure for #" + el.id); return; }
    if (typeof Plotly === "undefined") { console.error("chatload report: plotly.js did not load"); return; }
    Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
      el.setAttribute("data-rendered", "true");
    }, function (err) {
      console.error("chatload report: chart #" + el.id + " failed: " + err);
      el.setAttribute("data-rendered", "failed");
    });
  });
})();
"""


CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f4f6f9; --card: #ffffff;
  --pass: #166534; --pass-bg: #dcfce7; --fail: #991b1b; --fail-bg: #fee2e2; --warn: #92400e;
  --warn-bg: #fef3c7; --error: #6b21a8; --error-bg: #f3e8ff; --none: #374151; --none-bg: #e5e7eb;
  --accent: #2563eb; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; scroll-padding-top: 56px; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
.wrap { max-width: 1240px; margin: 0 auto; padding: 0 28px; }
header.top { background: var(--card); border-bottom: 1px solid var(--line); padding: 26px 0 18px; }
.headline { display: flex; justify-content: space-between; align-items: flex-start; gap: 24px; flex-wrap: wrap; }
.eyebrow { color: var(--accent); font-weight: 600; font-size: 12px; letter-spacing: .08em; text-transform: uppercase; }
h1 { font-size: 28px; line-height: 1.2; margin: 4px 0 2px; font-weight: 700; }
h2 { font-size: 18px; margin: 0 0 14px; font-weight: 650; }
h3 { font-size: 14px; margin: 18px 0 8px; color: #374151; }
.desc { margin: 4px 0 0; color: var(--muted); max-width: 760px; }
.verdicts { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; justify-content: flex-end; }
.verdicts .small { width: 100%; text-align: right; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 6px 28px; margin: 18px 0 0; }
.facts > div { min-width: 0; }
.facts dt { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .06em; font-weight: 600; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
nav { position: sticky; top: 0; z-index: 10; background: rgba(255,255,255,.96); border-bottom: 1px solid var(--line);
  backdrop-filter: saturate(1.4) blur(6px); }
nav .wrap { display: flex; flex-wrap: wrap; gap: 2px; }
nav a { color: var(--muted); text-decoration: none; padding: 10px 9px; font-size: 13px; border-bottom: 2px solid transparent; }
nav a:hover { color: var(--accent); border-bottom-color: var(--accent); }
main { padding: 8px 28px 40px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 20px 24px;
  margin: 18px 0; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
.badge { display: inline-block; padding: 3px 10px; border-radius: 999px; font-weight: 700; font-size: 11px;
  letter-spacing: .06em; white-space: nowrap; border: 1px solid transparent; }
.badge.large { font-size: 14px; padding: 6px 16px; }
.badge.pass { color: var(--pass); background: var(--pass-bg); border-color: #86efac; }
.badge.fail { color: var(--fail); background: var(--fail-bg); border-color: #fca5a5; }
.badge.error { color: var(--error); background: var(--error-bg); border-color: #d8b4fe; }
.badge.warn { color: var(--warn); background: var(--warn-bg); border-color: #fcd34d; }
.badge.none { color: var(--none); background: var(--none-bg); border-color: #d1d5db; }
.banner { border-radius: 12px; padding: 14px 18px; margin: 18px 0 0; }
.banner.warn { background: var(--warn-bg); border: 1px solid #f59e0b; border-left: 6px solid #d97706; color: var(--warn); }
.banner.warn > strong::before { content: "\\26A0\\FE0E  "; }
.banner.warn strong { font-size: 15px; }
.banner.inline { margin: 0 0 14px; }
.banner.error { background: var(--error-bg); border: 1px solid #d8b4fe; border-left: 6px solid var(--error); color: var(--error); }
.banner.error strong { font-size: 15px; }
.banner ul { margin: 6px 0 0; padding-left: 20px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; background: #f9fafb; font-size: 12px; }
tbody tr:hover { background: #f9fafb; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pass { color: var(--pass); } td.fail { color: var(--fail); } td.error { color: var(--error); }
.bad { color: var(--fail); } .good { color: var(--pass); } .better { color: var(--pass); } .worse { color: var(--fail); }
.strong { font-weight: 600; }
td.group { background: #f9fafb; padding-top: 12px; } td.same { color: var(--muted); }
.muted { color: var(--muted); } .small { font-size: 12px; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #374151; }
pre { background: #f8fafc; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow: auto;
  max-height: 520px; font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 8px 0; }
details { margin: 10px 0; } summary { cursor: pointer; color: var(--accent); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.tile { border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; background: #fcfcfd; }
.tile .label { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .06em; font-weight: 600; }
.tile .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; margin: 2px 0; }
.tile .sub { color: var(--muted); font-size: 12px; }
.tile.bad { border-color: #fca5a5; background: #fffafa; } .tile.bad .value { color: var(--fail); }
.tile.good .value { color: var(--pass); }
.chart { width: 100%; min-height: 360px; }
.chart.nodata, .nodata { min-height: 0; color: var(--muted); font-style: italic; padding: 18px; text-align: center;
  border: 1px dashed #d1d5db; border-radius: 8px; background: #fafafa; margin: 4px 0; }
.note { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 28px; }
.grid2 h3:first-child { margin-top: 0; }
.runs { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 18px; margin-top: 16px; }
.run { border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; background: #fcfcfd; }
.run .tagline { font-weight: 700; font-size: 13px; }
@media (max-width: 900px) { .grid2, .runs { grid-template-columns: 1fr; } }
footer { color: var(--muted); font-size: 12px; padding: 0 0 30px; }
"""
