"""What the emulator remembers: meetings, attendees and their join tokens.

Plain data and bookkeeping, no I/O. The control plane validates its input before calling in here;
the signaling plane asks here what a join token opens. Join tokens are never logged or rendered:
`Attendee.__repr__` leaves them out.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field

from ....emulation.memory import Expiring

MAX_ATTENDEES = 250  # per meeting, fixed (quotas page); MeetingFeatures.Attendee.MaxCount lowers it
MAX_ACTIVE_MEETINGS = 250  # per account and region (adjustable on AWS; an emulator option here)
DEFAULT_CAPABILITIES = {"Audio": "SendReceive", "Video": "SendReceive", "Content": "SendReceive"}
ENDED_REMEMBERED_S = 24 * 3600  # how long an ended meeting's tokens hear "meeting ended" (emulator choice)
PLACEHOLDER_HOST = "chime-emulator.invalid"  # media URLs nobody can reach: the emulator has no media


@dataclass(eq=False)
class Attendee:
    attendee_id: str
    external_user_id: str
    join_token: str = field(repr=False)
    capabilities: dict[str, str]
    meeting_id: str
    seq: int  # creation order, for ListAttendees pages

    def describe(self) -> dict:
        """The API's `Attendee` shape (the join token included: GetAttendee returns it too)."""
        return {"ExternalUserId": self.external_user_id, "AttendeeId": self.attendee_id,
                "JoinToken": self.join_token, "Capabilities": dict(self.capabilities)}


@dataclass(eq=False)
class Meeting:
    meeting_id: str
    arn: str
    external_meeting_id: str
    media_region: str
    client_request_token: str = field(repr=False)
    signaling_base: str  # ws://host:port/control — the data plane's address when the meeting was made
    max_attendees: int = MAX_ATTENDEES
    host_id: str | None = None
    features: dict | None = None
    primary_meeting_id: str | None = None
    tenant_ids: list[str] | None = None
    attendees: dict[str, Attendee] = field(default_factory=dict)  # by attendee id
    by_external_id: dict[str, Attendee] = field(default_factory=dict)

    @property
    def id(self) -> str:  # what the shared fault routes call a room's id
        return self.meeting_id

    def media_placement(self) -> dict:
        mid, host = self.meeting_id, PLACEHOLDER_HOST
        return {
            "AudioHostUrl": f"{uuid.uuid5(uuid.NAMESPACE_URL, mid).hex}.audio.{host}:3478",
            "AudioFallbackUrl": f"wss://audio.{host}:443/calls/{mid}",
            "SignalingUrl": f"{self.signaling_base}/{mid}",
            "TurnControlUrl": f"https://turn.{host}/v2/turn_sessions",
            "ScreenDataUrl": f"wss://screen.{host}:443/v2/screen/{mid}",
            "ScreenViewingUrl": f"wss://screen.{host}:443/ws/connect?passcode=null&viewer_uuid=null&X-BitHub-Call-Id={mid}",
            "ScreenSharingUrl": f"wss://screen.{host}:443/v2/screen/{mid}",
            "EventIngestionUrl": f"https://events.{host}/v1/client-events",
        }

    def describe(self) -> dict:
        """The API's `Meeting` shape."""
        out = {"MeetingId": self.meeting_id, "ExternalMeetingId": self.external_meeting_id,
               "MediaRegion": self.media_region, "MediaPlacement": self.media_placement(), "MeetingArn": self.arn}
        if self.host_id is not None:
            out["MeetingHostId"] = self.host_id
        if self.features is not None:
            out["MeetingFeatures"] = self.features
        if self.primary_meeting_id is not None:
            out["PrimaryMeetingId"] = self.primary_meeting_id
        if self.tenant_ids is not None:
            out["TenantIds"] = list(self.tenant_ids)
        return out


class CapacityExceeded(Exception):
    """A meeting or account quota would be passed (the API's LimitExceededException)."""


@dataclass(frozen=True)
class TokenLookup:
    """What a join token opens now: an attendee, or why not (`ended` meeting, `unknown` token)."""

    attendee: Attendee | None = None
    meeting: Meeting | None = None
    problem: str | None = None  # None, "ended" or "unknown"


