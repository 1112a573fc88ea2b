"""The chime-sdk-meetings control plane of the emulator, driven by a real boto3 client (and raw HTTP
where boto3 would refuse to send the bad input), against an emulator child process."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.services.chime import provision
from harness.services.chime.emulator import EmulatorProcess

from .chime import client, meeting

GUID_RE = re.compile(r"^[a-f0-9]{8}(-[a-f0-9]{4}){3}-[a-f0-9]{12}$")
EXCEPTIONS = ("BadRequestException", "NotFoundException", "LimitExceededException", "ThrottlingException")


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess(service="chime") as process:
        yield process


@pytest.fixture(scope="module")
def chime(emulator):
    return client(emulator)


def create(chime, **extra) -> dict:
    request = {"ClientRequestToken": uuid.uuid4().hex, "MediaRegion": "us-east-1", "ExternalMeetingId": "ext-1"}
    return chime.create_meeting(**{**request, **extra})["Meeting"]


def expect_error(chime, shape: str, call) -> dict:
    """`call` must raise boto3's modelled `shape` with the error members the model declares."""
    with pytest.raises(getattr(chime.exceptions, shape)) as caught:
        call()
    response = caught.value.response
    assert response["Error"]["Code"] == shape
    assert response["Code"] == shape.removesuffix("Exception")  # the shape's own members, parsed by botocore
    assert response["Message"] and response["Error"]["Message"] == response["Message"]
    assert GUID_RE.match(response["RequestId"])
    assert response["ResponseMetadata"]["RequestId"] == response["RequestId"]
    return response


# -- meetings ----------------------------------------------------------------------------------------


def test_create_get_delete_meeting(emulator, chime):
    made = create(chime, MeetingHostId="host-1", MeetingFeatures={"Audio": {"EchoReduction": "AVAILABLE"}},
                  TenantIds=["tenant-1"])
    meeting_id = made["MeetingId"]
    assert GUID_RE.match(meeting_id)
    assert made["MeetingArn"] == f"arn:aws:chime:us-east-1:123456789012:meeting/{meeting_id}"
    assert made["ExternalMeetingId"] == "ext-1" and made["MediaRegion"] == "us-east-1"
    assert made["MeetingHostId"] == "host-1" and made["TenantIds"] == ["tenant-1"]
    placement = made["MediaPlacement"]
    signaling_base = emulator.info["signaling_base"]
    assert placement["SignalingUrl"] == f"{signaling_base}/{meeting_id}"
    assert set(placement) == {"AudioHostUrl", "AudioFallbackUrl", "SignalingUrl", "TurnControlUrl", "ScreenDataUrl",
                              "ScreenViewingUrl", "ScreenSharingUrl", "EventIngestionUrl"}
    assert all(".invalid" in url for key, url in placement.items() if key != "SignalingUrl")
    assert chime.get_meeting(MeetingId=meeting_id)["Meeting"] == made
    chime.delete_meeting(MeetingId=meeting_id)
    expect_error(chime, "NotFoundException", lambda: chime.get_meeting(MeetingId=meeting_id))
    expect_error(chime, "NotFoundException", lambda: chime.delete_meeting(MeetingId=meeting_id))


def test_same_client_request_token_is_the_same_meeting(chime):
    token = uuid.uuid4().hex
    first = create(chime, ClientRequestToken=token)
    assert create(chime, ClientRequestToken=token)["MeetingId"] == first["MeetingId"]
    chime.delete_meeting(MeetingId=first["MeetingId"])
    assert create(chime, ClientRequestToken=token)["MeetingId"] != first["MeetingId"]


def test_create_meeting_with_attendees(chime):
    answer = chime.create_meeting_with_attendees(
        ClientRequestToken=uuid.uuid4().hex, MediaRegion="eu-west-1", ExternalMeetingId="with-attendees",
        Attendees=[{"ExternalUserId": "alice"}, {"ExternalUserId": "x" * 65},
                   {"ExternalUserId": "bob", "Capabilities": {"Audio": "None", "Video": "Send", "Content": "Receive"}}])
    assert [a["ExternalUserId"] for a in answer["Attendees"]] == ["alice", "bob"]
    assert answer["Attendees"][1]["Capabilities"] == {"Audio": "None", "Video": "Send", "Content": "Receive"}
    assert answer["Attendees"][0]["Capabilities"] == {"Audio": "SendReceive", "Video": "SendReceive",
                                                      "Content": "SendReceive"}
    assert [(e["ExternalUserId"], e["ErrorCode"]) for e in answer["Errors"]] == [("x" * 65, "BadRequest")]
    assert answer["Meeting"]["MediaRegion"] == "eu-west-1"


# -- attendees ---------------------------------------------------------------------------------------


