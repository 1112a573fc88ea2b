"""Amazon IVS Real-Time stages behind the service contract: joins, rosters, tokens, kicks.

Spec: `shared/spec/ivs-realtime.md`. A stage is the harness's room. A participant joins over the
events WebSocket with its participant token as the only subprotocol, at the `events_url` and
`topic` its token names (as the web broadcast SDK does); the control plane is boto3's
`ivs-realtime` client against AWS or the emulator's `endpoint_url`. Media (WHIP/WebRTC) is out of
scope: nothing here publishes or subscribes to audio or video.

A scenario's `[target]` takes `endpoint`, `control_endpoint`, `region`, `stage_arns`,
`token_source` (`create-participant-token` or `self-signed`), `private_key` and `public_key_arn`;
`[stages]` takes `count`. The embedded emulator always enforces the service's control-plane quotas
(`--throttle`: CreateParticipantToken 50 TPS, other stage operations 5), so a scenario that passes
here asks no more of AWS than AWS allows.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass

from ...files.toml_tables import Key
from ...net.reconnect import ReconnectPolicy
from ...net.transport import ConnectParams
from ..base import (
    ChatService,
    PopulationKind,
    RoomSettings,
    ServiceError,
    Target,
    UserSpec,
    check_emulator_kinds,
)
from ..ivschat.service import IvsChatService
from . import codec
from .boto import control_client
from .client import JOIN, PING, ROSTER, StageProtocol
from .tokens import PUBLISH, TokenError, unverified_claims
from .verdicts import VERDICT_METRICS, token_rate

STAGE_ARN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:stage/[a-zA-Z0-9-]+")
PUBLIC_KEY_ARN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:public-key/[a-zA-Z0-9-]+")
USERS = "harness.services.ivsrealtime.users"
CREATE_PARTICIPANT_TOKEN, SELF_SIGNED = "create-participant-token", "self-signed"
KICK_REASON = "kicked by chatload scenario"
_IVS_CHAT_KEYS = {key.name: key for key in IvsChatService.target_keys}


@dataclass
class StageSocketBackoff(ReconnectPolicy):
    """How the web broadcast SDK's events socket (StageSocket, 1.41.0) comes back: a failed join is
    retried after 1 s · 2^(n−1), at most 32 s, up to 6 retries; a dropped socket is rejoined at once
    (inferred: the stage layer rejoins, the backoff applies to failed attempts); a fatal JOIN_ERROR
    is never retried (the protocol's `Refused`). The harness's own token fetches follow the same
    backoff after a 429."""

    base_s: float = 1.0
    cap_s: float = 32.0
    max_retries: int = 6
    name = "sdk"

    def after_failure(self, attempt: int) -> float | None:
        if attempt > self.max_retries:
            return None
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1))

    def after_drop(self) -> float:
        return 0.0


class IvsRealtimeService(ChatService):
    name = "ivsrealtime"
    title = "Amazon IVS Real-Time"
    room_noun = "stage"
    rooms_table = "stages"
    real_kind = "ivsrealtime"
    populations = {
        "participant": PopulationKind(f"{USERS}:Participant",
                                      description="joins with a SUBSCRIBE token: sees the roster, pings"),
        "publisher": PopulationKind(f"{USERS}:Publisher",
                                    description="joins with a PUBLISH token and takes one of the stage's 12 publisher "
                                                "slots (emulator; without media, AWS counts no publisher)"),
    }
    histograms = {
        JOIN: "join latency (events socket open → the first STAGE_STATE)",
        PING: "PING → PONG round trip on the events socket",
    }
    propagations = {
        ROSTER: "roster propagation (a participant's join attempt → each other participant's first STAGE_STATE "
                "listing it)",
    }
    verdict_metrics = VERDICT_METRICS

    def __init__(self) -> None:
        # sender id → the participant id of its latest token, for kicks (DisconnectParticipant takes it).
        # Written on the loop thread (connect_params), read in kick greenlets: single dict operations.
        self._participant_ids: dict[str, str] = {}
        self._publish_urls: dict[str, str] = {}  # sender id → where it publishes (emulator publishers)

    # -- scenario ----------------------------------------------------------------------------------------

    target_keys = (
        Key("endpoint", str, "", "a running emulator's events endpoint; real stages need none (the events URL is "
            "in each token, where the SDK reads it)", '"ws://127.0.0.1:8765"'),
        _IVS_CHAT_KEYS["control_endpoint"],  # the same boto3 endpoint_url, the same region
        _IVS_CHAT_KEYS["region"],
        Key("stage_arns", list, [], "existing stages (required for real stages, which chatload never creates)",
            '["arn:aws:ivs:us-east-1:123456789012:stage/AbCdEfGhIjKl"]'),
        Key("token_source", str, CREATE_PARTICIPANT_TOKEN, "where participant tokens come from: one "
            "CreateParticipantToken call per join (50 TPS quota), or signed here with your ES384 key",
            f'"{SELF_SIGNED}"', choices=(CREATE_PARTICIPANT_TOKEN, SELF_SIGNED)),
        Key("private_key", str, "", "self-signed: the ES384 private key (PEM) as a file path or env:NAME, read "
            "where tokens are signed and never copied; on an emulator the default is a key made for the run "
            "and imported with ImportPublicKey", '"env:IVS_STAGE_PRIVATE_KEY"'),
        Key("public_key_arn", str, "", "self-signed: the imported public key's ARN, sent as the token header's "
            "kid (inferred: whether IVS needs it is not published)",
            '"arn:aws:ivs:us-east-1:123456789012:public-key/AbCdEfGhIjKl"'),
    )
    room_keys = (
        Key("count", int, 1, "stages to create on the emulator; users are spread over them", "2",
            minimum=1, maximum=100),
    )

    def read_target(self, table, kind: str) -> Target:
        values = {key.name: table.read(key) for key in self.target_keys}
        settings = {"token_source": values["token_source"]}
        for key in ("private_key", "public_key_arn"):
            if values[key]:
                settings[key] = values[key]
        target = Target(service=self.name, kind=kind, endpoint=values["endpoint"],
                        control_endpoint=values["control_endpoint"], region=values["region"],
                        rooms=tuple(values["stage_arns"]), settings=settings)
        check_emulator_kinds(table, target)
        if kind == self.real_kind:
            if target.endpoint and not target.endpoint.startswith("wss://"):
                table.fail("endpoint", "real stages' events endpoint is wss:// only")
            if not target.rooms:
                table.fail("stage_arns", "a real stage's ARN is required (stages are not created)")
            if target.control_endpoint:
                table.fail("control_endpoint", "not used against AWS (boto3 finds the service)")
            if values["token_source"] == SELF_SIGNED and not values["private_key"]:
                table.fail("private_key", "self-signed tokens for real stages need your key (a file path or env:NAME)")
        if values["private_key"]:
            from .token_sources import check_key_reference

            if values["token_source"] != SELF_SIGNED:
                table.fail("private_key", f"only used with token_source = \"{SELF_SIGNED}\"")
            elif (problem := check_key_reference(values["private_key"])) is not None:
                table.fail("private_key", problem)
        if values["public_key_arn"] and not PUBLIC_KEY_ARN.fullmatch(values["public_key_arn"]):
            table.fail("public_key_arn", f"not a public key ARN: {values['public_key_arn']!r}")
        for index, arn in enumerate(target.rooms):
            if not isinstance(arn, str) or not STAGE_ARN.fullmatch(arn):
                table.fail(f"stage_arns[{index}]", f"not a stage ARN: {arn!r}")
        return target

    def read_rooms(self, table) -> RoomSettings:
        return RoomSettings(count=table.read(self.room_keys[0]))

    # -- the run's owner ---------------------------------------------------------------------------------

    def start_emulator(self, *args: str):
        from .emulator import EmulatorProcess

        # The service's control-plane quotas, always: a join storm must not pass here and fail on AWS.
        return EmulatorProcess("--throttle", *args).start()

    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        if not target.control_endpoint:
            if not target.rooms:
                raise ServiceError("stage ARNs are required against AWS (stages are not created for you)")
            return target
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:100]  # stage names allow [a-zA-Z0-9-_]
        client = control_client(target.region, target.control_endpoint)
        settings = dict(target.settings)
        try:
            arns = list(target.rooms) or [client.create_stage(name=f"{prefix}-{i}")["stage"]["arn"]
                                          for i in range(rooms.count)]
            if settings.get("token_source") == SELF_SIGNED and not settings.get("private_key"):
                settings["private_key"] = _key_for_the_run(client, prefix)
        except (BotoCoreError, ClientError) as exc:
            raise ServiceError(f"the IVS Real-Time control plane at {target.control_endpoint} failed: {exc}") from None
        return Target(**{**target.to_dict(), "rooms": tuple(arns), "settings": settings})

    # -- after the run -----------------------------------------------------------------------------------

    def verdicts(self, results: dict, scenario) -> dict:
        return {"token_rate": token_rate(results, scenario.target.settings.get("token_source",
                                                                               CREATE_PARTICIPANT_TOKEN))}

    # -- every process -----------------------------------------------------------------------------------

    def token_provider(self, target: Target):
        from .token_sources import CreateParticipantTokens, SelfSignedTokens

        if target.settings.get("token_source") == SELF_SIGNED:
            return SelfSignedTokens(target.settings.get("private_key", ""), target.region,
                                    target.control_endpoint or None, key_id=target.settings.get("public_key_arn"))
        return CreateParticipantTokens(target.region, target.control_endpoint or None)

    def connect_params(self, target: Target, token: str, user: UserSpec) -> ConnectParams:
        """The SDK's join: `events_url?error_over_ws=1&topic=<topic>/publishers&traceid=<id>` from the
        token's own claims, the raw token as the only subprotocol. On an emulator a publisher's
        protocol then publishes to the token's `whip_url` + `/publish/<participant id>` (its stub SDP
        would be refused by AWS, where publishers hold the capability without publishing)."""
        try:
            claims = unverified_claims(token)
        except TokenError:  # an opaque token (a file or a command's): the target says where
            claims = {}
        events_url = claims.get("events_url") if isinstance(claims.get("events_url"), str) else ""
        topic = claims.get("topic") if isinstance(claims.get("topic"), str) else ""
        participant_id = claims.get("jti")
        if isinstance(participant_id, str):
            self._participant_ids[user.sender_id] = participant_id
            whip_url = claims.get("whip_url")
            if target.emulated and PUBLISH in user.capabilities and isinstance(whip_url, str):
                self._publish_urls[user.sender_id] = f"{whip_url.rstrip('/')}/publish/{participant_id}"
        query = codec.join_query(topic or user.room.rsplit("/", 1)[-1], secrets.token_hex(8))
        return ConnectParams(f"{events_url or target.endpoint}?{query}", (token,))

    def client_protocol(self, user: UserSpec) -> StageProtocol:
        return StageProtocol(user, self._publish_urls)

    def sdk_policy(self) -> StageSocketBackoff:
        return StageSocketBackoff()

    def kick(self, provider, target: Target, user: UserSpec) -> None:
        """DisconnectParticipant through the control plane — the same call against AWS and the emulator."""
        participant_id = self._participant_ids.get(user.sender_id)
        if participant_id is None:
            raise ServiceError("no participant id is known for this user (its token was never used)")
        control_client(target.region, target.control_endpoint).disconnect_participant(
            stageArn=user.room, participantId=participant_id, reason=KICK_REASON)


def _key_for_the_run(client, name: str) -> str:
    """A fresh ES384 key pair for self-signed tokens on an emulator: the public key imported with
    ImportPublicKey, the private key in a file only this user can read (removed when this process
    exits). Returns the file's path: what the target names instead of holding the key."""
    from cryptography.hazmat.primitives import serialization

    from .tokens import generate_key, public_key_pem

    key = generate_key()
    client.import_public_key(publicKeyMaterial=public_key_pem(key), name=f"{name}-run-key"[:128])
    fd, path = tempfile.mkstemp(prefix="chatload-ivsrealtime-", suffix=".pem")  # mode 0600
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
