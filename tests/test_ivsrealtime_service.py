"""IVS Real-Time's adapter and token sources: scenario keys, the join URL, tokens, keys, the SDK's
backoff and the token-rate verdict. Control-plane calls go to a real emulator through boto3."""

from __future__ import annotations

import os
import stat
import time

import pytest

from harness.scenario.reader import ScenarioError, load_scenario
from harness.services import registry
from harness.services.base import (
    KIND_EMULATOR,
    KIND_RUNNING_EMULATOR,
    RoomSettings,
    ServiceEvent,
    Target,
    UserSpec,
)
from harness.services.ivsrealtime import codec, tokens
from harness.services.ivsrealtime.emulator import EmulatorProcess
from harness.services.ivsrealtime.token_sources import (
    CreateParticipantTokens,
    PrivateKeyError,
    SelfSignedTokens,
    read_private_key,
)
from harness.services.ivsrealtime.verdicts import token_rate
from harness.services.tokens import TokenFetchFailed

SERVICE = registry.get("ivsrealtime")
STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdEfGhIjKl"
SCENARIO = """[target]
service = "ivsrealtime"
{target}
[[population]]
kind = "participant"
users = 1
"""


def _pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess("--throttle-limit", "CreateParticipantToken=2") as process:
        yield process


# -- scenario keys ---------------------------------------------------------------------------------------------

def _load(tmp_path, target: str):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(target=target))
    return load_scenario(path)


def test_a_real_stage_needs_its_arn_and_self_signed_tokens_need_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ScenarioError) as error:
        _load(tmp_path, 'kind = "ivsrealtime"\ntoken_source = "self-signed"\ncontrol_endpoint = "http://x"')
    problems = "\n".join(error.value.problems)
    assert "stage_arns: a real stage's ARN is required" in problems
    assert "private_key: self-signed tokens for real stages need your key" in problems
    assert "control_endpoint: not used against AWS" in problems
    with pytest.raises(ScenarioError, match="environment variable NO_SUCH_KEY_VAR is not set"):
        _load(tmp_path, f'kind = "ivsrealtime"\nstage_arns = ["{STAGE}"]\ntoken_source = "self-signed"\n'
                        'private_key = "env:NO_SUCH_KEY_VAR"')
    with pytest.raises(ScenarioError, match='only used with token_source = "self-signed"'):
        _load(tmp_path, f'kind = "ivsrealtime"\nstage_arns = ["{STAGE}"]\nprivate_key = "env:HOME"')
    with pytest.raises(ScenarioError, match="not a stage ARN"):
        _load(tmp_path, 'kind = "ivsrealtime"\nstage_arns = ["arn:aws:ivschat:us-east-1:1:room/x"]')


def test_a_real_target_names_the_key_and_never_holds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOAD_TEST_STAGE_KEY", _pem(tokens.generate_key()))
    scenario = _load(tmp_path, f'kind = "ivsrealtime"\nstage_arns = ["{STAGE}"]\ntoken_source = "self-signed"\n'
                               'private_key = "env:CHATLOAD_TEST_STAGE_KEY"')
    target = scenario.target.to_dict()
    assert target["settings"] == {"token_source": "self-signed", "private_key": "env:CHATLOAD_TEST_STAGE_KEY"}
    assert "PRIVATE KEY" not in str(target) and target["rooms"] == [STAGE]


def test_private_keys_are_read_by_reference_and_errors_never_show_them(tmp_path, monkeypatch):
    key = tokens.generate_key()
    path = tmp_path / "key.pem"
    path.write_text(_pem(key))
    assert read_private_key(str(path)).private_numbers() == key.private_numbers()
    monkeypatch.setenv("CHATLOAD_TEST_STAGE_KEY", _pem(key))
    assert read_private_key("env:CHATLOAD_TEST_STAGE_KEY").private_numbers() == key.private_numbers()
    secret = "-----BEGIN PRIVATE KEY-----\nnot-really-a-key-but-secret\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("CHATLOAD_TEST_STAGE_KEY", secret)
    with pytest.raises(PrivateKeyError) as error:
        read_private_key("env:CHATLOAD_TEST_STAGE_KEY")
    assert "not-really" not in str(error.value) and "CHATLOAD_TEST_STAGE_KEY" in str(error.value)
    # A provider with a bad key fails each fetch with a cause, naming the key, not showing it.
    provider = SelfSignedTokens("env:CHATLOAD_TEST_STAGE_KEY", "us-east-1", "http://127.0.0.1:9")
    with pytest.raises(TokenFetchFailed) as failed:
        provider.fetch(UserSpec("s", "u", STAGE))
    assert failed.value.cause == "private key" and "not-really" not in str(failed.value)


