"""Property: whatever a client sends, the emulator answers that client alone and keeps serving.

The fuzzing member has no capabilities, so every frame it sends — garbage, near-valid JSON, valid
requests it may not make, binary — must earn exactly one ERROR frame addressed to it, and the
observer in the same room must see nothing but the sentinel that follows.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.services.ivschat import codec

from .chat import assert_next_is_sentinel, join, next_event, run

KEYS = st.sampled_from(["Action", "action", "ACTION", "RequestId", "requestid", "Content", "Attributes", "Id",
                        "UserId", "Reason", "Extra"])
ACTIONS = st.sampled_from(["SEND_MESSAGE", "DELETE_MESSAGE", "DISCONNECT_USER", "send_message", "", "NOPE"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40),
                    ACTIONS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
REQUEST_LIKE = st.dictionaries(KEYS, st.one_of(ACTIONS, JSON_VALUES), max_size=6).map(
    json.dumps)  # stdlib: emits integers beyond 64 bits too
FRAMES = st.one_of(
    REQUEST_LIKE,
    st.text(max_size=200),
    st.binary(min_size=0, max_size=200),
    st.integers(min_value=1, max_value=2000).map(lambda depth: "[" * depth),  # nesting past the parser's limit
    st.integers(min_value=10_241, max_value=40_000).map(lambda n: "z" * n),  # above the 10 KiB frame cap
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
def test_any_frame_gets_one_error_and_disturbs_no_one(emulator, ivschat, frames):
    room = ivschat.create_room()  # one per example: hypothesis would reuse a fixture's room (and its rate)

    async def scenario():
        fuzzer = await join(emulator, ivschat, room, "fuzzer")  # no capabilities: nothing it sends is allowed
        observer = await join(emulator, ivschat, room, "observer", ["SEND_MESSAGE"])
        for frame in frames:
            await fuzzer.send(frame)
            event = await next_event(fuzzer)
            assert isinstance(event, codec.ChatError), (frame[:60], event)
            assert event.code in (400, 403, 413), (frame[:60], event)
        await assert_next_is_sentinel(observer, fuzzer)
        await fuzzer.close()
        await observer.close()

    run(scenario())
    ivschat.delete_room(identifier=room["arn"])
    assert emulator.admin.health()["ok"]
