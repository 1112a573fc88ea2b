"""What a new user trips over (issue: "a run that measured nothing passes, and the numbers don't
reconcile"): the mix option, per-second progress with workers, reconciled counts, units, paths."""

from __future__ import annotations

import json

from .locust_run import results_of, run_locust
from .test_run import chatload, only_report


def test_chat_mix_runs_only_the_named_classes(tmp_path):
    proc = run_locust(tmp_path, "-u", "4", "-r", "4", "-t", "3s", "--chat-mix", "Viewer=1", "--chat-drain", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counters = results_of(tmp_path)["counters"]
    spawned = {k: v for k, v in counters.items() if k.startswith("users_spawned.")}
    assert spawned == {"users_spawned.Viewer": 4}, spawned


def test_chat_mix_that_runs_nothing_is_refused(tmp_path):
    proc = run_locust(tmp_path, "-u", "2", "-r", "2", "-t", "2s", "--chat-mix", "Viewer=0")
    assert proc.returncode != 0 and "every class weight 0" in proc.stderr, proc.stderr[-2000:]


def test_progress_with_two_processes_is_per_second(tmp_path):
    scenario = tmp_path / "two.toml"
    scenario.write_text('[scenario]\nname = "two"\nduration = "7s"\nramp = "3s"\ndrain = "1s"\nprocesses = 2\n'
                        '[[population]]\nkind = "viewer"\nusers = 12\n[[population]]\nkind = "chatter"\nusers = 2\n')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (only_report(tmp_path, "two").parent / "raw" / "progress.jsonl").read_text().splitlines()
    progress = [json.loads(line) for line in lines if '"progress"' in line]
    stamps = [p["interval_t_ns"] for p in progress if p["interval_t_ns"]]
    assert len(stamps) >= 5, progress
    advanced = sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if b > a)
    # Locust's own worker report comes every 3 s: the same interval would repeat two times in three.
    assert advanced >= 0.8 * (len(stamps) - 1), stamps
    assert len({p["connections"] for p in progress[:5]}) >= 3, "connections rise second by second in the ramp"


def test_run_summary_reconciles_counts_and_names_both_files(tmp_path):
    scenario = tmp_path / "small.toml"
    scenario.write_text('[scenario]\nname = "small"\nduration = "4s"\nramp = "1s"\ndrain = "2s"\nprocesses = 1\n'
                        '[[population]]\nkind = "viewer"\nusers = 5\n[[population]]\nkind = "chatter"\nusers = 2\n'
                        'message_rate = 2.0\n[expectations]\nrules = ["lost == 0", "delivery.p99 < 5s", '
                        '"reconnect.p99 < 5s"]\n')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path))
    report_path = only_report(tmp_path, "small")
    # No reconnect happened, so that rule could not be evaluated: the console says why, and the run
    # exits as the gate does on the same report (a check that could not be evaluated is not a pass).
    assert ("[ERROR] reconnect.p99 < 5s  (observed —): missing from the report: reconnect recorded no samples"
            in proc.stdout), proc.stdout
    gate = chatload("gate", str(report_path))
    assert proc.returncode == gate.returncode == 1, (proc.returncode, gate.stdout, proc.stdout + proc.stderr)
    report = json.loads(report_path.read_text())
    totals, latency = report["accounting"]["totals"], report["latency_us"]
    arrivals = latency["delivery"]["count"] + latency["ack"]["count"]
    # The identity the summary states, and the summary states it with the same numbers.
    assert arrivals == (totals["delivered"] + totals["during_handshake"] + totals["unexpected"]
                        + totals["duplicates"])
    assert f"timed {arrivals:,} arrivals ({totals['delivered']:,} delivered" in proc.stdout, proc.stdout
    assert f"{latency['delivery']['count']:,} to other members" in proc.stdout
    assert f"delivered {totals['delivered']:,} of {totals['expected']:,} expected" in proc.stdout
    # Observed values carry their units, as the gate prints them.
    assert "[PASS ] delivery.p99 < 5s  (observed " in proc.stdout
    observed = proc.stdout.split("[PASS ] delivery.p99 < 5s  (observed ")[1].split(")")[0]
    assert observed.endswith(("ms", "s", "µs")), observed
    assert str(report_path) in proc.stdout and str(report_path.with_suffix(".html")) in proc.stdout


def test_headless_locust_ends_with_a_chat_table_in_ms_after_locusts_own(tmp_path):
    proc = run_locust(tmp_path, "-u", "4", "-r", "4", "-t", "3s", "--chat-drain", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    ours, locusts = out.rfind("Chat (chatload)"), out.rfind("Response time percentiles")
    assert locusts != -1 and ours > locusts, "the chat summary comes after Locust's tables"
    table = out[ours:]
    assert "latency (ms)" in table and "delivery (intended send → each other member)" in table
    assert "µs" not in table


def test_a_run_leaves_no_child_log_in_the_temp_folder(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    scenario = tmp_path / "tiny.toml"
    scenario.write_text('[scenario]\nname = "tiny"\nduration = "2s"\nramp = "1s"\ndrain = "1s"\nprocesses = 1\n'
                        '[[population]]\nkind = "chatter"\nusers = 2\n')
    proc = chatload("run", str(scenario), "--report-dir", str(tmp_path), "--quiet",
                    env={**__import__("os").environ, "TMPDIR": str(temp)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(temp.glob("chatload-child-*.log")), list(temp.iterdir())


def test_summary_tells_echo_acks_from_publish_api_answers():
    from harness.report.console import accounting_lines

    def summary(delivered: int, delivery: int, ack: int) -> str:
        report = {"accounting": {"totals": {"delivered": delivered, "expected": delivered}},
                  "latency_us": {"delivery": {"count": delivery}, "ack": {"count": ack}}}
        return "\n".join(accounting_lines(report))

    # IVS Chat: a sender's own copy comes back, is a delivery to it and its ack.
    echoed = summary(delivered=105, delivery=100, ack=5)
    assert "timed 105 arrivals (105 delivered): 100 to other members" in echoed
    assert "5 senders' own echoes" in echoed and "answers" not in echoed
    # Hotsock server publishes: the ack is POST /publish's answer, no frame arrives for it.
    published = summary(delivered=100, delivery=100, ack=5)
    assert "timed 100 arrivals (100 delivered): 100 to other members" in published
    assert "0 senders' own echoes" in published and "5 acks were the service's answers to the sends" in published


def test_ack_is_named_for_every_service_not_as_an_echo():
    # A Hotsock publish is acknowledged by the publish API's answer: no echo comes back to anyone.
    from harness.gate.metrics import describe
    from harness.metrics.histograms import ACK_WORDS
    from harness.report.console import LATENCY_ROWS
    from harness.report.run_sections import LATENCY_MEANING

    shown = [describe("ack.p99"), dict(LATENCY_ROWS)["ack"], LATENCY_MEANING["ack"]]
    assert all("own echo)" not in words or "publish API" in words for words in shown), shown
    assert "publish API" in ACK_WORDS and ACK_WORDS in shown[0] and shown[2] == ACK_WORDS
