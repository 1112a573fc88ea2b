"""wss:// on both transports against real TLS servers on loopback, with certificates made here.

The client side (`harness/net/tls.py`): one context per target, the TLS handshake timed apart
(`tls_ns`), sessions resumed on the next connect, and every certificate a real endpoint might get
wrong (expired, not yet valid, for another host, from an unknown CA, self-signed) named as its
cause, never mistaken for a transient failure.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from pathlib import Path

import pytest
import uvloop
from websockets.asyncio.server import serve

from harness.emulation.tls import make_certificates
from harness.net.tls import (
    ResumingContext,
    build_context,
    ca_pem_of,
    certificate_failure,
    http_verify,
    target_context,
)
from harness.net.transport import TRANSPORTS, ConnectParams, connect
from harness.services.base import Target

NOW = datetime.datetime.now(datetime.UTC)


class Listener:
    def __init__(self) -> None:
        self.frames: asyncio.Queue = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    def on_open(self, transport) -> None:
        pass

    def on_frame(self, payload: bytes, is_text: bool, arrival_ns: int) -> None:
        self.frames.put_nowait(payload)

    def on_closed(self, code: int, reason: str, clean: bool, at_ns: int) -> None:
        if not self.closed.done():
            self.closed.set_result(code)


async def _hello(ws) -> None:
    await ws.send("hello")
    await ws.wait_closed()


async def _serve_and_connect(certificates, client_context, transport: str, host: str = "localhost",
                             offers: tuple = (False,)):
    """Serve wss:// with `certificates`; connect once per item of `offers`, one after the other, each
    offering the previous connection's TLS session when its item is True; the transports."""
    async with serve(_hello, "127.0.0.1", 0, ssl=certificates.server_context()) as server:
        port = server.sockets[0].getsockname()[1]
        opened = []
        for offer in offers:
            listener = Listener()
            ws = await connect(ConnectParams(f"wss://{host}:{port}/"), listener, timeout=5, transport=transport,
                               ssl_context=client_context,
                               tls_session=opened[-1].tls_session if offer and opened else None)
            assert await asyncio.wait_for(listener.frames.get(), 5) == b"hello"
            ws.close()
            await asyncio.wait_for(listener.closed, 5)
            opened.append(ws)
        return opened


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_trusted_run_ca_connects_times_tls_apart_and_a_reconnect_resumes_its_own_session(transport, tmp_path):
    certificates = make_certificates(tmp_path)
    context = build_context(str(certificates.ca_file))
    assert isinstance(context, ResumingContext) and context.minimum_version >= ssl.TLSVersion.TLSv1_2
    first, other_user, reconnect = uvloop.run(
        _serve_and_connect(certificates, context, transport, offers=(False, False, True)))
    # The handshake is a phase of its own: positive, and shorter than the whole connect.
    assert 0 < first.tls_ns < 5e9 and first.tls_session is not None
    # Another user makes its own full handshake (users share no sessions); a reconnect resumes.
    assert (first.tls_resumed, other_user.tls_resumed, reconnect.tls_resumed) == (False, False, True)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize(("case", "cause"), [
    ("expired", "TLS certificate expired"),
    ("not yet valid", "TLS certificate not yet valid"),
    ("another host", "TLS hostname mismatch"),
    ("unknown CA", "TLS unknown CA"),
    ("self-signed", "TLS self-signed certificate"),
])
def test_a_bad_certificate_is_refused_with_its_cause(transport, case, cause, tmp_path):
    trusted = make_certificates(tmp_path / "trusted")
    certificates = {
        "expired": lambda: make_certificates(tmp_path / "c", not_before=NOW - 3 * datetime.timedelta(days=1),
                                             not_after=NOW - datetime.timedelta(days=1)),
        "not yet valid": lambda: make_certificates(tmp_path / "c", not_before=NOW + datetime.timedelta(days=1)),
        "another host": lambda: make_certificates(tmp_path / "c", hosts=("chat.example.com",)),
        "unknown CA": lambda: trusted,  # served as made; the client trusts the system store only
        "self-signed": lambda: make_certificates(tmp_path / "c", self_signed=True),
    }[case]()
    client = build_context() if case == "unknown CA" else build_context(str(certificates.ca_file))
    if case == "self-signed":
        client = build_context(str(trusted.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        uvloop.run(_serve_and_connect(certificates, client, transport))
    assert certificate_failure(caught.value) == cause


def test_only_a_certificate_failure_is_a_refusal():
    assert certificate_failure(ConnectionResetError()) is None
    assert certificate_failure(ssl.SSLError(1, "handshake failure")) is None


def test_one_context_per_target_and_verification_off_only_for_an_emulator(tmp_path, caplog):
    certificates = make_certificates(tmp_path)
    emulator = Target("ivschat", "emulator", "wss://127.0.0.1:1", ca_file=str(certificates.ca_file))
    assert target_context(emulator) is target_context(Target(**{**emulator.to_dict(), "rooms": ("r",)}))
    assert target_context(Target("ivschat", "emulator", "ws://127.0.0.1:1")) is None
    unverified = Target("ivschat", "emulator", "wss://127.0.0.1:1", tls_verify=False)
    assert target_context(unverified).verify_mode == ssl.CERT_NONE
    assert "verification is OFF" in caplog.text
    with pytest.raises(ValueError, match="only for an emulator"):
        target_context(Target("ivschat", "ivschat", "wss://edge.ivschat.us-east-1.amazonaws.com", tls_verify=False))


def test_a_worker_without_the_masters_ca_file_trusts_the_ca_the_target_carries(tmp_path):
    """A remote worker gets the target from the master: its ca_file is a path on the master's machine."""
    certificates = make_certificates(tmp_path / "master", hosts=("localhost",))
    on_master = Target("ivschat", "running-emulator", "wss://localhost:1", "https://localhost:2",
                       ca_file=str(certificates.ca_file), ca_pem=ca_pem_of(str(certificates.ca_file)))
    wire = json.loads(json.dumps(on_master.to_dict()))  # as it travels in --chat-target
    certificates.ca_file.rename(tmp_path / "gone.pem")  # the worker's machine has no such file
    on_worker = Target.from_dict(wire)
    context = target_context(on_worker)  # before: FileNotFoundError, per user
    (opened,) = uvloop.run(_serve_and_connect(certificates, context, "picows"))
    assert opened.tls_ns > 0
    copy = http_verify("https://localhost:2/")  # boto3 / urllib need a file: a private copy of the PEM
    assert copy != on_master.ca_file and Path(copy).read_text() == wire["ca_pem"]
    assert Path(copy).stat().st_mode & 0o077 == 0
    # Verification off reads no CA file at all (it may not exist on this machine).
    unverified = Target("ivschat", "emulator", "wss://127.0.0.1:1", ca_file=str(tmp_path / "absent.pem"),
                        tls_verify=False)
    assert target_context(unverified).verify_mode == ssl.CERT_NONE


def _scenario(tmp_path, target: str):
    from harness.scenario.reader import ScenarioError, load_scenario

    path = tmp_path / "s.toml"
    path.write_text(f"[target]\n{target}\n[[population]]\nkind = \"viewer\"\nusers = 1\n")
    try:
        return load_scenario(path), []
    except ScenarioError as exc:
        return None, exc.problems


ARN = 'room_arns = ["arn:aws:ivschat:us-east-1:123456789012:room/AbCdEfGhIjKl"]'


def test_scenario_tls_keys_name_the_key_and_the_line(tmp_path):
    certificates = make_certificates(tmp_path / "certs")
    (tmp_path / "not.pem").write_text("not a certificate\n")
    running = 'kind = "running-emulator"\nendpoint = "wss://127.0.0.1:1"\ncontrol_endpoint = "https://127.0.0.1:2"'
    scenario, problems = _scenario(tmp_path, f'{running}\nca_file = "certs/ca.pem"')
    assert not problems and scenario.target.ca_file == str(certificates.ca_file)  # relative to the scenario
    _, problems = _scenario(tmp_path, f'{running}\nca_file = "missing.pem"')
    assert len(problems) == 1 and "target.ca_file: cannot read" in problems[0] and "(line 5)" in problems[0]
    _, problems = _scenario(tmp_path, f'{running}\nca_file = "not.pem"')
    assert "target.ca_file:" in problems[0] and "not a PEM certificate file" in problems[0]
    _, problems = _scenario(tmp_path, f'{running}\ntls = true')
    assert "target.tls: is for kind \"emulator\"" in problems[0]
    scenario, problems = _scenario(tmp_path, 'kind = "emulator"\ntls = true')
    assert not problems and scenario.tls
    _, problems = _scenario(tmp_path, f'kind = "ivschat"\nendpoint = "wss://edge.ivschat.us-east-1.amazonaws.com"\n'
                                      f'{ARN}\ntls_verify = false')
    assert "target.tls_verify: certificate checks stay on" in problems[0]
    _, problems = _scenario(tmp_path, f'kind = "ivschat"\nendpoint = "ws://edge.ivschat.us-east-1.amazonaws.com"\n{ARN}')
    assert "target.endpoint" in problems[0] and "wss://" in problems[0]
    _, problems = _scenario(tmp_path, 'service = "ivsrealtime"\nkind = "ivsrealtime"\nendpoint = "ws://x:1"\n'
                                      'stage_arns = ["arn:aws:ivs:us-east-1:123456789012:stage/AbCdEfGhIjKl"]')
    assert any("target.endpoint" in p and "wss:// only" in p for p in problems), problems


# -- the session: a reconnect offers the user's own TLS session; a refused certificate ends the tries ------


class RetryAtOnce:
    """A policy that would retry any failure and come back after any drop at once."""

    def after_failure(self, attempt):
        return 0.0

    def after_drop(self):
        return 0.0

    def reconnect_after(self, code, clean):
        return True


def _tls_session_run(certificates, client_context, until, refuse=()):
    """A session against a wss:// server; the handshakes numbered in `refuse` (1: the first) get HTTP 503."""
    from tests.test_session_contract import ScriptedService, _session, _until

    connections = []
    handshakes = []

    def process_request(connection, request):
        handshakes.append(request)
        return connection.respond(503, "busy\n") if len(handshakes) in refuse else None

    async def handler(ws):  # the first connection is dropped abruptly once ready; the next ones stay
        connections.append(ws)
        await ws.send(b"ready")
        if len(connections) == 1:
            await asyncio.sleep(0.05)
            ws.transport.abort()
        await ws.wait_closed()

    async def main():
        async with serve(handler, "127.0.0.1", 0, ssl=certificates.server_context(),
                         process_request=process_request) as server:
            session, runtime = _session(ScriptedService(), f"wss://localhost:{server.sockets[0].getsockname()[1]}",
                                        RetryAtOnce())
            runtime.ssl_context = client_context
            session.start()
            await _until(lambda: until(session, runtime))
            session.stop()
            await _until(lambda: session.state == "stopped")
            return runtime, len(connections)
    return uvloop.run(main())


def test_a_session_that_reconnects_resumes_its_own_tls_session(tmp_path):
    certificates = make_certificates(tmp_path, hosts=("localhost",))
    runtime, connections = _tls_session_run(certificates, build_context(str(certificates.ca_file)),
                                            lambda session, runtime: runtime.connect_outcomes.count(None) >= 2)
    summary = runtime.recorder.summary()
    assert connections == 2 and summary["histograms"]["connect.tls"]["count"] == 2
    assert summary["counters"]["tls_resumed"] == 1, "the reconnect resumed; the first connect could not"
    assert summary["histograms"]["connect.tls_wait"]["count"] == 2  # each connect's wait for a TLS place


def test_a_reconnect_whose_first_try_fails_still_offers_its_tls_session(tmp_path):
    certificates = make_certificates(tmp_path, hosts=("localhost",))
    runtime, connections = _tls_session_run(certificates, build_context(str(certificates.ca_file)),
                                            lambda session, runtime: runtime.connect_outcomes.count(None) >= 2,
                                            refuse={2})  # the first reconnect try: HTTP 503
    assert runtime.connect_outcomes == [None, "HTTP 503", None] and connections == 2
    assert runtime.recorder.summary()["counters"]["tls_resumed"] == 1, "the second try resumed too"


def test_a_connect_queued_for_a_tls_place_is_not_timed_out_by_the_wait(tmp_path):
    """The wait for one of the loop's TLS_IN_FLIGHT places is before the connect's timeout starts."""
    from harness.net.tls import TLS_IN_FLIGHT, TlsPhase

    certificates = make_certificates(tmp_path, hosts=("localhost",))
    context = build_context(str(certificates.ca_file))

    async def main():
        async with serve(_hello, "127.0.0.1", 0, ssl=certificates.server_context()) as server:
            port = server.sockets[0].getsockname()[1]
            holders = [TlsPhase() for _ in range(TLS_IN_FLIGHT)]
            for holder in holders:
                await holder.begin()
            listener = Listener()
            queued = asyncio.ensure_future(connect(ConnectParams(f"wss://localhost:{port}/"), listener, timeout=0.2,
                                                   ssl_context=context))
            await asyncio.sleep(0.4)  # twice the timeout, every place taken
            assert not queued.done(), "a connect waiting for a place was given up (or ran) anyway"
            for holder in holders:
                holder.done()
            ws = await asyncio.wait_for(queued, 5)
            assert await asyncio.wait_for(listener.frames.get(), 5) == b"hello"
            ws.close()
    uvloop.run(main())


def test_a_refused_certificate_is_tried_once_whatever_the_policy(tmp_path):
    certificates = make_certificates(tmp_path, hosts=("localhost",), not_before=NOW - datetime.timedelta(days=3),
                                     not_after=NOW - datetime.timedelta(days=1))
    runtime, connections = _tls_session_run(certificates, build_context(str(certificates.ca_file)),
                                            lambda session, runtime: session.state == "stopped")
    assert runtime.connect_outcomes == ["TLS certificate expired"] and runtime.gave_up == ["refused"]
    assert runtime.recorder.totals()["counters"]["refused.tls"] == 1 and connections == 0
