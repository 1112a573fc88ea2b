"""The emulator's control plane: the `chime-sdk-meetings` (2021-07-15) REST-JSON API that boto3 speaks.

`boto3.client("chime-sdk-meetings", endpoint_url=...)` works against these routes unchanged. The
routes are the model's (`POST /meetings`, `POST /meetings?operation=create-attendees`,
`GET|DELETE /meetings/{MeetingId}`, `POST /meetings/{MeetingId}/attendees[?operation=batch-create]`,
`GET /meetings/{MeetingId}/attendees[/{AttendeeId}]`, `DELETE …/attendees/{AttendeeId}`). Errors
carry the model's HTTP status, `x-amzn-ErrorType: <ShapeName>` (what botocore reads to pick the
modelled exception class) and a body `{"Code", "Message", "RequestId"}` (the error shapes'
members), so boto3 raises BadRequestException, NotFoundException, LimitExceededException,
ThrottlingException, … with those members in `response`.

botocore checks only required members and minimum lengths before sending, so the server checks the
whole input model (types, lengths, ranges, enums, patterns) with the checker every AWS-shaped
emulator shares (`harness.emulation.aws_json`). Unknown members are ignored. Messages never repeat
a sensitive value (ExternalUserId, ExternalMeetingId and ClientRequestToken are `sensitive` in the
model; join tokens are secrets).

Emulator choices (unpublished behaviour):
- The body's `Code` is the shape name without "Exception" (`BadRequest`, `NotFound`, `Throttling`,
  `LimitExceeded`, …); BatchCreateAttendee's per-attendee `ErrorCode` uses the same words.
- The 251st attendee (or past MeetingFeatures.Attendee.MaxCount) is LimitExceededException, inferred:
  the real over-cap error is unpublished. In BatchCreateAttendee it is a per-attendee error and the
  attendees before it are created. Deleting an attendee frees its place.
- BatchCreateAttendee items with a well-typed but invalid ExternalUserId (length) or Capabilities
  (enum) become per-attendee `Errors` (`BadRequest`); a malformed request fails as a whole.
- CreateMeeting with the ClientRequestToken of a live meeting returns that meeting; CreateAttendee
  with an ExternalUserId the meeting already has returns that attendee (the API reference calls
  ExternalUserId an idempotency token).
- MediaRegion must be one of the Chime SDK media regions below (BadRequest otherwise).
- With `throttle` on, every operation has its own 10 requests/s bucket holding 20 (quota "10 RPS,
  burst 20 per API"); the 21st request of a burst is 429 ThrottlingException.
- Operations of the model that the emulator does not serve (tags, transcription, capabilities)
  answer BadRequestException naming the operation. Signatures are not checked.
- ListAttendees pages hold up to 100 attendees by default, in creation order, with an opaque cursor.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ....emulation.aws_json import check, integer, list_of, string, structure
from ....emulation.request_body import Refused, read_json_object
from .state import MAX_ATTENDEES, Attendee, CapacityExceeded, Meeting, MeetingState

log = logging.getLogger(__name__)

MEDIA_REGIONS = frozenset({
    "af-south-1", "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
    "ca-central-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1",
    "us-gov-west-1",
})

# -- the input model (chime-sdk-meetings 2021-07-15), as a table ----------------------------------------

GUID = r"[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}"
MEDIA_CAPABILITY = string(enum=("SendReceive", "Send", "Receive", "None"))
CAPABILITIES = structure(("Audio", "Video", "Content"), Audio=MEDIA_CAPABILITY, Video=MEDIA_CAPABILITY,
                         Content=MEDIA_CAPABILITY)
EXTERNAL_USER_ID = string(2, 64)
ATTENDEE_ITEM = structure(("ExternalUserId",), ExternalUserId=EXTERNAL_USER_ID, Capabilities=CAPABILITIES)
ARN = string(1, 1024, r"^arn[\/\:\-\_\.a-zA-Z0-9]+$")
FEATURES = structure(
    Audio=structure(EchoReduction=string(enum=("AVAILABLE", "UNAVAILABLE"))),
    Video=structure(MaxResolution=string(enum=("None", "HD", "FHD"))),
    Content=structure(MaxResolution=string(enum=("None", "FHD", "UHD"))),
    Attendee=structure(MaxCount=integer(1, MAX_ATTENDEES)),
)
TAG = structure(("Key", "Value"), Key=string(1, 128, r"^[a-zA-Z+-=._:/]+$"), Value=string(0, 256, r"[\s\w+-=\.:/@]*"))
MEETING_SETTINGS = {
    "ClientRequestToken": string(2, 64, r"[-_a-zA-Z0-9]*"),
    "MediaRegion": string(2, 64),
    "MeetingHostId": EXTERNAL_USER_ID,
    "ExternalMeetingId": string(2, 64),
    "NotificationsConfiguration": structure(LambdaFunctionArn=ARN, SnsTopicArn=ARN, SqsQueueArn=ARN),
    "MeetingFeatures": FEATURES,
    "PrimaryMeetingId": string(2, 64),
    "TenantIds": list_of(string(2, 256, r"^(?!.*?(.)\1{3})[-_!@#$a-zA-Z0-9]*$"), 5),
    "Tags": list_of(TAG, 50),
    "MediaPlacementNetworkType": string(enum=("Ipv4Only", "DualStack")),
}
MEETING_ID = string(pattern=GUID)
INPUTS = {
    "CreateMeeting": structure(("ClientRequestToken", "MediaRegion", "ExternalMeetingId"), **MEETING_SETTINGS),
    "CreateMeetingWithAttendees": structure(("ClientRequestToken", "MediaRegion", "ExternalMeetingId", "Attendees"),
                                            **MEETING_SETTINGS, Attendees=list_of(structure(), 20)),
    "GetMeeting": structure(("MeetingId",), MeetingId=MEETING_ID),
    "DeleteMeeting": structure(("MeetingId",), MeetingId=MEETING_ID),
    "CreateAttendee": structure(("MeetingId", "ExternalUserId"), MeetingId=MEETING_ID,
                                ExternalUserId=EXTERNAL_USER_ID, Capabilities=CAPABILITIES),
    # Attendee items are checked one by one (`_create_attendees`): a bad one is an entry in Errors.
    "BatchCreateAttendee": structure(("MeetingId", "Attendees"), MeetingId=MEETING_ID,
                                     Attendees=list_of(structure(), 100)),
    "GetAttendee": structure(("MeetingId", "AttendeeId"), MeetingId=MEETING_ID, AttendeeId=MEETING_ID),
    "DeleteAttendee": structure(("MeetingId", "AttendeeId"), MeetingId=MEETING_ID, AttendeeId=MEETING_ID),
    "ListAttendees": structure(("MeetingId",), MeetingId=MEETING_ID, NextToken=string(0, 4096),
                               MaxResults=integer(1, 100)),
}
MIN_ITEMS = {"Attendees": 1, "TenantIds": 1}  # list minimums the model states (checked by hand)
# The model's operations the emulator does not serve: (method, route, operation).
UNSERVED = (
    ("PUT", "/meetings/{MeetingId}/attendees/capabilities", "BatchUpdateAttendeeCapabilitiesExcept"),
    ("PUT", "/meetings/{MeetingId}/attendees/{AttendeeId}/capabilities", "UpdateAttendeeCapabilities"),
    ("POST", "/meetings/{MeetingId}/transcription", "StartMeetingTranscription"),
    ("GET", "/tags", "ListTagsForResource"),
    ("POST", "/tags", "TagResource"),
)
DEFAULT_LIST_RESULTS = 100

Result = tuple[int, dict | None]  # HTTP status and JSON body (None: no body)


class ApiError(Exception):
    """An error the API answers with; `shape` is the model's exception shape name."""

    STATUS = {"BadRequestException": 400, "LimitExceededException": 400, "UnauthorizedException": 401,
              "ForbiddenException": 403, "NotFoundException": 404, "ConflictException": 409,
              "UnprocessableEntityException": 422, "ThrottlingException": 429, "ServiceFailureException": 500,
              "ServiceUnavailableException": 503}

    def __init__(self, shape: str, message: str) -> None:
        super().__init__(message)
        self.shape = shape
        self.status = self.STATUS[shape]

    @property
    def code(self) -> str:
        return self.shape.removesuffix("Exception")


