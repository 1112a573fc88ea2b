"""The ivschat control plane, driven by a real boto3 client.

Round trips, validation and not-found cases run against the shared emulator child process (the
`ivschat` and `room` fixtures of conftest.py). Tests that look inside — what the data plane was asked
to do, the metrics, throttling, the log output — run the control-plane routes in this process on a
real `IvsChatRooms` with a recording data plane (`local`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest
from aiohttp import web
from botocore.config import Config

from harness.emulation.throttle import OperationThrottle
from harness.services.ivschat.emulator.controlplane import INPUTS, add_control_plane_routes
from harness.services.ivschat.emulator.quotas import DEFAULT_TPS
from harness.services.ivschat.emulator.state import IvsChatRooms

LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:review"
_names = itertools.count()
_boto3 = boto3.session.Session()  # one session: its loader caches the service model across clients


def unique_name() -> str:
    return f"cp-{next(_names)}"


def expect_validation(client, call, field_name: str) -> dict:
    """Run `call`; it must raise boto3's modelled ValidationException naming `field_name`."""
    with pytest.raises(client.exceptions.ValidationException) as caught:
        call()
    response = caught.value.response
    assert response["reason"] == "FIELD_VALIDATION_FAILED"
    assert field_name in [f["name"] for f in response["fieldList"]], response
    return response


# -- the in-process control plane -------------------------------------------------------------------


@dataclass
class RecordingDataPlane:
    calls: list[tuple] = field(default_factory=list)

    def send_event(self, room, event_name, attributes, request_id=""):
        self.calls.append(("send_event", room.id, event_name, attributes))
        return "EventId12345"

    def delete_message(self, room, message_id, reason, request_id=""):
        self.calls.append(("delete_message", room.id, message_id, reason))

    def disconnect_user(self, room, user_id, reason, request_id=""):
        self.calls.append(("disconnect_user", room.id, user_id, reason))

    def room_deleted(self, room):
        self.calls.append(("room_deleted", room.id))

    def room_updated(self, room):
        self.calls.append(("room_updated", room.id))


@dataclass
class RecordingMetrics:
    requests: list[tuple[str, int]] = field(default_factory=list)

    def control_request(self, operation, status):
        self.requests.append((operation, status))


@dataclass
class LocalEmulator:
    """What `add_control_plane_routes` needs from an emulator, plus where it listens."""

    state: IvsChatRooms = field(default_factory=IvsChatRooms)
    throttle: OperationThrottle | None = None
    metrics: RecordingMetrics = field(default_factory=RecordingMetrics)
    dataplane: RecordingDataPlane = field(default_factory=RecordingDataPlane)
    control_endpoint: str = ""

    def client(self, region: str = "us-east-1", **config_options):
        """A real boto3 client; `config_options` are botocore `Config` arguments."""
        return _boto3.client(
            "ivschat", endpoint_url=self.control_endpoint, region_name=region,
            aws_access_key_id="x", aws_secret_access_key="y", config=Config(**config_options),
        )


