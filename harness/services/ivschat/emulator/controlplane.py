"""The emulator's control plane: the `ivschat` REST-JSON API that boto3 speaks.

`boto3.client("ivschat", endpoint_url=...)` works against these routes unchanged: every operation is
`POST /<OperationName>` with a JSON body, the tag operations are `GET|POST|DELETE /tags/{resourceArn}`.
Errors follow the REST-JSON convention (the model's HTTP status, `x-amzn-ErrorType: <ShapeName>`, a
JSON body with `message` and the shape's members), so boto3 raises its modelled exception classes.

botocore checks only required members and minimums before sending, so the server enforces the whole
input model: types, lengths, ranges, enums and patterns (see `INPUTS`). Unknown members are ignored,
as the service does. Error messages never repeat the offending value: user ids and token attributes
are sensitive, and chat tokens are never logged.

Emulator choices (the service's behaviour is unpublished or deliberately extended):
- `messageReviewHandler.uri` takes the model's Lambda ARN **or an http(s):// URL** (an extension:
  the data plane calls such a URL as the review handler, so load tests need no AWS Lambda). An
  empty uri, or none, means "no handler", which is how UpdateRoom removes one.
- `attributes` of CreateChatToken and SendEvent: "1 KB total" is read as the UTF-8 bytes of all keys
  and values together, at most 1024.
- Logging configurations are not emulated: their five operations answer ValidationException with
  reason UNKNOWN_OPERATION. `loggingConfigurationIdentifiers` on rooms are checked against the ARN
  pattern and stored verbatim, without checking that they exist.
- Signatures are not verified and unsigned requests are accepted (curl-friendly). A request signed
  for another region than the emulator's gets 403 InvalidSignatureException, as a real regional
  endpoint answers; room ARNs from another region or account are ResourceNotFoundException.
- The model's ResourceArn pattern has `:[a-z-]/` (one character of resource type), which would
  reject every real ARN; it is read as `:[a-z-]+/`. All patterns must match the whole value.
- ThrottlingException names the account as its `resourceId` (quotas are per account and region)
  and the operation's quota as `limit`. Quotas: `quotas.py`; their algorithm:
  `harness.emulation.throttle`.
- ListRooms returns rooms in creation order; `nextToken` is an opaque cursor after the last room
  returned, so rooms created or deleted between pages neither repeat nor shift the listing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ....emulation.aws_json import ApiError, Spec, check, integer, list_of, map_of, string, structure
from ....emulation.request_body import Refused, header_text, read_json_object
from .ids import random_id
from .state import DEFAULT_SESSION_MINUTES, IvsChatRooms, Room, iso8601

log = logging.getLogger(__name__)

# -- the input model, as a table (checked by `harness.emulation.aws_json`) ---------------------------

ROOM_ARN = r"arn:aws:ivschat:[a-z0-9-]+:[0-9]+:room/[a-zA-Z0-9-]+"
LOGGING_CONFIGURATION_ARN = r"arn:aws:ivschat:[a-z0-9-]+:[0-9]+:logging-configuration/[a-zA-Z0-9-]+"
RESOURCE_ARN = r"arn:aws:ivschat:[a-z0-9-]+:[0-9]+:[a-z-]+/[a-zA-Z0-9-]+"
# The model's LambdaArn (which allows ""), plus the emulator's http(s) review-handler extension.
REVIEW_HANDLER_URI = r"|arn:aws:lambda:[a-z0-9-]+:[0-9]{12}:function:.+|https?://\S+"

ROOM_IDENTIFIER = string(1, 128, ROOM_ARN)
ROOM_NAME = string(0, 128, r"[a-zA-Z0-9-_]*")
MESSAGE_REVIEW_HANDLER_URI = string(0, 170, REVIEW_HANDLER_URI)
LOGGING_CONFIGURATION_IDENTIFIER = string(1, 128, LOGGING_CONFIGURATION_ARN)
ROOM_SETTINGS = {
    "name": ROOM_NAME,
    "maximumMessageRatePerSecond": integer(1, 100),
    "maximumMessageLength": integer(1, 500),
    "messageReviewHandler": structure(uri=MESSAGE_REVIEW_HANDLER_URI, fallbackResult=string(enum=("ALLOW", "DENY"))),
    "loggingConfigurationIdentifiers": list_of(LOGGING_CONFIGURATION_IDENTIFIER, max=3),
}
TAGS = map_of(string(1, 128), string(0, 256), max=50)
RESOURCE = string(1, 128, RESOURCE_ARN)
USER_ID = string(1, 128)
REASON = string(1, 256)
ATTRIBUTES = map_of(string(), string(), max_utf8_bytes=1024)

INPUTS: dict[str, Spec] = {
    "CreateRoom": structure(**ROOM_SETTINGS, tags=TAGS),
    "GetRoom": structure(("identifier",), identifier=ROOM_IDENTIFIER),
    "UpdateRoom": structure(("identifier",), identifier=ROOM_IDENTIFIER, **ROOM_SETTINGS),
    "DeleteRoom": structure(("identifier",), identifier=ROOM_IDENTIFIER),
    "ListRooms": structure(
        name=ROOM_NAME,
        nextToken=string(0, 1024),
        maxResults=integer(1, 50),
        messageReviewHandlerUri=MESSAGE_REVIEW_HANDLER_URI,
        loggingConfigurationIdentifier=LOGGING_CONFIGURATION_IDENTIFIER,
    ),
    "CreateChatToken": structure(
        ("roomIdentifier", "userId"),
        roomIdentifier=ROOM_IDENTIFIER,
        userId=USER_ID,
        capabilities=list_of(string(enum=("SEND_MESSAGE", "DISCONNECT_USER", "DELETE_MESSAGE"))),
        sessionDurationInMinutes=integer(1, 180),
        attributes=ATTRIBUTES,
    ),
    "SendEvent": structure(
        ("roomIdentifier", "eventName"), roomIdentifier=ROOM_IDENTIFIER, eventName=string(1, 100), attributes=ATTRIBUTES
    ),
    "DeleteMessage": structure(
        ("roomIdentifier", "id"), roomIdentifier=ROOM_IDENTIFIER, id=string(12, 12, r"[a-zA-Z0-9]+"), reason=REASON
    ),
    "DisconnectUser": structure(
        ("roomIdentifier", "userId"), roomIdentifier=ROOM_IDENTIFIER, userId=USER_ID, reason=REASON
    ),
    "TagResource": structure(("resourceArn", "tags"), resourceArn=RESOURCE, tags=TAGS),
    "UntagResource": structure(("resourceArn", "tagKeys"), resourceArn=RESOURCE, tagKeys=list_of(string(1, 128), 50)),
    "ListTagsForResource": structure(("resourceArn",), resourceArn=RESOURCE),
}
LOGGING_CONFIGURATION_OPERATIONS = (
    "CreateLoggingConfiguration",
    "GetLoggingConfiguration",
    "UpdateLoggingConfiguration",
    "DeleteLoggingConfiguration",
    "ListLoggingConfigurations",
)
# -- errors ------------------------------------------------------------------------------------------


def validation_error(problems: list[tuple[str, str]], reason: str = "FIELD_VALIDATION_FAILED") -> ApiError:
    detail = "; ".join(f"{name} {problem}" for name, problem in problems)
    return ApiError(
        400,
        "ValidationException",
        f"{len(problems)} validation error(s) detected: {detail}",
        reason=reason,
        fieldList=[{"name": name, "message": problem} for name, problem in problems],
    )


def bad_request(message: str, reason: str = "OTHER") -> ApiError:
    """A ValidationException about the request as a whole rather than one of its fields."""
    return ApiError(400, "ValidationException", message, reason=reason, fieldList=[])


def room_not_found(identifier: str) -> ApiError:
    room_id = identifier.rsplit("/", 1)[-1]
    return ApiError(
        404, "ResourceNotFoundException", f"Resource {identifier} not found", resourceId=room_id, resourceType="ROOM"
    )


# -- the operations ----------------------------------------------------------------------------------

# API member name -> `Room` attribute, for CreateRoom and UpdateRoom.
ROOM_FIELDS = {
    "name": "name",
    "maximumMessageRatePerSecond": "maximum_message_rate_per_second",
    "maximumMessageLength": "maximum_message_length",
    "messageReviewHandler": "message_review_handler",
    "loggingConfigurationIdentifiers": "logging_configuration_identifiers",
}
ROOM_SUMMARY_KEYS = ("arn", "id", "name", "messageReviewHandler", "createTime", "updateTime", "tags",
                     "loggingConfigurationIdentifiers")
DEFAULT_LIST_RESULTS = 50
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/")

Result = tuple[int, dict | None]  # HTTP status and JSON body (None: no body)


class ControlPlane:
    """The operations, on the emulator's state and data plane. One instance per emulator."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.state: IvsChatRooms = emulator.state
        self.operations: dict[str, Callable[[dict], Result]] = {
            "CreateRoom": self.create_room,
            "GetRoom": self.get_room,
            "UpdateRoom": self.update_room,
            "DeleteRoom": self.delete_room,
            "ListRooms": self.list_rooms,
            "CreateChatToken": self.create_chat_token,
            "SendEvent": self.send_event,
            "DeleteMessage": self.delete_message,
            "DisconnectUser": self.disconnect_user,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }

    # -- HTTP ----------------------------------------------------------------------------------------

    def route(self, operation: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            return await self.handle(operation, request)

        return handle

    async def handle(self, operation: str, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        try:
            self._check_region(request)
            if operation in LOGGING_CONFIGURATION_OPERATIONS:
                raise bad_request(f"{operation} is not supported: the emulator has no logging configurations",
                                  reason="UNKNOWN_OPERATION")
            self._check_quota(operation)
            problems: list[tuple[str, str]] = []
            params = check(INPUTS[operation], await self._read_params(operation, request), "", problems)
            if problems:
                raise validation_error(problems)
            status, body = self.operations[operation](params)
        except ApiError as error:
            status, body = error.status, error.body
            headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.error_type}
        except Exception:
            log.exception("%s failed (request %s)", operation, request_id)
            status, body = 500, {"message": "internal error"}
            headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": "InternalServerException"}
        else:
            headers = {"x-amzn-RequestId": request_id}
        self.emulator.metrics.control_request(operation, status)
        # Only the operation and status: bodies carry chat tokens and user ids.
        log.debug("%s -> %d (request %s)", operation, status, request_id)
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, headers=headers, body=orjson.dumps(body), content_type="application/json")

    def _check_region(self, request: web.Request) -> None:
        try:
            authorization = header_text(request, "Authorization")
        except Refused as refused:
            raise bad_request(refused.reason) from None
        scope = CREDENTIAL_SCOPE.search(authorization)
        if scope and scope.group(1) != self.state.region:
            raise ApiError(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{scope.group(1)}': "
                f"this emulator serves '{self.state.region}'",
            )

    def _check_quota(self, operation: str) -> None:
        throttle = self.emulator.throttle
        if throttle is None or throttle.allow(operation, time.monotonic()):
            return
        quota = throttle.limit(operation)
        raise ApiError(
            429,
            "ThrottlingException",
            f"Rate exceeded for {operation} ({quota:g} requests per second)",
            resourceId=self.state.account_id,
            resourceType="ROOM",
            limit=math.ceil(quota),
        )

    async def _read_params(self, operation: str, request: web.Request) -> dict:
        """The operation's input: the JSON body, plus the members REST-JSON puts in the URI."""
        params: dict = {}
        if request.method == "POST":
            try:
                params = await read_json_object(request, empty_is={})
            except Refused as refused:
                raise ApiError(refused.status, "ValidationException", refused.reason, reason="OTHER",
                               fieldList=[]) from None
        if "resourceArn" in request.match_info:
            params["resourceArn"] = request.match_info["resourceArn"]
        if operation == "UntagResource":
            params["tagKeys"] = request.query.getall("tagKeys", [])
        return params

    # -- rooms ---------------------------------------------------------------------------------------

    def _room(self, identifier: str) -> Room:
        room = self.state.find_room(identifier)  # the full ARN must match: region and account too
        if room is None:
            raise room_not_found(identifier)
        return room

    def _describe(self, room: Room) -> dict:
        return room.describe(self.state.tags.get(room.arn, {}))

    @staticmethod
    def _settings(params: dict) -> dict:
        """`Room` attributes from CreateRoom/UpdateRoom members."""
        settings = {ROOM_FIELDS[name]: value for name, value in params.items() if name in ROOM_FIELDS}
        if "messageReviewHandler" in params:
            handler = params["messageReviewHandler"]
            uri = handler.get("uri", "")
            settings["message_review_handler"] = (
                {"uri": uri, "fallbackResult": handler.get("fallbackResult", "ALLOW")} if uri else None
            )
        return settings

    def create_room(self, params: dict) -> Result:
        room = self.state.create_room(**self._settings(params), tags=params.get("tags"))
        return 200, self._describe(room)

    def get_room(self, params: dict) -> Result:
        return 200, self._describe(self._room(params["identifier"]))

    def update_room(self, params: dict) -> Result:
        room = self.state.update_room(self._room(params["identifier"]), **self._settings(params))
        self.emulator.dataplane.room_updated(room)  # new limits apply to live connections
        return 200, self._describe(room)

    def delete_room(self, params: dict) -> Result:
        room = self._room(params["identifier"])
        self.state.delete_room(room)
        self.emulator.dataplane.room_deleted(room)
        return 204, None

    def list_rooms(self, params: dict) -> Result:
        after = _decode_cursor(params["nextToken"]) if params.get("nextToken") else None
        wanted = {
            "name": params.get("name"),
            "uri": params.get("messageReviewHandlerUri"),
            "logging": params.get("loggingConfigurationIdentifier"),
        }
        rooms = sorted(
            (room for room in self.state.rooms.values() if _matches(room, **wanted)),
            key=lambda room: (room.create_time_ns, room.id),
        )
        if after is not None:
            rooms = [room for room in rooms if (room.create_time_ns, room.id) > after]
        page = rooms[: params.get("maxResults", DEFAULT_LIST_RESULTS)]
        body: dict = {"rooms": [_summary(self._describe(room)) for room in page]}
        if len(rooms) > len(page):
            body["nextToken"] = _encode_cursor(page[-1])
        return 200, body

    # -- chat ----------------------------------------------------------------------------------------

    def create_chat_token(self, params: dict) -> Result:
        room = self._room(params["roomIdentifier"])
        token, grant = self.state.create_token(
            room,
            params["userId"],
            params.get("capabilities"),
            params.get("attributes"),
            params.get("sessionDurationInMinutes", DEFAULT_SESSION_MINUTES),
        )
        return 200, {
            "token": token,
            "tokenExpirationTime": iso8601(grant.token_expiration_ns),
            "sessionExpirationTime": iso8601(grant.session_expiration_ns),
        }

    def send_event(self, params: dict) -> Result:
        room = self._room(params["roomIdentifier"])
        event_id = self.emulator.dataplane.send_event(room, params["eventName"], params.get("attributes"))
        return 200, {"id": event_id}

    def delete_message(self, params: dict) -> Result:
        room = self._room(params["roomIdentifier"])
        # The service answers an "operation identifier"; the aws:DELETE_MESSAGE event's Id when the
        # data plane reports one, else a fresh Id of the same shape. The message need not exist.
        event_id = self.emulator.dataplane.delete_message(room, params["id"], params.get("reason", ""))
        return 200, {"id": event_id or random_id(12)}

    def disconnect_user(self, params: dict) -> Result:
        room = self._room(params["roomIdentifier"])
        self.emulator.dataplane.disconnect_user(room, params["userId"], params.get("reason", ""))
        return 200, {}

    # -- tags ----------------------------------------------------------------------------------------

    def _tags(self, arn: str) -> dict[str, str]:
        """The tags of a taggable resource. Rooms are the only ones the emulator has."""
        if self.state.find_room(arn) is None:
            raise room_not_found(arn)
        return self.state.tags.setdefault(arn, {})

    def tag_resource(self, params: dict) -> Result:
        tags = self._tags(params["resourceArn"])
        merged = {**tags, **params["tags"]}
        if len(merged) > TAGS.max:
            raise validation_error([("tags", f"a resource can have at most {TAGS.max} tags")])
        tags.update(params["tags"])
        return 200, {}

    def untag_resource(self, params: dict) -> Result:
        tags = self._tags(params["resourceArn"])
        for key in params["tagKeys"]:
            tags.pop(key, None)
        return 200, {}

    def list_tags_for_resource(self, params: dict) -> Result:
        return 200, {"tags": dict(self._tags(params["resourceArn"]))}