def bad_request(message: str) -> ApiError:
    return ApiError("BadRequestException", message)


def validation_error(problems: list[tuple[str, str]]) -> ApiError:
    return bad_request("Invalid input: " + "; ".join(f"{name} {problem}" for name, problem in problems))


def _check_attendee_items(items: list) -> None:
    """Refuse the whole request when an item is not even an attendee to report on in Errors."""
    if not all(isinstance(item, dict) and isinstance(item.get("ExternalUserId"), str) for item in items):
        raise validation_error([("Attendees", "items must be objects with a string ExternalUserId")])


class ControlPlane:
    """The operations, on the emulator's state and signaling plane. One instance per emulator."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.state: MeetingState = emulator.state
        self.operations: dict[str, Callable[[dict], Result]] = {
            "CreateMeeting": self.create_meeting,
            "CreateMeetingWithAttendees": self.create_meeting_with_attendees,
            "GetMeeting": self.get_meeting,
            "DeleteMeeting": self.delete_meeting,
            "CreateAttendee": self.create_attendee,
            "BatchCreateAttendee": self.batch_create_attendee,
            "GetAttendee": self.get_attendee,
            "DeleteAttendee": self.delete_attendee,
            "ListAttendees": self.list_attendees,
        }

    # -- HTTP ----------------------------------------------------------------------------------------

    def route(self, operation: str | Callable[[web.Request], str]) -> Callable[[web.Request], Any]:
        """A handler for one operation, or for the operation a `?operation=` query names."""
        async def handle(request: web.Request) -> web.Response:
            name = operation(request) if callable(operation) else operation
            return await self.handle(name, request)

        return handle

    async def handle(self, operation: str, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        headers = {"x-amzn-RequestId": request_id}
        try:
            if operation not in self.operations:
                raise bad_request(f"{operation} is not supported by the Chime SDK meetings emulator")
            self._check_quota(operation)
            params = await self._read_params(request)
            problems: list[tuple[str, str]] = []
            params = check(INPUTS[operation], params, "", problems)
            for name, minimum in MIN_ITEMS.items():
                if isinstance(params.get(name), list) and len(params[name]) < minimum:
                    problems.append((name, f"must have at least {minimum} item(s)"))
            if problems:
                raise validation_error(problems)
            status, body = self.operations[operation](params)
        except ApiError as error:
            status, body = error.status, {"Code": error.code, "Message": str(error), "RequestId": request_id}
            headers["x-amzn-ErrorType"] = error.shape
        except Exception:
            log.exception("%s failed (request %s)", operation, request_id)
            status, body = 500, {"Code": "ServiceFailure", "Message": "internal error", "RequestId": request_id}
            headers["x-amzn-ErrorType"] = "ServiceFailureException"
        # Only the operation and status: bodies carry join tokens and user ids. A name the client made
        # up (`?operation=…`) is counted as "unknown": /metrics series must not grow with its inventions.
        self.emulator.metrics.control_request(operation if operation in self.operations else "unknown", status)
        log.debug("%s -> %d (request %s)", operation, status, request_id)
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, headers=headers, body=orjson.dumps(body), content_type="application/json")

    def _check_quota(self, operation: str) -> None:
        throttle = self.emulator.throttle
        if throttle is not None and not throttle.allow(operation, time.monotonic()):
            rate = throttle.rate(operation)
            raise ApiError("ThrottlingException",
                           f"Rate exceeded for {operation} ({rate.per_second:g} requests per second, burst {rate.burst:g})")

    async def _read_params(self, request: web.Request) -> dict:
        """The operation's input: the JSON body, plus the members REST-JSON puts in the URI and query."""
        params: Any = {}
        if request.method in ("POST", "PUT"):
            try:
                params = await read_json_object(request, empty_is={})
            except Refused as refused:
                failure = bad_request(refused.reason)
                failure.status = refused.status  # 413 or 415 where the body itself is refused
                raise failure from None
        for name in ("MeetingId", "AttendeeId"):
            if name in request.match_info:
                params[name] = request.match_info[name]
        if "next-token" in request.query:
            params["NextToken"] = request.query["next-token"]
        if "max-results" in request.query:
            try:
                params["MaxResults"] = int(request.query["max-results"])
            except ValueError:
                raise validation_error([("MaxResults", "must be an integer")]) from None
        return params

    # -- meetings ------------------------------------------------------------------------------------

    def _meeting(self, meeting_id: str) -> Meeting:
        meeting = self.state.find_meeting(meeting_id)
        if meeting is None:
            raise ApiError("NotFoundException", f"The meeting {meeting_id} is not found")
        return meeting

    def _new_meeting(self, params: dict) -> Meeting:
        if params["MediaRegion"] not in MEDIA_REGIONS:
            raise validation_error([("MediaRegion", "is not a Chime SDK media region")])
        features = params.get("MeetingFeatures")
        try:
            return self.state.create_meeting(
                client_request_token=params["ClientRequestToken"], media_region=params["MediaRegion"],
                external_meeting_id=params["ExternalMeetingId"],
                signaling_base=self.emulator.signaling.signaling_base,
                max_attendees=(features or {}).get("Attendee", {}).get("MaxCount", MAX_ATTENDEES),
                host_id=params.get("MeetingHostId"), features=features,
                primary_meeting_id=params.get("PrimaryMeetingId"), tenant_ids=params.get("TenantIds"),
            )
        except CapacityExceeded as exc:
            raise ApiError("LimitExceededException", str(exc).capitalize()) from None

    def create_meeting(self, params: dict) -> Result:
        return 200, {"Meeting": self._new_meeting(params).describe()}

    def create_meeting_with_attendees(self, params: dict) -> Result:
        _check_attendee_items(params["Attendees"])  # before the meeting exists: a refusal takes no quota
        meeting = self._new_meeting(params)
        attendees, errors = self._create_attendees(meeting, params["Attendees"])
        body: dict = {"Meeting": meeting.describe(), "Attendees": attendees}
        if errors:
            body["Errors"] = errors
        return 200, body

    def get_meeting(self, params: dict) -> Result:
        return 200, {"Meeting": self._meeting(params["MeetingId"]).describe()}

    def delete_meeting(self, params: dict) -> Result:
        meeting = self._meeting(params["MeetingId"])
        self.state.delete_meeting(meeting)
        self.emulator.signaling.meeting_deleted(meeting)
        return 204, None

    # -- attendees -----------------------------------------------------------------------------------

    def _attendee(self, meeting: Meeting, attendee_id: str) -> Attendee:
        attendee = meeting.attendees.get(attendee_id.lower())
        if attendee is None:
            raise ApiError("NotFoundException", f"The attendee {attendee_id} is not found")
        return attendee

    def create_attendee(self, params: dict) -> Result:
        meeting = self._meeting(params["MeetingId"])
        try:
            attendee = self.state.create_attendee(meeting, params["ExternalUserId"], params.get("Capabilities"))
        except CapacityExceeded as exc:
            raise ApiError("LimitExceededException", str(exc).capitalize()) from None
        return 200, {"Attendee": attendee.describe()}

    def batch_create_attendee(self, params: dict) -> Result:
        meeting = self._meeting(params["MeetingId"])
        attendees, errors = self._create_attendees(meeting, params["Attendees"])
        return 200, {"Attendees": attendees, "Errors": errors}

    def _create_attendees(self, meeting: Meeting, items: list) -> tuple[list[dict], list[dict]]:
        """Create each item in order; an item that cannot be made is an entry in Errors."""
        _check_attendee_items(items)
        attendees, errors = [], []
        for item in items:
            external_user_id = item["ExternalUserId"]
            problems: list[tuple[str, str]] = []
            cleaned = check(ATTENDEE_ITEM, item, "", problems)
            if problems:
                errors.append({"ExternalUserId": external_user_id, "ErrorCode": "BadRequest",
                               "ErrorMessage": "; ".join(f"{name} {problem}" for name, problem in problems)})
                continue
            try:
                attendee = self.state.create_attendee(meeting, external_user_id, cleaned.get("Capabilities"))
            except CapacityExceeded as exc:
                errors.append({"ExternalUserId": external_user_id, "ErrorCode": "LimitExceeded",
                               "ErrorMessage": str(exc).capitalize()})
                continue
            attendees.append(attendee.describe())
        return attendees, errors

    def get_attendee(self, params: dict) -> Result:
        meeting = self._meeting(params["MeetingId"])
        return 200, {"Attendee": self._attendee(meeting, params["AttendeeId"]).describe()}

    def delete_attendee(self, params: dict) -> Result:
        meeting = self._meeting(params["MeetingId"])
        attendee = self._attendee(meeting, params["AttendeeId"])
        self.state.delete_attendee(meeting, attendee)
        self.emulator.signaling.attendee_deleted(meeting, attendee)
        return 204, None

    def list_attendees(self, params: dict) -> Result:
        meeting = self._meeting(params["MeetingId"])
        after = _decode_cursor(params["NextToken"]) if params.get("NextToken") else -1
        ordered = sorted((a for a in meeting.attendees.values() if a.seq > after), key=lambda a: a.seq)
        page = ordered[: params.get("MaxResults", DEFAULT_LIST_RESULTS)]
        body: dict = {"Attendees": [a.describe() for a in page]}
        if len(ordered) > len(page):
            body["NextToken"] = base64.urlsafe_b64encode(f"after:{page[-1].seq}".encode()).decode()
        return 200, body


