"""The web UI's Chat tab: live charts in the style of Locust's Charts tab, and a table of one
quantity a row, each named with its unit.

Locust's extension tabs render a table only, so the charts are drawn by a small script of ours
(`static/chat_tab.js`, with plotly.js served from the plotly package: the UI works offline) that
the index page loads. Every second it asks `chat/series` for the newest per-second rows, merged
across every process exactly as the report's timeline is, and redraws while the Chat tab is open.
"""

from __future__ import annotations

from pathlib import Path

from locust import events

from .state import state_of

STATIC = Path(__file__).with_name("static")
SCRIPTS = '<script src="./chat/plotly.min.js"></script><script src="./chat/chat_tab.js"></script>'


@events.init.add_listener
def _on_init(environment, web_ui=None, **_kwargs) -> None:
    if web_ui is not None:
        _add_chat_tab(environment, web_ui)


def _add_chat_tab(environment, web_ui) -> None:
    from flask import json as flask_json
    from flask import jsonify, request, send_file

    web_ui.template_args["extendedTabs"] = [{"title": "Chat", "key": "chat"}]
    web_ui.template_args["extendedTables"] = [{"key": "chat", "structure": [
        {"key": "measure", "title": "Measure"}, {"key": "value", "title": "Value"}, {"key": "unit", "title": "Unit"},
    ]}]

    @web_ui.app.route("/chat/series")
    def chat_series():
        since = request.args.get("since", default=0, type=int)
        stats = state_of(environment).stats
        return jsonify({"started_s": stats.started_ns // 1_000_000_000, "rows": stats.live_series(since)})

    @web_ui.app.route("/chat/chat_tab.js")
    def chat_script():
        return send_file(STATIC / "chat_tab.js", mimetype="text/javascript", max_age=0)

    @web_ui.app.route("/chat/plotly.min.js")
    def plotly_script():
        import plotly

        return send_file(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                         mimetype="text/javascript", max_age=3600)

    @web_ui.app.after_request
    def _extend(response):
        path = request.path.rstrip("/")
        if path.endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            body["extendedStats"] = [{"key": "chat", "data": state_of(environment).stats.live_rows()}]
            response.set_data(flask_json.dumps(body))
        elif response.mimetype == "text/html" and response.status_code == 200 and not response.direct_passthrough:
            page = response.get_data(as_text=True)
            if "</body>" in page and "chat_tab.js" not in page:
                response.set_data(page.replace("</body>", SCRIPTS + "</body>", 1))
        return response