def _matches(room: Room, name: str | None, uri: str | None, logging: str | None) -> bool:
    """ListRooms filters: each one given must match."""
    handler_uri = (room.message_review_handler or {}).get("uri", "")
    return (
        (name is None or room.name == name)
        and (uri is None or handler_uri == uri)
        and (logging is None or logging in room.logging_configuration_identifiers)
    )


def _summary(room: dict) -> dict:
    """The RoomSummary shape: the Room without its message limits."""
    return {key: room[key] for key in ROOM_SUMMARY_KEYS if key in room}


def _encode_cursor(room: Room) -> str:
    return base64.urlsafe_b64encode(f"{room.create_time_ns}:{room.id}".encode()).decode()


def _decode_cursor(token: str) -> tuple[int, str]:
    try:
        create_time_ns, room_id = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        return int(create_time_ns), room_id
    except (binascii.Error, UnicodeError, ValueError):
        raise validation_error([("nextToken", "is not a token this service issued")]) from None


def add_control_plane_routes(app: web.Application, emulator: Any) -> None:
    """Register every `ivschat` operation on `app`, served from `emulator.state`."""
    control = ControlPlane(emulator)
    for operation in (*INPUTS, *LOGGING_CONFIGURATION_OPERATIONS):
        if operation not in ("TagResource", "UntagResource", "ListTagsForResource"):
            app.router.add_post(f"/{operation}", control.route(operation))
    # `.+` rather than the default `[^/]+`: a client that does not percent-encode the ARN's "/" still works.
    tags = "/tags/{resourceArn:.+}"
    app.router.add_get(tags, control.route("ListTagsForResource"))
    app.router.add_post(tags, control.route("TagResource"))
    app.router.add_delete(tags, control.route("UntagResource"))