@pytest.fixture
def local():
    """The control-plane routes on 127.0.0.1:0, served by an event loop in a background thread."""
    emulator = LocalEmulator()
    loop = asyncio.new_event_loop()
    app = web.Application()
    add_control_plane_routes(app, emulator)
    runner = web.AppRunner(app)  # with the access log on: the no-token-in-logs test reads it too
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    emulator.control_endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield emulator
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def raw_request(endpoint: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """A request boto3 would never send (wrong types, broken JSON): (status, headers, JSON body)."""
    request = urllib.request.Request(endpoint + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, data = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, head, data = error.code, error.headers, error.read()
    return status, head, json.loads(data) if data else None


# -- round trips ------------------------------------------------------------------------------------


def test_room_round_trip(ivschat):
    created = ivschat.create_room(
        name=unique_name(), maximumMessageRatePerSecond=7, maximumMessageLength=80,
        messageReviewHandler={"uri": LAMBDA_ARN, "fallbackResult": "DENY"}, tags={"team": "load"},
    )
    arn = created["arn"]
    assert arn.startswith("arn:aws:ivschat:us-east-1:") and arn.endswith(f":room/{created['id']}")
    assert len(created["id"]) == 12
    assert created["maximumMessageRatePerSecond"] == 7 and created["maximumMessageLength"] == 80
    assert created["messageReviewHandler"] == {"uri": LAMBDA_ARN, "fallbackResult": "DENY"}
    assert created["tags"] == {"team": "load"}
    assert created["createTime"] == created["updateTime"]  # boto3 parsed both ISO 8601 strings

    fetched = ivschat.get_room(identifier=arn)
    assert {k: fetched[k] for k in ("arn", "name", "maximumMessageLength", "tags")} == {
        k: created[k] for k in ("arn", "name", "maximumMessageLength", "tags")}

    updated = ivschat.update_room(identifier=arn, maximumMessageRatePerSecond=100,
                                  messageReviewHandler={"uri": ""})  # an empty uri removes the handler
    assert updated["maximumMessageRatePerSecond"] == 100 and updated["maximumMessageLength"] == 80
    assert "messageReviewHandler" not in updated
    assert updated["updateTime"] >= created["updateTime"]

    listed = ivschat.list_rooms(name=created["name"])["rooms"]
    assert [r["arn"] for r in listed] == [arn]
    assert "maximumMessageLength" not in listed[0]  # RoomSummary has no limits

    response = ivschat.delete_room(identifier=arn)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ivschat.exceptions.ResourceNotFoundException):
        ivschat.get_room(identifier=arn)


def test_defaults_and_review_handler_extension(ivschat):
    room = ivschat.create_room()
    try:
        assert room["name"] == "" and room["maximumMessageRatePerSecond"] == 10
        assert room["maximumMessageLength"] == 500 and room["tags"] == {}
        assert room["loggingConfigurationIdentifiers"] == []
        # Emulator extension: an http(s) URL as review handler; fallbackResult defaults to ALLOW.
        updated = ivschat.update_room(identifier=room["arn"],
                                      messageReviewHandler={"uri": "http://127.0.0.1:9/review"})
        assert updated["messageReviewHandler"] == {"uri": "http://127.0.0.1:9/review", "fallbackResult": "ALLOW"}
    finally:
        ivschat.delete_room(identifier=room["arn"])


def test_create_chat_token(ivschat, room):
    response = ivschat.create_chat_token(
        roomIdentifier=room["arn"], userId="user-1", capabilities=["SEND_MESSAGE", "DELETE_MESSAGE"],
        sessionDurationInMinutes=180, attributes={"username": "alice"},
    )
    token = response["token"]
    assert token and all(c.isalnum() or c in "-_" for c in token)  # RFC 7230 token characters
    now = datetime.now(UTC)  # the emulator runs on this machine's clock
    session_left = (response["sessionExpirationTime"] - now).total_seconds()
    assert 180 * 60 - 30 < session_left <= 180 * 60
    assert response["tokenExpirationTime"] > now
    second = ivschat.create_chat_token(roomIdentifier=room["arn"], userId="user-1")
    assert second["token"] != token


def test_chat_token_grant_and_moderation_reach_the_data_plane(local):
    client = local.client()
    room = client.create_room(name="moderated")
    token = client.create_chat_token(roomIdentifier=room["arn"], userId="u7", capabilities=["DISCONNECT_USER"],
                                     sessionDurationInMinutes=5, attributes={"k": "v"})["token"]
    grant = local.state.redeem_token(token)
    assert (grant.room_id, grant.user_id, grant.capabilities, grant.attributes) == (
        room["id"], "u7", frozenset({"DISCONNECT_USER"}), {"k": "v"})

    assert client.send_event(roomIdentifier=room["arn"], eventName="app:poll", attributes={"q": "1"})["id"] == (
        "EventId12345")
    deleted = client.delete_message(roomIdentifier=room["arn"], id="M2YcHkgffEvU", reason="spam")
    assert len(deleted["id"]) == 12 and deleted["id"].isalnum()
    client.delete_message(roomIdentifier=room["arn"], id="M2YcHkgffEvU")
    client.disconnect_user(roomIdentifier=room["arn"], userId="u7", reason="bye")
    client.update_room(identifier=room["arn"], maximumMessageLength=10)
    client.delete_room(identifier=room["arn"])
    assert local.dataplane.calls == [
        ("send_event", room["id"], "app:poll", {"q": "1"}),
        ("delete_message", room["id"], "M2YcHkgffEvU", "spam"),
        ("delete_message", room["id"], "M2YcHkgffEvU", ""),  # no reason: the spec's "missing string"
        ("disconnect_user", room["id"], "u7", "bye"),
        ("room_updated", room["id"]),
        ("room_deleted", room["id"]),
    ]


def test_chat_operations_round_trip(ivschat, room):
    event = ivschat.send_event(roomIdentifier=room["arn"], eventName="app:hello", attributes={"a": "b"})
    assert len(event["id"]) == 12 and event["id"].isalnum()
    assert len(ivschat.delete_message(roomIdentifier=room["arn"], id="AbCdEf123456", reason="r")["id"]) == 12
    # DisconnectUser succeeds with no live connection.
    response = ivschat.disconnect_user(roomIdentifier=room["arn"], userId="nobody", reason="test")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_tags_round_trip(ivschat, room):
    arn = room["arn"]
    assert ivschat.list_tags_for_resource(resourceArn=arn)["tags"] == {}
    ivschat.tag_resource(resourceArn=arn, tags={"a": "1", "b": "2", "c": ""})
    ivschat.tag_resource(resourceArn=arn, tags={"a": "changed"})
    assert ivschat.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "changed", "b": "2", "c": ""}
    ivschat.untag_resource(resourceArn=arn, tagKeys=["b", "c", "never-set"])
    assert ivschat.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "changed"}
    assert ivschat.get_room(identifier=arn)["tags"] == {"a": "changed"}


