"""`chatload run` over TLS, end to end: the smoke scenario on the embedded emulator with `--tls`, and
real-service-like targets whose certificates a client must refuse (each served by a real TLS server
made here), which end the run as "measured nothing" naming the TLS cause and the endpoint."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading

import pytest

from harness.emulation.tls import make_certificates
from tests.test_run import SMOKE, chatload, only_report


def test_the_smoke_scenario_passes_over_tls_and_its_report_names_the_wss_endpoint(tmp_path):
    proc = chatload("run", str(SMOKE), "--tls", "--report-dir", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(only_report(tmp_path, "smoke").read_text())
    target = report["metadata"]["target"]
    assert target["endpoint"].startswith("wss://") and target["control_endpoint"].startswith("https://")
    assert target["endpoint"] in proc.stdout
    assert report["verdict"] == "pass" and report["accounting"]["totals"]["lost"] == 0
    assert report["accounting"]["totals"]["delivered"] > 0
    latency = report["latency_us"]
    # Every connect went through TLS, and each handshake was timed as its own phase.
    assert latency["connect.tls"]["count"] == latency["connect"]["count"] > 0
    assert 0 < latency["connect.tls"]["percentiles"]["50"] < latency["connect"]["percentiles"]["50"]
    assert "TLS handshake" in proc.stdout


class TlsServer:
    """A TLS listener on loopback in a thread of its own: it completes handshakes a client accepts
    and nothing more (a client that refuses the certificate never gets further)."""

    def __init__(self, certificates) -> None:
        self.context = certificates.server_context()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader, writer) -> None:
            writer.close()

        self.server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.context))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


NOW = datetime.datetime.now(datetime.UTC)
BAD_CERTIFICATES = {  # case → (certificate maker, the client trusts the CA file, the cause named)
    "expired": (lambda folder: make_certificates(folder, not_before=NOW - datetime.timedelta(days=3),
                                                 not_after=NOW - datetime.timedelta(days=1)),
                True, "TLS certificate expired"),
    "self-signed": (lambda folder: make_certificates(folder, self_signed=True), False, "TLS self-signed certificate"),
    "another host": (lambda folder: make_certificates(folder, hosts=("chat.example.com",)), True,
                     "TLS hostname mismatch"),
}


@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
def test_a_real_target_with_a_bad_certificate_measured_nothing_and_says_why(case, tmp_path):
    make, trusted, cause = BAD_CERTIFICATES[case]
    certificates = make(tmp_path / "certs")
    server = TlsServer(certificates)
    key = tmp_path / "signing.key"
    key.write_text("k" * 32)
    endpoint = f"wss://127.0.0.1:{server.port}/v1"
    scenario = tmp_path / "real.toml"
    ca_file = f', ca_file = "{certificates.ca_file}"' if trusted else ""
    scenario.write_text(f"""
scenario = {{ name = "badcert", duration = "2s", ramp = "0s", drain = "0s", processes = 1 }}
target = {{ service = "hotsock", kind = "hotsock", endpoint = "{endpoint}", signing_key = "{key}", \
channels = ["loadtest.1"]{ca_file} }}

[[population]]
kind = "subscriber"
users = 3
""")
    try:
        proc = chatload("run", str(scenario), "--yes", "--quiet", "--report-dir", str(tmp_path / "reports"))
    finally:
        server.stop()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "measured nothing" in proc.stdout
    # Each user tried once and stopped: a refused certificate is not retried as if transient.
    assert f"connect {cause} ×3; endpoint {endpoint}" in proc.stdout, proc.stdout
    report = json.loads(only_report(tmp_path / "reports", "badcert").read_text())
    assert report["counters"]["refused.tls"] == 3 and report["counters"][f"connect_failures.{cause}"] == 3


def test_plain_locust_reaches_a_running_tls_emulator_through_its_ca_file(tmp_path):
    from harness.services.ivschat.emulator import EmulatorProcess
    from tests.locust_run import results_of, run_locust

    with EmulatorProcess("--tls") as emulator:
        target = ("--chat-endpoint", emulator.messaging_endpoint, "--chat-control-endpoint", emulator.control_endpoint)
        proc = run_locust(tmp_path / "bad", *target, "--chat-ca-file", str(tmp_path / "missing.pem"), "-u", "1",
                          "-t", "2s")
        assert proc.returncode != 0 and "--chat-ca-file: cannot read" in proc.stdout + proc.stderr
        # Rooms made over https:// (boto3 trusting the CA file), users over wss:// trusting it alone.
        proc = run_locust(tmp_path / "good", *target, "--chat-ca-file", emulator.ca_file, "-u", "4", "-r", "4",
                          "-t", "3s", "--chat-drain", "2")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    results = results_of(tmp_path / "good")
    assert results["metadata"]["target"]["endpoint"].startswith("wss://")
    assert results["latency_us"]["connect.tls"]["count"] == results["latency_us"]["connect"]["count"] == 4
    assert results["accounting"]["totals"]["lost"] == 0 and results["accounting"]["totals"]["delivered"] > 0
