"""The web UI's Chat tab: live delivery and ack percentiles and counts, from the merged intervals."""

from __future__ import annotations

from locust import events

from .state import state_of


@events.init.add_listener
def _on_init(environment, web_ui=None, **_kwargs) -> None:
    if web_ui is not None:
        _add_chat_tab(environment, web_ui)


def _add_chat_tab(environment, web_ui) -> None:
    from flask import json as flask_json
    from flask import request

    web_ui.template_args["extendedTabs"] = [{"title": "Chat", "key": "chat"}]
    web_ui.template_args["extendedTables"] = [{"key": "chat", "structure": [
        {"key": "metric", "title": "Metric"}, {"key": "delivery", "title": "Delivery"}, {"key": "ack", "title": "Ack"},
    ]}]

    @web_ui.app.after_request
    def _extend_stats(response):
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            body["extendedStats"] = [{"key": "chat", "data": state_of(environment).stats.live_rows()}]
            response.set_data(flask_json.dumps(body))
        return response