def test_tag_limit_counts_existing_tags(ivschat, room):
    ivschat.tag_resource(resourceArn=room["arn"], tags={f"k{i}": "v" for i in range(40)})
    eleven_more = {f"n{i}": "v" for i in range(11)}
    expect_validation(ivschat, lambda: ivschat.tag_resource(resourceArn=room["arn"], tags=eleven_more), "tags")
    ivschat.tag_resource(resourceArn=room["arn"], tags={f"k{i}": "w" for i in range(10)})  # overwrites are fine


def test_tags_route_accepts_an_unencoded_slash(local):
    room = local.state.create_room(tags={"x": "y"})
    status, _, body = raw_request(local.control_endpoint, "GET", f"/tags/{room.arn}")
    assert (status, body) == (200, {"tags": {"x": "y"}})


def test_list_rooms_pages_in_creation_order(ivschat):
    name = unique_name()
    arns = [ivschat.create_room(name=name)["arn"] for _ in range(7)]
    try:
        pages, token = [], None
        while True:
            response = ivschat.list_rooms(name=name, maxResults=3, **({"nextToken": token} if token else {}))
            pages.append([r["arn"] for r in response["rooms"]])
            token = response.get("nextToken")
            if token is None:
                break
        assert [len(page) for page in pages] == [3, 3, 1]
        assert sum(pages, []) == arns
        # Exactly one full page: no nextToken pointing at an empty page.
        assert "nextToken" not in ivschat.list_rooms(name=name, maxResults=7)
    finally:
        for arn in arns:
            ivschat.delete_room(identifier=arn)


def test_list_rooms_cursor_survives_changes_between_pages(local):
    client = local.client()
    arns = [client.create_room(name="p")["arn"] for _ in range(4)]
    first = client.list_rooms(maxResults=2)
    client.delete_room(identifier=arns[0])
    new = client.create_room(name="p")["arn"]
    rest = client.list_rooms(maxResults=10, nextToken=first["nextToken"])
    assert [r["arn"] for r in first["rooms"]] == arns[:2]
    assert [r["arn"] for r in rest["rooms"]] == [*arns[2:], new]


