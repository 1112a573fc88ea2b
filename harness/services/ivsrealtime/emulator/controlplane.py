"""The emulator's control plane: the `ivs-realtime` REST-JSON API that boto3 speaks.

`boto3.client("ivs-realtime", endpoint_url=...)` works unchanged: every operation is `POST /<Operation>`
with a camelCase JSON body. Errors carry the model's HTTP status, `x-amzn-ErrorType: <Shape>` and a
JSON body with `exceptionMessage` (the model's member) and `message`, so boto3 raises its modelled
exception classes. botocore checks only required members before sending, so the server checks the
whole input model (types, lengths, ranges, enums, patterns) with the table-driven checker every
AWS-shaped emulator shares (`harness.emulation.aws_json`). Messages never repeat values: tokens,
user ids and attributes stay out of them.

Emulator choices (the service is silent or the brief asks for more):
- Throttling (`--throttle`): token buckets per operation at the published quotas (CreateParticipantToken
  50 TPS, other stage operations 5, public-key operations 3). The model has no throttling shape, so
  the answer is the generic AWS one, **inferred**: 429 with `x-amzn-ErrorType: ThrottlingException`.
- Stages per region: 100 (`--max-stages`), then 402 ServiceQuotaExceededException.
- A stage has one session for its life (`activeSessionId`), made at CreateStage.
- DisconnectParticipant: a participant id this stage never issued or saw is ResourceNotFoundException;
  a known one is disconnected if joined, and its token can no longer join either way.
- ListParticipants filters combine (all must match); lists are in creation/join order; `nextToken` is
  an opaque offset.
- Stage-session, composition, storage, encoder, ingest, replication and tag operations are not
  emulated (404 without an error type).
- Signatures are not verified; unsigned requests are accepted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ....emulation.aws_json import ApiError, check, integer, list_of, map_of, string, structure
from ....emulation.request_body import Refused, read_json_object
from ..tokens import PUBLISH, SUBSCRIBE
from .state import DEFAULT_TOKEN_MINUTES, QuotaExceeded, Stage, iso8601

log = logging.getLogger(__name__)

STAGE_ARN = string(1, 128, r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:stage/[a-zA-Z0-9-]+")
PUBLIC_KEY_ARN = string(1, 128, r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:public-key/[a-zA-Z0-9-]+")
STAGE_NAME = string(0, 128, r"[a-zA-Z0-9-_]*")
SESSION_ID = string(16, 16, r"st-[a-zA-Z0-9]+")
PARTICIPANT_ID = string(0, 64, r"[a-zA-Z0-9-]*")
PAGINATION_TOKEN = string(0, 1024, r"[a-zA-Z0-9+/=_-]*")
TAGS = map_of(string(1, 128), string(0, 256), max=50)
TOKEN_SETTINGS = {
    "duration": integer(1, 20160),
    "userId": string(0, 128),
    "attributes": map_of(string(), string(), max_utf8_bytes=1024),
    "capabilities": list_of(string(enum=(PUBLISH, SUBSCRIBE)), max=2),
}
RECORDING = structure(
    ("storageConfigurationArn",),
    storageConfigurationArn=string(0, 128, r"|arn:aws:ivs:[a-z0-9-]+:[0-9]+:storage-configuration/[a-zA-Z0-9-]+"),
    mediaTypes=list_of(string(enum=("AUDIO_VIDEO", "AUDIO_ONLY", "NONE")), max=1),
    recordingReconnectWindowSeconds=integer(0, 300),
)

INPUTS = {
    "CreateStage": structure(name=STAGE_NAME, participantTokenConfigurations=list_of(structure(**TOKEN_SETTINGS), 12),
                             tags=TAGS, autoParticipantRecordingConfiguration=RECORDING),
    "GetStage": structure(("arn",), arn=STAGE_ARN),
    "UpdateStage": structure(("arn",), arn=STAGE_ARN, name=STAGE_NAME, autoParticipantRecordingConfiguration=RECORDING),
    "DeleteStage": structure(("arn",), arn=STAGE_ARN),
    "ListStages": structure(nextToken=PAGINATION_TOKEN, maxResults=integer(1, 100)),
    "CreateParticipantToken": structure(("stageArn",), stageArn=STAGE_ARN, **TOKEN_SETTINGS),
    "DisconnectParticipant": structure(("stageArn", "participantId"), stageArn=STAGE_ARN,
                                       participantId=string(0, 64, r"[a-zA-Z0-9-_]*"), reason=string(0, 128)),
    "ListParticipants": structure(
        ("stageArn", "sessionId"), stageArn=STAGE_ARN, sessionId=SESSION_ID, filterByUserId=string(0, 128),
        filterByState=string(enum=("CONNECTED", "DISCONNECTED")),
        filterByRecordingState=string(enum=("STARTING", "ACTIVE", "STOPPING", "STOPPED", "FAILED")),
        nextToken=PAGINATION_TOKEN, maxResults=integer(1, 100)),
    "GetParticipant": structure(("stageArn", "sessionId", "participantId"), stageArn=STAGE_ARN, sessionId=SESSION_ID,
                                participantId=PARTICIPANT_ID),
    "ListParticipantEvents": structure(("stageArn", "sessionId", "participantId"), stageArn=STAGE_ARN,
                                       sessionId=SESSION_ID, participantId=PARTICIPANT_ID,
                                       nextToken=PAGINATION_TOKEN, maxResults=integer(1, 100)),
    "ImportPublicKey": structure(("publicKeyMaterial",), publicKeyMaterial=string(1, 16384), name=STAGE_NAME,
                                 tags=TAGS),
    "GetPublicKey": structure(("arn",), arn=PUBLIC_KEY_ARN),
    "DeletePublicKey": structure(("arn",), arn=PUBLIC_KEY_ARN),
    "ListPublicKeys": structure(nextToken=PAGINATION_TOKEN, maxResults=integer(1, 100)),
}
BOOLEAN_MEMBERS = {("ListParticipants", "filterByPublished")}  # the checker has no boolean kind
STAGE_OPERATIONS_TPS = 5
PUBLIC_KEY_OPERATIONS_TPS = 3
DEFAULT_TPS: dict[str, float] = {
    **dict.fromkeys([op for op in INPUTS if "PublicKey" not in op], STAGE_OPERATIONS_TPS),
    "CreateParticipantToken": 50,
    **dict.fromkeys([op for op in INPUTS if "PublicKey" in op], PUBLIC_KEY_OPERATIONS_TPS),
}

Result = tuple[int, dict]


def error(status: int, error_type: str, message: str) -> ApiError:
    return ApiError(status, error_type, message, exceptionMessage=message)


def validation(message: str) -> ApiError:
    return error(400, "ValidationException", message)


def not_found(what: str) -> ApiError:
    return error(404, "ResourceNotFoundException", f"{what} not found")


class ControlPlane:
    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.state = emulator.state
        self.operations: dict[str, Callable[[dict], Result]] = {
            "CreateStage": self.create_stage, "GetStage": self.get_stage, "UpdateStage": self.update_stage,
            "DeleteStage": self.delete_stage, "ListStages": self.list_stages,
            "CreateParticipantToken": self.create_participant_token,
            "DisconnectParticipant": self.disconnect_participant, "ListParticipants": self.list_participants,
            "GetParticipant": self.get_participant, "ListParticipantEvents": self.list_participant_events,
            "ImportPublicKey": self.import_public_key, "GetPublicKey": self.get_public_key,
            "DeletePublicKey": self.delete_public_key, "ListPublicKeys": self.list_public_keys,
        }

    # -- HTTP -----------------------------------------------------------------------------------------------

    def route(self, operation: str):
        async def handle(request: web.Request) -> web.Response:
            return await self.handle(operation, request)

        return handle

    async def handle(self, operation: str, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        headers = {"x-amzn-RequestId": request_id}
        try:
            self._check_quota(operation)
            params = self._validate(operation, await self._read_body(request))
            status, body = self.operations[operation](params)
        except ApiError as failure:
            status, body = failure.status, failure.body
            headers["x-amzn-ErrorType"] = failure.error_type
        except Exception:
            log.exception("%s failed (request %s)", operation, request_id)
            status, body = 500, {"message": "internal error", "exceptionMessage": "internal error"}
            headers["x-amzn-ErrorType"] = "InternalServerException"
        self.emulator.metrics.control_request(operation, status)
        log.debug("%s -> %d (request %s)", operation, status, request_id)  # bodies carry tokens: never logged
        return web.Response(status=status, headers=headers, body=orjson.dumps(body), content_type="application/json")

    def _check_quota(self, operation: str) -> None:
        throttle = self.emulator.throttle
        if throttle is None or throttle.allow(operation, time.monotonic()):
            return
        quota = throttle.limit(operation)
        raise error(429, "ThrottlingException", f"Rate exceeded for {operation} ({math.ceil(quota)} per second)")

    @staticmethod
    async def _read_body(request: web.Request) -> dict:
        try:
            return await read_json_object(request, empty_is={})
        except Refused as refused:
            raise error(refused.status, "ValidationException", refused.reason) from None

    @staticmethod
    def _validate(operation: str, params: dict) -> dict:
        spec = INPUTS[operation]
        booleans = {name: params.pop(name) for op, name in BOOLEAN_MEMBERS if op == operation and name in params}
        problems: list[tuple[str, str]] = []
        cleaned = check(spec, params, "", problems)
        for name, value in booleans.items():
            if value is not None and not isinstance(value, bool):
                problems.append((name, "must be a boolean"))
            elif value is not None:
                cleaned[name] = value
        if problems:
            detail = "; ".join(f"{name} {problem}" for name, problem in problems)
            raise validation(f"{len(problems)} validation error(s) detected: {detail}")
        return cleaned

    # -- stages ---------------------------------------------------------------------------------------------

    def _stage(self, arn: str) -> Stage:
        stage = self.state.find_stage(arn)
        if stage is None:
            raise not_found(f"Stage {arn}")
        return stage

    def _describe(self, stage: Stage) -> dict:
        out = {"arn": stage.arn, "name": stage.name, "activeSessionId": stage.session_id, "tags": dict(stage.tags),
               "endpoints": self.emulator.endpoints()}
        if stage.auto_recording:
            out["autoParticipantRecordingConfiguration"] = stage.auto_recording
        return out

    def _token(self, stage: Stage, settings: dict) -> dict:
        duration = settings.get("duration", DEFAULT_TOKEN_MINUTES)
        endpoints = self.emulator.endpoints()
        token, claims = self.state.issue_token(
            stage, events_url=endpoints["events"], whip_url=endpoints["whip"], user_id=settings.get("userId", ""),
            capabilities=settings.get("capabilities"), attributes=settings.get("attributes"), duration_minutes=duration)
        out = {"participantId": claims.participant_id, "token": token, "duration": duration,
               "capabilities": sorted(claims.capabilities), "attributes": dict(claims.attributes),
               "expirationTime": iso8601(claims.expires_at)}
        if claims.user_id:
            out["userId"] = claims.user_id
        return out

    def create_stage(self, params: dict) -> Result:
        try:
            stage = self.state.create_stage(params.get("name", ""), params.get("tags"),
                                            params.get("autoParticipantRecordingConfiguration"))
        except QuotaExceeded as exc:
            raise error(402, "ServiceQuotaExceededException", str(exc)) from None
        tokens = [self._token(stage, settings) for settings in params.get("participantTokenConfigurations", [])]
        return 200, {"stage": self._describe(stage), "participantTokens": tokens}

    def get_stage(self, params: dict) -> Result:
        return 200, {"stage": self._describe(self._stage(params["arn"]))}

    def update_stage(self, params: dict) -> Result:
        stage = self._stage(params["arn"])
        if "name" in params:
            stage.name = params["name"]
        if "autoParticipantRecordingConfiguration" in params:
            stage.auto_recording = params["autoParticipantRecordingConfiguration"]
        return 200, {"stage": self._describe(stage)}

    def delete_stage(self, params: dict) -> Result:
        stage = self._stage(params["arn"])
        self.state.delete_stage(stage)
        self.emulator.dataplane.stage_deleted(stage)
        return 200, {}

    def list_stages(self, params: dict) -> Result:
        stages = sorted(self.state.stages.values(), key=lambda s: s.order)
        page, next_token = _page(stages, params)
        body: dict = {"stages": [{"arn": s.arn, "name": s.name, "activeSessionId": s.session_id,
                                  "tags": dict(s.tags)} for s in page]}
        if next_token:
            body["nextToken"] = next_token
        return 200, body

    # -- participants ---------------------------------------------------------------------------------------

    def create_participant_token(self, params: dict) -> Result:
        return 200, {"participantToken": self._token(self._stage(params["stageArn"]), params)}

    def disconnect_participant(self, params: dict) -> Result:
        stage = self._stage(params["stageArn"])
        participant_id = params["participantId"]
        if participant_id not in self.state.issued and participant_id not in self.state.records(stage):
            raise not_found(f"Participant {participant_id}")
        self.emulator.dataplane.disconnect_participant(stage, participant_id, params.get("reason", ""))
        return 200, {}

    def _session_records(self, params: dict):
        stage = self._stage(params["stageArn"])
        if params["sessionId"] != stage.session_id:
            return stage, {}
        return stage, self.state.records(stage)

    def list_participants(self, params: dict) -> Result:
        _, records = self._session_records(params)
        chosen = [r for r in records.values()
                  if params.get("filterByUserId") in (None, r.user_id)
                  and params.get("filterByPublished") in (None, r.published)
                  and params.get("filterByState") in (None, r.state)
                  and "filterByRecordingState" not in params]  # recording is not emulated
        page, next_token = _page(chosen, params)
        body: dict = {"participants": [{"participantId": r.participant_id, "userId": r.user_id, "state": r.state,
                                        "firstJoinTime": iso8601(r.first_join), "published": r.published,
                                        "recordingState": "DISABLED"} for r in page]}
        if next_token:
            body["nextToken"] = next_token
        return 200, body

    def get_participant(self, params: dict) -> Result:
        _, records = self._session_records(params)
        record = records.get(params["participantId"])
        if record is None:
            raise not_found(f"Participant {params['participantId']}")
        return 200, {"participant": {
            "participantId": record.participant_id, "userId": record.user_id, "state": record.state,
            "firstJoinTime": iso8601(record.first_join), "attributes": dict(record.attributes),
            "published": record.published, "recordingState": "DISABLED", "protocol": "UNKNOWN"}}

    def list_participant_events(self, params: dict) -> Result:
        stage = self._stage(params["stageArn"])
        events = self.state.events_of(stage, params["sessionId"], params["participantId"])
        page, next_token = _page(events, params)
        body: dict = {"events": [e.describe() for e in page]}
        if next_token:
            body["nextToken"] = next_token
        return 200, body

    # -- public keys ----------------------------------------------------------------------------------------

    def import_public_key(self, params: dict) -> Result:
        try:
            key = self.state.import_public_key(params["publicKeyMaterial"], params.get("name", ""), params.get("tags"))
        except ValueError as exc:
            if "already imported" in str(exc):
                raise error(409, "ConflictException", str(exc)) from None
            raise validation(f"publicKeyMaterial: {exc}") from None
        return 200, {"publicKey": key.describe()}

    def _public_key(self, arn: str):
        key = self.state.public_keys.get(arn)
        if key is None:
            raise not_found(f"Public key {arn}")
        return key

    def get_public_key(self, params: dict) -> Result:
        return 200, {"publicKey": self._public_key(params["arn"]).describe()}

    def delete_public_key(self, params: dict) -> Result:
        del self.state.public_keys[self._public_key(params["arn"]).arn]
        return 200, {}

    def list_public_keys(self, params: dict) -> Result:
        keys = sorted(self.state.public_keys.values(), key=lambda k: k.order)
        page, next_token = _page(keys, params)
        body: dict = {"publicKeys": [{"arn": k.arn, "name": k.name, "tags": dict(k.tags)} for k in page]}
        if next_token:
            body["nextToken"] = next_token
        return 200, body


def _page(items: list, params: dict) -> tuple[list, str | None]:
    """One page from an offset cursor; `nextToken` names the offset of the next page."""
    start = 0
    if params.get("nextToken"):
        try:
            start = int(base64.urlsafe_b64decode(params["nextToken"].encode()).decode())
        except (binascii.Error, UnicodeError, ValueError):
            raise validation("nextToken is not a token this service issued") from None
    end = start + params.get("maxResults", 50)
    next_token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], next_token


def add_control_plane_routes(app: web.Application, emulator: Any) -> None:
    control = ControlPlane(emulator)
    for operation in INPUTS:
        app.router.add_post(f"/{operation}", control.route(operation))
