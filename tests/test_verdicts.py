"""Rate-limit and reconnect verdicts, end to end through `chatload run` against the emulator.

Each verdict must be able to fail: the rate-limit check is also run against an emulator
misconfigured to let excess through, and the reconnect expectations are exact counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.gate.metrics import MetricMissing, lookup, read, resolve
from harness.results.verdicts import derive
from harness.services.ivschat.emulator import EmulatorProcess

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def chatload_run(scenario: Path, report_dir: Path, *extra: str) -> tuple[int, dict, str]:
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario), "--quiet", "--report-dir",
                           str(report_dir), *extra], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    reports = sorted(report_dir.glob("*/*/report.json"))
    assert reports, proc.stdout + proc.stderr
    return proc.returncode, json.loads(reports[-1].read_text()), proc.stdout + proc.stderr


def checks_of(report: dict) -> dict[str, str]:
    return {check["rule"]: check["verdict"] for check in report["checks"]}


# -- the derivation itself, on hand-made results ---------------------------------------------------------

def test_derive_judges_each_room_by_its_own_limit():
    rooms = {"A": {str(s): {"offered": 20, "accepted": 10, "rejected": {"429": 10}} for s in range(100, 110)},
             "B": {str(s): {"offered": 4, "accepted": 4, "rejected": {}} for s in range(100, 110)}}
    rooms["A"]["105"]["accepted"] = 12  # one second let 12 through
    results = {"rooms": rooms, "counters": {"errors.429": 101, "untied_rejections.rate_limited": 1},
               "accounting": {"totals": {"rejected_by_code": {"429": 100, "403": 2},
                                         "rejected_by_category": {"rate_limited": 100, "forbidden": 2}}},
               "timeline": []}
    rate = derive(results, {"A": 10, "B": 100})["rate_limit"]
    assert rate["peak_ratio"] == 1.2 and rate["rooms"]["B"]["peak_ratio"] == 0.04
    assert rate["rooms"]["A"]["overloaded_seconds"] == 8  # first and last second of traffic left out
    assert rate["steady_ratio"] == pytest.approx(1.025)  # (7 × 10 + 12) / 8 / 10; room B never overloaded
    assert rate["untied_rejections"] == 1 and rate["non_rate_limited_rejections"] == 2
    # IVS Chat's name stays a gate metric: the alias reads the same value as the neutral name.
    report = {"verdicts": {"rate_limit": rate}}
    assert lookup(report, "rate_limit.non_429_rejections") == lookup(report, "rate_limit.non_rate_limited_rejections") == 2


def test_the_non_429_alias_reads_a_report_written_before_the_neutral_name():
    old = {"verdicts": {"rate_limit": {"non_429_rejections": 3}}}
    assert lookup(old, "rate_limit.non_429_rejections") == 3
    assert resolve("rate_limit.non_429_rejections").direction == resolve("rate_limit.non_rate_limited_rejections").direction
    with pytest.raises(MetricMissing, match="non_rate_limited_rejections"):
        read({"verdicts": {"rate_limit": {}}}, "rate_limit.non_429_rejections")


# -- rate limits --------------------------------------------------------------------------------------------

def rate_limit_scenario(tmp_path: Path, limit: int, chatters: int, rate: float, extra: str = "") -> Path:
    text = (SCENARIOS / "rate-limit.toml").read_text()
    text = text.replace("maximum_message_rate_per_second = 10", f"maximum_message_rate_per_second = {limit}")
    text = text.replace('duration = "20s"', 'duration = "10s"').replace('users = 20\nmessage_rate = 1.0',
                                                                     f"users = {chatters}\nmessage_rate = {rate}")
    path = tmp_path / f"rate-limit-{limit}.toml"
    path.write_text(text + extra)
    return path


@pytest.mark.parametrize("limit, chatters, rate", [(1, 2, 1.0), (10, 20, 1.0), (100, 20, 10.0)])
def test_rate_limit_verdicts_pass_at_limits_1_10_100(tmp_path, limit, chatters, rate):
    code, report, output = chatload_run(rate_limit_scenario(tmp_path, limit, chatters, rate), tmp_path / "r")
    assert code == 0, output
    assert set(checks_of(report).values()) == {"pass"}
    room = next(iter(report["verdicts"]["rate_limit"]["rooms"].values()))
    assert room["limit"] == limit and room["peak_accepted_per_s"] == limit
    assert room["offered"] > room["accepted"] and room["rejected"] == {"429": room["offered"] - room["accepted"]}


def test_rate_limit_bursts_at_second_boundaries(tmp_path):
    code, report, output = chatload_run(SCENARIOS / "rate-limit-burst.toml", tmp_path)
    assert code == 0, output
    rate = report["verdicts"]["rate_limit"]
    assert rate["peak_ratio"] == 1.0 and rate["overloaded_seconds"] >= 5


def test_rate_limit_check_fails_when_the_emulator_lets_excess_through(tmp_path):
    broken = '\n[[faults]]\nat = "0s"\naction = "limits"\nalgorithm = "off"\n'
    code, report, output = chatload_run(rate_limit_scenario(tmp_path, 10, 20, 1.0, broken), tmp_path / "r")
    assert code == 1, output
    verdicts = checks_of(report)
    assert verdicts["rate_limit.peak_ratio <= 1"] == "fail"
    assert report["verdicts"]["rate_limit"]["peak_ratio"] >= 1.5


def test_throttled_token_fetches_are_reported_by_cause(tmp_path):
    with EmulatorProcess("--throttle-limit", "CreateChatToken=10") as emulator:
        scenario = tmp_path / "storm.toml"
        scenario.write_text(f'[scenario]\nname = "token-storm"\nduration = "5s"\nramp = "0.2s"\nprocesses = 1\n'
                            f'[target]\nkind = "running-emulator"\nendpoint = "{emulator.messaging_endpoint}"\n'
                            f'control_endpoint = "{emulator.control_endpoint}"\n'
                            '[[population]]\nkind = "viewer"\nusers = 40\nreconnect = "backoff"\n'
                            '[expectations]\nrules = ["lost == 0"]\n')
        code, report, output = chatload_run(scenario, tmp_path / "r")
    throttled = report["counters"].get("token_fetch_failures.ThrottlingException", 0)
    assert throttled > 0, output
    assert report["counters"]["token_fetches"] + throttled >= 40


# -- reconnects ---------------------------------------------------------------------------------------------

RECONNECT = ["reconnect-drop", "reconnect-clean", "reconnect-expiry", "reconnect-kick", "reconnect-restart"]


# Ten runs of 10–20 s each that spend their time waiting on sessions, not on the CPU (40-odd users at a few
# messages a second): the ones this session selected start together, two at a time, when the first is
# asked for. Their checks are counts and second-scale reconnect times, which two runs side by side on two
# cores leave untouched (6 of 6 clean); four at a time overloaded the ramp (connect p50 86 ms) and in 2 of
# 8 runs a few users' first token fetch never came back within the run (reported, as
# not_connected_at_end.stopped, but the exact reconnect counts then fail). The timing-sensitive
# rate-limit runs above stay one at a time.
SIDE_BY_SIDE = 2
NEEDS_DROP_RUNS = ("test_missed_while_away_is_counted_per_client",
                   "test_storm_peak_is_higher_with_immediate_retries_than_with_backoff")


class ReconnectRuns:
    def __init__(self, base: Path, wanted: set[tuple[str, str]]):
        self.base, self.wanted = base, wanted
        self.pool = ThreadPoolExecutor(SIDE_BY_SIDE)
        self.runs: dict[tuple[str, str], Future] = {}

    def _start(self, name: str, policy: str) -> Future:
        if (name, policy) not in self.runs:
            self.runs[name, policy] = self.pool.submit(
                chatload_run, SCENARIOS / f"{name}.toml", self.base / f"{name}-{policy}", "--reconnect", policy)
        return self.runs[name, policy]

    def get(self, name: str, policy: str) -> tuple[int, dict, str]:
        for other in sorted(self.wanted):
            self._start(*other)
        return self._start(name, policy).result()


@pytest.fixture(scope="module")
def reconnects(request, tmp_path_factory):
    selected = [item for item in request.session.items if item.module is request.module]
    wanted = {(item.callspec.params["name"], item.callspec.params["policy"]) for item in selected
              if getattr(item, "callspec", None) and "policy" in item.callspec.params}
    if any(item.originalname in NEEDS_DROP_RUNS for item in selected):
        wanted |= {("reconnect-drop", "sdk"), ("reconnect-drop", "backoff")}
    runs = ReconnectRuns(tmp_path_factory.mktemp("reconnects"), wanted)
    yield runs
    runs.pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("policy", ["sdk", "backoff"])
@pytest.mark.parametrize("name", RECONNECT)
def test_reconnect_scenario_verdicts_pass(reconnects, name, policy):
    code, report, output = reconnects.get(name, policy)
    assert code == 0, output
    assert report["checks"] and set(checks_of(report).values()) == {"pass"}
    assert {p["reconnect"] for p in report["scenario"]["as_run"]["populations"]} == {policy}
    (fault,) = report["faults"]
    assert "error" not in fault and fault["result"]


def test_missed_while_away_is_counted_per_client(reconnects):
    _, report, _ = reconnects.get("reconnect-drop", "backoff")
    away = [r for r in report["accounting"]["per_receiver"].values() if r["missed_while_away"]]
    assert away, "clients away for up to 3 s must have missed messages"
    assert all(r["connections"] == 2 for r in away)


def test_storm_peak_is_higher_with_immediate_retries_than_with_backoff(reconnects):
    _, sdk, _ = reconnects.get("reconnect-drop", "sdk")
    _, backoff, _ = reconnects.get("reconnect-drop", "backoff")
    sdk_peak = sdk["verdicts"]["reconnect"]["storm_token_fetch_peak_per_s"]
    backoff_peak = backoff["verdicts"]["reconnect"]["storm_token_fetch_peak_per_s"]
    assert sdk_peak >= 1.5 * backoff_peak, (sdk_peak, backoff_peak)
