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


def test_ivschat_stamps_a_message_in_the_second_its_rate_limit_counted_it(monkeypatch):
    """The limiter's window and the SendTime come from one clock reading. Read twice, a message let
    through in the last nanoseconds of a second was stamped in the next, and that second's count by
    SendTime (what the rate-limit verdicts read) came to limit + 1."""
    import types

    import orjson

    from harness.services.ivschat import codec
    from harness.services.ivschat.emulator import dataplane
    from harness.services.ivschat.emulator.limits import make_limiter

    readings = iter([1_999_999_999_999_999_999, 2_000_000_000_000_000_001])  # ns: a second ends between

    class Clock:  # each read moves on, as a real clock would between two reads
        @staticmethod
        def time_ns():
            return next(readings)

        @staticmethod
        def time():
            return next(readings) / 1e9

    monkeypatch.setattr(dataplane, "time", Clock)
    monkeypatch.setattr(dataplane, "text_frame", lambda payload: payload)  # the payload, unframed
    frames = []
    runtime = types.SimpleNamespace(
        room=types.SimpleNamespace(maximum_message_length=500, message_review_handler=None),
        limiter=make_limiter("fixed-window", 1), counters=types.SimpleNamespace(messages_accepted=0))
    member = types.SimpleNamespace(runtime=runtime, grant=types.SimpleNamespace(
        capabilities={codec.SEND_MESSAGE}, user_id="u", attributes=None))
    plane = types.SimpleNamespace(frame_ids=lambda: "id-1", _deliver=lambda rt, frame: frames.append(frame),
                                  _reject=lambda *a: frames.append(("rejected", a)))
    plane._accept = types.MethodType(dataplane.DataPlane._accept, plane)
    dataplane.DataPlane._send_message(plane, member, codec.SendMessageRequest("r1", "hi", None))
    assert len(frames) == 1 and not isinstance(frames[0], tuple), frames
    payload = orjson.loads(frames[0])
    stamped = codec.parse_send_time(payload["SendTime"])
    assert stamped // 10**9 == 1_999_999_999, "stamped in the second the limiter counted it in"
