"""Amazon Chime SDK meetings behind the service contract: meetings, attendees' join tokens, signaling.

Spec: `shared/spec/chime.md`. A "room" is a meeting (its MeetingId). Meetings are made for each run
with boto3's `chime-sdk-meetings` (CreateMeeting), on the emulator (`endpoint_url`) or, with the same
code, on AWS (credentials and a region: `provisions_real_rooms`); `[target] meeting_ids` uses
existing ones instead (GetMeeting). Either way provisioning records each meeting's SignalingUrl and
the `[meetings]` settings in `Target.settings`, which every process reads. Attendees are made by
each process for its own users (`tokens.py`): join tokens never leave the process that uses them.

The data plane is one signaling WebSocket per attendee (`client.py`): the SignalingUrl with the
SDK's query, the subprotocols `_aws_wt_session` and the join token, JOIN → JOIN_ACK → INDEX, then
DATA_MESSAGE frames on a topic.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

from ...files.toml_tables import DURATION, Key
from ...net.tls import http_context
from ...net.transport import ConnectParams
from ..base import (
    KIND_EMULATOR,
    KIND_RUNNING_EMULATOR,
    ChatService,
    PopulationKind,
    RoomSettings,
    ServiceError,
    Target,
    UserSpec,
)
from ..token_endpoint import answer_field
from . import codec, verdicts
from .client import ChimeProtocol, protocol_for

USERS = "harness.services.chime.users"
MEETING_ID = re.compile(r"[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}")
IDENTITY_BYTES = 64  # room left in a data message's 2,048 bytes for the identity (client.identity_data)
MAX_CONTENT = codec.MAX_DATA_BYTES - IDENTITY_BYTES
MAX_ATTENDEES = 250  # per meeting, fixed (quotas)
MAX_MEETINGS = 250  # active meetings per account and region (adjustable on AWS)
SPEC_REPLAY = (300.0, 1024)  # seconds, messages: "up to 1024 messages for at most 5 min"


class ChimeService(ChatService):
    name = "chime"
    title = "Amazon Chime SDK meetings"
    room_noun = "meeting"
    rooms_table = "meetings"
    real_kind = "chime"
    provisions_real_rooms = True  # meetings are short-lived, and connecting needs their SignalingUrl
    populations = {
        "attendee": PopulationKind(f"{USERS}:Attendee", description="joins a meeting and listens on its topic"),
        "late_attendee": PopulationKind(f"{USERS}:LateAttendee", description="joins `late_join_after` after it "
                                        "starts, and listens: what the meeting replays to a late joiner"),
        "data_sender": PopulationKind(f"{USERS}:DataSender", sends=True,
                                      description="sends data messages on the topic, open-loop (or in bursts); "
                                      "subscribes to nothing, so it receives nothing"),
        "ramp_sender": PopulationKind(f"{USERS}:RampSender", sends=True,
                                      description="sends data messages at a rate rising from message_rate to "
                                      "`ramp_to_rate` over `ramp_over`: where the throttle and the hang-up begin"),
        "api_churn": PopulationKind(f"{USERS}:ApiChurn", description="no connection: creates a meeting and "
                                    "`churn_attendees` attendees, deletes one attendee, then the meeting, "
                                    "`churn_rate` times a second, timing each call (API latency and 429s)"),
    }
    histograms = {
        "join": "join time (socket open → JOIN_ACK and INDEX: the session is usable)",
        "ingest": "sender → server: intended send time → the server's ingest_time_ns, per delivery (the rest of "
                  "delivery is from_server)",
        "from_server": "server → receiver: the server's time on a message → its arrival, per delivery",
        "replay": "age of a replayed message on arrival (intended send time → arrival at a late or returning "
                  "attendee)",
        "api_create_meeting": "CreateMeeting call time (control-plane churn)",
        "api_batch_create_attendee": "BatchCreateAttendee call time (control-plane churn)",
        "api_delete_attendee": "DeleteAttendee call time (control-plane churn)",
        "api_delete_meeting": "DeleteMeeting call time (control-plane churn)",
    }
    # Gate names → (path under report["verdicts"]["chime"], kind, direction, words); see verdicts.py.
    verdict_metrics = {
        "chime.throttled_ratio": (("throttle", "throttled_ratio"), "ratio", "lower_is_better",
                                  "data messages throttled / offered"),
        "chime.early_throttle_seconds": (("throttle", "early_throttle_seconds"), "count", "lower_is_better",
                                         "seconds with throttling while the meeting's offered load stayed within one "
                                         "attendee's bucket (100/s, burst 200): throttled before the spec allows"),
        "chime.throttle_start_error": (("throttle", "start_error_us"), "duration", "lower_is_better",
                                       "first throttled second − the second the bucket predicts (one sender)"),
        "chime.steady_throttle_ratio": (("throttle", "steady_ratio"), "ratio", "higher_is_better",
                                        "accepted per second while throttled / the soft rate (one sender)"),
        "chime.bucket_excess": (("throttle", "bucket_excess"), "count", "lower_is_better",
                                "most accepted in any window beyond burst + rate × its length (one sender; ≤ 0)"),
        "chime.hard_limit_error": (("throttle", "hard_limit_error_us"), "duration", "lower_is_better",
                                   "second of the 4429 hang-up − the second the hard bucket predicts (one sender)"),
        "chime.api_throttled_ratio": (("api", "throttled_ratio"), "ratio", "lower_is_better",
                                      "control-plane calls answered 429 / calls"),
        "chime.api_peak_accepted_per_s": (("api", "peak_accepted_per_s"), "count", "lower_is_better",
                                          "most calls of one operation accepted in one second"),
        "chime.api_steady_accepted_per_s": (("api", "steady_accepted_per_s"), "count", "higher_is_better",
                                            "calls of one operation accepted per second while it was throttled"),
    }

    # -- scenario ----------------------------------------------------------------------------------------

    target_keys = (
        Key("region", str, "us-east-1", "AWS region; the meetings' MediaRegion too", '"us-east-1"'),
        Key("control_endpoint", str, "", "a running emulator's control plane (boto3 endpoint_url); not for AWS",
            '"http://127.0.0.1:8766"'),
        Key("meeting_ids", list, [], "existing meetings to use (MeetingIds) instead of making them for the run",
            '["6e8c2c3a-3a0e-4f52-8c9c-0c5f1c7d2b1a"]'),
    )
    room_keys = (
        Key("count", int, 1, "meetings to make; users are spread over them", "2", minimum=1, maximum=MAX_MEETINGS),
        Key("max_attendees", int, MAX_ATTENDEES, "each meeting's MeetingFeatures.Attendee.MaxCount (the service's "
            "cap is 250)", "100", minimum=1, maximum=MAX_ATTENDEES),
        Key("topic", str, "chat", "the data-message topic senders send on and attendees subscribe to "
            "([a-zA-Z0-9_-], 1 to 36)", '"chat"'),
        Key("lifetime_ms", int, 0, "data messages' lifetime: the meeting keeps them (up to 1,024, at most 5 min) and "
            "replays them to attendees who join late or come back; 0: none", "300000", minimum=0),
        Key("ramp_to_rate", float, 0.0, "ramp_sender: messages per second reached at the end of the ramp "
            "(0: no ramp)", "2000.0", minimum=0.0, maximum=5000.0),
        Key("ramp_over", DURATION, 10.0, "ramp_sender: how long the ramp takes", '"15s"'),
        Key("late_join_after", DURATION, 10.0, "late_attendee: how long it waits after it starts before joining",
            '"8s"'),
        Key("churn_rate", float, 1.0, "api_churn: create/delete cycles per second per user", "4.0",
            minimum=0.01, maximum=50.0),
        Key("churn_attendees", int, 10, "api_churn: attendees made in each churn meeting (one BatchCreateAttendee)",
            "10", minimum=1, maximum=100),
    )

    def read_target(self, table, kind: str) -> Target:
        values = {key.name: table.read(key) for key in self.target_keys}
        target = Target(service=self.name, kind=kind, control_endpoint=values["control_endpoint"],
                        region=values["region"], rooms=tuple(values["meeting_ids"]))
        if kind == KIND_EMULATOR and (target.control_endpoint or target.rooms):
            table.fail("", "kind \"emulator\" starts its own emulator and makes its meetings; for one that is "
                           "already running use kind = \"running-emulator\" with control_endpoint")
        if kind == KIND_RUNNING_EMULATOR and not target.control_endpoint:
            table.fail("control_endpoint", "is required for kind \"running-emulator\"")
        if kind == self.real_kind and target.control_endpoint:
            table.fail("control_endpoint", "not used against AWS (boto3 finds the service from the region)")
        for index, meeting in enumerate(target.rooms):
            if not isinstance(meeting, str) or not MEETING_ID.fullmatch(meeting):
                table.fail(f"meeting_ids[{index}]", f"not a MeetingId (a GUID): {meeting!r}")
        return target

    def read_rooms(self, table) -> RoomSettings:
        values = {key.name: table.read(key) for key in self.room_keys}
        if not codec.TOPIC_PATTERN.fullmatch(values["topic"]):
            table.fail("topic", f"{values['topic']!r} is not a topic: 1 to 36 of a-z, A-Z, 0-9, '_' and '-'")
        count = values.pop("count")
        return RoomSettings(count=count, settings=values)

    def message_size_limit(self, rooms: RoomSettings) -> int | None:
        return MAX_CONTENT  # data is at most 2,048 bytes, the identity included; content is ASCII

    # -- the run's owner ---------------------------------------------------------------------------------

    def emulator_args(self, users: int) -> list[str]:
        return ["--throttle"]  # the control plane's real quota: 10 requests/s, burst 20, per operation

    def _client(self, target: Target):
        from .provision import meetings_client
        from .tokens import provisioning_config

        return meetings_client(target.region, target.control_endpoint or None, config=provisioning_config())

    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        from botocore.exceptions import BotoCoreError, ClientError

        from .provision import create_meeting

        client = self._client(target)
        where = target.control_endpoint or f"chime-sdk-meetings in {target.region}"
        try:
            if target.rooms:
                signaling = {m: client.get_meeting(MeetingId=m)["Meeting"]["MediaPlacement"]["SignalingUrl"]
                             for m in target.rooms}
            else:
                prefix = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:40]
                made = [create_meeting(client, [], media_region=target.region,
                                       external_meeting_id=f"{prefix}-{i}-{uuid.uuid4().hex[:8]}",
                                       max_attendees=rooms.settings.get("max_attendees", MAX_ATTENDEES))
                        for i in range(rooms.count)]
                signaling = {m.meeting_id: m.signaling_url for m in made}
        except (BotoCoreError, ClientError) as exc:
            raise ServiceError(f"cannot make or find meetings at {where}: {exc}") from None
        limits, source = self._limits(target)
        defaults = {key.name: key.default for key in self.room_keys if key.name != "count"}
        settings = {**target.settings, **defaults, **rooms.settings, "signaling_urls": signaling,
                    "limits": limits, "limits_source": source}
        endpoint = target.endpoint or next(iter(signaling.values())).rsplit("/", 1)[0]
        return Target(**{**target.to_dict(), "endpoint": endpoint, "rooms": tuple(signaling), "settings": settings})

    def _limits(self, target: Target) -> tuple[dict, str]:
        """The limits and replay window in force: an emulator says which (its options may time-scale
        them); for the real service, the published ones."""
        if not target.emulated:
            return {**verdicts.SPEC_LIMITS, "replay": list(SPEC_REPLAY)}, "spec"
        url = f"{target.control_endpoint.rstrip('/')}/_emulator/chime/settings"
        try:
            with urllib.request.urlopen(url, timeout=10, context=http_context(url)) as response:
                said = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise ServiceError(f"the emulator at {target.control_endpoint} does not say its limits: {exc}") from None
        return ({"soft_limit": said["soft_limit"], "hard_limit": said["hard_limit"], "api_limit": said["api_limit"],
                 "replay": [said["replay_seconds"], said["replay_messages"]]}, "emulator")

    def limit_words(self, target: Target) -> str | None:
        limits = {**verdicts.SPEC_LIMITS, **((target.settings or {}).get("limits") or {})}
        (soft, soft_burst), (hard, hard_burst) = limits["soft_limit"], limits["hard_limit"]
        return (f"per sender: {soft:g}/s, burst {soft_burst:g} (then throttled); {hard:g}/s, burst "
                f"{hard_burst:g} (then hung up)")

    def replay_window(self, target: Target) -> tuple[int, int] | None:
        settings = target.settings
        lifetime_ms = settings.get("lifetime_ms", 0)
        if not lifetime_ms:
            return None
        seconds, messages = (settings.get("limits") or {}).get("replay") or SPEC_REPLAY
        window_ns = min(int(lifetime_ms) * 1_000_000, int(seconds * 1e9))
        return (window_ns, int(messages)) if window_ns > 0 and messages > 0 else None

    def verdicts(self, results: dict, scenario) -> dict:
        senders = sum(p.users for p in scenario.populations if scenario.sends(p))
        return verdicts.derive(results, senders)

    # -- every process -----------------------------------------------------------------------------------

    def token_provider(self, target: Target):
        from .tokens import AttendeeTokens

        return AttendeeTokens(target.region, target.control_endpoint or None)

    # A Chime app's join handler answers with the Meeting and the Attendee: the join token, and the
    # meeting's SignalingUrl (else the one provisioning recorded for the user's meeting).
    token_endpoint_fields = {"signaling_url": ("the meeting's MediaPlacement.SignalingUrl",
                                               "Meeting.MediaPlacement.SignalingUrl")}

    def connect_params(self, target: Target, token: str, user: UserSpec) -> ConnectParams:
        base = answer_field(token, "signaling_url") or target.settings.get("signaling_urls", {}).get(user.room)
        if not base:
            raise ServiceError(f"no SignalingUrl for meeting {user.room} (the target was not provisioned)")
        return ConnectParams(codec.signaling_url(base), tuple(codec.subprotocols(token)))

    def client_protocol(self, user: UserSpec) -> ChimeProtocol:
        return protocol_for(user)

    def sdk_policy(self):
        from .policy import ChimeSdkPolicy

        return ChimeSdkPolicy()

    def kick(self, provider, target: Target, user: UserSpec) -> None:
        """DeleteAttendee through the control plane: the attendee hears AUDIO_STATUS 411 and is out
        (its join token dies with it) — the same call against AWS and the emulator."""
        attendee = provider.attendee_of(user) if hasattr(provider, "attendee_of") else None
        if attendee is None:
            raise ServiceError("kicking needs the attendee chatload made for the user (not a token from a file)")
        client = getattr(provider, "client", None) or self._client(target)
        client.delete_attendee(MeetingId=user.room, AttendeeId=attendee.attendee_id)
        provider.forget(user)