def test_list_rooms_filters(local):
    client = local.client()
    logging_arn = "arn:aws:ivschat:us-east-1:123456789012:logging-configuration/abcDEF123456"
    reviewed = client.create_room(name="a", messageReviewHandler={"uri": LAMBDA_ARN})["arn"]
    logged = client.create_room(name="b", loggingConfigurationIdentifiers=[logging_arn])["arn"]
    plain = client.create_room(name="a")["arn"]

    def listed(**filters):
        return [r["arn"] for r in client.list_rooms(**filters)["rooms"]]

    assert listed() == [reviewed, logged, plain]
    assert listed(name="a") == [reviewed, plain]
    assert listed(messageReviewHandlerUri=LAMBDA_ARN) == [reviewed]
    assert listed(loggingConfigurationIdentifier=logging_arn) == [logged]
    assert listed(name="b", messageReviewHandlerUri=LAMBDA_ARN) == []


def test_list_rooms_rejects_a_forged_next_token(ivschat):
    expect_validation(ivschat, lambda: ivschat.list_rooms(nextToken="not a token"), "nextToken")


# -- validation -------------------------------------------------------------------------------------

ROOM = "{room}"  # replaced by the test room's ARN
OTHER_ARN = "arn:aws:s3:::bucket/key"
BAD_MESSAGE_REVIEW_URIS = ["arn:aws:lambda:us-east-1:12345:function:f", "ftp://host/review", "lambda", "http://"]

