"""The report document, its atomic writing, the secret scan, the HTML and comparison pages, and the
`chatload report` / `chatload compare` commands (without a browser: see test_report_browser.py)."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
from pathlib import Path

import pytest

from harness.metrics.histograms import LatencyHistogram
from harness.report import cli
from harness.report.compare import render_compare_html
from harness.report.document import (
    SCHEMA,
    build_report,
    find_secrets,
    overall_verdict,
)
from harness.report.figures import percentile_series
from harness.report.html_kit import plotly_js
from harness.report.run_page import render_html
from harness.report.writing import write_report

DATA = Path(__file__).parent / "data"

SCENARIO = {"name": "default", "file": "scenarios/default.toml",
            "as_run": {"name": "default", "description": "Viewers, chatters and a moderator in one room.",
                       "duration_s": 8.0, "populations": [{"kind": "viewer", "users": 24},
                                                          {"kind": "chatter", "users": 6}]}}
CHECKS = [
    {"name": "delivery p99", "rule": "delivery.p99 < 250 ms", "metric": "latency_us.delivery.p99", "op": "<",
     "expected": 250, "observed": 8.375, "unit": "ms", "verdict": "pass", "detail": ""},
    {"name": "no loss", "rule": "accounting.lost == 0", "metric": "accounting.totals.lost", "op": "==",
     "expected": 0, "observed": 0, "unit": "", "verdict": "pass", "detail": ""},
]
FAULTS = [{"at_s": 3.0, "applied_at_s": 3.04, "action": "drop", "fraction": 0.2, "mode": "abrupt",
           "result": {"dropped": 6}}]


def sample_results() -> dict:
    """A real `chatload.results/1` document from a 30-user Locust run against the emulator."""
    return json.loads((DATA / "sample-results.json").read_text())


def degraded_results() -> dict:
    """The sample with everything that goes wrong: rejections, drops and reconnects, loss, protocol
    errors (one with markup in it), a saturated harness."""
    results = sample_results()
    counters = results["counters"]
    counters.update({"rejected.429": 37, "errors.429": 37, "closes.1006": 6, "closes.1000": 30, "reconnects": 6,
                     "connect_failures.refused": 2, "token_fetch_failures.throttled": 1, "timeouts.send": 3,
                     "protocol_errors": 2})
    for i, row in enumerate(results["timeline"]):
        if i in (3, 4):
            row["counters"].update({"rejected.429": 18 + i - 3, "errors.429": 18 + i - 3})
        if i == 3:
            row["counters"].update({"closes.1006": 6, "reconnects": 6, "connect_failures.refused": 2,
                                    "timeouts.send": 3, "protocol_errors": 2, "token_fetch_failures.throttled": 1})
            row["connections_open"] = 24
        if row.get("delivery") and i == 4:
            row["delivery"].update(p99_us=48_000, max_us=91_000)
    totals = results["accounting"]["totals"]
    totals.update(lost=12, duplicates=3, out_of_order=1, delivered=totals["expected"] - 12 - 4,
                  unconfirmed_at_disconnect=4, rejected=37, rejected_by_code={"429": 37})
    receivers = results["accounting"]["per_receiver"]
    for rid in list(receivers)[:3]:
        receivers[rid].update(lost=4, duplicates=1, delivered=receivers[rid]["expected"] - 4)
    results["accounting"]["worst_pairs"] = [{"receiver": rid, "sender": "f55d7d9", "lost": 4}
                                            for rid in list(receivers)[:3]]
    results["health"] = {"per_process": {"local": {"loop_lag_max_us": 81_000, "loop_lag_mean_us": 2_100,
                                                   "cpu_percent": 97.5, "hub_stall_max_us": 65_549}},
                         "saturated": True, "reasons": ["local: loop_lag_max_us reached 81000 (limit 50000)",
                                                        "local: cpu_percent reached 97.5 (limit 90.0)"]}
    results["protocol_error_samples"] = ['unexpected frame type "WAT": {"Type": "WAT"} <script>alert(1)</script>']
    # A slower run: every delivery 3x later (re-recorded from the decoded histogram).
    slow = LatencyHistogram()
    original = LatencyHistogram.decode(results["histograms"]["delivery"])
    values = original.percentiles([i / 10 for i in range(1001)])
    for value in values.values():
        for _ in range(max(1, original.count // 1000)):
            slow.record(value * 3)
    slow.record(91_000)
    results["histograms"]["delivery"] = slow.encode()
    results["latency_us"]["delivery"] = slow.summary()
    results["complete"] = False
    return results


def report(**overrides) -> dict:
    arguments = {"scenario": SCENARIO, "checks": CHECKS, "complete": True, "faults": FAULTS}
    arguments.update(overrides)
    return build_report(sample_results(), **arguments)


# -- the document -----------------------------------------------------------------------------------------


def test_report_keeps_every_results_key_and_adds_its_own():
    results = sample_results()
    original = copy.deepcopy(results)
    built = build_report(results, scenario=SCENARIO, checks=CHECKS, complete=True, faults=FAULTS)
    assert results == original, "build_report must not modify the results"
    assert built["schema"] == SCHEMA == "chatload.report/1"
    assert built["results_schema"] == "chatload.results/1"
    for key, value in original.items():
        if key not in ("schema", "metadata"):
            assert built[key] == value, key
    for key, value in original["metadata"].items():
        assert built["metadata"][key] == value, key
    assert built["scenario"] == SCENARIO
    assert built["checks"] == CHECKS
    assert built["check_counts"] == {"pass": 2, "fail": 0, "error": 0}
    assert built["verdict"] == "pass"
    assert built["complete"] is True and built["incomplete_reason"] is None
    assert built["faults"] == FAULTS
    meta = built["metadata"]
    assert meta["started_at"] == "2026-11-22T05:55:31.256627Z"
    assert meta["ended_at"] == "2026-11-22T05:55:39.827754Z"
    assert meta["duration_s"] == pytest.approx(8.571, abs=0.001)
    versions = meta["versions"]
    assert set(versions) >= {"chatload", "locust", "websockets", "uvloop", "python"}
    assert all(re.match(r"\d+\.\d+", versions[k]) for k in ("chatload", "locust", "websockets", "uvloop", "python"))
    json.dumps(built, allow_nan=False)  # plain JSON


def test_versions_given_by_the_caller_win_and_the_rest_are_filled_in():
    built = report(versions={"locust": "9.9.9", "extra": "1"})
    assert built["metadata"]["versions"]["locust"] == "9.9.9"
    assert built["metadata"]["versions"]["extra"] == "1"
    assert built["metadata"]["versions"]["websockets"]


@pytest.mark.parametrize(("verdicts", "expected"), [
    ([], "none"),
    (["pass", "pass"], "pass"),
    (["pass", "fail"], "fail"),
    (["pass", "error"], "error"),
    (["fail", "error", "pass"], "error"),
])
def test_verdict(verdicts, expected):
    checks = [{**CHECKS[0], "name": f"check {i}", "verdict": v} for i, v in enumerate(verdicts)]
    built = report(checks=checks)
    assert built["verdict"] == expected == overall_verdict(checks)
    assert built["check_counts"] == {v: verdicts.count(v) for v in ("pass", "fail", "error")}


def test_a_check_with_an_unknown_verdict_is_refused():
    with pytest.raises(ValueError, match=r"checks\[0\].*verdict must be one of pass, fail, error"):
        report(checks=[{**CHECKS[0], "verdict": "ok"}])


def test_incomplete_run_keeps_its_reason():
    built = report(complete=False, incomplete_reason="interrupted (Ctrl-C)")
    assert built["complete"] is False and built["incomplete_reason"] == "interrupted (Ctrl-C)"
    assert report(complete=False)["incomplete_reason"] == "not given"


def test_non_finite_numbers_become_null():
    built = report(checks=[{**CHECKS[0], "observed": float("nan"), "verdict": "error"}])
    assert built["checks"][0]["observed"] is None
    json.dumps(built, allow_nan=False)


def test_wrong_results_schema_is_refused():
    with pytest.raises(ValueError, match="results schema"):
        build_report({"schema": "something/1"}, scenario=None, checks=[], complete=True)


# -- the secret scan --------------------------------------------------------------------------------------

TOKEN = "AQICAHh" + "x7Yq_9-Zk2" * 8
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
JWT = ("eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9.eyJyZXNvdXJjZSI6ImFybjphd3M6aXZzIiwianRpIjoiYWJjIn0."
       "MGUCMQDz1x9Q2V7bYwVOm2c3Q4bKq_8Y7pQ")
PRIVATE_KEY = "-----BEGIN EC PRIVATE KEY-----\nMIGkAgEBBDA\n-----END EC PRIVATE KEY-----\n"


@pytest.mark.parametrize(("where", "secret", "kind"), [
    ("options", TOKEN, "an IVS chat token"),
    ("options", f"token={TOKEN}", "an IVS chat token"),
    ("options", ACCESS_KEY, "an AWS access key id"),
    ("options", f"key:{ACCESS_KEY}", "an AWS access key id"),
    ("options", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "an AWS secret access key"),
    ("scenario", TOKEN, "an IVS chat token"),
    ("check", ACCESS_KEY, "an AWS access key id"),
    ("fault", TOKEN, "an IVS chat token"),
    ("key", TOKEN, "an IVS chat token"),
    ("options", JWT, "a JSON Web Token"),
    ("check", f"token {JWT} refused", "a JSON Web Token"),
    ("scenario", PRIVATE_KEY, "a private key"),
])
def test_secret_scan_refuses_a_report_with_a_secret(where, secret, kind):
    results = sample_results()
    arguments = {"scenario": SCENARIO, "checks": CHECKS, "complete": True, "faults": FAULTS}
    if where == "options":
        results["metadata"]["options"]["chat_tokens"] = secret
    elif where == "scenario":
        arguments["scenario"] = {**SCENARIO, "as_run": {"target": {"token": secret}}}
    elif where == "check":
        arguments["checks"] = [{**CHECKS[0], "detail": f"saw {secret}"}]
    elif where == "fault":
        arguments["faults"] = [{**FAULTS[0], "result": [secret]}]
    else:
        results["counters"][secret] = 1
    with pytest.raises(ValueError, match="refusing to write a report holding secrets") as refused:
        build_report(results, **arguments)
    assert kind in str(refused.value)
    assert secret not in str(refused.value) and ACCESS_KEY not in str(refused.value), "never echo the secret"
    assert "wJalrXUtnFEMI" not in str(refused.value)


def test_secret_scan_names_where_it_found_the_secret():
    results = sample_results()
    results["metadata"]["options"]["chat_tokens"] = TOKEN
    assert find_secrets(results) == [("$.metadata.options.chat_tokens", "an IVS chat token")]


def test_secret_scan_does_not_fire_on_real_data():
    # Encoded histograms are long base64 strings: no false positive on thousands of them.
    hist = LatencyHistogram()
    findings = []
    for i in range(2000):
        hist.record(1 + (i * 7919) % 1_000_000)
        findings += find_secrets({"h": hist.encode()})
    assert findings == []
    assert find_secrets(sample_results()) == []
    assert find_secrets({"a": "AQICAH-too-short", "b": "AKIA1234", "c": "xAKIAIOSFODNN7EXAMPLE"}) == []


def test_write_report_refuses_secrets_too(tmp_path):
    built = report()
    built["metadata"]["options"]["chat_tokens"] = TOKEN
    with pytest.raises(ValueError, match="secrets"):
        write_report(tmp_path, built)
    assert list(tmp_path.iterdir()) == []


# -- writing ----------------------------------------------------------------------------------------------


def test_write_report_writes_json_and_html(tmp_path):
    built = report()
    json_path, html_path = write_report(tmp_path / "run", built)
    assert json_path == tmp_path / "run" / "report.json" and html_path == tmp_path / "run" / "report.html"
    assert json.loads(json_path.read_text()) == built
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.html", "report.json"]
    assert json_path.stat().st_mode & 0o777 == 0o644


class Exploding:
    """Fails serialisation after part of the document has been written."""


def test_a_crash_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    built = report()
    real_dump = json.dump

    def dump_then_crash(document, f, **kwargs):
        real_dump({**document, "zzz_last": Exploding()}, f, **kwargs)  # dies after writing most keys

    monkeypatch.setattr(json, "dump", dump_then_crash)
    with pytest.raises(TypeError, match="Exploding"):
        write_report(tmp_path, built)
    assert list(tmp_path.iterdir()) == [], "neither a partial report.json nor a temporary file may remain"

    # A previous report survives a crashed rewrite untouched.
    monkeypatch.setattr(json, "dump", real_dump)
    write_report(tmp_path, built)
    before = (tmp_path / "report.json").read_bytes()
    monkeypatch.setattr(json, "dump", dump_then_crash)
    with pytest.raises(TypeError):
        write_report(tmp_path, report(checks=[]))
    assert (tmp_path / "report.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]


def test_the_json_survives_a_failed_html_rendering(tmp_path, monkeypatch):
    import harness.report.writing

    def broken(report):
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(harness.report.writing, "render_html", broken)
    with pytest.raises(RuntimeError, match="renderer bug"):
        write_report(tmp_path, report())
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert json.loads((tmp_path / "report.json").read_text())["schema"] == SCHEMA


def test_a_crash_at_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def crash(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        write_report(tmp_path, report())
    assert list(tmp_path.iterdir()) == []


# -- HTML -------------------------------------------------------------------------------------------------


def test_html_is_self_contained_with_every_section_and_chart():
    page = render_html(report())
    assert page.startswith("<!DOCTYPE html>")
    assert plotly_js() in page and len(plotly_js()) > 3_000_000  # plotly.js inline
    ours = page.replace(plotly_js(), "")
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", ours), "must open offline"
    for chart in ("latency-distribution", "latency-over-time", "throughput", "connections"):
        assert f'id="chart-{chart}" class="chart" data-chart="{chart}"' in page
    assert 'id="chart-errors" class="chart nodata"' in page  # no errors in the sample
    for section in ("checks", "numbers", "latency", "over-time", "throughput", "connections", "errors", "health",
                    "accounting", "faults", "scenario", "clocks"):
        assert f'id="{section}"' in page, section
    assert "COMPLETE" in page and ">PASS<" in page
    assert "Viewers, chatters and a moderator in one room." in page
    assert "WARNING" not in page


def test_html_escapes_everything_from_the_document():
    built = build_report(degraded_results(), scenario={**SCENARIO, "name": "<img src=x onerror=alert(1)>"},
                         checks=[{**CHECKS[0], "detail": "</script><script>alert(2)</script>"}], complete=False,
                         incomplete_reason="<b>interrupted</b>", faults=[{**FAULTS[0], "action": "<i>drop</i>"}])
    page = render_html(built)
    body = page.split("</style>", 1)[1].split("<script>", 1)[0] + page.rsplit("</script>\n<script>", 2)[-2]
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(2)</script>" not in page
    assert "<b>interrupted</b>" not in page
    assert "<i>drop</i>" not in body
    data = page.split('<script type="application/json" id="chart-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data
    json.loads(data)


def test_html_shows_expected_and_observed_of_each_check():
    checks = [*CHECKS, {"name": "loss band", "rule": "loss between 40% and 60%", "metric": "accounting.loss",
                        "op": "between", "expected": [40, 60], "observed": None, "unit": "%", "verdict": "error",
                        "detail": "missing from the report: accounting"}]
    page = render_html(report(checks=checks))
    assert "&lt; 250 ms" in page and "8.375 ms" in page
    assert "between 40 and 60 %" in page and "missing from the report: accounting" in page
    assert page.count('class="badge pass"') == 2 and page.count('class="badge error"') == 1
    assert '<span class="badge error large">ERROR</span>' in page


def test_html_warns_when_the_harness_saturated():
    page = render_html(build_report(degraded_results(), scenario=SCENARIO, checks=CHECKS, complete=False,
                                    incomplete_reason="interrupted (Ctrl-C)"))
    assert "WARNING: the harness itself saturated — latency figures include harness queueing" in page
    assert 'id="banner-saturated"' in page and "INCOMPLETE" in page
    assert 'data-chart="errors"' in page
    assert "loop_lag_max_us reached 81000" in page


def test_html_without_data_says_so():
    results = sample_results()
    results.update(histograms={}, latency_us={}, timeline=[], counters={}, accounting=None, merge_check={},
                   health={"per_process": {}, "saturated": False, "reasons": []}, protocol_error_samples=[])
    page = render_html(build_report(results, scenario=None, checks=[], complete=True))
    assert "data-chart=" not in page
    # Sections with nothing to say are left out, and so are their links (issue 24, point 4).
    assert page.count('class="chart nodata"') == 0
    for empty in ("latency", "over-time", "throughput", "connections", "rate-limits", "reconnects", "errors",
                  "accounting", "faults", "scenario"):
        assert f'id="{empty}"' not in page and f'href="#{empty}"' not in page, empty
    assert "No checks" in page and "NO CHECKS" in page


def test_a_results_document_renders_as_a_report_without_checks():
    page = render_html(sample_results())
    assert "NO CHECKS" in page and 'data-chart="latency-distribution"' in page


def test_latency_distribution_iterates_the_histogram_not_the_summary():
    results = sample_results()
    series = percentile_series(results["histograms"]["delivery"])
    summary = results["latency_us"]["delivery"]
    assert len(series["x"]) > 40, "many percentiles, not the six summary points"
    assert series["x"][0] == 1 and series["p"][0] == "0"
    assert series["y"][0] == summary["min"] / 1000
    assert series["y"][-1] == summary["max"] / 1000
    assert series["y"] == sorted(series["y"])
    at = dict(zip(series["p"], series["y"], strict=True))
    assert at["90"] == summary["percentiles"]["90"] / 1000
    assert at["99"] == summary["percentiles"]["99"] / 1000
    assert percentile_series(None) is None and percentile_series(LatencyHistogram().encode()) is None


# -- compare ----------------------------------------------------------------------------------------------


def test_compare_shows_deltas_coloured_better_and_worse():
    a = build_report(sample_results(), scenario=SCENARIO, checks=CHECKS, complete=True)
    b = build_report(degraded_results(), scenario=SCENARIO, checks=[{**CHECKS[0], "verdict": "fail",
                                                                      "observed": 412.0}], complete=True)
    page = render_compare_html(a, b)
    assert 'data-chart="compare-distribution"' in page and 'data-chart="compare-latency-over-time"' in page
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>([^<]+)</td>.*?</tr>", page)}
    assert "+12" in rows["lost"] and "worse" in rows["lost"]
    assert "worse" in rows["delivery p99"] and "%" in rows["delivery p99"]
    assert "+37" in rows["rejected"] and "worse" in rows["rejected"]
    assert "better" not in rows["messages sent"] and "worse" not in rows["messages sent"]  # load, not outcome
    reverse = render_compare_html(b, a)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>([^<]+)</td>.*?</tr>", reverse)}
    assert "better" in rows["lost"] and "−12" in rows["lost"] and "−100.0 %" in rows["lost"]
    assert "412" in page and ">FAIL<" in page and ">PASS<" in page
    assert "WARNING (run B)" in page


# -- the commands -----------------------------------------------------------------------------------------


def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chatload")
    commands = parser.add_subparsers(dest="command")
    cli.add_report_arguments(commands.add_parser("report"))
    cli.add_compare_arguments(commands.add_parser("compare"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_report_command_renders_next_to_the_json(tmp_path, capsys):
    json_path, _ = write_report(tmp_path, report())
    (tmp_path / "report.html").unlink()
    assert run_command(["report", str(json_path)]) == 0
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert str(tmp_path / "report.html") in capsys.readouterr().out
    assert run_command(["report", str(json_path), "-o", str(tmp_path / "elsewhere" / "x.html")]) == 0
    assert (tmp_path / "elsewhere" / "x.html").exists()


def test_report_command_accepts_a_results_document(tmp_path):
    results = tmp_path / "results.json"
    results.write_text((DATA / "sample-results.json").read_text())
    assert run_command(["report", str(results)]) == 0
    assert "NO CHECKS" in (tmp_path / "results.html").read_text()


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file"),
    ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ("[1, 2]", "not a chatload report: the JSON is a list"),
    ('{"schema": "chatload.bench/1"}', "wrong schema 'chatload.bench/1': expected 'chatload.report/1' or "
                                       "'chatload.results/1'"),
    ("{}", "wrong schema None"),
    (b"\xff\xfe{}", "not JSON (not UTF-8 text"),
])
def test_report_command_errors_name_the_file_and_the_reason(tmp_path, capsys, content, reason):
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert run_command(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"chatload report: {path}: {reason}" in err
    assert not (tmp_path / "bad.html").exists()


def test_report_command_refuses_a_document_holding_a_secret(tmp_path, capsys):
    built = report()
    built["metadata"]["options"]["chat_tokens"] = TOKEN
    path = tmp_path / "report.json"
    path.write_text(json.dumps(built))
    assert run_command(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "looks like an IVS chat token" in err and TOKEN not in err


def test_report_command_on_a_malformed_report(tmp_path, capsys):
    built = report()
    built["timeline"] = [{"t": "not a number"}]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(built))
    assert run_command(["report", str(path)]) == 2
    assert f"chatload report: {path}: cannot render it" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_report_command_on_a_directory(tmp_path, capsys):
    assert run_command(["report", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err


def test_compare_command(tmp_path, capsys, monkeypatch):
    a, _ = write_report(tmp_path / "a", report())
    b = tmp_path / "results.json"
    b.write_text(json.dumps(degraded_results()))
    out = tmp_path / "cmp" / "compare.html"
    assert run_command(["compare", str(a), str(b), "-o", str(out)]) == 0
    assert "Δ" in out.read_text() and str(out) in capsys.readouterr().out
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_command(["compare", str(a), str(b)]) == 0
    # Beside B (the newer run), never into whatever folder the command ran in, and the whole path shown.
    assert (tmp_path / "compare.html").exists() and not list(elsewhere.iterdir())
    assert capsys.readouterr().out.strip() == str((tmp_path / "compare.html").resolve())


def test_compare_command_errors(tmp_path, capsys):
    a, _ = write_report(tmp_path, report())
    missing = tmp_path / "missing.json"
    assert run_command(["compare", str(a), str(missing), "-o", str(tmp_path / "c.html")]) == 2
    assert f"chatload compare: {missing}: no such file" in capsys.readouterr().err
    assert not (tmp_path / "c.html").exists()