def new_join_token(attendee_id: str) -> str:
    """Opaque, ≤2048 characters, and usable as a WebSocket subprotocol: only RFC 7230 token
    characters (unpadded base64url, so no "=")."""
    raw = f"{attendee_id}:{secrets.token_hex(32)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class MeetingState:
    def __init__(self, region: str = "us-east-1", account_id: str = "123456789012",
                 max_meetings: int = MAX_ACTIVE_MEETINGS) -> None:
        self.region = region
        self.account_id = account_id
        self.max_meetings = max_meetings
        self.meetings: dict[str, Meeting] = {}
        self._by_request_token: dict[str, Meeting] = {}
        self._tokens: dict[str, Attendee] = {}
        # Hashes of the tokens of ended meetings: their holders are told "meeting ended" (4410),
        # not "unknown token" (4403). A rare hash collision only changes which of the two they hear.
        # Join tokens never expire, so they are remembered for `ended_remembered_s` (emulator choice:
        # a day), then "unknown token": meeting churn stays bounded.
        self._ended_tokens = Expiring()
        self.ended_remembered_s = ENDED_REMEMBERED_S
        self._seq = itertools.count()

    # -- meetings -----------------------------------------------------------------------------------

    def create_meeting(self, *, client_request_token: str, media_region: str, external_meeting_id: str,
                       signaling_base: str, max_attendees: int = MAX_ATTENDEES, host_id: str | None = None,
                       features: dict | None = None, primary_meeting_id: str | None = None,
                       tenant_ids: list[str] | None = None) -> Meeting:
        """A new meeting, or the live one made with the same ClientRequestToken (idempotent)."""
        existing = self._by_request_token.get(client_request_token)
        if existing is not None:
            return existing
        if len(self.meetings) >= self.max_meetings:
            raise CapacityExceeded(f"active meeting limit of {self.max_meetings} reached")
        meeting_id = str(uuid.uuid4())
        meeting = Meeting(
            meeting_id=meeting_id, arn=f"arn:aws:chime:{self.region}:{self.account_id}:meeting/{meeting_id}",
            external_meeting_id=external_meeting_id, media_region=media_region,
            client_request_token=client_request_token, signaling_base=signaling_base,
            max_attendees=max_attendees, host_id=host_id, features=features,
            primary_meeting_id=primary_meeting_id, tenant_ids=tenant_ids,
        )
        self.meetings[meeting_id] = meeting
        self._by_request_token[client_request_token] = meeting
        return meeting

    def find_meeting(self, identifier: str) -> Meeting | None:
        """A meeting by id (what the API takes) or ARN (what people paste)."""
        meeting_id = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
        meeting = self.meetings.get(meeting_id.lower())
        if meeting is None or (identifier.startswith("arn:") and meeting.arn != identifier):
            return None
        return meeting

    def delete_meeting(self, meeting: Meeting) -> list[Attendee]:
        """End a meeting; its attendees' tokens now open nothing. Returns the attendees it had."""
        del self.meetings[meeting.meeting_id]
        self._by_request_token.pop(meeting.client_request_token, None)
        attendees = list(meeting.attendees.values())
        until = time.time() + self.ended_remembered_s
        for attendee in attendees:
            self._tokens.pop(attendee.join_token, None)
            self._ended_tokens.put(hash(attendee.join_token), until)
        return attendees

    # -- attendees ----------------------------------------------------------------------------------

    def create_attendee(self, meeting: Meeting, external_user_id: str, capabilities: dict | None = None
                        ) -> Attendee:
        """A new attendee, or the existing one with the same ExternalUserId (the API documents
        ExternalUserId as an idempotency token). CapacityExceeded past the meeting's cap."""
        existing = meeting.by_external_id.get(external_user_id)
        if existing is not None:
            return existing
        if len(meeting.attendees) >= meeting.max_attendees:
            raise CapacityExceeded(f"attendee limit of {meeting.max_attendees} reached for this meeting")
        attendee_id = str(uuid.uuid4())
        attendee = Attendee(attendee_id, external_user_id, new_join_token(attendee_id),
                            {**DEFAULT_CAPABILITIES, **(capabilities or {})}, meeting.meeting_id, next(self._seq))
        meeting.attendees[attendee_id] = attendee
        meeting.by_external_id[external_user_id] = attendee
        self._tokens[attendee.join_token] = attendee
        return attendee

    def delete_attendee(self, meeting: Meeting, attendee: Attendee) -> None:
        """The attendee's token dies; its ExternalUserId may be used for a new attendee."""
        del meeting.attendees[attendee.attendee_id]
        meeting.by_external_id.pop(attendee.external_user_id, None)
        self._tokens.pop(attendee.join_token, None)

    def lookup_token(self, token: str | None) -> TokenLookup:
        attendee = self._tokens.get(token) if token else None
        if attendee is not None:
            meeting = self.meetings.get(attendee.meeting_id)
            if meeting is not None:
                return TokenLookup(attendee, meeting)
        if token and hash(token) in self._ended_tokens:
            return TokenLookup(problem="ended")
        return TokenLookup(problem="unknown")
