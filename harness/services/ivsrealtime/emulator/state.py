"""What the emulator remembers: stages, issued participant tokens, participants, their events, keys.

Plain data and bookkeeping, no I/O. Times are wall-clock values passed in by callers so tests can
drive expiry without sleeping. `minute_s` is how long one of the service's minutes lasts here
(60 normally; a test passes e.g. 0.5 so a 1-minute token expires in half a second).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ....emulation.memory import Expiring
from .. import tokens as ptokens
from ..tokens import ParticipantClaims

DEFAULT_TOKEN_MINUTES = 720
MAX_TOKEN_MINUTES = 20160  # CreateParticipantToken's longest duration: 14 days
MAX_STAGES = 100  # per region (adjustable quota)
MAX_PUBLISHERS = 12  # per stage (fixed)
MAX_SUBSCRIBERS = 10_000  # per stage (adjustable)
EVENTS_KEPT = 1000  # per participant: the oldest are forgotten (emulator choice; keeps a soak bounded)
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def random_id(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def iso8601(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


@dataclass
class Stage:
    id: str
    arn: str
    name: str
    session_id: str  # "st-" + 13: one session for the stage's life (emulator choice)
    created: float
    tags: dict[str, str] = field(default_factory=dict)
    auto_recording: dict | None = None
    order: int = 0  # creation order, for stable listings


@dataclass
class ParticipantRecord:
    participant_id: str
    user_id: str
    attributes: dict[str, str]
    first_join: float
    state: str = "CONNECTED"
    published: bool = False


@dataclass
class ParticipantEvent:
    name: str
    participant_id: str
    time: float
    error_code: str | None = None

    def describe(self) -> dict:
        out = {"name": self.name, "participantId": self.participant_id, "eventTime": iso8601(self.time)}
        if self.error_code:
            out["errorCode"] = self.error_code
        return out


@dataclass
class PublicKey:
    arn: str
    name: str
    pem: str
    key: ec.EllipticCurvePublicKey
    fingerprint: str
    tags: dict[str, str] = field(default_factory=dict)
    order: int = 0

    def describe(self) -> dict:
        return {"arn": self.arn, "name": self.name, "publicKeyMaterial": self.pem, "fingerprint": self.fingerprint,
                "tags": dict(self.tags)}


class QuotaExceeded(Exception):
    pass


class RealtimeState:
    def __init__(self, region: str = "us-east-1", account_id: str = "123456789012", *, minute_s: float = 60.0,
                 max_stages: int = MAX_STAGES, signing_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.region = region
        self.account_id = account_id
        self.minute_s = minute_s
        self.max_stages = max_stages
        self.signing_key = signing_key or ptokens.generate_key()
        self.stages: dict[str, Stage] = {}  # by id
        # What is remembered about the past is kept while a token that could come back is valid, then
        # forgotten (`emulation.memory.Expiring`), so stage, token and join churn stays bounded:
        self.deleted_stages = Expiring()  # ARNs: a later join says STAGE_DELETED (for the longest token)
        self.issued = Expiring()  # participant ids from CreateParticipantToken, until their token expires
        self.blocked = Expiring()  # participant ids whose token DisconnectParticipant ended, likewise
        self.used = Expiring()  # participant ids that have joined once (single-use mode), likewise
        self.participants: dict[tuple[str, str], dict[str, ParticipantRecord]] = {}  # (stage, session) → id → rec
        self.events: dict[tuple[str, str, str], deque[ParticipantEvent]] = {}  # (stage, session, participant)
        self.public_keys: dict[str, PublicKey] = {}  # by ARN
        self._order = itertools.count()

    # -- stages ---------------------------------------------------------------------------------------------

    def create_stage(self, name: str = "", tags: dict | None = None, auto_recording: dict | None = None,
                     now: float | None = None) -> Stage:
        if len(self.stages) >= self.max_stages:
            raise QuotaExceeded(f"stage quota of {self.max_stages} per region reached")
        stage_id = random_id(12)
        stage = Stage(id=stage_id, arn=f"arn:aws:ivs:{self.region}:{self.account_id}:stage/{stage_id}", name=name,
                      session_id="st-" + random_id(13), created=time.time() if now is None else now,
                      tags=dict(tags or {}), auto_recording=auto_recording, order=next(self._order))
        self.stages[stage_id] = stage
        return stage

    def find_stage(self, identifier: str) -> Stage | None:
        """A stage by ARN (the API's word) or bare id (the admin routes')."""
        stage_id = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
        stage = self.stages.get(stage_id)
        if stage is None or (identifier.startswith("arn:") and stage.arn != identifier):
            return None
        return stage

    @property
    def longest_token_s(self) -> float:
        return MAX_TOKEN_MINUTES * self.minute_s

    def delete_stage(self, stage: Stage, now: float | None = None) -> None:
        """The stage goes, and with it its participants and their events (no operation reads them)."""
        del self.stages[stage.id]
        self.deleted_stages.put(stage.arn, (time.time() if now is None else now) + self.longest_token_s)
        self.participants.pop((stage.id, stage.session_id), None)
        for key in [key for key in self.events if key[0] == stage.id]:
            del self.events[key]

    def block(self, participant_id: str, until: float | None = None) -> None:
        """The participant's token joins no more, until it expires (the longest a token lives, unknown)."""
        known = self.issued.get(participant_id)
        self.blocked.put(participant_id, until or known or time.time() + self.longest_token_s)

    # -- tokens ---------------------------------------------------------------------------------------------

    def issue_token(self, stage: Stage, *, events_url: str, whip_url: str, user_id: str = "",
                    capabilities: list[str] | None = None, attributes: dict | None = None,
                    duration_minutes: int = DEFAULT_TOKEN_MINUTES, now: float | None = None
                    ) -> tuple[str, ParticipantClaims]:
        now = time.time() if now is None else now
        granted = (ptokens.PUBLISH, ptokens.SUBSCRIBE) if capabilities is None else capabilities
        token, claims = ptokens.self_signed_token(
            self.signing_key, stage.arn, events_url=events_url, whip_url=whip_url, now=now,
            duration_s=duration_minutes * self.minute_s, user_id=user_id, capabilities=granted,
            attributes=attributes)
        self.issued.put(claims.participant_id, claims.expires_at, claims.expires_at)
        return token, claims

    def verification_keys(self) -> list[ec.EllipticCurvePublicKey]:
        return [self.signing_key.public_key(), *(k.key for k in self.public_keys.values())]

    def verify(self, token: str, now: float | None = None) -> ParticipantClaims:
        return ptokens.verify_participant_token(token, self.verification_keys(), time.time() if now is None else now)

    # -- public keys ----------------------------------------------------------------------------------------

    def import_public_key(self, pem: str, name: str = "", tags: dict | None = None) -> PublicKey:
        key = ptokens.load_public_key(pem)  # ValueError for anything but a P-384 key
        der = key.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
        fingerprint = hashlib.sha256(der).hexdigest()
        if any(k.fingerprint == fingerprint for k in self.public_keys.values()):
            raise ValueError("this public key is already imported")
        key_id = random_id(12)
        record = PublicKey(arn=f"arn:aws:ivs:{self.region}:{self.account_id}:public-key/{key_id}", name=name,
                           pem=pem, key=key, fingerprint=fingerprint, tags=dict(tags or {}), order=next(self._order))
        self.public_keys[record.arn] = record
        return record

    # -- participants and their events ----------------------------------------------------------------------

    def records(self, stage: Stage) -> dict[str, ParticipantRecord]:
        return self.participants.setdefault((stage.id, stage.session_id), {})

    def joined(self, stage: Stage, claims: ParticipantClaims, publishing: bool, now: float) -> None:
        records = self.records(stage)
        record = records.get(claims.participant_id)
        if record is None:
            record = records[claims.participant_id] = ParticipantRecord(
                claims.participant_id, claims.user_id, dict(claims.attributes), first_join=now)
        record.state = "CONNECTED"
        record.published = record.published or publishing
        self.used.put(claims.participant_id, claims.expires_at)
        self.event(stage, claims.participant_id, "JOINED", now)
        if publishing:
            self.event(stage, claims.participant_id, "PUBLISH_STARTED", now)

    def published(self, stage: Stage, participant_id: str, now: float) -> None:
        record = self.records(stage).get(participant_id)
        if record is not None:
            record.published = True
        self.event(stage, participant_id, "PUBLISH_STARTED", now)

    def left(self, stage: Stage, participant_id: str, publishing: bool, now: float) -> None:
        record = self.records(stage).get(participant_id)
        if record is not None:
            record.state = "DISCONNECTED"
        if publishing:
            self.event(stage, participant_id, "PUBLISH_STOPPED", now)
        self.event(stage, participant_id, "LEFT", now)

    def event(self, stage: Stage, participant_id: str, name: str, now: float, error_code: str | None = None) -> None:
        key = (stage.id, stage.session_id, participant_id)
        events = self.events.get(key)
        if events is None:
            events = self.events[key] = deque(maxlen=EVENTS_KEPT)
        events.append(ParticipantEvent(name, participant_id, now, error_code))

    def events_of(self, stage: Stage, session_id: str, participant_id: str) -> list[ParticipantEvent]:
        return list(self.events.get((stage.id, session_id, participant_id), ()))
