"""The report's secret scan knows JSON Web Tokens (the connect tokens of services whose customers
sign their own, e.g. Hotsock): a report holding one is refused, and the refusal never repeats it."""

from __future__ import annotations

import jwt
import pytest

from harness.metrics.histograms import LatencyHistogram
from harness.report.document import build_report, find_secrets
from tests.test_report import CHECKS, SCENARIO, sample_results

TOKEN = jwt.encode({"exp": 1_900_000_000, "scope": "connect", "uid": "subscriber-a1b2c3"}, "k" * 64,
                   algorithm="HS256")


def test_a_report_holding_a_jwt_is_refused_without_repeating_it():
    results = sample_results()
    results["protocol_error_samples"] = [f"handshake refused for wss://h/v1?token={TOKEN}"]
    assert find_secrets(results) == [("$.protocol_error_samples[0]", "a JSON Web Token")]
    with pytest.raises(ValueError, match="refusing to write a report holding secrets") as refused:
        build_report(results, scenario=SCENARIO, checks=CHECKS, complete=True)
    assert TOKEN not in str(refused.value) and TOKEN.split(".")[2] not in str(refused.value)


def test_the_jwt_pattern_does_not_fire_on_real_data():
    hist = LatencyHistogram()
    findings = []
    for i in range(2000):
        hist.record(1 + (i * 7919) % 1_000_000)
        findings += find_secrets({"h": hist.encode(), "id": "01H2BSNHFJXKF2XDFD8KMM36FF"})
    assert findings == []
    assert find_secrets({"header only": TOKEN.split(".")[0], "two parts": ".".join(TOKEN.split(".")[:2])}) == []
