"""The kit's rates and token buckets (harness/emulation/throttle.py), as every emulator uses them: the
control planes' per-operation quotas and IVS Chat's per-room 'token-bucket' limiter. (The published
quotas themselves are tested with each service's control plane.)"""

from __future__ import annotations

import pytest

from harness.emulation.throttle import OperationThrottle, Rate


def test_ivschat_room_token_bucket_takes_nothing_when_the_wall_clock_steps_back():
    """The per-room 'token-bucket' is the kit's bucket; its own copy took tokens away on a step back."""
    from harness.services.ivschat.emulator.limits import make_limiter

    limiter = make_limiter("token-bucket", 10)
    assert limiter.allow(100.0)  # 9 of 10 left
    assert limiter.allow(99.0)  # an NTP step back: still 8 left, none taken by the step
    assert sum(limiter.allow(99.0) for _ in range(10)) == 8



def test_one_rate_for_every_operation_gives_each_its_own_bucket():
    throttle = OperationThrottle(every=Rate(1, 2))
    assert throttle.allow("CreateMeeting", 0.0) and throttle.allow("CreateMeeting", 0.0)
    assert not throttle.allow("CreateMeeting", 0.0)
    assert throttle.allow("GetMeeting", 0.0)  # a bucket of its own
    assert throttle.rate("Anything") == Rate(1, 2)


def test_named_quotas_beat_the_rate_for_every_operation_and_bad_ones_are_refused():
    throttle = OperationThrottle({"GetRoom": 1}, every=Rate(5, 5))
    assert throttle.limit("GetRoom") == 1 and throttle.limit("ListRooms") == 5
    with pytest.raises(ValueError, match="GetRoom"):
        OperationThrottle({"GetRoom": -1})
