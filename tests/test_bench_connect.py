"""`chatload bench connect --tls --quick` through the real CLI: a TLS connect ramp in chatload and in
bare picows against an emulator serving wss:// with its own CA, and the resumption part."""

from __future__ import annotations

import orjson
import pytest

from harness.cli import main


@pytest.mark.timeout(240)
def test_bench_connect_tls_quick(tmp_path, capsys):
    report = tmp_path / "connect.json"
    code = main(["bench", "connect", "--tls", "--quick", "--json", str(report)])
    out = capsys.readouterr().out
    assert code in (0, 1), out  # PASS or SHORT: figures on a shared machine; 2/3 would be a failure
    document = orjson.loads(report.read_bytes())
    assert document["benchmark"] == "connect" and document["options"]["tls"] is True
    assert "longest stall during the ramp" in out and "CPU per connect, chatload / bare picows" in out
    runs = {r["client"]: r for r in document["runs"]}
    assert set(runs) == {"harness", "bare_picows"}
    for run in runs.values():
        assert run["connects_per_s"] > 0 and run["cpu_us_per_connect"] > 0 and run["loop_stall_max_ms"] > 0
    (entry,) = document["summary"]
    (ratio,) = entry["cpu_ratio"]["values"]  # one repeat: the ratio of the two runs' own figures
    assert ratio == pytest.approx(runs["harness"]["cpu_us_per_connect"] / runs["bare_picows"]["cpu_us_per_connect"])
    (resumption,) = document["resumption"]
    # Full handshakes first (no session offered), then every reconnect resumed its own session.
    assert resumption["full"]["resumed"] == 0 and resumption["resumed"]["resumed"] == resumption["n"] > 0
