"""Scenario files: every shipped one loads, and bad ones fail before anything starts, naming the
file, the key and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scenario.reader import ScenarioError, load_scenario, parse_duration

# capacity-*.toml carry a [capacity] table for `chatload capacity`, which validates them itself.
SCENARIOS = sorted(p for p in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.toml")
                   if not p.name.startswith("capacity-"))
MINIMAL = '[[population]]\nkind = "viewer"\nusers = 1\n'


def test_the_shipped_scenarios_are_all_there_and_valid():
    names = {path.stem for path in SCENARIOS}
    assert {"default", "smoke", "fanout", "multi-room", "rate-limit", "reconnect-storm", "soak"} <= names
    for path in SCENARIOS:
        scenario = load_scenario(path)
        assert scenario.users > 0 and scenario.expectations, path
        assert path.read_text().startswith("# "), f"{path.name} needs a comment block saying what it tells you"


def test_smoke_is_small_enough_for_ci():
    smoke = load_scenario(next(p for p in SCENARIOS if p.stem == "smoke"))
    assert smoke.duration_s + smoke.ramp_s + smoke.drain_s < 30


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "[scenario]\nduraton = \"5s\"\n", "scenario.duraton: unknown key (did you mean 'duration'?)"),
    (MINIMAL + "[scenario]\nduration = \"soon\"\n", "scenario.duration: 'soon' is not a duration"),
    (MINIMAL + "[scenario]\nduration = 0\n", "scenario.duration: must be longer than 0 s"),
    ('[[population]]\nkind = "lurker"\nusers = 1\n', "population[0].kind: must be one of viewer, chatter, moderator"),
    ('[[population]]\nkind = "viewer"\n', "population[0].users: is required"),
    ('[[population]]\nkind = "viewer"\nusers = "ten"\n', "population[0].users: must be a whole number"),
    ("[scenario]\nname = \"x\"\n", "population: at least one [[population]] table is required"),
    (MINIMAL + "[rooms]\nmaximum_message_rate_per_second = 101\n",
     "rooms.maximum_message_rate_per_second: must be at most 100"),
    (MINIMAL + "[messages]\nsize_min = 50\nsize_max = 10\n", "messages.size_min: must not exceed size_max"),
    (MINIMAL + "[rooms]\nmaximum_message_length = 20\n[messages]\nsize = 40\n",
     "messages.size_max: 40 exceeds rooms.maximum_message_length"),
    (MINIMAL + '[target]\nkind = "ivschat"\nendpoint = "wss://edge.ivschat.us-east-1.amazonaws.com"\n',
     "target.room_arns: a real room's ARN is required"),
    (MINIMAL + '[target]\nkind = "running-emulator"\nendpoint = "ws://127.0.0.1:1"\n',
     "target.control_endpoint: is required"),
    (MINIMAL + '[target]\nkind = "emulator"\nendpoint = "ws://127.0.0.1:1"\n', "target: kind \"emulator\" starts"),
    (MINIMAL + '[[faults]]\nat = "1s"\naction = "explode"\n', "faults[0].action: must be one of"),
    (MINIMAL + '[[faults]]\nat = "1s"\naction = "delay"\n', "faults[0].delay_ms: is required"),
    (MINIMAL + '[[faults]]\nat = "1s"\naction = "drop"\nfraktion = 0.5\n', "faults[0].fraktion: unknown key"),
    (MINIMAL + '[scenario]\nduration = "5s"\n[[faults]]\nat = "9s"\naction = "resume"\n',
     "faults[0].at: 9 s is after the end of the run"),
    (MINIMAL + '[[faults]]\nat = "1s"\naction = "pause"\nroom = 3\n', "faults[0].room: must be a room index"),
    (MINIMAL + '[expectations]\nrules = ["delivery.p99 < 250 parsecs"]\n', "expectations.rules[0]"),
    (MINIMAL + '[expectations]\nrules = ["delivry.p99 < 250ms"]\n', "expectations.rules[0]"),
    (MINIMAL + "bogus = 1\n", "bogus: unknown key"),
    (MINIMAL + "[messages]\nrate_per_chatter = nan\n", "messages.rate_per_chatter: must be finite"),
    ("[[population]\n", "not valid TOML"),
])
def test_bad_scenarios_name_file_key_and_reason(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and message in str(info.value), str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read: No such file"):
        load_scenario(tmp_path / "nope.toml")


@pytest.mark.parametrize("value, seconds", [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h", 3600), (5, 5), ("7", 7)])
def test_durations(value, seconds):
    assert parse_duration(value, "x") == seconds


def test_billing_estimate_counts_sends_and_deliveries(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nduration = "10s"\n[[population]]\nkind = "viewer"\nusers = 8\n'
                    '[[population]]\nkind = "chatter"\nusers = 2\nmessage_rate = 0.5\n')
    assert load_scenario(path).estimated_messages() == (10, 100)  # 2 × 0.5/s × 10 s; × 10 members


REAL = ('[target]\nkind = "ivschat"\nendpoint = "wss://edge.ivschat.us-east-1.amazonaws.com"\n'
        'room_arns = ["arn:aws:ivschat:us-east-1:123456789012:room/AbCdEfGhIjKl"]\n' + MINIMAL)


def test_a_real_room_takes_kicks_but_no_emulator_faults(tmp_path):
    path = tmp_path / "real.toml"
    path.write_text(REAL + '[[faults]]\nat = "1s"\naction = "kick"\nfraction = 0.5\n')
    assert load_scenario(path).faults[0].action == "kick"
    path.write_text(REAL + '[[faults]]\nat = "1s"\naction = "drop"\n')
    with pytest.raises(ScenarioError, match="only `kick`"):
        load_scenario(path)


def test_every_error_is_listed_with_its_line(tmp_path):
    path = tmp_path / "many.toml"
    path.write_text('[scenario]\nduration = "3x"\n\n[[population]]\nkind = "viewr"\nusers = 0\n\n'
                    '[[population]]\nkind = "chatter"\nusers = 2\nburst_offset = 5\n\n'
                    '[expectations]\nrules = ["delivry.p99 < 250ms"]\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = info.value.problems
    assert problems == [
        f"{path}: scenario.duration: '3x' is not a duration (write \"500ms\", \"30s\", \"2m\" or \"1h\") (line 2)",
        f"{path}: population[0].kind: must be one of viewer, chatter, moderator, not 'viewr' (did you mean 'viewer'?) "
        "(line 5)",
        f"{path}: population[0].users: must be at least 1, not 0 (line 6)",
        f"{path}: population[1].burst_offset: unknown key (did you mean 'burst_offset_ms'?) (line 11)",
        problems[4],
    ]
    assert problems[4].startswith(f"{path}: expectations.rules[0]: 'delivry.p99 < 250ms'") and "(line 14)" in problems[4]


def test_check_lists_every_error_and_runs_nothing(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "two.toml"
    path.write_text('[scenario]\nprocesses = 99\n[[population]]\nkind = "viewer"\nusers = 0\n')
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--check", str(path), "--report-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "scenario.processes: must be at most 64, not 99 (line 2)" in proc.stderr
    assert "population[0].users: must be at least 1, not 0 (line 5)" in proc.stderr
    assert not list(tmp_path.glob("*/")), "nothing ran"


@pytest.mark.parametrize("service", ["ivschat", "ivsrealtime"])
def test_the_emulator_kinds_are_checked_alike_for_every_service_with_an_emulator(tmp_path, service):
    from harness.services import registry

    kind = next(iter(registry.get(service).populations))
    path = tmp_path / "kinds.toml"
    path.write_text(f'[target]\nservice = "{service}"\nendpoint = "ws://127.0.0.1:1"\n'
                    f'[[population]]\nkind = "{kind}"\nusers = 1\n')
    with pytest.raises(ScenarioError, match='kind "emulator" starts its own emulator'):
        load_scenario(path)
    path.write_text(f'[target]\nservice = "{service}"\nkind = "running-emulator"\nendpoint = "ws://127.0.0.1:1"\n'
                    f'[[population]]\nkind = "{kind}"\nusers = 1\n')
    with pytest.raises(ScenarioError, match='target.control_endpoint: is required for kind "running-emulator"'):
        load_scenario(path)


HOTSOCK = ('[target]\nservice = "hotsock"\n[[population]]\nkind = "subscriber"\nusers = 5\n'
           '[[population]]\nkind = "publisher"\nusers = 1\n')


def test_check_refuses_rules_that_can_never_hold_or_never_be_evaluated(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(HOTSOCK + '[expectations]\nrules = ["delivery.p99 < 0ms", "lost < 0", "roster.missed == 0", '
                              '"chime.throttled_ratio < 0.1", "presence_join.p99 < 1s", "subscribe.p99 < 1s", '
                              '"spread.p50 < 1s", "lost == 0"]\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = [problem.split(f"{path}: ", 1)[1] for problem in info.value.problems]
    assert problems == [
        "expectations.rules[0]: 'delivery.p99 < 0ms': can never hold: delivery.p99 is never below 0, so it is "
        "never < 0 ms (line 10)",
        "expectations.rules[1]: 'lost < 0': can never hold: lost is never below 0, so it is never < 0 (line 10)",
        "expectations.rules[2]: 'roster.missed == 0': can never be evaluated: roster.missed is measured by Amazon IVS "
        "Real-Time only; this scenario's service is Hotsock (line 10)",
        "expectations.rules[3]: 'chime.throttled_ratio < 0.1': can never be evaluated: chime.throttled_ratio is "
        "measured by Amazon Chime SDK meetings only; this scenario's service is Hotsock (line 10)",
        "expectations.rules[4]: 'presence_join.p99 < 1s': can never be evaluated: presence_join is measured on "
        "presence channels only; these channels have no presence ([channels] presence = true makes them presence "
        "channels) (line 10)"]
    # A trace replay's ratio shares its head with Chime's `replay` histogram but is every service's.
    from harness.gate.metrics import declared_by
    assert declared_by("replay.ratio") == {} and declared_by("replay.too_fast") == {}
    assert list(declared_by("replay.p99")) == ["chime"]
    # The same presence rule on presence channels is measured, so it is kept.
    path.write_text(HOTSOCK + '[channels]\npresence = true\n[expectations]\nrules = ["presence_join.p99 < 1s"]\n')
    assert load_scenario(path).expectations == ["presence_join.p99 < 1s"]


def test_a_misspelt_service_is_the_only_error_and_a_close_name_is_suggested(tmp_path):
    # Judged by the default service instead, the file's own [channels] and "subscriber" would be
    # two more errors that are not the user's.
    path = tmp_path / "typo.toml"
    path.write_text('[target]\nservice = "hotsok"\n[channels]\ncount = 2\n[[population]]\nkind = "subscriber"\n'
                    'users = 5\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems == [f"{path}: target.service: must be one of ivschat, chime, hotsock, ivsrealtime, "
                                   "toy, not 'hotsok' (did you mean 'hotsock'?) (line 2)"]
