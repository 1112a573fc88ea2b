"""The Chime harness pieces on their own: the ramp schedule, the SDK's reconnect policy, the verdicts'
arithmetic, the scenario keys, the replay window, and the in-process attendee tokens (against a real
emulator with real boto3)."""

from __future__ import annotations

import random
import textwrap

import gevent
import pytest

from harness.scenario.reader import ScenarioError, load_scenario
from harness.services import registry
from harness.services.base import RoomSettings, Target, UserSpec
from harness.services.chime.emulator import EmulatorProcess
from harness.services.chime.policy import ChimeSdkPolicy
from harness.services.chime.schedule import RampSchedule
from harness.services.chime.tokens import AttendeeTokens
from harness.services.chime.verdicts import (
    bucket_excess,
    bucket_start,
    derive,
    early_throttle_seconds,
    onset_in_second,
)
from harness.services.tokens import TokenFetchFailed

from .chime import client

CHIME = registry.get("chime")


# -- the ramp -----------------------------------------------------------------------------------------


def test_the_ramp_schedule_counts_like_a_linear_rate_then_holds():
    ramp = RampSchedule(50.0, 2000.0, 16.0)
    # N(t) = 50 t + (2000 − 50) t² / 32 within the ramp: 1,175 sends by 4 s, 16,400 by 16 s.
    assert ramp.offset_s(0) == 0
    assert ramp.offset_s(1175) == pytest.approx(4.0, abs=1e-9)
    assert ramp.offset_s(16_400) == pytest.approx(16.0, abs=1e-9)
    assert ramp.offset_s(16_400 + 2000) == pytest.approx(17.0, abs=1e-9)  # then 2,000 a second
    gaps = [ramp.offset_s(n + 1) - ramp.offset_s(n) for n in (0, 1175, 16_399)]
    assert gaps[0] == pytest.approx(1 / 50, rel=0.05) and gaps[2] == pytest.approx(1 / 2000, rel=0.05)
    assert RampSchedule(10.0, 10.0, 5.0).offset_s(25) == pytest.approx(2.5)  # no ramp: a fixed rate


# -- the SDK's reconnects -------------------------------------------------------------------------------


def test_the_sdk_policy_backs_off_with_full_jitter_within_two_minutes():
    now = [1000.0]
    policy = ChimeSdkPolicy(rng=random.Random(1), clock=lambda: now[0])
    first = [policy.after_drop() for _ in range(200)]
    assert max(first) <= 1.0 and min(first) >= 0.0 and max(first) > 0.9  # uniform(0, 1 s)
    assert all(policy.after_failure(3) <= 5.0 for _ in range(200))  # capped at the long backoff
    assert max(policy.after_failure(1) for _ in range(200)) > 1.5  # retry 1: uniform(0, 2 s)
    now[0] += 119.0
    assert policy.after_failure(9) is not None
    now[0] += 1.0
    assert policy.after_failure(10) is None  # 120 s after the outage began: give up


@pytest.mark.parametrize(("code", "clean", "back"), [
    (1006, False, True), (4500, True, True), (4599, True, True), (4401, True, False),
    (4410, True, False), (4403, True, False), (4429, True, False), (1000, True, False), (1001, True, False),
])
def test_the_sdk_comes_back_only_after_unexpected_closes(code, clean, back):
    assert ChimeSdkPolicy().reconnect_after(code, clean) is back


# -- the verdicts' arithmetic -------------------------------------------------------------------------------


def test_throttling_inside_one_attendees_bucket_is_early():
    # 100/s, burst 200: 150 a second runs the bucket dry at 4 s; 60 a second never does.
    assert early_throttle_seconds([150] * 8, [0, 0, 0, 20, 50, 50, 50, 50], 100, 200) == 0
    assert early_throttle_seconds([60] * 8, [0, 0, 5, 0, 0, 0, 0, 1], 100, 200) == 2
    # Whole seconds only prove a throttle early with a second's slack: 150 a second throttled in
    # its second second might have been a burst of 300 at the boundary, which the bucket refuses.
    assert early_throttle_seconds([150] * 8, [0, 5, 0, 0, 0, 0, 0, 0], 100, 200) == 0
    assert bucket_start([150] * 8, 100, 200) == pytest.approx(4.0)
    assert bucket_start([50] * 5, 100, 200) is None


def test_the_onset_within_its_second_is_where_the_accepted_rate_changes():
    # 331 offered, 181 accepted, 150 throttled: evenly spread, the first 35 % went through whole.
    assert onset_in_second(331, 181, 100) == pytest.approx(0.3506, abs=1e-3)
    assert onset_in_second(80, 20, 100) == 0.0 and onset_in_second(300, 320, 100) == 1.0


