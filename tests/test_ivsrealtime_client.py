"""IVS Real-Time's client protocol as a unit: the events socket's frames in, the exact neutral events out.

Frames are built with the codec the emulator uses (and by hand where a server misbehaves); times are
given, never read. Plus: anything a server sends, however malformed, never raises.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.services.base import (
    READY,
    Acked,
    Category,
    Kicked,
    Measured,
    Observed,
    Origin,
    ProtocolError,
    Refused,
    Request,
    ServiceEvent,
    UserSpec,
)
from harness.services.ivsrealtime import codec
from harness.services.ivsrealtime.client import StageProtocol

ME = UserSpec("a1", "participant-a1", "arn:aws:ivs:us-east-1:123456789012:stage/AbCdEfGhIjKl", ("SUBSCRIBE",))
ATTEMPT_NS, OPEN_NS = 1_000_000_000, 1_004_000_000


def roster(sequence: int, *members: tuple[str, str]) -> bytes:
    """A STAGE_STATE listing (participant id, user id) pairs."""
    return codec.encode_stage_state(codec.StageState(
        sequence, tuple(codec.Participant(pid, uid) for pid, uid in members), (), 1_700_000_000_000_000_000))


def joined(*others: tuple[str, str], sequence: int = 5) -> StageProtocol:
    """A protocol that has joined: its first roster lists it and `others`."""
    protocol = StageProtocol(ME)
    protocol.connecting(ATTEMPT_NS)
    protocol.opened(OPEN_NS)
    protocol.receive(roster(sequence, *others, ("me", ME.user_id)), True, OPEN_NS + 2_000_000)
    return protocol


# -- joining -------------------------------------------------------------------------------------------------

def test_the_first_roster_is_ready_with_the_join_latency_and_the_origin_at_the_attempt():
    protocol = StageProtocol(ME)
    protocol.connecting(ATTEMPT_NS)
    protocol.opened(OPEN_NS)
    events = protocol.receive(roster(2, ("b", "participant-b"), ("me", ME.user_id)), True, OPEN_NS + 3_500_000)
    assert events == (READY, Measured("join", 3500), Origin("roster", ME.user_id, ATTEMPT_NS))


def test_a_first_roster_in_the_same_read_as_the_101_is_a_1_us_join():
    protocol = StageProtocol(ME)
    protocol.connecting(ATTEMPT_NS)
    protocol.opened(OPEN_NS)
    assert protocol.receive(roster(2, ("me", ME.user_id)), True, OPEN_NS)[1] == Measured("join", 1)


def test_a_participant_missing_from_its_own_roster_owes_nobody_its_join():
    protocol = StageProtocol(ME)
    protocol.opened(OPEN_NS)  # a publishers-only roster does not list a subscriber
    assert protocol.receive(roster(2, ("b", "publisher-b")), True, OPEN_NS + 1000) == (READY, Measured("join", 1))


def test_the_namespaced_stage_state_type_is_the_same_frame():
    protocol = StageProtocol(ME)
    protocol.opened(OPEN_NS)
    frame = orjson.dumps({"type": "aws:ivs:STAGE_STATE",
                          "payload": {"sequenceNumber": 1, "participants": [{"id": "me", "userId": ME.user_id}]}})
    assert protocol.receive(frame, True, OPEN_NS)[0] is READY


# -- the roster ----------------------------------------------------------------------------------------------

def test_a_later_roster_observes_exactly_the_participants_it_adds():
    protocol = joined(("b", "participant-b"))
    assert protocol.receive(roster(6, ("b", "participant-b"), ("me", ME.user_id), ("c", "participant-c")),
                            True, 1) == Observed("roster", "participant-c")
    assert protocol.receive(roster(7, ("b", "participant-b"), ("me", ME.user_id), ("c", "participant-c"),
                                   ("d", "participant-d"), ("e", "publisher-e")), True, 2) == (
        Observed("roster", "participant-d"), Observed("roster", "publisher-e"))


def test_the_baseline_is_not_observed_and_a_change_without_arrivals_is_nothing():
    protocol = joined(("b", "participant-b"), ("c", "participant-c"))
    assert protocol.receive(roster(6, ("c", "participant-c"), ("me", ME.user_id)), True, 1) is None  # b left


def test_a_participant_who_leaves_and_comes_back_with_a_new_id_is_observed_again():
    protocol = joined(("b1", "participant-b"))
    assert protocol.receive(roster(6, ("me", ME.user_id)), True, 1) is None
    assert protocol.receive(roster(7, ("me", ME.user_id), ("b2", "participant-b")), True, 2) == Observed(
        "roster", "participant-b")
    # Replaced in one roster change (old id gone, new id listed): still an arrival.
    assert protocol.receive(roster(8, ("me", ME.user_id), ("b3", "participant-b")), True, 3) == Observed(
        "roster", "participant-b")


def test_stale_and_repeated_sequence_numbers_are_ignored():
    protocol = joined(("b", "participant-b"), sequence=9)
    assert protocol.receive(roster(9, ("b", "participant-b"), ("me", ME.user_id), ("c", "participant-c")),
                            True, 1) == ServiceEvent("STAGE_STATE.stale")
    assert protocol.receive(roster(3, ("z", "participant-z")), True, 2) == ServiceEvent("STAGE_STATE.stale")
    assert protocol.receive(roster(10, ("b", "participant-b"), ("me", ME.user_id), ("c", "participant-c")),
                            True, 3) == Observed("roster", "participant-c")


def test_my_own_entry_under_a_new_id_is_not_an_observation():
    protocol = joined()
    assert protocol.receive(roster(6, ("me", ME.user_id), ("me2", ME.user_id)), True, 1) is None


# -- pings -----------------------------------------------------------------------------------------------------

def test_a_pong_answers_the_oldest_ping_with_its_round_trip():
    protocol = joined()
    first, second = Request("ping", 0, 10_000_000, 10_000_000), Request("ping", 0, 20_000_000, 20_000_000)
    assert protocol.encode_request("ping", first) == codec.encode_ping()
    protocol.encode_request("ping", second)
    assert protocol.receive(codec.encode_pong(), True, 25_000_000) == (Acked(first), Measured("ping", 15_000))
    assert protocol.receive(codec.encode_pong(), True, 26_000_000) == (Acked(second), Measured("ping", 6_000))
    assert protocol.receive(codec.encode_pong(), True, 27_000_000) == ServiceEvent("PONG.unsolicited")
    assert not protocol.pending


def test_other_requests_and_chat_messages_are_not_part_of_a_stage():
    protocol = joined()
    with pytest.raises(ValueError):
        protocol.encode_request("delete", Request("delete", 0, 0, 0))
    with pytest.raises(ValueError, match="no chat messages"):
        protocol.send_message(Request("send", 1, 0, 0), "hello", None)


# -- refusals, removals, expiry --------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "category"), [
    (codec.STAGE_AT_CAPACITY, Category.FORBIDDEN),
    (codec.TOKEN_EXPIRED, Category.UNAUTHORIZED),
    (codec.TOKEN_INVALID_SIGNATURE, Category.UNAUTHORIZED),
    (codec.TOKEN_REUSED, Category.INVALID),
    (codec.PARTICIPANT_DISCONNECTED, Category.FORBIDDEN),
    (codec.INSUFFICIENT_CAPABILITIES, Category.FORBIDDEN),
    (codec.STAGE_DELETED, Category.NOT_FOUND),
])
def test_a_join_error_before_joining_is_a_final_refusal_by_category_with_the_code(code, category):
    protocol = StageProtocol(ME)
    protocol.opened(OPEN_NS)
    frame = codec.encode_join_error(codec.JoinError(code, "no", codec.NOT_AUTHORIZED))
    assert protocol.receive(frame, True, OPEN_NS) == Refused(category, code, "no", final=True)


def test_an_unknown_join_error_code_takes_its_type_and_a_non_fatal_one_is_not_final():
    protocol = StageProtocol(ME)
    frame = orjson.dumps({"type": codec.JOIN_ERROR, "payload": {"code": "SOMETHING_NEW", "message": "later",
                                                                  "type": codec.INTERNAL_SERVER_ERROR,
                                                                  "fatal": False}})
    assert protocol.receive(frame, True, 1) == Refused(Category.SERVER_ERROR, "SOMETHING_NEW", "later", final=False)


def test_an_expiry_after_joining_is_counted_and_not_come_back_from_as_the_sdk_does():
    protocol = joined()
    frame = codec.encode_join_error(codec.JoinError(codec.TOKEN_EXPIRED, "expired"))
    assert protocol.receive(frame, True, 1) == ServiceEvent("join_error.TOKEN_EXPIRED")
    assert protocol.closed(1000, codec.TOKEN_EXPIRED, True) is None  # the clean close: no policy comes back


def test_disconnect_participant_is_a_kick_and_other_disconnects_are_counted_only():
    protocol = joined()
    kicked = codec.encode_disconnect(codec.Disconnect(codec.PARTICIPANT_DISCONNECTED, "bye"))
    assert protocol.receive(kicked, True, 1) == (ServiceEvent("disconnect.PARTICIPANT_DISCONNECTED"), Kicked("bye"))
    reused = codec.encode_disconnect(codec.Disconnect(codec.TOKEN_REUSED, "elsewhere"))
    assert protocol.receive(reused, True, 2) == ServiceEvent("disconnect.TOKEN_REUSED")


def test_other_server_frames_are_counted_by_type():
    protocol = joined()
    assert protocol.receive(codec.encode_sdp_answer("r1", 501, "no media"), True, 1) == ServiceEvent(
        "aws:ivs:SDP_ANSWER")
    assert protocol.receive(b'{"type":"aws:ivs:SUBSCRIBER_COUNT","payload":{"count":3}}', True, 2) == ServiceEvent(
        "aws:ivs:SUBSCRIBER_COUNT")


# -- what a server must not be able to do ----------------------------------------------------------------------

@pytest.mark.parametrize("frame", [
    b"not json", b"[1,2]", b'{"payload":{}}', b'{"type":"STAGE_STATE"}', b'{"type":"STAGE_STATE","payload":[]}',
    b'{"type":"STAGE_STATE","payload":{"sequenceNumber":"7","participants":[]}}',
    b'{"type":"STAGE_STATE","payload":{"sequenceNumber":7,"participants":[{"userId":"x"}]}}',
    b'{"type":"STAGE_STATE","payload":{"sequenceNumber":7,"participants":[7]}}',
    b'{"type":"aws:ivs:JOIN_ERROR","payload":"refused"}', b'{"type":"aws:ivs:DISCONNECT"}',
])
def test_unreadable_frames_are_protocol_errors(frame):
    assert isinstance(StageProtocol(ME).receive(frame, True, 1), ProtocolError)


def test_a_later_roster_with_an_unreadable_participant_is_an_error_and_changes_nothing():
    protocol = joined(("b", "participant-b"))
    bad = orjson.dumps({"type": "STAGE_STATE", "payload": {"sequenceNumber": 6, "participants": [
        {"id": "b", "userId": "participant-b"}, {"id": "c", "userId": 42}]}})
    assert isinstance(protocol.receive(bad, True, 1), ProtocolError)
    # The same arrival, readable, with the next sequence number: still observed.
    assert protocol.receive(roster(6, ("b", "participant-b"), ("c", "participant-c")), True, 2) == Observed(
        "roster", "participant-c")


def test_binary_frames_are_protocol_errors():
    assert isinstance(StageProtocol(ME).receive(roster(1, ("me", ME.user_id)), False, 1), ProtocolError)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
PARTICIPANT = st.fixed_dictionaries({}, optional={"id": st.one_of(st.text(max_size=4), SCALARS),
                                                  "userId": st.one_of(st.text(max_size=4), SCALARS)})
ROSTERISH = st.builds(lambda kind, sequence, people: json.dumps(
    {"type": kind, "payload": {"sequenceNumber": sequence, "participants": people}}),
    st.sampled_from(["STAGE_STATE", "aws:ivs:STAGE_STATE", "PONG", "aws:ivs:JOIN_ERROR", "aws:ivs:DISCONNECT"]),
    st.one_of(st.integers(-3, 10), SCALARS), st.one_of(st.lists(PARTICIPANT, max_size=5), VALUES))
FRAMES = st.one_of(ROSTERISH, VALUES.map(json.dumps), st.text(max_size=60), st.binary(max_size=60))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(FRAMES, st.booleans()), min_size=1, max_size=8))
def test_no_sequence_of_server_frames_makes_the_protocol_raise(frames):
    protocol = StageProtocol(ME)
    protocol.opened(OPEN_NS)
    protocol.encode_request("ping", Request("ping", 0, 0, 0))
    for frame, is_text in frames:
        payload = frame.encode() if isinstance(frame, str) else frame
        events = protocol.receive(payload, is_text, OPEN_NS)
        for event in events if isinstance(events, tuple) else (events,):
            assert event is None or type(event).__module__ == "harness.services.base", event


PUBLISHER = UserSpec("p1", "participant-p1", ME.room, ("PUBLISH", "SUBSCRIBE"))


def publishing(*listed: tuple[str, str]) -> tuple[StageProtocol, tuple]:
    """A publisher that has joined (its first roster lists `listed`) and sent its publish offer."""
    protocol = StageProtocol(PUBLISHER, {PUBLISHER.sender_id: "https://w/publish/me"})
    protocol.connecting(ATTEMPT_NS)
    protocol.opened(OPEN_NS)
    events = protocol.receive(roster(5, *listed), True, OPEN_NS + 1)
    assert protocol.outbox and "publish" in protocol.pending
    return protocol, events


def answer(payload) -> bytes:
    return orjson.dumps({"type": codec.SDP_ANSWER, "payload": payload})


@pytest.mark.parametrize(("payload", "code", "category"), [
    ({"httpStatusCode": 403, "errorCode": codec.PUBLISH_STAGE_AT_CAPACITY}, codec.STAGE_AT_CAPACITY, "forbidden"),
    ({"httpStatusCode": 403, "errorCode": 9999}, "HTTP_403", "forbidden"),  # a code the SDK has no name for
    ({"httpStatusCode": 429}, "HTTP_429", "rate_limited"),
    ({"httpStatusCode": "403", "errorCode": codec.PUBLISH_STAGE_AT_CAPACITY}, "SDP_ANSWER_UNREADABLE", "server_error"),
    (None, "SDP_ANSWER_UNREADABLE", "server_error"),
    ({"httpStatusCode": True}, "SDP_ANSWER_UNREADABLE", "server_error"),
])
def test_a_publish_answer_that_is_not_a_holding_status_is_never_counted_published(payload, code, category):
    protocol, _ = publishing()
    events = protocol.receive(answer(payload), True, OPEN_NS + 2)
    rejected = events[0]
    assert (rejected.request.kind, rejected.code, rejected.category) == ("publish", code, category)
    assert ServiceEvent("published") not in events and "publish" not in protocol.pending


def test_a_held_publish_is_acked_and_owed_to_the_roster_only_when_the_join_was_not():
    listed, joined_events = publishing(("me", PUBLISHER.user_id))  # every participant on the roster
    assert Origin("roster", PUBLISHER.user_id, ATTEMPT_NS) in joined_events
    assert listed.receive(answer({"httpStatusCode": 501}), True, OPEN_NS + 2) == (
        Acked(Request("publish", 0, OPEN_NS + 1, OPEN_NS + 1)), ServiceEvent("published"))
    unlisted, joined_events = publishing()  # a publishers-only roster: it appears when it publishes
    assert not any(isinstance(event, Origin) for event in joined_events)
    acked, event, origin = unlisted.receive(answer({"httpStatusCode": 501}), True, OPEN_NS + 2)
    assert isinstance(acked, Acked) and event == ServiceEvent("published")
    assert origin == Origin("roster", PUBLISHER.user_id, OPEN_NS + 1)
