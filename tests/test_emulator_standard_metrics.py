"""Every emulator's /metrics carries the shared chatload_emulator_* families (harness/emulation/
standard_metrics.py) beside its own, labelled with its service, and the whole page is Prometheus
text that Prometheus's own parser reads. A handshake without a token, refused by every emulator,
shows up there with the status the client saw."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from harness.emulation.cli import emulated_services
from harness.emulation.process import EmulatorProcess

SHARED = ("chatload_emulator_connections", "chatload_emulator_messages_accepted",
          "chatload_emulator_deliveries", "chatload_emulator_rejections",
          "chatload_emulator_handshakes_rejected")


@pytest.mark.parametrize("service", emulated_services())
def test_each_emulator_exports_the_shared_families(service):
    async def refused_status(url: str) -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, subprotocols=["not-a-token"], open_timeout=5):
                pass
        return refused.value.response.status_code

    with EmulatorProcess(service=service) as emulator:
        status = asyncio.run(refused_status(emulator.messaging_endpoint))
        with urllib.request.urlopen(f"{emulator.control_endpoint}/metrics", timeout=10) as response:
            text = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    missing = [name for name in SHARED if name not in families]
    assert not missing, f"{service}: /metrics lacks {missing}"
    own = [name for name in families if not name.startswith("chatload_emulator_")]
    assert own, f"{service}: its own families are still there"
    for name in SHARED:
        for sample in families[name].samples:
            assert sample.labels["service"] == service, sample
    refused = {s.labels["status"]: s.value for s in families["chatload_emulator_handshakes_rejected"].samples}
    assert refused == {str(status): 1.0}, f"{service}: the one refused handshake, counted by its status"