# -- the join --------------------------------------------------------------------------------------------------

def test_the_join_url_and_topic_come_from_the_token_and_the_token_is_the_only_subprotocol():
    key = tokens.generate_key()
    token, claims = tokens.self_signed_token(key, STAGE, events_url="wss://events.example", whip_url="https://w",
                                             now=time.time(), user_id="participant-x")
    user = UserSpec("x1", "participant-x", STAGE, ("SUBSCRIBE",))
    target = Target("ivsrealtime", "ivsrealtime", rooms=(STAGE,))
    params = SERVICE.connect_params(target, token, user)
    assert params.url.startswith("wss://events.example?error_over_ws=1&topic=AbCdEfGhIjKl/publishers&traceid=")
    assert params.subprotocols == (token,) and "publish=1" not in params.url
    assert SERVICE._participant_ids["x1"] == claims.participant_id  # what a kick disconnects
    # A publisher on an emulator publishes once joined, to the token's whip_url (its stub SDP is for the
    # emulator alone); against AWS it joins and holds the capability. Nothing in the join says so.
    publisher = UserSpec("x2", "publisher-x", STAGE, ("PUBLISH", "SUBSCRIBE"))
    SERVICE.connect_params(target, token, publisher)
    assert "x2" not in SERVICE._publish_urls
    url = SERVICE.connect_params(Target("ivsrealtime", KIND_EMULATOR, "ws://e", rooms=(STAGE,)), token, publisher).url
    assert "publish=1" not in url and SERVICE._publish_urls["x2"] == f"https://w/publish/{claims.participant_id}"
    protocol = SERVICE.client_protocol(publisher)
    protocol.opened(1)
    state = b'{"type":"STAGE_STATE","payload":{"sequenceNumber":2,"participants":[]}}'
    protocol.receive(state, True, 2)
    (offer,) = protocol.outbox
    assert codec.parse_client_frame(offer) == codec.SdpOffer("publish", f"https://w/publish/{claims.participant_id}")
    full = codec.encode_sdp_answer("publish", 403, "full", codec.PUBLISH_STAGE_AT_CAPACITY)
    rejected, event = protocol.receive(full, True, 3)
    assert (rejected.code, rejected.category, event) == (codec.STAGE_AT_CAPACITY, "forbidden",
                                                         ServiceEvent("publish_error.STAGE_AT_CAPACITY"))


def test_an_opaque_token_joins_where_the_target_says():
    target = Target("ivsrealtime", KIND_RUNNING_EMULATOR, "ws://127.0.0.1:1234", "http://127.0.0.1:1235",
                    rooms=(STAGE,))
    params = SERVICE.connect_params(target, "opaque", UserSpec("o1", "participant-o", STAGE))
    assert params.url.startswith("ws://127.0.0.1:1234?error_over_ws=1&topic=AbCdEfGhIjKl/publishers")