def _decode_cursor(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("after:"):
            raise ValueError(token)
        return int(text.removeprefix("after:"))
    except (binascii.Error, UnicodeError, ValueError):
        raise validation_error([("NextToken", "is not a token this service issued")]) from None


def _by_query(default: str, **operations: str) -> Callable[[web.Request], str]:
    """REST-JSON puts some operations on the same path, told apart by `?operation=`."""
    def pick(request: web.Request) -> str:
        value = request.query.get("operation")
        if value is None:
            return default
        return operations.get(value.replace("-", "_"), f"operation={value}")

    return pick


def add_control_plane_routes(app: web.Application, emulator: Any) -> None:
    """Register the `chime-sdk-meetings` operations on `app`, served from `emulator.state`."""
    control = ControlPlane(emulator)
    meeting, attendees = "/meetings/{MeetingId}", "/meetings/{MeetingId}/attendees"
    app.router.add_post("/meetings", control.route(_by_query("CreateMeeting", create_attendees="CreateMeetingWithAttendees")))
    app.router.add_get(meeting, control.route("GetMeeting"))
    app.router.add_delete(meeting, control.route("DeleteMeeting"))
    app.router.add_post(attendees, control.route(_by_query("CreateAttendee", batch_create="BatchCreateAttendee")))
    app.router.add_get(attendees, control.route("ListAttendees"))
    app.router.add_get(attendees + "/{AttendeeId}", control.route("GetAttendee"))
    app.router.add_delete(attendees + "/{AttendeeId}", control.route("DeleteAttendee"))
    for method, path, operation in UNSERVED:
        app.router.add_route(method, path, control.route(operation))