# (operation, parameters, field reported). Below-minimum values are sent with botocore's own
# client-side validation off: curl and other SDKs do not check minimums either.
INVALID = [
    ("create_room", {"name": "n" * 129}, "name"),
    ("create_room", {"name": "has space"}, "name"),
    ("create_room", {"name": "dot.name"}, "name"),
    ("create_room", {"maximumMessageRatePerSecond": 0}, "maximumMessageRatePerSecond"),
    ("create_room", {"maximumMessageRatePerSecond": 101}, "maximumMessageRatePerSecond"),
    ("create_room", {"maximumMessageLength": 0}, "maximumMessageLength"),
    ("create_room", {"maximumMessageLength": 501}, "maximumMessageLength"),
    *[("create_room", {"messageReviewHandler": {"uri": uri}}, "messageReviewHandler.uri")
      for uri in BAD_MESSAGE_REVIEW_URIS],
    ("create_room", {"messageReviewHandler": {"uri": LAMBDA_ARN + "x" * 150}}, "messageReviewHandler.uri"),
    ("create_room", {"messageReviewHandler": {"uri": LAMBDA_ARN, "fallbackResult": "MAYBE"}},
     "messageReviewHandler.fallbackResult"),
    ("create_room", {"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
    ("create_room", {"tags": {"": "v"}}, "tags key"),
    ("create_room", {"tags": {"k" * 129: "v"}}, "tags key"),
    ("create_room", {"tags": {"k": "v" * 257}}, "tags value"),
    ("create_room", {"loggingConfigurationIdentifiers": ["arn:aws:ivschat:us-east-1:1:room/abc"]},
     "loggingConfigurationIdentifiers[0]"),
    ("create_room", {"loggingConfigurationIdentifiers": [
        f"arn:aws:ivschat:us-east-1:123456789012:logging-configuration/l{i}" for i in range(4)]},
     "loggingConfigurationIdentifiers"),
    ("update_room", {"identifier": ROOM, "maximumMessageRatePerSecond": 101}, "maximumMessageRatePerSecond"),
    ("update_room", {"identifier": ROOM, "name": "n" * 129}, "name"),
    ("update_room", {"identifier": "abcdefABCDEF"}, "identifier"),  # a bare id: must be an ARN
    ("get_room", {"identifier": "arn:aws:ivschat:us-east-1:123456789012:channel:x"}, "identifier"),
    ("get_room", {"identifier": "arn:aws:ivschat:us-east-1:123456789012:room/" + "a" * 100}, "identifier"),
    ("delete_room", {"identifier": ""}, "identifier"),
    ("list_rooms", {"maxResults": 0}, "maxResults"),
    ("list_rooms", {"maxResults": 51}, "maxResults"),
    ("list_rooms", {"name": "bad name"}, "name"),
    ("list_rooms", {"messageReviewHandlerUri": "ftp://x"}, "messageReviewHandlerUri"),
    ("list_rooms", {"loggingConfigurationIdentifier": "nope"}, "loggingConfigurationIdentifier"),
    ("list_rooms", {"nextToken": "t" * 1025}, "nextToken"),
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": ""}, "userId"),
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": "u" * 129}, "userId"),
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": "u", "capabilities": ["SEND_MESSAGE", "FLY"]},
     "capabilities[1]"),
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": "u", "sessionDurationInMinutes": 0},
     "sessionDurationInMinutes"),
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": "u", "sessionDurationInMinutes": 181},
     "sessionDurationInMinutes"),
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": "u", "attributes": {"k": "v" * 1024}}, "attributes"),
    # 600 characters but 1200 UTF-8 bytes: the 1 KB counts bytes.
    ("create_chat_token", {"roomIdentifier": ROOM, "userId": "u", "attributes": {"k": "é" * 600}}, "attributes"),
    ("create_chat_token", {"roomIdentifier": "room-1", "userId": "u"}, "roomIdentifier"),
    ("send_event", {"roomIdentifier": ROOM, "eventName": ""}, "eventName"),
    ("send_event", {"roomIdentifier": ROOM, "eventName": "e" * 101}, "eventName"),
    ("send_event", {"roomIdentifier": ROOM, "eventName": "e", "attributes": {"k" * 1000: "v" * 100}}, "attributes"),
    ("delete_message", {"roomIdentifier": ROOM, "id": "M2YcHkgffEv"}, "id"),
    ("delete_message", {"roomIdentifier": ROOM, "id": "M2YcHkgffEvUx"}, "id"),
    ("delete_message", {"roomIdentifier": ROOM, "id": "M2YcHk-ffEvU"}, "id"),
    ("delete_message", {"roomIdentifier": ROOM, "id": "M2YcHkgffEvU", "reason": ""}, "reason"),
    ("delete_message", {"roomIdentifier": ROOM, "id": "M2YcHkgffEvU", "reason": "r" * 257}, "reason"),
    ("disconnect_user", {"roomIdentifier": ROOM, "userId": "u" * 129}, "userId"),
    ("disconnect_user", {"roomIdentifier": ROOM, "userId": "u", "reason": "r" * 257}, "reason"),
    ("tag_resource", {"resourceArn": OTHER_ARN, "tags": {"k": "v"}}, "resourceArn"),
    ("tag_resource", {"resourceArn": ROOM, "tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
    ("untag_resource", {"resourceArn": ROOM, "tagKeys": [f"k{i}" for i in range(51)]}, "tagKeys"),
    ("untag_resource", {"resourceArn": ROOM, "tagKeys": ["k" * 129]}, "tagKeys[0]"),
    ("list_tags_for_resource", {"resourceArn": OTHER_ARN}, "resourceArn"),
]


@pytest.fixture(scope="module")
def unchecked_ivschat(emulator):
    """A client that sends whatever it is given: botocore's minimum checks off."""
    return emulator.boto3_client(config=Config(parameter_validation=False))


@pytest.mark.parametrize(("operation", "params", "field_name"), INVALID,
                         ids=[f"{op}-{field_name}-{i}" for i, (op, _, field_name) in enumerate(INVALID)])
def test_validation_errors(unchecked_ivschat, room, operation, params, field_name):
    params = {k: room["arn"] if v == ROOM else v for k, v in params.items()}
    response = expect_validation(unchecked_ivschat, lambda: getattr(unchecked_ivschat, operation)(**params),
                                 field_name)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ValidationException"


def test_validation_reports_every_problem_without_echoing_values(unchecked_ivschat, room):
    secret = "secret-user-" + "x" * 130
    response = expect_validation(unchecked_ivschat, lambda: unchecked_ivschat.create_chat_token(
        roomIdentifier=room["arn"], userId=secret, sessionDurationInMinutes=999), "userId")
    assert {f["name"] for f in response["fieldList"]} == {"userId", "sessionDurationInMinutes"}
    assert "secret-user" not in json.dumps(response, default=str)


@pytest.mark.parametrize("params", [
    {"name": "n" * 128, "maximumMessageRatePerSecond": 1, "maximumMessageLength": 1},
    {"name": "a-b_C9", "maximumMessageRatePerSecond": 100, "maximumMessageLength": 500},
    {"messageReviewHandler": {"uri": "https://review.example.com/hook", "fallbackResult": "DENY"}},
    {"messageReviewHandler": {"uri": LAMBDA_ARN}, "tags": {f"k{i}": "v" * 256 for i in range(50)}},
    {"loggingConfigurationIdentifiers": [
        f"arn:aws:ivschat:us-east-1:123456789012:logging-configuration/l{i}" for i in range(3)]},
])
def test_boundary_values_are_accepted(ivschat, params):
    room = ivschat.create_room(**params)
    ivschat.delete_room(identifier=room["arn"])


def test_boundary_token_attributes_are_accepted(ivschat, room):
    ivschat.create_chat_token(roomIdentifier=room["arn"], userId="u" * 128, sessionDurationInMinutes=1,
                              attributes={"k": "v" * 1023})  # exactly 1024 bytes
    ivschat.send_event(roomIdentifier=room["arn"], eventName="e" * 100, attributes={"é": "v" * 1022})


def test_unknown_members_are_ignored(local):
    status, _, body = raw_request(local.control_endpoint, "POST", "/CreateRoom",
                                  json.dumps({"name": "ok", "colour": "blue", "messageReviewHandler": {
                                      "uri": LAMBDA_ARN, "extra": 1}}).encode())
    assert status == 200 and "colour" not in body
    assert body["messageReviewHandler"] == {"uri": LAMBDA_ARN, "fallbackResult": "ALLOW"}


@pytest.mark.parametrize(("body", "field_name"), [
    ({"maximumMessageRatePerSecond": "10"}, "maximumMessageRatePerSecond"),
    ({"maximumMessageRatePerSecond": 10.5}, "maximumMessageRatePerSecond"),
    ({"maximumMessageLength": True}, "maximumMessageLength"),
    ({"name": 7}, "name"),
    ({"tags": ["a"]}, "tags"),
    ({"tags": {"k": 1}}, "tags value"),
    ({"messageReviewHandler": "arn"}, "messageReviewHandler"),
    ({"loggingConfigurationIdentifiers": "arn"}, "loggingConfigurationIdentifiers"),
])
def test_wrong_json_types(local, body, field_name):
    status, headers, answer = raw_request(local.control_endpoint, "POST", "/CreateRoom", json.dumps(body).encode())
    assert (status, headers["x-amzn-ErrorType"], answer["reason"]) == (400, "ValidationException",
                                                                         "FIELD_VALIDATION_FAILED")
    assert field_name in [f["name"] for f in answer["fieldList"]]


@pytest.mark.parametrize("body", [b"{", b"not json", b"[]", b'"room"', b"null", b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object(local, body):
    status, headers, answer = raw_request(local.control_endpoint, "POST", "/CreateRoom", body)
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    assert answer["reason"] == "OTHER" and "JSON object" in answer["message"]


def test_missing_required_members(local):
    status, _, answer = raw_request(local.control_endpoint, "POST", "/CreateChatToken", b"")
    assert status == 400
    assert {f["name"] for f in answer["fieldList"]} == {"roomIdentifier", "userId"}


def test_logging_configuration_operations_are_not_emulated(ivschat):
    with pytest.raises(ivschat.exceptions.ValidationException) as caught:
        ivschat.list_logging_configurations()
    assert caught.value.response["reason"] == "UNKNOWN_OPERATION"


def test_input_table_matches_the_botocore_model():
    """Every constraint of the service model is in `INPUTS`, except the documented deviations."""
    model = botocore.session.get_session().get_service_model("ivschat")
    deviations = {"ResourceArn": "pattern", "LambdaArn": "pattern"}  # see the controlplane docstring

    def compare(shape, spec, path):
        assert spec.kind is {"string": str, "integer": int, "list": list, "map": dict,
                             "structure": dict}[shape.type_name], path
        if shape.type_name == "structure":
            assert set(spec.members) == set(shape.members), path
            assert spec.required == set(shape.required_members), path
            for name, member in shape.members.items():
                compare(member, spec.members[name], f"{path}.{name}")
            return
        meta = shape.metadata
        assert (spec.min or 0, spec.max) == (meta.get("min", 0), meta.get("max")), path
        if shape.type_name == "string":
            assert set(spec.enum or ()) == set(shape.enum or ()), path
        if deviations.get(shape.name) != "pattern":
            assert (spec.pattern.pattern if spec.pattern else None) == meta.get("pattern"), path
        if shape.type_name == "list":
            compare(shape.member, spec.item, f"{path}[]")
        if shape.type_name == "map":
            compare(shape.key, spec.key, f"{path} key")
            compare(shape.value, spec.item, f"{path} value")

    boto_operations = {name for name in model.operation_names if "LoggingConfiguration" not in name}
    assert set(INPUTS) == boto_operations
    for name in INPUTS:
        compare(model.operation_model(name).input_shape, INPUTS[name], name)


# -- not found, regions -----------------------------------------------------------------------------

ROOM_CALLS = [
    ("get_room", lambda arn: {"identifier": arn}),
    ("update_room", lambda arn: {"identifier": arn, "name": "x"}),
    ("delete_room", lambda arn: {"identifier": arn}),
    ("create_chat_token", lambda arn: {"roomIdentifier": arn, "userId": "u"}),
    ("send_event", lambda arn: {"roomIdentifier": arn, "eventName": "e"}),
    ("delete_message", lambda arn: {"roomIdentifier": arn, "id": "M2YcHkgffEvU"}),
    ("disconnect_user", lambda arn: {"roomIdentifier": arn, "userId": "u"}),
    ("tag_resource", lambda arn: {"resourceArn": arn, "tags": {"k": "v"}}),
    ("untag_resource", lambda arn: {"resourceArn": arn, "tagKeys": ["k"]}),
    ("list_tags_for_resource", lambda arn: {"resourceArn": arn}),
]


@pytest.mark.parametrize(("operation", "params"), ROOM_CALLS, ids=[op for op, _ in ROOM_CALLS])
def test_unknown_and_deleted_rooms_are_not_found(ivschat, operation, params):
    deleted = ivschat.create_room()["arn"]
    ivschat.delete_room(identifier=deleted)
    live = ivschat.create_room()["arn"]
    _, _, _, region, account, _ = live.split(":")
    try:
        for arn in (
            deleted,
            f"arn:aws:ivschat:{region}:{account}:room/NeverCreated",
            live.replace(f":{region}:", ":xx-nowhere-1:"),  # right id, wrong region
            live.replace(f":{account}:", ":999999999999:"),  # right id, wrong account
        ):
            with pytest.raises(ivschat.exceptions.ResourceNotFoundException) as caught:
                getattr(ivschat, operation)(**params(arn))
            response = caught.value.response
            assert response["resourceType"] == "ROOM"
            assert response["resourceId"] == arn.rsplit("/", 1)[1]
    finally:
        ivschat.delete_room(identifier=live)


def test_requests_signed_for_another_region_are_refused(local):
    with pytest.raises(Exception) as caught:
        local.client(region="eu-west-1").list_rooms()
    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Unsigned requests are accepted (emulator leniency, e.g. curl).
    assert raw_request(local.control_endpoint, "POST", "/ListRooms", b"{}")[0] == 200


# -- throttling, metrics, logs ----------------------------------------------------------------------


def test_throttling_raises_the_modelled_exception(local):
    local.throttle = OperationThrottle(DEFAULT_TPS)  # the published quotas: room operations 5 TPS
    client = local.client(retries={"total_max_attempts": 1})  # botocore would retry a 429
    room = client.create_room()  # 1 of CreateRoom's 5: GetRoom has a bucket of its own
    for _ in range(5):
        client.get_room(identifier=room["arn"])
    with pytest.raises(client.exceptions.ThrottlingException) as caught:
        client.get_room(identifier=room["arn"])
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert (response["limit"], response["resourceType"]) == (5, "ROOM")
    assert response["resourceId"] == local.state.account_id
    # Other operations have their own quota.
    client.create_chat_token(roomIdentifier=room["arn"], userId="u")
    assert ("GetRoom", 429) in local.metrics.requests


def test_no_throttling_when_off(local):
    client = local.client(retries={"total_max_attempts": 1})
    for _ in range(20):
        client.list_rooms()


def test_every_request_is_counted_once(local):
    client = local.client(parameter_validation=False)
    room = client.create_room()
    with pytest.raises(client.exceptions.ValidationException):
        client.create_room(maximumMessageLength=0)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_room(identifier=room["arn"] + "0")
    client.delete_room(identifier=room["arn"])
    assert local.metrics.requests == [("CreateRoom", 200), ("CreateRoom", 400), ("GetRoom", 404),
                                      ("DeleteRoom", 204)]


def test_tokens_never_reach_the_logs(local, caplog):
    caplog.set_level(logging.DEBUG)
    client = local.client(parameter_validation=False)
    room = client.create_room()
    tokens = [client.create_chat_token(roomIdentifier=room["arn"], userId="user-1")["token"] for _ in range(3)]
    with pytest.raises(client.exceptions.ValidationException):
        client.create_chat_token(roomIdentifier=room["arn"], userId="", attributes={"k": "v" * 2000})
    # botocore itself logs response bodies at DEBUG: only the emulator's own records are ours to check.
    ours = [r for r in caplog.records if not r.name.startswith(("botocore", "urllib3"))]
    assert any(r.name.startswith("aiohttp.access") for r in ours)  # the access log was on and captured
    text = "\n".join(r.getMessage() for r in ours)
    assert "CreateChatToken" in text
    assert not any(token in text for token in tokens)


# -- the throttle itself (pure) -------------------------------------------------------------------


def test_throttle_defaults_are_the_published_quotas():
    throttle = OperationThrottle(DEFAULT_TPS)
    assert throttle.limit("CreateChatToken") == 200
    assert {throttle.limit(op) for op in ("SendEvent", "DeleteMessage", "DisconnectUser")} == {100}
    assert {throttle.limit(op) for op in ("CreateRoom", "GetRoom", "UpdateRoom", "DeleteRoom", "ListRooms")} == {5}
    assert {throttle.limit(op) for op in ("TagResource", "UntagResource", "ListTagsForResource")} == {10}
    assert set(DEFAULT_TPS) == set(INPUTS)


def test_throttle_allows_one_second_burst_then_the_rate():
    # Times are binary fractions so that the arithmetic is exact.
    throttle = OperationThrottle({"CreateChatToken": 200})
    assert sum(throttle.allow("CreateChatToken", 0.0) for _ in range(250)) == 200
    assert not throttle.allow("CreateChatToken", 1 / 256)  # 0.78 of a request refilled
    assert throttle.allow("CreateChatToken", 2 / 256)  # 1.56: one passes, 0.56 left
    # Over the next second 200 more pass, not a second full burst on top of the rate.
    passed = sum(throttle.allow("CreateChatToken", 2 / 256 + i / 1024) for i in range(1, 1025))
    assert passed == 200


def test_throttle_refills_only_to_capacity():
    throttle = OperationThrottle({"GetRoom": 5})
    assert all(throttle.allow("GetRoom", 0.0) for _ in range(5))
    assert sum(throttle.allow("GetRoom", 3600.0) for _ in range(10)) == 5


def test_throttle_operations_are_independent_and_unlisted_ones_free():
    throttle = OperationThrottle({"GetRoom": 1, "ListRooms": 1})
    assert throttle.allow("GetRoom", 0.0) and not throttle.allow("GetRoom", 0.0)
    assert throttle.allow("ListRooms", 0.0)
    assert all(throttle.allow("CreateChatToken", 0.0) for _ in range(1000))
    assert throttle.limit("CreateChatToken") is None


def test_throttle_clock_stepping_back_refills_nothing():
    throttle = OperationThrottle({"GetRoom": 1})
    assert throttle.allow("GetRoom", 10.0)
    assert not throttle.allow("GetRoom", 5.0)
    assert not throttle.allow("GetRoom", 10.5)
    assert throttle.allow("GetRoom", 11.0)


def test_throttle_quota_below_one_per_second():
    throttle = OperationThrottle({"CreateRoom": 0.5})
    assert throttle.allow("CreateRoom", 0.0) and not throttle.allow("CreateRoom", 1.0)
    assert throttle.allow("CreateRoom", 2.0)


def test_throttle_rejects_non_positive_quotas():
    with pytest.raises(ValueError):
        OperationThrottle({"GetRoom": 0})