def test_the_sdk_policy_is_the_stage_sockets_backoff():
    policy = SERVICE.sdk_policy()
    assert [policy.after_failure(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, None, None]
    assert policy.after_drop() == 0.0 and policy.reconnect_after(1006, False)


# -- tokens and provisioning against the emulator --------------------------------------------------------------

def test_provisioning_self_signed_makes_stages_and_a_run_key_that_the_emulator_accepts(emulator):
    target = Target("ivsrealtime", KIND_RUNNING_EMULATOR, emulator.messaging_endpoint, emulator.control_endpoint,
                    settings={"token_source": "self-signed"})
    provisioned = SERVICE.provision(target, RoomSettings(count=2), "unit test")
    assert len(provisioned.rooms) == 2 and all(arn.startswith("arn:aws:ivs:") for arn in provisioned.rooms)
    path = provisioned.settings["private_key"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and "PRIVATE" not in str(provisioned.to_dict())
    key = read_private_key(path)
    imported = [tokens.load_public_key(k["publicKeyMaterial"]) for k in
                [emulator.boto3_client().get_public_key(arn=entry["arn"])["publicKey"]
                 for entry in emulator.boto3_client().list_public_keys()["publicKeys"]]]
    assert any(k.public_numbers() == key.public_key().public_numbers() for k in imported)
    token = SERVICE.token_provider(provisioned).fetch(UserSpec("p1", "participant-p1", provisioned.rooms[1],
                                                               ("SUBSCRIBE",)))
    claims = tokens.verify_participant_token(token, imported, time.time())
    assert claims.stage_arn == provisioned.rooms[1] and claims.user_id == "participant-p1"
    assert claims.events_url == emulator.messaging_endpoint and claims.capabilities == {"SUBSCRIBE"}


def test_create_participant_token_reports_each_429_with_its_code(emulator):
    stage = emulator.boto3_client().create_stage(name="throttled")["stage"]["arn"]
    provider = CreateParticipantTokens(emulator.region, emulator.control_endpoint)
    assert isinstance(provider, type(SERVICE.token_provider(Target("ivsrealtime", KIND_EMULATOR, rooms=(stage,),
                                                                   control_endpoint=emulator.control_endpoint))))
    user = UserSpec("t1", "participant-t1", stage, ("SUBSCRIBE",))
    causes = []
    for _ in range(6):  # a quota of 2 per second: a burst of 6 is throttled at once, never retried away
        try:
            claims = tokens.unverified_claims(provider.fetch(user))
            assert claims["user_id"] == "participant-t1" and claims["resource"] == stage
            causes.append("ok")
        except TokenFetchFailed as failed:
            causes.append(failed.cause)
    assert causes.count("ThrottlingException") >= 3 and causes[0] == "ok", causes


# -- the verdict -----------------------------------------------------------------------------------------------

def _second(issued: int, throttled: int = 0, other: int = 0) -> dict:
    counters = {"token_fetches": issued}
    if throttled:
        counters["token_fetch_failures.ThrottlingException"] = throttled
    if other:
        counters["token_fetch_failures.EndpointConnectionError"] = other
    return {"counters": counters}


def test_the_token_rate_verdict_judges_the_quota_over_the_throttled_seconds_and_a_burst():
    timeline = [_second(100, 20), _second(50, 60), _second(48, 40), _second(52, 30), _second(30, 5), _second(10)]
    results = {"timeline": timeline,
               "counters": {"token_fetches": 290, "token_fetch_failures.ThrottlingException": 155,
                            "token_fetch_failures.EndpointConnectionError": 1},
               "latency_us": {"retry_wait": {"count": 155, "min": 999_936, "percentiles": {"50": 1_000_447}}}}
    verdict = token_rate(results, "create-participant-token")
    assert verdict["requests"] == 446 and verdict["issued"] == 290 and verdict["throttled"] == 155
    assert verdict["other_failures"] == 1 and verdict["throttled_seconds"] == 5
    assert verdict["issued_peak_per_s"] == 100 and verdict["peak_ratio"] == 2.0
    assert verdict["offered_peak_per_s"] == 120
    # 280 issued in the 5 throttled seconds, against 50 × (5 + 1) allowed with a second's burst.
    assert verdict["steady_issued_per_s"] == 56.0 and verdict["quota_ratio"] == pytest.approx(280 / 300)
    # A service issuing 75 a second while throttling breaks the quota, whatever its first second did.
    over = token_rate({"timeline": [_second(100, 20)] + [_second(75, 40)] * 4, "counters": {}},
                      "create-participant-token")
    assert over["quota_ratio"] == pytest.approx(400 / 300)
    assert verdict["backs_off"] == 1 and verdict["retry_wait_min_ms"] == pytest.approx(999.936)


def test_a_harness_that_retries_at_once_does_not_back_off_and_nothing_retried_is_not_judged():
    at_once = {"counters": {}, "timeline": [],
               "latency_us": {"retry_wait": {"count": 3, "min": 1, "percentiles": {"50": 1}}}}
    assert token_rate(at_once, "create-participant-token")["backs_off"] == 0
    quiet = token_rate({"counters": {"token_fetches": 5}, "timeline": [_second(5)]}, "self-signed")
    assert quiet["backs_off"] is None and quiet["quota_ratio"] is None and quiet["throttled"] == 0
