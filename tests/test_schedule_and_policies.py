"""Pure pieces of the load client: the open-loop schedule, reconnect policies, clock estimates."""

from __future__ import annotations

import random
import time

import pytest

from harness.net.reconnect import ExponentialBackoff, SdkLike, make_policy
from harness.timing.clock import ClockOffset, estimate
from harness.timing.schedule import OpenLoopSchedule


def test_open_loop_never_skips_a_slot_when_late():
    schedule = OpenLoopSchedule(per_second=10)  # a slot every 100 ms
    first = schedule.current_ns()
    schedule.start_ns -= 1_000_000_000  # pretend the user stalled for a whole second
    waits = [schedule.wait_after_task() for _ in range(5)]
    assert waits == [0.0] * 5, "behind schedule: send at once, never sleep"
    # ...but every message keeps its own slot's intended time, 100 ms apart.
    assert schedule.current_ns() == first - 1_000_000_000 + 5 * 100_000_000


def test_open_loop_waits_for_the_next_slot_when_early():
    schedule = OpenLoopSchedule(per_second=4)
    schedule.current_ns()
    wait = schedule.wait_after_task()
    assert 0.2 < wait <= 0.25
    assert schedule.current_ns() - schedule.start_ns == 250_000_000


def test_open_loop_rejects_a_non_positive_rate():
    with pytest.raises(ValueError):
        OpenLoopSchedule(0)


def test_sdk_like_policy_matches_the_official_sdk():
    policy = SdkLike()
    assert [policy.after_failure(n) for n in (1, 2, 3, 4)] == [0.0, 0.0, 0.0, None]  # 1 try + 3 retries
    assert policy.after_drop() == 0.0
    assert policy.reconnect_after(1006, clean=False) and not policy.reconnect_after(1000, clean=True)


def test_backoff_is_full_jitter_within_its_cap():
    policy = ExponentialBackoff(base_s=0.5, cap_s=4.0, max_attempts=6, rng=random.Random(3))
    for attempt in range(1, 7):
        delays = [policy.after_failure(attempt) for _ in range(200)]
        ceiling = min(4.0, 0.5 * 2 ** attempt)
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "full jitter spreads up to the ceiling"
    assert policy.after_failure(7) is None


def test_unknown_policy_names_the_choices():
    with pytest.raises(ValueError, match="backoff"):
        make_policy("sometimes")


def test_clock_estimate_uses_the_fastest_round_trip():
    now = time.time_ns()
    # (sent, master, received) in worker time; master runs 5 ms ahead.
    samples = [(now, now + 5_000_000 + 2_000_000, now + 4_000_000),  # slow: 4 ms round trip, skewed
               (now + 10_000_000, now + 15_100_000, now + 10_200_000)]  # fast: 0.2 ms round trip
    offset = estimate(samples)
    assert offset == ClockOffset(5_000_000, 100_000, "min-rtt-ping")
    assert estimate([]).method == "unmeasured"
