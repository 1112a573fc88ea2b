"""`chatload bench`: the counting connection on chatload's transports, and a tiny end-to-end run through the real CLI."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import uvloop
from websockets.asyncio.server import serve

from harness.bench.common import report_path, summarize
from harness.bench.counting_connection import Tally, open_counting
from harness.bench.ivschat import emulator_fanout
from harness.cli import main
from harness.net.transport import TRANSPORTS, HandshakeFailed


def _serve(handler, case, **options):
    """Run `case(endpoint)` against a local websockets server running `handler`, on uvloop."""
    async def main():
        async with serve(handler, "127.0.0.1", 0, max_size=None, **options) as server:
            return await case(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    return uvloop.run(main())


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_counting_connection_counts_frames_answers_pings_and_sends(transport):
    texts = [b"a" * 10, b"b" * 300, b"c" * 70_000, b"d"]
    heard: list[str] = []

    async def handler(ws):
        for text in texts[:2]:
            await ws.send(text.decode())
        pong = await ws.ping(b"hi")
        for text in texts[2:]:
            await ws.send(text.decode())
        await asyncio.wait_for(pong, 5)  # the connection answered the ping
        heard.append(ws.subprotocol)
        heard.append(await ws.recv())  # what the sender writes arrives intact (masked by the transport)
        await ws.wait_closed()

    async def case(endpoint):
        tally = Tally()
        seen: list[bytes] = []
        connection = await open_counting(endpoint, tally, token="tok", on_text=seen.append, transport=transport)
        assert connection.is_open and tally.opened == 1
        deadline = asyncio.get_running_loop().time() + 5
        while tally.frames < len(texts) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert tally.frames == connection.frames == len(texts)
        assert tally.bytes == sum(len(t) for t in texts)
        assert seen == texts
        connection.send_text('{"Action": "SEND_MESSAGE"}')
        while len(heard) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        connection.abort()
        await asyncio.sleep(0.05)
        assert tally.lost == 0  # we ended it: not counted as lost

    _serve(handler, case, select_subprotocol=lambda conn, offered: offered[0] if offered else None)
    assert heard == ["tok", '{"Action": "SEND_MESSAGE"}']


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_counting_connection_rejects_a_bad_handshake_and_counts_a_lost_one(transport):
    def refuse(connection, request):
        return connection.respond(403, "nope\n") if request.path == "/refuse" else None

    async def handler(ws):
        ws.transport.abort()  # the server drops an open connection

    async def case(endpoint):
        with pytest.raises(HandshakeFailed) as refused:
            await open_counting(endpoint + "/refuse", Tally(), transport=transport)
        assert isinstance(refused.value, ConnectionError) and refused.value.status == 403
        tally = Tally()
        await open_counting(endpoint, tally, transport=transport)
        deadline = asyncio.get_running_loop().time() + 5
        while not tally.lost and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert tally.lost == 1 and tally.closed_by_server == 0  # no close frame: a drop

    _serve(handler, case, process_request=refuse)


def test_summarize_and_report_paths(tmp_path):
    stats = summarize([1.0, 2.0, None, 4.0])
    assert (stats["median"], stats["min"], stats["max"], stats["n"]) == (2.0, 1.0, 4.0, 3)
    assert stats["spread"] == pytest.approx(1.5)
    assert str(report_path(None, "emulator", "T", False)) == "reports/bench/T-emulator.json"
    assert report_path(str(tmp_path), "emulator", "T", False) == tmp_path / "T-emulator.json"
    assert report_path(str(tmp_path / "x.json"), "emulator", "T", True) == tmp_path / "x-emulator.json"


def test_unknown_benchmark_is_a_usage_error(capsys):
    assert main(["bench", "nonsense"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


@pytest.mark.timeout(180)
def test_bench_emulator_smoke(tmp_path, capsys):
    report = tmp_path / "bench.json"
    code = main(["bench", "emulator", "--rooms-sizes", "50", "--seconds", "1", "--warmup", "0.5",
                 "--repeat", "1", "--json", str(report)])
    out = capsys.readouterr().out
    assert code in (0, 1), out  # PASS or SHORT; never "could not run"
    assert "emulator/bare deliveries per CPU-second" in out

    document = orjson.loads(report.read_bytes())
    assert document["benchmark"] == "emulator"
    assert document["service"] == "ivschat"
    assert document["verdict"] in ("PASS", "SHORT")
    assert {r["server"] for r in document["runs"]} == set(emulator_fanout.SERVERS)
    for run in document["runs"]:
        for field in ("deliveries_per_s", "cpu_us_per_delivery", "deliveries_per_cpu_second",
                      "rss_per_idle_connection_bytes", "server_cpu_share", "limited_by"):
            assert field in run
        assert run["n"] == 50
        assert run["deliveries"] > 0
        messages, frames = run["messages"], run["frames"]
        assert messages["sent"] > 0
        assert messages["accepted"] + sum(messages["rejected"].values()) + messages["unanswered"] == messages["sent"]
        assert frames["expected"] == messages["accepted"] * run["n"]
        assert frames["received"] == frames["expected"]
        assert frames["per_receiver_min"] == frames["per_receiver_max"] == messages["accepted"]
    (entry,) = document["summary"]
    assert entry["n"] == 50
    assert entry["ratio"]["median"] > 0
    assert entry["verdict"] in ("PASS", "SHORT")


# -- the client-side benchmarks: --quick smoke runs through the real CLI -------------------------------


def _quick(tmp_path, capsys, name: str) -> tuple[int, str, dict]:
    report = tmp_path / f"{name}.json"
    code = main(["bench", name, "--quick", "--json", str(report)])
    out = capsys.readouterr().out
    document = orjson.loads(report.read_bytes())
    assert document["benchmark"] == name
    assert document["service"] == "ivschat"  # every benchmark names the service it ran on
    assert document["schema_version"] == 1
    assert document["options"]["quick"] is True
    assert document["machine"]["cpus"] >= 1
    return code, out, document


def test_ratio_verdict_conventions():
    from harness.bench.ivschat.rig import ratio_verdict

    below = ratio_verdict([0.9, 1.0, 0.95], 1.3, higher_is_better=False, repeats=3)
    assert below["verdict"] == "PASS" and below["reliable"] and below["ratio"]["median"] == 0.95
    straddling = ratio_verdict([1.2, 1.4, 1.25], 1.3, higher_is_better=False, repeats=3)
    assert straddling["verdict"] == "PASS" and not straddling["reliable"]
    above = ratio_verdict([1.7, 1.8], 1.6, higher_is_better=True, repeats=2)
    assert above["verdict"] == "PASS" and any("indicative" in w for w in above["warnings"])


@pytest.mark.timeout(240)
def test_bench_receive_quick(tmp_path, capsys):
    code, out, document = _quick(tmp_path, capsys, "receive")
    assert code in (0, 1), out
    assert "harness/bare picows CPU per frame" in out and "harness/bare websockets" in out
    assert "bare picows (baseline)" in out and "bare websockets (baseline)" in out
    assert {r["client"] for r in document["runs"]} == {"harness", "bare_picows", "bare"}
    assert document["options"]["harness_transport"] in ("picows", "websockets")
    assert document["options"]["harness_locust_users"] is True
    for run in document["runs"]:
        for field in ("frames_per_s", "cpu_us_per_frame", "cpu_share", "server_cpu_share", "limited_by"):
            assert field in run
        messages, frames = run["messages"], run["frames_accounting"]
        assert messages["accepted"] > 0 and messages["unanswered"] == 0
        assert frames["expected"] == messages["accepted"] * run["n"]
        assert frames["received"] == frames["expected"]
        assert run["frames"] > 0 and run["cpu_us_per_frame"] > 0
    (entry,) = document["summary"]
    # each ratio is the harness's figure over a baseline's, both from the same repeat of the same stream
    by_client = {r["client"]: r for r in document["runs"]}
    for baseline in ("bare_picows", "bare"):
        (ratio,) = entry["ratios"][baseline]["values"]
        assert ratio == pytest.approx(by_client["harness"]["cpu_us_per_frame"] / by_client[baseline]["cpu_us_per_frame"])
    assert entry["ratio"]["median"] == entry["ratios"]["bare_picows"]["median"]
    assert entry["verdict"] in ("PASS", "SHORT")


@pytest.mark.timeout(240)
def test_bench_memory_quick(tmp_path, capsys):
    code, out, document = _quick(tmp_path, capsys, "memory")
    assert code in (0, 1), out
    assert "RSS per connection incl. its Locust user" in out and "bare picows (baseline)" in out
    assert {r["client"] for r in document["runs"]} == {"harness", "bare_picows", "bare"}
    for run in document["runs"]:
        assert run["connections_open"] == run["n"]
        assert run["rss_after_bytes"] > run["rss_before_bytes"]
        assert run["rss_per_connection_bytes"] > 0
    (entry,) = document["summary"]
    by_client = {r["client"]: r for r in document["runs"]}
    for baseline in ("bare_picows", "bare"):
        (ratio,) = entry["ratios"][baseline]["values"]
        assert ratio == pytest.approx(by_client["harness"]["rss_per_connection_bytes"]
                                      / by_client[baseline]["rss_per_connection_bytes"])
    assert entry["verdict"] in ("PASS", "SHORT")


@pytest.mark.timeout(240)
def test_bench_fidelity_quick(tmp_path, capsys):
    code, out, document = _quick(tmp_path, capsys, "fidelity")
    assert code in (0, 1), out
    assert "added (harness − bare)" in out
    # The baseline stamps as early as a client can (picows' on_ws_frame), as chatload does.
    assert document["baseline"] == "bare picows" and "bare picows (baseline)" in out
    assert document["capacity"]["frames_per_s"] > 0
    assert {r["phase"] for r in document["runs"]} == {"low", "high"}
    for run in document["runs"]:
        samples = run["samples"]
        assert samples["expected_harness"] > 0 and samples["expected_bare"] > 0
        # every accepted message reached every receiver of each client, and was timed exactly once
        assert samples["harness"] == samples["expected_harness"]
        assert samples["bare"] == samples["expected_bare"]
        for client in ("harness", "bare"):
            assert run["frames_accounting"][client]["missing"] == 0
            assert 0 < run["latency_us"][client]["p50"] <= run["latency_us"][client]["p99"]
        assert run["added_p50_us"] == run["latency_us"]["harness"]["p50"] - run["latency_us"]["bare"]["p50"]
    assert document["summary"]["low"]["verdict"] in ("PASS", "SHORT")


@pytest.mark.timeout(240)
def test_bench_hubstall_quick(tmp_path, capsys):
    code, out, document = _quick(tmp_path, capsys, "hubstall")
    assert code in (0, 1), out
    assert "longest hub stall under load" in out
    assert {r["condition"] for r in document["runs"]} == {"idle", "loaded"}
    for run in document["runs"]:
        assert run["wakes"] > 0 and run["max_stall_ms"] is not None and run["max_stall_ms"] >= 0
        if run["condition"] == "loaded":
            frames = run["frames_accounting"]
            assert frames["expected"] == run["messages"]["accepted"] * run["n"] > 0
            assert frames["received"] == frames["expected"]
    (entry,) = document["summary"]
    assert entry["ratio"]["median"] is None or entry["ratio"]["median"] > 0
    assert entry["verdict"] in ("PASS", "SHORT")


@pytest.mark.timeout(240)
def test_bench_scaleout_quick(tmp_path, capsys):
    from harness.bench.ivschat import scaleout

    code, out, document = _quick(tmp_path, capsys, "scaleout")
    assert code in (0, 1), out
    assert "2 processes ÷ 1" in out
    assert sorted(r["processes"] for r in document["runs"]) == [1, 2]
    for run in document["runs"]:
        assert len(run["connections_per_process"]) == run["processes"]
        assert sum(run["connections_per_process"]) == run["n"]
        frames = run["frames_accounting"]
        assert frames["expected"] == run["messages"]["accepted"] * run["n"] > 0
        assert frames["received"] == frames["expected"]
        assert run["frames_per_s"] > 0
    (entry,) = document["summary"]
    assert entry["ratio"]["median"] > 0
    has_cores, _ = scaleout.machine_verdict(2)
    if not has_cores:
        assert entry["verdict"] == "no verdict" and "no verdict" in out
    assert document["verdict"] in ("PASS", "SHORT", "no verdict")
