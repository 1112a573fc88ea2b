"""`chatload emulator --tls` for every service: wss:// and https:// with a CA made for the run.

Each emulator starts with `--tls` (IVS Chat's runs the smoke scenario in test_run_tls.py); its
ready line names the CA file; the service provisions a room through its https:// control plane
(boto3 with verify=<that CA>, the run's own path) and fetches a token; one user then opens the
wss:// data plane with a context that trusts that CA alone, and the handshake is timed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop

from harness.net.tls import target_context
from harness.net.transport import connect
from harness.services import registry
from harness.services.base import KIND_EMULATOR, RoomSettings, Target, UserSpec


class Listener:
    def __init__(self) -> None:
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def on_open(self, transport) -> None:
        self.opened.set_result(transport)

    def on_frame(self, payload, is_text, arrival_ns) -> None:
        pass

    def on_closed(self, code, reason, clean, at_ns) -> None:
        if not self.closed.done():
            self.closed.set_result(code)


@pytest.mark.parametrize("name", ["chime", "hotsock", "ivsrealtime"])
def test_an_emulator_serves_wss_and_https_with_its_own_ca(name):
    service = registry.get(name)
    emulator = service.start_emulator("--tls")
    try:
        ca_file = emulator.ca_file
        assert Path(ca_file).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert emulator.messaging_endpoint.startswith("wss://") and emulator.control_endpoint.startswith("https://")
        target = Target(name, KIND_EMULATOR, emulator.messaging_endpoint, emulator.control_endpoint,
                        emulator.region, ca_file=ca_file)
        target = service.provision(target, RoomSettings(count=1), "tls")  # over https://, trusting the CA
        user = UserSpec("s1", "user-s1", target.rooms[0])
        params = service.connect_params(target, service.token_provider(target).fetch(user), user)
        assert params.url.startswith("wss://")

        async def open_one():
            listener = Listener()
            ws = await connect(params, listener, timeout=10, ssl_context=target_context(target))
            ws.close()
            await asyncio.wait_for(listener.closed, 10)
            return ws
        assert uvloop.run(open_one()).tls_ns > 0
    finally:
        emulator.stop()
    assert not Path(ca_file).exists(), "the run's certificates go with the emulator"
