"""`chatload capacity`: capacity files, the USL fit, the search's decisions, and a short real search
against the emulator whose knee lands where an artificial per-delivery cost predicts it."""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.capacity.analysis import margin
from harness.capacity.plan import CapacityError, dump_toml, load_plan, step_tables
from harness.capacity.search import CapacitySearch, StepOutcome
from harness.capacity.usl import UslError, fit_usl, usl
from harness.report.html_kit import plotly_js

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[scenario]
name = "cap"
ramp = "1s"
drain = "2s"
processes = 1

[target]
kind = "running-emulator"
endpoint = "ws://127.0.0.1:9"
control_endpoint = "http://127.0.0.1:9"

[[population]]
kind = "viewer"
users = 10

[[population]]
kind = "chatter"
users = 2
"""


def capacity_file(tmp_path: Path, capacity: str, base: str = BASE) -> Path:
    path = tmp_path / "cap.toml"
    path.write_text(base + "\n[capacity]\n" + capacity)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(CapacityError) as caught:
        load_plan(path)
    return str(caught.value)


# -- capacity files -----------------------------------------------------------------------------------


GOOD = 'vary = "room_size"\nsteps = [10, 20, 40]\nhold = "5s"\nobjective = ["delivery.p99 <= 250ms", "lost == 0"]\n'


def test_a_capacity_file_becomes_one_valid_scenario_per_step(tmp_path):
    plan = load_plan(capacity_file(tmp_path, GOOD))
    assert plan.spec.vary == "room_size" and plan.spec.population == 0  # the first viewer population grows
    assert [s.value for s in plan.steps] == [10, 20, 40]
    assert [s.room_size for s in plan.steps] == [12, 22, 42]
    first = plan.steps[0].scenario
    assert first.name == "cap-step01" and first.duration_s == 6.0  # ramp 1 s + hold 5 s
    assert first.expectations == ["delivery.p99 <= 250ms", "lost == 0"]  # each step's report judges the objective


@pytest.mark.parametrize(("capacity", "expected"), [
    (GOOD + "stepz = [1]\n", r"cap\.toml: capacity\.stepz: unknown key \(did you mean 'steps'\?\)"),
    (GOOD.replace('"room_size"', '"room-size"'), r"capacity\.vary: must be one of room_size, message_rate, rooms"),
    (GOOD.replace("[10, 20, 40]", "[10, 40, 20]"), r"capacity\.steps\[2\]: steps must increase \(40 then 20\)"),
    (GOOD.replace("[10, 20, 40]", "[10, 20.5]"), r"capacity\.steps\[1\]: must be a whole number"),
    (GOOD.replace("[10, 20, 40]", "[]"), r"capacity\.steps: must be a non-empty list"),
    (GOOD.replace("[10, 20, 40]", "[0, 10]"), r"capacity\.steps\[0\]: must be more than 0"),
    (GOOD.replace("[10, 20, 40]", '"10, 20"'), r"capacity\.steps: must be a non-empty list"),
    (GOOD + "start = 10\n", r"capacity\.steps: give either steps or start/max"),
    (GOOD.replace("steps = [10, 20, 40]\n", "start = 10\nmax = 40\n"), r"capacity\.factor: give exactly one of"),
    (GOOD.replace("steps = [10, 20, 40]\n", ""), r"capacity\.steps: is required"),
    (GOOD.replace('hold = "5s"\n', ""), r"capacity\.hold: is required"),
    (GOOD.replace('"5s"', '"5 parsecs"'), r"capacity\.hold: '5 parsecs' is not a duration"),
    (GOOD.replace('"lost == 0"', '"lots == 0"'), r"capacity\.objective\[1\]: 'lots == 0': .*unknown metric"),
    (GOOD.replace('objective = ["delivery.p99 <= 250ms", "lost == 0"]', "objective = []"),
     r"capacity\.objective: is required"),
    (GOOD + "[capacity.emulator]\ndelivery_cost_us = 5\n", r"capacity\.emulator: applies to the embedded emulator"),
    (GOOD + "[capacity.prices]\nper_million_sent = -1\n", r"capacity\.prices\.per_million_sent: must be at least 0"),
    (GOOD + "[capacity.sizing]\ncores = 4\n", r"capacity\.sizing\.cores: unknown key"),
    (GOOD.replace("[10, 20, 40]", "[10, 200000]"),
     r"capacity\.steps\[1\] \(room_size = 200000\) makes an invalid scenario: population\[0\]\.users: must be at most"),
    (GOOD.replace('vary = "room_size"', 'vary = "rooms"\npopulation = 0'), r"capacity\.population: not used"),
    (GOOD.replace('vary = "room_size"', 'vary = "message_rate"\npopulation = 0'),
     r"capacity\.population: population\[0\] is not a chatter"),
])
def test_capacity_file_errors_name_the_file_the_key_and_the_reason(tmp_path, capacity, expected):
    assert re.search(expected, error_of(capacity_file(tmp_path, capacity))), error_of(capacity_file(tmp_path, capacity))


def test_tables_a_capacity_file_must_not_have(tmp_path):
    assert "a [capacity] table is required" in error_of(_write(tmp_path / "plain.toml", BASE))
    assert "expectations: a capacity file judges every step by capacity.objective" in error_of(
        capacity_file(tmp_path, GOOD, BASE + '\n[expectations]\nrules = ["lost == 0"]\n'))
    assert "scenario.duration: a capacity file sets the time of each step with capacity.hold" in error_of(
        capacity_file(tmp_path, GOOD, BASE.replace('ramp = "1s"', 'ramp = "1s"\nduration = "30s"')))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_generated_schedules_end_at_the_ceiling(tmp_path):
    geometric = load_plan(capacity_file(tmp_path, GOOD.replace("steps = [10, 20, 40]", "start = 50\nfactor = 2\nmax = 400")))
    assert geometric.spec.steps == [50, 100, 200, 400]
    linear = load_plan(capacity_file(tmp_path, GOOD.replace("steps = [10, 20, 40]", "start = 10\nincrement = 10\nmax = 35")))
    assert linear.spec.steps == [10, 20, 30, 35]


def test_message_rate_and_rooms_steps_substitute_the_right_quantity(tmp_path):
    rates = load_plan(capacity_file(tmp_path, GOOD.replace('"room_size"', '"message_rate"').replace(
        "[10, 20, 40]", "[0.5, 1, 2.5]")))
    assert [s.scenario.messages.rate_per_chatter for s in rates.steps] == [0.5, 1.0, 2.5]
    assert [rates.load_of(s) for s in rates.steps] == [1.0, 2.0, 5.0]  # offered msg/s of 2 chatters
    rooms = load_plan(capacity_file(tmp_path, GOOD.replace('"room_size"', '"rooms"').replace("[10, 20, 40]", "[1, 3]")))
    third = rooms.steps[1].scenario
    assert third.rooms.count == 3 and [p.users for p in third.populations] == [30, 6]  # users per room kept
    assert rooms.steps[1].room_size == 12


def test_step_documents_round_trip_through_toml(tmp_path):
    plan = load_plan(capacity_file(tmp_path, GOOD))
    tables = step_tables(plan, 2, 20, {"kind": "running-emulator", "endpoint": "ws://h:1", "control_endpoint": "http://h:2"})
    assert tomllib.loads(dump_toml(tables)) == tables
    assert tables["population"][0]["users"] == 20 and tables["target"]["endpoint"] == "ws://h:1"
    assert "capacity" not in tables


def test_the_shipped_capacity_scenarios_load():
    files = sorted((ROOT / "scenarios").glob("capacity-*.toml"))
    assert files
    for file in files:
        plan = load_plan(file)
        assert len(plan.steps) >= 3 and plan.spec.objective


# -- the Universal Scalability Law fit ------------------------------------------------------------------
# Tolerance: noise-free series are recovered to 1e-6 relative; with 0.5 % Gaussian noise on each
# throughput, σ and κ within 10 % relative (or 1e-4 absolute) and the peak N* within 10 %; with 1 %
# noise the peak still within 10 % (it is better determined than σ and κ separately).

SERIES = {
    "peak inside the range": (1000.0, 0.05, 0.0005, [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96]),
    "room sizes": (50.0, 0.002, 5e-6, [25, 50, 100, 150, 200, 300, 400, 500, 600, 800]),
}


def close(found: float, true: float, rel: float, absolute: float = 0.0) -> bool:
    return abs(found - true) <= max(rel * abs(true), absolute)


@pytest.mark.parametrize("name", SERIES)
def test_usl_fit_recovers_exact_parameters(name):
    lam, sigma, kappa, ns = SERIES[name]
    fit = fit_usl(ns, [usl(n, lam, sigma, kappa) for n in ns])
    assert close(fit.lam, lam, 1e-6) and close(fit.sigma, sigma, 1e-6) and close(fit.kappa, kappa, 1e-6)
    assert close(fit.peak_load, math.sqrt((1 - sigma) / kappa), 1e-6) and fit.r2 == pytest.approx(1.0)


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("seed", range(5))
def test_usl_fit_recovers_parameters_from_noisy_series(name, seed):
    lam, sigma, kappa, ns = SERIES[name]
    peak = math.sqrt((1 - sigma) / kappa)
    rng = random.Random(seed)
    fit = fit_usl(ns, [usl(n, lam, sigma, kappa) * (1 + rng.gauss(0, 0.005)) for n in ns])
    assert close(fit.sigma, sigma, 0.10, 1e-4), fit
    assert close(fit.kappa, kappa, 0.10, 1e-4), fit
    assert close(fit.peak_load, peak, 0.10), fit
    assert fit.r2 > 0.99
    rng = random.Random(seed)
    noisier = fit_usl(ns, [usl(n, lam, sigma, kappa) * (1 + rng.gauss(0, 0.01)) for n in ns])
    assert close(noisier.peak_load, peak, 0.10), noisier


def test_usl_fit_of_a_plateau_and_of_linear_scaling():
    ns = [10, 20, 40, 80, 160, 320]
    plateau = fit_usl(ns, [usl(n, 100.0, 0.01, 0.0) for n in ns])
    assert plateau.kappa == pytest.approx(0, abs=1e-12) and plateau.peak_load is None
    assert plateau.asymptote == pytest.approx(100 / 0.01, rel=1e-6)
    linear = fit_usl(ns, [7.0 * n for n in ns])
    assert linear.sigma == pytest.approx(0, abs=1e-9) and linear.kappa == pytest.approx(0, abs=1e-12)
    assert linear.lam == pytest.approx(7.0)


def test_usl_fit_refuses_what_it_cannot_fit():
    with pytest.raises(UslError, match="at least 3 different loads"):
        fit_usl([1, 2, 2], [1, 2, 2])
    with pytest.raises(UslError, match="more than 0"):
        fit_usl([0, 1, 2], [0, 1, 2])


# -- the search's decisions, with synthetic step reports ----------------------------------------------------


def synthetic_report(users: int, p99_ms: float, per_s: float, *, saturated=False, lost=0, complete=True) -> dict:
    rows = [{"t": 1000 + i, "users": users, "deliveries": int(per_s), "counters": {"accepted": 4, "sent": 4},
             "delivery": {"count": int(per_s), "p50_us": 1000, "p99_us": int(p99_ms * 1000), "max_us": 1}}
            for i in range(6)]
    p99 = int(p99_ms * 1000)
    return {
        "schema": "chatload.report/1", "complete": complete, "incomplete_reason": None if complete else "x",
        "metadata": {"started_at_ns": 1000 * 10**9, "ended_at_ns": 1007 * 10**9, "processes": ["local"]},
        "latency_us": {"delivery": {"count": 100, "min": 1, "mean": 2.0, "max": p99 + 1,
                                    "percentiles": {"50": 1000, "90": p99 // 2, "99": p99, "99.9": p99, "99.99": p99,
                                                    "100": p99 + 1}},
                       "ack": {"count": 10, "min": 1, "mean": 1.0, "max": 1, "percentiles": {"99": 900}}},
        "accounting": {"totals": {"sent": 24, "accepted": 24, "rejected": 0, "expected": 600, "delivered": 600 - lost,
                                  "lost": lost, "duplicates": 0, "rejected_by_code": {}}},
        "timeline": rows,
        "health": {"per_process": {"local": {"cpu_percent": 95.0 if saturated else 30.0, "loop_lag_max_us": 1000,
                                             "hub_stall_max_us": 1000}},
                   "saturated": saturated, "reasons": ["local: cpu_percent reached 95"] if saturated else []},
    }


def fake_search(tmp_path, outcomes, *, capacity=GOOD) -> tuple[int, dict, CapacitySearch]:
    """Run a search whose steps return the given reports (or raise what is given) instead of running Locust."""
    plan = load_plan(capacity_file(tmp_path, capacity))
    queue = list(outcomes)

    def run_step(scenario, args):
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, StepOutcome):
            return item
        folder = Path(args.report_dir) / scenario.name / "t"
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps(item))
        return StepOutcome(item, folder, 0)

    args = argparse.Namespace(processes=1, report_dir=str(tmp_path / "reports"), yes=False, quiet=True)
    search = CapacitySearch(plan, args, run_step=run_step)
    code = search.execute()
    document = json.loads((search.folder / "capacity.json").read_text())
    assert (search.folder / "capacity.html").exists()
    return code, document, search


def test_the_knee_is_the_last_step_before_the_objective_breaks(tmp_path):
    code, doc, _ = fake_search(tmp_path, [synthetic_report(12, 20, 100), synthetic_report(22, 60, 200),
                                          synthetic_report(42, 900, 250)])
    assert code == 0 and doc["outcome"] == "knee" and doc["complete"]
    assert doc["knee"]["knee"]["value"] == 20 and doc["knee"]["breaking"]["value"] == 40
    assert doc["knee"]["limit_between"] == [22, 42] and doc["knee"]["limited_by"] == "service"
    p99 = next(m for m in doc["knee"]["knee"]["margins"] if m["metric"] == "delivery.p99")
    assert p99["headroom"] == pytest.approx(190) and p99["headroom_ratio"] == pytest.approx(0.76)
    assert [c["rule"] for c in doc["knee"]["breaking"]["checks"]] == ["delivery.p99 <= 250ms"]
    assert doc["usl"]["parameters"]["basis"] == "fitted" and doc["usl"]["quality"]["dof"] == 0
    assert doc["cost"]["at_knee"]["messages_sent"] == round(4 * 730 * 3600)
    assert doc["sizing"]["target"]["processes"] >= 1


def test_a_search_stops_at_the_first_breaking_step_and_a_broken_first_step_is_exit_1(tmp_path):
    code, doc, _ = fake_search(tmp_path, [synthetic_report(12, 20, 100, lost=3)])
    assert code == 1 and doc["outcome"] == "first_step_failed" and len(doc["steps"]) == 1
    assert doc["knee"]["breaking"]["checks"][0]["rule"] == "lost == 0"


def test_every_step_meeting_the_objective_is_the_ceiling(tmp_path):
    code, doc, _ = fake_search(tmp_path, [synthetic_report(n, 10, 10 * n) for n in (12, 22, 42)])
    assert code == 0 and doc["outcome"] == "ceiling" and doc["knee"]["knee"]["value"] == 40
    assert doc["knee"]["limited_by"] == "ceiling" and doc["usl"]["shape"] == "linear"


def test_a_harness_that_saturated_before_the_knee_is_named_as_the_limit(tmp_path):
    code, doc, _ = fake_search(tmp_path, [synthetic_report(12, 20, 100, saturated=True), synthetic_report(22, 60, 200),
                                          synthetic_report(42, 900, 250)])
    assert code == 0 and doc["knee"]["limited_by"] == "harness"
    assert "load generator's limit" in doc["knee"]["limit_note"]
    assert "banner-harness" in (Path(doc_folder(tmp_path)) / "capacity.html").read_text()


def doc_folder(tmp_path: Path) -> Path:
    return next((tmp_path / "reports" / "capacity" / "cap").iterdir())


def test_ctrl_c_between_steps_still_writes_what_was_measured(tmp_path):
    code, doc, _ = fake_search(tmp_path, [synthetic_report(12, 20, 100), KeyboardInterrupt()])
    assert code == 2 and not doc["complete"] and doc["incomplete_reason"] == "interrupted (Ctrl-C)"
    assert doc["outcome"] == "undecided" and len(doc["steps"]) == 1 and doc["steps"][0]["objective_met"]


def test_a_step_interrupted_while_running_is_recorded_but_not_judged(tmp_path):
    report = synthetic_report(22, 900, 200, complete=False)
    folder = tmp_path / "interrupted"
    code, doc, _ = fake_search(tmp_path, [synthetic_report(12, 20, 100), StepOutcome(report, folder, 1, interrupted=True)])
    assert code == 2 and doc["incomplete_reason"] == "interrupted (Ctrl-C)"
    assert doc["steps"][1]["judged"] is False and doc["steps"][1]["objective_met"] is None
    assert doc["knee"]["breaking"] is None


def test_a_step_that_fails_to_run_is_exit_2(tmp_path):
    code, doc, _ = fake_search(tmp_path, [StepOutcome(None, None, None, error="Locust ended without results")])
    assert code == 2 and doc["error"].startswith("step 1 failed: Locust ended without results")


def test_margins_of_each_kind_of_rule():
    assert margin({"op": "<=", "expected": 250, "observed": 100, "unit": "ms"})["headroom"] == 150
    assert margin({"op": ">=", "expected": 0.99, "observed": 1.0})["headroom"] == pytest.approx(0.01)
    assert margin({"op": "between", "expected": [0.4, 0.6], "observed": 0.45})["headroom"] == pytest.approx(0.05)
    assert margin({"op": "==", "expected": 0, "observed": 0})["note"].startswith("an exact rule")


def test_invalid_capacity_file_on_the_command_line_is_exit_2(tmp_path):
    path = capacity_file(tmp_path, GOOD.replace('"room_size"', '"roomsize"'))
    proc = subprocess.run([sys.executable, "-m", "harness.capacity", str(path), "--report-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "capacity.vary: must be one of" in proc.stderr, proc.stderr
    assert not (tmp_path / "capacity").exists()


# -- a real search: the knee lands where the artificial cost predicts it -------------------------------------
# The emulator burns COST_US of CPU per delivered frame, so it delivers at most 1e6 / COST_US frames a
# second: with one chatter at RATE msg/s (its echo included, a message is one frame per member), the
# room saturates at 1e6 / (COST_US × RATE) members. Steps straddle that with room to spare on either
# side (the emulator's own per-frame work makes the real limit a little lower than predicted).

COST_US, RATE = 200, 50.0
PREDICTED_ROOM = 1e6 / (COST_US * RATE)  # 100 members
ROOMS = [30, 50, 70, 130]  # one chatter + viewers


@pytest.mark.timeout(240)
def test_a_short_search_finds_the_knee_the_delivery_cost_predicts(tmp_path):
    path = tmp_path / "knee.toml"
    path.write_text(f"""
