"""Meetings and attendees through a boto3 `chime-sdk-meetings` client: the emulator's or AWS's, unchanged.

The load harness needs many join tokens fast, and the API allows 10 requests per second (burst 20):
attendees are created with BatchCreateAttendee, 100 per call (the API's maximum), so 250 attendees
cost one CreateMeeting and three batch calls. boto3's own retries absorb ThrottlingException (429);
attendees a batch could not create (its `Errors`) raise `ProvisionError`, naming their
ExternalUserIds and error codes — never a join token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

BATCH_SIZE = 100  # BatchCreateAttendee's maximum


class ProvisionError(RuntimeError):
    pass


@dataclass(frozen=True)
class ProvisionedAttendee:
    attendee_id: str
    external_user_id: str
    join_token: str = field(repr=False)  # a secret: kept out of reprs and logs


@dataclass(frozen=True)
class ProvisionedMeeting:
    meeting_id: str
    signaling_url: str
    media_region: str
    attendees: tuple[ProvisionedAttendee, ...]


def meetings_client(region: str, endpoint_url: str | None = None, **options):
    """AWS (default credential chain) without `endpoint_url`; the emulator with it. `options` go to
    `boto3.client` (e.g. `config=`)."""
    import boto3

    from ...net.tls import http_verify  # an emulator over https:// is trusted through its own CA

    if endpoint_url:  # the emulator ignores signatures, but boto3 wants credentials to sign with
        options = {"endpoint_url": endpoint_url, "aws_access_key_id": "emulator",
                   "aws_secret_access_key": "emulator", "verify": http_verify(endpoint_url), **options}
    return boto3.client("chime-sdk-meetings", region_name=region, **options)


def _batches(items: list, size: int = BATCH_SIZE) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def create_attendee_batch(client, meeting_id: str, external_user_ids: list[str], capabilities: dict | None = None
                          ) -> tuple[dict[str, ProvisionedAttendee], dict[str, tuple[str, str]]]:
    """One BatchCreateAttendee call (at most 100): the attendees created and the ones that were not,
    each by ExternalUserId (errors as (ErrorCode, ErrorMessage))."""
    if not 1 <= len(external_user_ids) <= BATCH_SIZE:
        raise ValueError(f"a batch holds 1 to {BATCH_SIZE} attendees, not {len(external_user_ids)}")
    items = [{"ExternalUserId": user, **({"Capabilities": capabilities} if capabilities else {})}
             for user in external_user_ids]
    answer = client.batch_create_attendee(MeetingId=meeting_id, Attendees=items)
    created = {a["ExternalUserId"]: ProvisionedAttendee(a["AttendeeId"], a["ExternalUserId"], a["JoinToken"])
               for a in answer.get("Attendees") or ()}
    errors = {e.get("ExternalUserId", ""): (e.get("ErrorCode", "Unknown"), e.get("ErrorMessage", ""))
              for e in answer.get("Errors") or ()}
    return created, errors


def add_attendees(client, meeting_id: str, external_user_ids: Iterable[str],
                  capabilities: dict | None = None) -> list[ProvisionedAttendee]:
    """Create attendees in batches of 100; every one must be created (ProvisionError otherwise)."""
    created: list[ProvisionedAttendee] = []
    for batch in _batches(list(external_user_ids)):
        made, errors = create_attendee_batch(client, meeting_id, batch, capabilities)
        if errors:
            failed = ", ".join(f"{user}: {code}" for user, (code, _) in list(errors.items())[:5])
            raise ProvisionError(f"{len(errors)} attendee(s) of meeting {meeting_id} not created ({failed})")
        created += made.values()
    return created


def create_meeting(client, external_user_ids: Iterable[str], *, media_region: str = "us-east-1",
                   external_meeting_id: str | None = None, capabilities: dict | None = None,
                   max_attendees: int | None = None) -> ProvisionedMeeting:
    """One meeting with these attendees (ExternalUserIds, 2–64 characters each)."""
    request = {"ClientRequestToken": uuid.uuid4().hex, "MediaRegion": media_region,
               "ExternalMeetingId": external_meeting_id or f"chatload-{uuid.uuid4().hex[:12]}"}
    if max_attendees is not None:
        request["MeetingFeatures"] = {"Attendee": {"MaxCount": max_attendees}}
    meeting = client.create_meeting(**request)["Meeting"]
    attendees = add_attendees(client, meeting["MeetingId"], external_user_ids, capabilities)
    return ProvisionedMeeting(meeting["MeetingId"], meeting["MediaPlacement"]["SignalingUrl"],
                              meeting["MediaRegion"], tuple(attendees))


def create_meetings(client, count: int, attendees_per_meeting: int, *, user_prefix: str = "user",
                    **options) -> list[ProvisionedMeeting]:
    """`count` meetings of `attendees_per_meeting` attendees each (at most 250, the service's cap),
    named `<user_prefix>-<meeting>-<attendee>`."""
    return [create_meeting(client, [f"{user_prefix}-{m}-{a}" for a in range(attendees_per_meeting)], **options)
            for m in range(count)]


def delete_meetings(client, meetings: Iterable[ProvisionedMeeting]) -> None:
    """End meetings (their join tokens die); ones already gone are skipped."""
    for meeting in meetings:
        try:
            client.delete_meeting(MeetingId=meeting.meeting_id)
        except client.exceptions.NotFoundException:
            pass