def test_attendee_round_trip(chime):
    meeting_id = create(chime)["MeetingId"]
    attendee = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="alice")["Attendee"]
    assert GUID_RE.match(attendee["AttendeeId"])
    assert 2 <= len(attendee["JoinToken"]) <= 2048 and re.fullmatch(r"[A-Za-z0-9_-]+", attendee["JoinToken"])
    # ExternalUserId is an idempotency token: the same user is the same attendee.
    assert chime.create_attendee(MeetingId=meeting_id, ExternalUserId="alice")["Attendee"] == attendee
    got = chime.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])["Attendee"]
    assert got == attendee
    chime.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    expect_error(chime, "NotFoundException",
                 lambda: chime.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"]))
    again = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="alice")["Attendee"]
    assert again["AttendeeId"] != attendee["AttendeeId"] and again["JoinToken"] != attendee["JoinToken"]


def test_batch_create_reports_failures_per_attendee(chime):
    meeting_id = create(chime, MeetingFeatures={"Attendee": {"MaxCount": 3}})["MeetingId"]
    answer = chime.batch_create_attendee(MeetingId=meeting_id, Attendees=[
        {"ExternalUserId": "u-1"}, {"ExternalUserId": "u-2"},
        {"ExternalUserId": "u-3", "Capabilities": {"Audio": "Loud", "Video": "None", "Content": "None"}},
        {"ExternalUserId": "u-4"}, {"ExternalUserId": "u-5"}])
    assert [a["ExternalUserId"] for a in answer["Attendees"]] == ["u-1", "u-2", "u-4"]
    assert [(e["ExternalUserId"], e["ErrorCode"]) for e in answer["Errors"]] == [
        ("u-3", "BadRequest"), ("u-5", "LimitExceeded")]
    assert all(e["ErrorMessage"] for e in answer["Errors"])


def test_attendee_cap_is_250(chime):
    """250 per meeting (the quota); the 251st is LimitExceededException (inferred)."""
    made = provision.create_meeting(chime, [f"user-{i}" for i in range(250)])
    assert len(made.attendees) == 250
    response = expect_error(chime, "LimitExceededException",
                            lambda: chime.create_attendee(MeetingId=made.meeting_id, ExternalUserId="one-too-many"))
    assert "250" in response["Message"]
    # An existing attendee is still "created" (idempotent), and a deletion frees a place.
    chime.create_attendee(MeetingId=made.meeting_id, ExternalUserId="user-0")
    chime.delete_attendee(MeetingId=made.meeting_id, AttendeeId=made.attendees[0].attendee_id)
    chime.create_attendee(MeetingId=made.meeting_id, ExternalUserId="one-too-many")


def test_list_attendees_pages(chime):
    made = meeting(chime, *[f"p-{i}" for i in range(7)])
    seen, kwargs = [], {}
    while True:
        page = chime.list_attendees(MeetingId=made.meeting_id, MaxResults=3, **kwargs)
        seen += [a["ExternalUserId"] for a in page["Attendees"]]
        if "NextToken" not in page:
            break
        kwargs = {"NextToken": page["NextToken"]}
    assert seen == [f"p-{i}" for i in range(7)]
    assert len(chime.list_attendees(MeetingId=made.meeting_id)["Attendees"]) == 7  # default page: 100
    expect_error(chime, "BadRequestException",
                 lambda: chime.list_attendees(MeetingId=made.meeting_id, NextToken="not-a-cursor"))


def test_provision_helper_creates_meetings_in_batches(emulator, chime):
    before = control_counts(emulator, "BatchCreateAttendee")
    meetings = provision.create_meetings(chime, 2, 120, user_prefix="load")
    assert [len(m.attendees) for m in meetings] == [120, 120]
    assert control_counts(emulator, "BatchCreateAttendee") - before == 4  # 100 + 20 per meeting
    assert meetings[0].attendees[0].external_user_id == "load-0-0"
    assert "join_token" not in repr(meetings[0]) and meetings[0].attendees[0].join_token not in repr(meetings[0])
    provision.delete_meetings(chime, meetings)
    provision.delete_meetings(chime, meetings)  # already gone: skipped
    with pytest.raises(provision.ProvisionError, match="LimitExceeded"):
        provision.create_meeting(chime, ["a1", "a2", "a3"], max_attendees=2)