[scenario]
name = "knee"
ramp = "1s"
drain = "5s"
processes = 1

[[population]]
kind = "viewer"
users = 10

[[population]]
kind = "chatter"
users = 1
message_rate = {RATE}

[capacity]
vary = "room_size"
population = 0
steps = {[room - 1 for room in ROOMS]}
hold = "5s"
objective = ["delivery.p99 <= 250ms", "lost == 0"]

[capacity.emulator]
delivery_cost_us = {COST_US}
""")
    proc = subprocess.run([sys.executable, "-m", "harness.capacity", str(path), "--report-dir", str(tmp_path),
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=230,
                          stdin=subprocess.DEVNULL)
    folders = list((tmp_path / "capacity" / "knee").iterdir())
    assert len(folders) == 1, proc.stdout + proc.stderr
    doc = json.loads((folders[0] / "capacity.json").read_text())
    summary = [(s["room_size"], (s["delivery_us"] or {}).get("p99"), s["steady"]["deliveries_per_s"],
                s["harness"]["saturated"]) for s in doc["steps"]]
    assert proc.returncode == 0, (summary, proc.stdout, proc.stderr[-3000:])

    expected_knee = max(room for room in ROOMS if room < PREDICTED_ROOM)
    assert doc["outcome"] == "knee", summary
    assert doc["knee"]["knee"]["room_size"] == expected_knee, summary
    assert doc["knee"]["breaking"]["room_size"] == min(room for room in ROOMS if room > PREDICTED_ROOM), summary
    assert doc["knee"]["limited_by"] in ("service", "harness", "unclear")  # the harness's health is judged, named
    # The breaking step's service delivered no more than the cost allows, and near it.
    saturated_rate = doc["steps"][-1]["steady"]["deliveries_per_s"]
    assert 0.6 * 1e6 / COST_US <= saturated_rate <= 1.05 * 1e6 / COST_US, summary
    assert doc["usl"].get("parameters"), doc["usl"]

    for step in doc["steps"]:
        assert (folders[0] / step["report"]).exists() and (folders[0] / step["report_html"]).exists()
    page = (folders[0] / "capacity.html").read_text()
    assert plotly_js() in page, "plotly.js inline"
    ours = page.replace(plotly_js(), "")
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", ours), "must open offline"
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", ours), "no link to another host"
    assert 'data-chart="throughput-vs-load"' in page and 'data-chart="latency-vs-load"' in page
    assert 'data-chart="harness-vs-load"' in page
    assert "knee at room size 70 (step 3)" in proc.stdout


def test_sizing_says_how_far_its_linear_extrapolation_reaches(tmp_path):
    # Sized for 10,000 members from steps of 12 to 42: the figures are scaled far past what was measured,
    # and the document, the page and the console say by how much (issue 24, point 7).
    sized = GOOD + "[capacity.sizing]\ntarget_room_size = 10000\ncores_per_machine = 2\n"
    code, doc, _ = fake_search(tmp_path, [synthetic_report(12, 20, 100), synthetic_report(22, 60, 200),
                                          synthetic_report(42, 900, 250)], capacity=sized)
    reach = doc["sizing"]["target"]["reach"]
    assert doc["sizing"]["target"]["basis"] == "extrapolated" and reach["furthest"] > 100
    assert reach["words"].startswith(f"{reach['furthest']:,.0f}× beyond the measured step")
    assert "measures neither the network between machines nor the service at that size" in reach["words"]
    from harness.capacity.html import render_capacity_html

    assert "How far this reaches: " in render_capacity_html(doc)
    # Sized within what was measured, it says so.
    (tmp_path / "small").mkdir()
    code, doc, _ = fake_search(tmp_path / "small", [synthetic_report(12, 20, 100), synthetic_report(22, 60, 200),
                                                    synthetic_report(42, 900, 250)],
                               capacity=GOOD + "[capacity.sizing]\ntarget_room_size = 12\n")
    assert doc["sizing"]["target"]["reach"]["words"] == "within the measured load: no extrapolation"
