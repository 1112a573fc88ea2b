"""A stand-in for the application's own token endpoint, run as a child process by the tests.

    python -m tests.token_app --service ivschat --control http://127.0.0.1:PORT [--secret-file F]

It answers `POST /token` (JSON body with `user_id`, `room`, `capabilities`) the way a real app's
backend would, getting each token from the emulator's control plane through boto3 (IVS Chat:
CreateChatToken; Chime: CreateAttendee + GetMeeting; IVS Real-Time: CreateParticipantToken) or,
for Hotsock, signing it with the installation's key as a Hotsock backend does. Its answers have
the shape of those APIs' answers, so the tests read them with the paths a user would write.

How it misbehaves is chosen by the user id's prefix, per user and deterministically (users fetch
concurrently): `s401-…` always 401, `s429n2-…` 429 twice then a token, `slow-…` a token after
0.3 s, `hang-…` no answer at all, `badjson-…` 200 with text, `nopath-…` 200 without the token.
Every answer carries a `sessionId` (user#n); with `--auth-from-env NAME` a request without that
variable's value as its Authorization header is answered 401.
`GET /_calls` returns every call: (time, user id, status, purpose), and the `{session}` each carried. With `"purpose": "subscribe"`
(Hotsock's subscribe tokens) it signs a subscribe token for `channel` bound to `connection_id`.
Prints one JSON line, `{"url": …}`, when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections import defaultdict

from aiohttp import web


def issuer(service: str, control: str, secret_file: str | None):
    """A function (user_id, room, capabilities) → the answer's JSON, made against the emulator."""
    if service == "hotsock":
        from harness.services.base import UserSpec
        from harness.services.hotsock.token_provider import user_claims
        from harness.services.hotsock.tokens import mint, subscribe_claims
        from harness.services.tokens import read_secret

        key = read_secret(secret_file)

        def sign(user, room, caps, body):
            if body.get("purpose") == "subscribe":  # subscribeTokenFn({channel, connectionId})
                claims = subscribe_claims({body["channel"]: {"subscribe": True}}, uid=user,
                                          connection_id=body["connection_id"])
            else:
                claims = user_claims(UserSpec("x", user, room, tuple(caps)))
            return {"token": mint(claims, key, None, "HS256")}
        return sign
    if service == "ivschat":
        from harness.services.ivschat.boto import ivschat_client

        client = ivschat_client("us-east-1", control)

        def chat(user, room, caps, body):
            answer = client.create_chat_token(roomIdentifier=room, userId=user, capabilities=caps)
            return {"token": answer["token"], "tokenExpirationTime": answer["tokenExpirationTime"].isoformat()}
        return chat
    if service == "chime":
        from harness.services.chime.provision import meetings_client

        client = meetings_client("us-east-1", control)

        def join(user, room, caps, body):
            meeting = client.get_meeting(MeetingId=room)["Meeting"]
            attendee = client.create_attendee(MeetingId=room, ExternalUserId=user)["Attendee"]
            return {"Meeting": {"MeetingId": room, "MediaPlacement": meeting["MediaPlacement"]},
                    "Attendee": {"AttendeeId": attendee["AttendeeId"], "JoinToken": attendee["JoinToken"]}}
        return join
    if service == "ivsrealtime":
        from harness.services.ivsrealtime.boto import ivsrealtime_client

        client = ivsrealtime_client("us-east-1", control)

        def participant(user, room, caps, body):
            answer = client.create_participant_token(stageArn=room, userId=user, capabilities=caps)
            token = answer["participantToken"]
            return {"participantToken": {"token": token["token"], "participantId": token["participantId"]}}
        return participant
    raise SystemExit(f"token_app: no service {service!r}")


def app(make_answer, auth: str | None = None) -> web.Application:
    calls: list[tuple[float, str, int, str]] = []
    sessions: list[tuple[str, str]] = []  # (user, the {session} its request carried)
    handled_ms: list[float] = []  # how long the app took over each token it made (its own share)
    tried: dict[str, int] = defaultdict(int)

    async def token(request: web.Request) -> web.Response:
        received = time.perf_counter()
        body = await request.json()
        user, room = body["user_id"], body["room"]
        caps = [c for c in body.get("capabilities", "").split(",") if c]
        tried[user] += 1
        sessions.append((user, body.get("session", "")))
        status, answer = 200, None
        if auth is not None and request.headers.get("Authorization") != auth:
            status = 401
        elif match := re.match(r"s(\d{3})(?:n(\d+))?-", user):
            code, times = int(match.group(1)), match.group(2)
            if times is None or tried[user] <= int(times):
                status = code
        elif user.startswith("slow-"):
            await asyncio.sleep(0.3)
        elif user.startswith("hang-"):
            calls.append((time.time(), user, 0, body.get("purpose", "")))
            await asyncio.sleep(3600)
        elif user.startswith("badjson-"):
            answer = web.Response(text="<html>gateway error</html>", content_type="text/html")
        elif user.startswith("nopath-"):
            answer = web.json_response({"other": "x"})
        calls.append((time.time(), user, status, body.get("purpose", "")))
        if answer is not None:
            return answer
        if status != 200:
            return web.json_response({"message": "no"}, status=status)
        made = await asyncio.get_running_loop().run_in_executor(None, make_answer, user, room, caps, body)
        handled_ms.append(round((time.perf_counter() - received) * 1000, 2))
        return web.json_response({**made, "sessionId": f"{user}#{tried[user]}"})

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"calls": calls, "sessions": sessions, "handled_ms": handled_ms})

    application = web.Application()
    application.router.add_post("/token", token)
    application.router.add_get("/_calls", listing)
    return application


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--secret-file")
    parser.add_argument("--auth-from-env", help="answer 401 unless Authorization is this variable's value")
    args = parser.parse_args()
    auth = os.environ[args.auth_from_env] if args.auth_from_env else None
    runner = web.AppRunner(app(issuer(args.service, args.control, args.secret_file), auth))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}/token"}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
