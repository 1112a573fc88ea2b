"""The `ivs-realtime` control plane, driven by a real boto3 client against an emulator child process."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import jwt
import pytest
from botocore.exceptions import ClientError

from harness.services.ivsrealtime import boto, tokens
from harness.services.ivsrealtime.emulator import EmulatorProcess

from .ivsrealtime import ivs, rt, stage, token_for  # noqa: F401 - fixtures


def test_stage_round_trip(ivs):  # noqa: F811
    created = ivs.create_stage(name="round-trip", tags={"team": "a"},
                               participantTokenConfigurations=[{"userId": "host", "capabilities": ["PUBLISH"]},
                                                               {"duration": 5}])
    stage_ = created["stage"]
    assert stage_["arn"].startswith("arn:aws:ivs:us-east-1:123456789012:stage/")
    assert stage_["activeSessionId"].startswith("st-") and len(stage_["activeSessionId"]) == 16
    assert stage_["endpoints"]["events"].startswith("ws://127.0.0.1:")
    assert stage_["endpoints"]["whip"].startswith("http://127.0.0.1:")
    assert [t["userId"] for t in created["participantTokens"] if "userId" in t] == ["host"]
    assert created["participantTokens"][0]["capabilities"] == ["PUBLISH"]
    assert created["participantTokens"][1]["duration"] == 5
    assert ivs.get_stage(arn=stage_["arn"])["stage"] == stage_
    assert ivs.update_stage(arn=stage_["arn"], name="renamed")["stage"]["name"] == "renamed"
    listed, kwargs = [], {"maxResults": 1}
    while True:  # botocore has no paginator for ListStages
        page = ivs.list_stages(**kwargs)
        assert len(page["stages"]) <= 1
        listed += [s["arn"] for s in page["stages"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    assert stage_["arn"] in listed and len(listed) == len(set(listed))
    ivs.delete_stage(arn=stage_["arn"])
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.get_stage(arn=stage_["arn"])
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.delete_stage(arn=stage_["arn"])


def test_participant_token_is_an_es384_jwt_with_the_spec_claims(rt, ivs, stage):  # noqa: F811
    before = time.time()
    answer = token_for(ivs, stage, "alice", attributes={"name": "Alice"}, capabilities=["SUBSCRIBE"], duration=90)
    assert jwt.get_unverified_header(answer["token"])["alg"] == "ES384"
    claims = tokens.unverified_claims(answer["token"])
    assert claims["resource"] == stage["arn"] and claims["jti"] == answer["participantId"]
    assert claims["topic"] == stage["arn"].rsplit("/", 1)[-1]
    assert claims["events_url"] == rt.messaging_endpoint and claims["whip_url"] == stage["endpoints"]["whip"]
    assert claims["user_id"] == "alice" and claims["attributes"] == {"name": "Alice"}
    assert claims["capabilities"] == {"allow_publish": False, "allow_subscribe": True}
    assert before - 1 <= claims["exp"] - 90 * 60 <= time.time()
    assert abs(answer["expirationTime"].timestamp() - claims["exp"]) < 1
    assert answer["duration"] == 90 and answer["capabilities"] == ["SUBSCRIBE"]
    default = token_for(ivs, stage)
    assert default["duration"] == 720 and sorted(default["capabilities"]) == ["PUBLISH", "SUBSCRIBE"]


@pytest.mark.parametrize("kwargs,field", [
    ({"duration": 20161}, "duration"),
    ({"attributes": {"k": "v" * 1024}}, "attributes"),
    ({"attributes": {"é" * 300: "ü" * 300}}, "attributes"),  # 1200 UTF-8 bytes: "1 KB total" is bytes
    ({"userId": "u" * 129}, "userId"),
])
def test_bad_token_requests_are_validation_errors(ivs, stage, kwargs, field):  # noqa: F811
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_participant_token(stageArn=stage["arn"], **kwargs)
    assert field in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_validation_and_not_found_use_the_modelled_errors(rt, ivs):  # noqa: F811
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.get_stage(arn="arn:aws:ivs:us-east-1:123456789012:room/nope")  # botocore checks only presence
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.create_stage(name="bad name!")
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.create_participant_token(stageArn="arn:aws:ivs:us-east-1:123456789012:stage/missing")
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.list_stages(nextToken="not-ours")
    for body in (b"[]", b"{", b'{"arn": 5}'):
        request = urllib.request.Request(rt.control_endpoint + "/GetStage", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 400 and caught.value.headers["x-amzn-ErrorType"] == "ValidationException"


def test_participants_and_their_events(rt, ivs, stage):  # noqa: F811
    """Records and events appear through the data plane; see test_ivsrealtime_events for the joins."""
    session = stage["activeSessionId"]
    assert ivs.list_participants(stageArn=stage["arn"], sessionId=session)["participants"] == []
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.get_participant(stageArn=stage["arn"], sessionId=session, participantId="nobody")
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.disconnect_participant(stageArn=stage["arn"], participantId="nobody")
    issued = token_for(ivs, stage)
    ivs.disconnect_participant(stageArn=stage["arn"], participantId=issued["participantId"])  # not joined: fine
    assert ivs.list_participant_events(stageArn=stage["arn"], sessionId=session,
                                       participantId=issued["participantId"])["events"] == []


def test_public_keys(ivs):  # noqa: F811
    key = tokens.generate_key()
    imported = ivs.import_public_key(publicKeyMaterial=tokens.public_key_pem(key), name="mine")["publicKey"]
    assert imported["arn"].startswith("arn:aws:ivs:us-east-1:123456789012:public-key/")
    assert ivs.get_public_key(arn=imported["arn"])["publicKey"]["fingerprint"] == imported["fingerprint"]
    assert imported["arn"] in [k["arn"] for k in ivs.list_public_keys()["publicKeys"]]
    with pytest.raises(ivs.exceptions.ConflictException):
        ivs.import_public_key(publicKeyMaterial=tokens.public_key_pem(key))
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.import_public_key(publicKeyMaterial="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    ivs.delete_public_key(arn=imported["arn"])
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.get_public_key(arn=imported["arn"])


def whip_publish_status(stage_, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(stage_["endpoints"]["whip"] + "/publish/abc", data=body, method="POST",
                                     headers=headers)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    return caught.value.code


def test_whip_answers_501(rt, stage):  # noqa: F811
    assert whip_publish_status(stage, b"v=0\r\n", {"Content-Type": "application/sdp"}) == 501
    assert 'ivsrealtime_whip_requests_total{method="POST"}' in rt.admin.metrics_text()


def test_a_whip_bearer_with_a_non_utf8_byte_is_refused_not_a_server_error(rt, stage):  # noqa: F811
    # http.client sends the header in latin-1: \xff arrives as a byte aiohttp hands on as a surrogate.
    assert whip_publish_status(stage, b"", {"Authorization": "Bearer a\xffb.c.d"}) == 400
    with pytest.raises(tokens.TokenError) as refused:  # the same token reaching the verifier by another road
        tokens.verify_participant_token("a\udcffb.c.d", [], time.time())
    assert refused.value.code == "TOKEN_INVALID"


def test_stage_quota_is_402():
    with EmulatorProcess("--max-stages", "2") as small:
        ivs_ = small.boto3_client()
        arns = [ivs_.create_stage()["stage"]["arn"] for _ in range(2)]
        with pytest.raises(ivs_.exceptions.ServiceQuotaExceededException) as caught:
            ivs_.create_stage()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402
        ivs_.delete_stage(arn=arns[0])
        ivs_.create_stage()  # room again


def test_throttling_is_429_and_the_helper_reports_each_one():
    with EmulatorProcess("--throttle-limit", "CreateParticipantToken=5") as throttled:
        client = throttled.no_retry_client()
        arn = client.create_stage()["stage"]["arn"]
        outcomes = []
        for _ in range(12):  # a burst: the bucket holds 5, refills at 5/s
            try:
                boto.create_participant_token(client, arn, user_id="u")
                outcomes.append("ok")
            except ClientError as exc:
                assert boto.is_throttled(exc), exc.response
                assert exc.response["Error"]["Code"] == "ThrottlingException"
                outcomes.append("429")
        assert outcomes[:5] == ["ok"] * 5 and "429" in outcomes, outcomes
        metrics = throttled.admin.metrics_text()
        assert 'ivsrealtime_control_requests_total{operation="CreateParticipantToken",status="429"}' in metrics
        # GetStage keeps its own (default 5 TPS) bucket.
        client.get_stage(arn=arn)


def test_emulator_options_are_checked():
    from harness.emulation.process import EmulatorStartError

    for bad in (["--minute-seconds", "0"], ["--throttle-limit", "CreateStage=x"], ["--public-key", "/nonexistent"]):
        with pytest.raises(EmulatorStartError):
            EmulatorProcess(*bad, startup_timeout=10).start()