# -- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda c: create(c, ClientRequestToken="has space"),
    lambda c: create(c, ClientRequestToken="x" * 65),
    lambda c: create(c, MediaRegion="moon-1"),
    lambda c: create(c, ExternalMeetingId="x" * 65),
    lambda c: create(c, MeetingFeatures={"Attendee": {"MaxCount": 251}}),
    lambda c: create(c, MeetingFeatures={"Video": {"MaxResolution": "8K"}}),
    lambda c: c.create_attendee(MeetingId=str(uuid.uuid4()), ExternalUserId="x" * 65),
    lambda c: c.get_meeting(MeetingId="not-a-guid"),
    lambda c: c.get_attendee(MeetingId=str(uuid.uuid4()), AttendeeId="nope"),
    lambda c: c.batch_create_attendee(MeetingId=str(uuid.uuid4()), Attendees=[{"ExternalUserId": f"u{i:03}"}
                                                                              for i in range(101)]),
    lambda c: c.list_attendees(MeetingId=str(uuid.uuid4()), MaxResults=101),
    lambda c: c.start_meeting_transcription(MeetingId=str(uuid.uuid4()), TranscriptionConfiguration={}),
], ids=["token-pattern", "token-length", "region", "external-id", "max-count", "enum", "user-id", "guid",
        "attendee-guid", "batch-size", "max-results", "unserved-operation"])
def test_bad_input_is_bad_request(chime, call):
    response = expect_error(chime, "BadRequestException", lambda: call(chime))
    assert "x" * 65 not in response["Message"]  # sensitive values are not echoed


def test_unknown_meeting_is_not_found(chime):
    expect_error(chime, "NotFoundException", lambda: chime.get_meeting(MeetingId=str(uuid.uuid4())))
    expect_error(chime, "NotFoundException",
                 lambda: chime.create_attendee(MeetingId=str(uuid.uuid4()), ExternalUserId="alice"))


def raw(emulator, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(emulator.control_endpoint + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            return response.status, dict(response.headers), json.loads(data) if data else {}
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
MEETING_KEYS = st.sampled_from(["ClientRequestToken", "MediaRegion", "ExternalMeetingId", "MeetingFeatures",
                                "Attendees", "TenantIds", "Tags", "MeetingHostId", "Other"])
BODIES = st.one_of(
    st.binary(max_size=60),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(MEETING_KEYS, JSON | st.sampled_from(["us-east-1", "abc", "x" * 70]), max_size=6).map(
        lambda v: json.dumps(v).encode()),
)
PATHS = st.sampled_from(["/meetings", "/meetings?operation=create-attendees", "/meetings?operation=nope",
                         "/meetings/{m}/attendees", "/meetings/{m}/attendees?operation=batch-create"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=PATHS, body=BODIES)
def test_bad_bodies_get_the_services_error_shape(emulator, chime, path, body):
    """Whatever the body, the answer is a modelled 4xx with {Code, Message, RequestId} (or a success),
    never a 500, and the emulator keeps serving."""
    meeting_id = test_bad_bodies_get_the_services_error_shape.meeting_id
    status, headers, answer = raw(emulator, "POST", path.format(m=meeting_id), body)
    if status >= 300:
        assert status in (400, 404), (status, answer)
        assert headers["x-amzn-ErrorType"] in EXCEPTIONS
        assert set(answer) == {"Code", "Message", "RequestId"}
    assert emulator.admin.health()["ok"]


@pytest.fixture(autouse=True, scope="module")
def _fuzz_meeting(chime):
    test_bad_bodies_get_the_services_error_shape.meeting_id = create(chime)["MeetingId"]


def test_metrics_count_control_requests(emulator, chime):
    chime.get_meeting(MeetingId=create(chime)["MeetingId"])
    with pytest.raises(chime.exceptions.NotFoundException):
        chime.get_meeting(MeetingId=str(uuid.uuid4()))
    text = emulator.admin.metrics_text()
    assert re.search(r'chime_control_requests_total\{operation="GetMeeting",status="200"\} [1-9]', text)
    assert re.search(r'chime_control_requests_total\{operation="GetMeeting",status="404"\} [1-9]', text)


def control_counts(emulator, operation: str, status: int = 200) -> int:
    match = re.search(rf'chime_control_requests_total\{{operation="{operation}",status="{status}"\}} (\d+)',
                      emulator.admin.metrics_text())
    return int(match.group(1)) if match else 0


# -- throttling --------------------------------------------------------------------------------------


def test_throttle_answers_429_past_the_burst():
    """--throttle: 10 requests/s, burst 20, per operation. A tight loop of 30 GetMeeting calls passes
    about 20 (plus what refills meanwhile) and the rest get ThrottlingException."""
    with EmulatorProcess("--throttle", service="chime") as throttled:
        chime = client(throttled)
        meeting_id = create(chime)["MeetingId"]
        outcomes = []
        for _ in range(30):
            try:
                chime.get_meeting(MeetingId=meeting_id)
                outcomes.append("ok")
            except chime.exceptions.ThrottlingException as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
                assert exc.response["Code"] == "Throttling"
                outcomes.append("throttled")
        assert 20 <= outcomes.count("ok") < 30 and outcomes[:20] == ["ok"] * 20, outcomes
        create(chime)  # another operation has its own bucket
        # boto3's own retries ride it out, as the provisioning helper relies on.
        patient = client(throttled, retries=True)
        patient.get_meeting(MeetingId=meeting_id)
        assert control_counts(throttled, "GetMeeting", 429) >= 1