def test_a_hang_up_that_cut_the_last_second_short_is_judged_by_what_that_second_used():
    load = [800, 800, 500]  # 500/s, burst 1,000: 400 tokens left at the third second's start
    assert bucket_start(load, 500, 1000) is None  # as a whole second it never runs dry …
    assert bucket_start(load, 500, 1000, cut_short=True) == pytest.approx(2.2)  # … cut short at 0.2 s it did
    assert bucket_start([800, 800, 300], 500, 1000, cut_short=True) is None  # it used less than was left
    assert bucket_start([800, 800, 1500], 500, 1000, cut_short=True) == pytest.approx(3.0)  # at most the second


def test_bucket_excess_is_what_any_window_accepted_beyond_the_bucket():
    assert bucket_excess([300, 100, 100], 100, 200) == 0  # burst + one second, then the rate
    assert bucket_excess([300, 130, 100], 100, 200) == 30
    assert bucket_excess([50, 50], 100, 200) == -250


def _results(rows: dict, settings: dict | None = None, timeline=()) -> dict:
    return {"rooms": {"m1": {str(s): row for s, row in rows.items()}}, "timeline": list(timeline),
            "metadata": {"target": {"settings": settings or {}}}, "counters": {}}


def test_derive_reads_the_emulators_limits_and_judges_one_sender():
    rows = {100 + s: {"offered": 150, "accepted": a, "rejected": {"THROTTLED": 150 - a} if a < 150 else {}}
            for s, a in enumerate([150, 150, 150, 100, 100, 100])}
    facts = derive(_results(rows), sending_users=1)
    assert facts["limits"]["source"] == "spec" and facts["api"] is None
    throttle = facts["throttle"]
    assert (throttle["offered"], throttle["throttled"], throttle["early_throttle_seconds"]) == (900, 150, 0)
    assert (throttle["observed_start_s"], throttle["start_error_us"]) == (3, 1_000_000)  # predicted 4.0
    assert throttle["steady_accepted_per_s"] == 100 and throttle["bucket_excess"] == -50
    scaled = derive(_results(rows, {"limits": {"soft_limit": [50, 100]}, "limits_source": "emulator"}), 1)
    assert scaled["limits"]["soft_limit"] == [50, 100] and scaled["throttle"]["early_throttle_seconds"] == 0
    several = derive(_results(rows), sending_users=3)["throttle"]
    assert not several["per_attendee_judged"] and "start_error_us" not in several


def test_derive_judges_the_api_quota_from_the_timeline():
    timeline = [{"t": t, "counters": {"api_create_meeting_calls": 15, "api_create_meeting_failures.ThrottlingException": n}}
                for t, n in enumerate([0, 0, 3, 5, 5, 5])]
    results = {"counters": {"api_create_meeting_calls": 90, "api_create_meeting_failures.ThrottlingException": 18},
               "timeline": timeline, "rooms": {}, "metadata": {}}
    api = derive(results, 0)["api"]
    assert api["throttled_ratio"] == pytest.approx(0.2) and api["peak_accepted_per_s"] == 15
    assert api["steady_accepted_per_s"] == 10  # the inner throttled seconds: 10, 10


# -- the scenario keys and the replay window ---------------------------------------------------------------


def _scenario(tmp_path, target: str = "", meetings: str = "") -> object:
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(f"""
        [target]
        service = "chime"
        {target}
        [meetings]
        {meetings}
        [[population]]
        kind = "attendee"
        users = 2
        """))
    return load_scenario(path)


def test_scenario_keys_are_checked(tmp_path):
    scenario = _scenario(tmp_path, meetings='lifetime_ms = 5000\ntopic = "news"')
    assert scenario.rooms.settings["topic"] == "news" and scenario.rooms.count == 1
    for target, meetings, why in [
        ('control_endpoint = "http://127.0.0.1:1"', "", "kind \"emulator\" starts its own emulator"),
        ('kind = "running-emulator"', "", "control_endpoint: is required"),
        ('kind = "chime"\ncontrol_endpoint = "http://x"', "", "not used against AWS"),
        ('kind = "chime"\nmeeting_ids = ["not-a-guid"]', "", "not a MeetingId"),
        ("", 'topic = "has space"', "is not a topic"),
        ("", "count = 251", "must be at most 250"),
        ("", "max_attendees = 251", "must be at most 250"),
        ("", "churn_attendees = 101", "must be at most 100"),
    ]:
        with pytest.raises(ScenarioError, match=why):
            _scenario(tmp_path, target, meetings)


