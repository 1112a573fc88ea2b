"""Chime's own token source: each process creates its users' attendees and keeps their join tokens.

Join tokens are secrets, so they never leave the process that uses them: not in the `Target` (JSON
that travels to workers and into reports), options, logs or reports. Each process's provider
creates the attendees of the users it runs, with BatchCreateAttendee (up to 100 a call, the API's
maximum), and hands a user the same attendee's token on every reconnect: the service replays to
an attendee who comes back what it missed, and a new attendee would be a new member.

Users ask one at a time (a greenlet each); the provider gathers them into batches: one call per
`pace_s` (0.2 s: five calls a second per process, under the API's 10 per second with room for
another process), each for the users of one meeting waiting then. botocore's standard retries
absorb a ThrottlingException that still happens; attendees a batch could not create (its
`Errors`, e.g. LimitExceeded past 250 in a meeting) fail that user's fetch with the error code.
"""

from __future__ import annotations

import gevent
import gevent.event

from ..tokens import TokenFetchFailed, TokenProvider
from ..user_spec import UserSpec
from .provision import BATCH_SIZE, ProvisionedAttendee, create_attendee_batch, meetings_client


def provisioning_config(attempts: int = 8):
    """boto3 settings for provisioning: standard retries (429 absorbed), bounded waits."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": attempts}, max_pool_connections=10,
                  connect_timeout=5, read_timeout=15)


class AttendeeTokens(TokenProvider):
    """Join tokens of attendees this process creates (one per user, kept for its reconnects)."""

    name = "attendees"

    def __init__(self, region: str, endpoint_url: str | None = None, *, pace_s: float = 0.2, client=None) -> None:
        self.client = client or meetings_client(region, endpoint_url, config=provisioning_config())
        self.pace_s = pace_s
        self._attendees: dict[tuple[str, str], ProvisionedAttendee] = {}  # (meeting, user id) → attendee
        self._waiting: dict[str, dict[str, list[gevent.event.AsyncResult]]] = {}  # meeting → user id → waiters
        self._batcher: gevent.Greenlet | None = None
        self.calls = 0

    def fetch(self, request: UserSpec) -> str:
        known = self._attendees.get((request.room, request.user_id))
        if known is not None:
            return known.join_token
        waiter = gevent.event.AsyncResult()
        self._waiting.setdefault(request.room, {}).setdefault(request.user_id, []).append(waiter)
        if self._batcher is None or self._batcher.dead:
            self._batcher = gevent.spawn(self._create_waiting)
        return waiter.get()

    def attendee_of(self, user: UserSpec) -> ProvisionedAttendee | None:
        """The attendee this provider created for `user`, if any (a kick deletes it)."""
        return self._attendees.get((user.room, user.user_id))

    def forget(self, user: UserSpec) -> None:
        self._attendees.pop((user.room, user.user_id), None)

    def _create_waiting(self) -> None:
        while self._waiting:
            gevent.sleep(self.pace_s)  # gather the users arriving meanwhile: fewer, fuller batches
            meeting, users = next(iter(self._waiting.items()))
            batch = list(users)[:BATCH_SIZE]
            waiters = {user: users.pop(user) for user in batch}
            if not users:
                del self._waiting[meeting]
            try:
                self._create(meeting, waiters)
            except Exception as exc:  # a bug here must fail the fetches, not leave them waiting forever
                failure = TokenFetchFailed(type(exc).__name__, "attendees could not be created")
                for waiter in (w for ws in waiters.values() for w in ws if not w.ready()):
                    waiter.set_exception(failure)

    def _create(self, meeting: str, waiters: dict[str, list[gevent.event.AsyncResult]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.calls += 1
        try:
            created, errors = create_attendee_batch(self.client, meeting, list(waiters))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            failure = TokenFetchFailed(error.get("Code", "ClientError"), error.get("Message", "")[:200])
            created, errors = {}, {user: failure for user in waiters}
        except BotoCoreError as exc:
            failure = TokenFetchFailed(type(exc).__name__, str(exc)[:200])
            created, errors = {}, {user: failure for user in waiters}
        for user, user_waiters in waiters.items():
            attendee = created.get(user)
            if attendee is not None:
                self._attendees[(meeting, user)] = attendee
                for waiter in user_waiters:
                    waiter.set(attendee.join_token)
                continue
            error = errors.get(user) or ("NotCreated", "BatchCreateAttendee returned neither the attendee nor an error")
            failure = error if isinstance(error, TokenFetchFailed) else TokenFetchFailed(error[0], error[1][:200])
            for waiter in user_waiters:
                waiter.set_exception(failure)