def test_message_size_leaves_room_for_the_identity(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('[target]\nservice = "chime"\n[messages]\nsize = 2048\n[[population]]\nkind = "attendee"\nusers = 1\n')
    with pytest.raises(ScenarioError, match="must be at most 1984"):
        load_scenario(path)


def test_the_replay_window_is_the_lifetime_capped_by_what_the_emulator_keeps():
    def target(lifetime_ms: int, replay=None) -> Target:
        limits = {"replay": replay} if replay else {}
        return Target("chime", "emulator", settings={"lifetime_ms": lifetime_ms, "limits": limits})

    assert CHIME.replay_window(target(0)) is None
    assert CHIME.replay_window(target(20_000)) == (20_000_000_000, 1024)  # the service's own: 5 min, 1,024
    assert CHIME.replay_window(target(600_000)) == (300_000_000_000, 1024)
    assert CHIME.replay_window(target(600_000, [10.0, 50])) == (10_000_000_000, 50)  # a time-scaled emulator


# -- attendees and their join tokens ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess("--throttle", service="chime") as process:
        yield process


def test_tokens_come_in_batches_of_100_and_a_user_keeps_its_attendee(emulator):
    chime = client(emulator, retries=True)
    meeting = chime.create_meeting(ClientRequestToken="units-1", MediaRegion="us-east-1",
                                   ExternalMeetingId="units-1")["Meeting"]["MeetingId"]
    tokens = AttendeeTokens("us-east-1", emulator.control_endpoint, pace_s=0.05)
    users = [UserSpec(f"u{i}", f"attendee-u{i}", meeting) for i in range(251)]
    fetches = [gevent.spawn(tokens.fetch, user) for user in users]
    gevent.joinall(fetches, timeout=30)
    made = [f.value for f in fetches if f.successful()]
    failed = [f.exception for f in fetches if not f.successful()]
    assert len(made) == 250 == len(set(made)), "one attendee per user, up to the meeting's cap"
    assert len(failed) == 1 and isinstance(failed[0], TokenFetchFailed) and failed[0].cause == "LimitExceeded"
    assert tokens.calls == 3, "251 users in three BatchCreateAttendee calls (100, 100, 51)"
    again = tokens.fetch(users[7])
    assert again == fetches[7].value and tokens.calls == 3, "a reconnect gets the same attendee's token"
    attendee = tokens.attendee_of(users[7])
    got = chime.get_attendee(MeetingId=meeting, AttendeeId=attendee.attendee_id)["Attendee"]
    assert got["ExternalUserId"] == users[7].user_id and got["JoinToken"] == again
    assert again not in repr(attendee), "a join token is kept out of reprs (and so out of logs)"


def test_a_meeting_that_is_gone_fails_the_fetch_with_its_code(emulator):
    tokens = AttendeeTokens("us-east-1", emulator.control_endpoint, pace_s=0.01)
    with pytest.raises(TokenFetchFailed) as failed:
        tokens.fetch(UserSpec("x", "attendee-x", "00000000-0000-0000-0000-000000000000"))
    assert failed.value.cause == "NotFoundException"


def test_a_kick_deletes_the_users_attendee_and_its_token_is_forgotten(emulator):
    chime = client(emulator, retries=True)
    meeting = chime.create_meeting(ClientRequestToken="units-kick", MediaRegion="us-east-1",
                                   ExternalMeetingId="units-kick")["Meeting"]["MeetingId"]
    tokens = AttendeeTokens("us-east-1", emulator.control_endpoint, pace_s=0.01)
    user = UserSpec("k1", "attendee-k1", meeting)
    tokens.fetch(user)
    attendee = tokens.attendee_of(user)
    target = Target("chime", "running-emulator", control_endpoint=emulator.control_endpoint)
    CHIME.kick(tokens, target, user)
    assert tokens.attendee_of(user) is None
    with pytest.raises(chime.exceptions.NotFoundException):
        chime.get_attendee(MeetingId=meeting, AttendeeId=attendee.attendee_id)


def test_provisioning_a_real_target_makes_or_finds_meetings_and_states_the_published_limits(emulator, monkeypatch):
    # The same code as against AWS, with boto3 aimed at the emulator: a real target has no control endpoint.
    monkeypatch.setattr(type(CHIME), "_client", lambda self, target: client(emulator, retries=True))
    real = Target("chime", "chime", region="eu-west-1")
    made = CHIME.provision(real, RoomSettings(2, {"topic": "news", "lifetime_ms": 7000}), "units real/run")
    assert len(made.rooms) == 2 and made.kind == "chime" and made.control_endpoint == ""
    assert set(made.settings["signaling_urls"]) == set(made.rooms)
    assert made.settings["limits_source"] == "spec" and made.settings["limits"]["replay"] == [300.0, 1024]
    assert made.settings["topic"] == "news" and made.settings["churn_rate"] == 1.0  # defaults filled in
    assert CHIME.replay_window(made) == (7_000_000_000, 1024)
    found = CHIME.provision(Target("chime", "chime", region="eu-west-1", rooms=made.rooms), RoomSettings(), "again")
    assert found.rooms == made.rooms and found.settings["signaling_urls"] == made.settings["signaling_urls"]
    params = CHIME.connect_params(made, "a-join-token", UserSpec("s", "u-s", made.rooms[0]))
    assert params.url.startswith(made.settings["signaling_urls"][made.rooms[0]] + "?X-Chime-Control-Protocol-Version=3")
    assert params.subprotocols == ("_aws_wt_session", "a-join-token") and "a-join-token" not in repr(params)
