"""Locust users for Amazon Chime SDK meetings: attendees, late attendees, data senders, a ramping
sender, and a control-plane churn that has no connection at all.

    from harness.services.chime.users import Attendee, DataSender

Meeting settings (topic, lifetime, ramp, churn) come from `Target.settings`, which the scenario's
`[meetings]` table fills when the meetings are provisioned.
"""

from __future__ import annotations

import time
import uuid

import gevent
from locust import task

from ...locust.state import runtime_for
from ...locust.users import ChatUser, ListenerUser, SenderUser, open_loop
from ...session.chat_session import SessionState
from .client import DEFAULT_TOPIC
from .schedule import RampSchedule

__all__ = ["ApiChurn", "Attendee", "DataSender", "LateAttendee", "RampSchedule", "RampSender"]


def meeting_settings(environment) -> dict:
    return dict(runtime_for(environment).target.settings)


class Attendee(ListenerUser):
    """Joins its meeting and listens on the topic (the bulk of a meeting)."""

    abstract = True
    service = "chime"
    user_id_prefix = "attendee"

    def on_start(self) -> None:
        settings = meeting_settings(self.environment)
        self.token_attributes = {"subscribe": settings.get("topic", DEFAULT_TOPIC)}
        super().on_start()


class LateAttendee(Attendee):
    """An attendee that joins `late_join_after` after it starts: the meeting replays to it what it keeps."""

    abstract = True
    user_id_prefix = "late"

    def on_start(self) -> None:
        gevent.sleep(float(meeting_settings(self.environment).get("late_join_after", 10.0)))
        super().on_start()


class DataSender(SenderUser):
    """Sends data messages on the topic, open-loop (`message_rate` each) or in bursts; subscribes to
    nothing, so it is not a receiver (the service does not send an attendee its own messages)."""

    abstract = True
    service = "chime"
    user_id_prefix = "sender"

    def on_start(self) -> None:
        settings = meeting_settings(self.environment)
        self.token_attributes = {"topic": settings.get("topic", DEFAULT_TOPIC),
                                 "lifetime_ms": str(settings.get("lifetime_ms", 0))}
        super().on_start()

    @task
    def chat(self) -> None:
        if self.client.handle.state is SessionState.STOPPED:  # hung up for good (e.g. 4429): nothing more to offer
            return
        super().chat()


class RampSender(DataSender):
    """Sends at a rate rising from `message_rate` to `[meetings] ramp_to_rate` over `ramp_over`: the
    throttle (100/s, burst 200) and the hang-up (500/s, burst 10,000) begin where the load passes them."""

    abstract = True
    user_id_prefix = "ramp"

    def wait_time(self) -> float:
        schedule = self.__dict__.get("_open_loop")
        if schedule is None:
            settings = meeting_settings(self.environment)
            start = self.message_rate or self.environment.parsed_options.chat_message_rate
            end = float(settings.get("ramp_to_rate") or 0) or start
            schedule = self.__dict__["_open_loop"] = RampSchedule(start, end, float(settings.get("ramp_over", 10.0)))
        return schedule.wait_after_task()


GONE = "NotFoundException"


class ApiChurn(ChatUser):
    """The control plane under churn, near its quota: each cycle creates a meeting and
    `churn_attendees` attendees (one BatchCreateAttendee), deletes one attendee, then the meeting.
    Every call is timed into its `api_*` histogram; 429s and other failures are counted by error
    code. No retries: a throttled call is a fact to report. Deletes that failed are tried again
    first in the next cycle (the account's active meetings are capped)."""

    abstract = True
    service = "chime"
    user_id_prefix = "churn"

    _clients: dict = {}  # one boto3 client per process and target: making one costs the hub ~0.1 s

    def on_start(self) -> None:
        runtime = runtime_for(self.environment)
        self.runtime = runtime
        settings = dict(runtime.target.settings)
        self.attendees = int(settings.get("churn_attendees", 10))
        self._wait = open_loop(float(settings.get("churn_rate", 1.0)))
        self.api = self._client(runtime.target.region, runtime.target.control_endpoint or None)
        self.undeleted: list[tuple[str, str | None]] = []  # (meeting, attendee or None)
        runtime.started_without_connection(type(self).__name__)

    @classmethod
    def _client(cls, region: str, endpoint: str | None):
        from botocore.config import Config

        from .provision import meetings_client

        key = (region, endpoint)
        if key not in cls._clients:
            cls._clients[key] = meetings_client(region, endpoint, config=Config(
                retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=15, max_pool_connections=50))
        return cls._clients[key]

    def wait_time(self) -> float:
        return self._wait(self)

    def call(self, name: str, fn, **params) -> tuple[dict | None, str | None]:
        """One timed API call: (its answer, None), or (None, the error code) when it failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self.runtime.publishing_stopped:
            # The run is draining toward its final counts (Locust stops users only after that): a call
            # made now would reach the service and never be counted.
            return None, "stopping"
        self.runtime.record_call_started(name)
        started = time.perf_counter_ns()
        try:
            answer, failure = fn(**params), None
        except ClientError as exc:
            answer, failure = None, exc.response.get("Error", {}).get("Code", "ClientError")
        except BotoCoreError as exc:
            answer, failure = None, type(exc).__name__
        self.runtime.record_call(name, (time.perf_counter_ns() - started) // 1000, failure)
        return answer, failure

    @task
    def churn(self) -> None:
        retry, self.undeleted = self.undeleted, []
        for meeting, attendee in retry:
            self._delete(meeting, attendee)
        meeting, _ = self.call("api_create_meeting", self.api.create_meeting, ClientRequestToken=uuid.uuid4().hex,
                               MediaRegion=self.runtime.target.region,
                               ExternalMeetingId=f"churn-{uuid.uuid4().hex[:12]}")
        if meeting is None:
            return
        meeting_id = meeting["Meeting"]["MeetingId"]
        made, _ = self.call("api_batch_create_attendee", self.api.batch_create_attendee, MeetingId=meeting_id,
                            Attendees=[{"ExternalUserId": f"churn-{i}-{uuid.uuid4().hex[:8]}"}
                                       for i in range(self.attendees)])
        attendees = (made or {}).get("Attendees") or []
        self._delete(meeting_id, attendees[0]["AttendeeId"] if attendees else None)

    def _delete(self, meeting_id: str, attendee_id: str | None) -> None:
        """Delete an attendee, then the meeting; what failed (but for NotFound: gone) is kept for later."""
        if attendee_id is not None:
            _, failure = self.call("api_delete_attendee", self.api.delete_attendee, MeetingId=meeting_id,
                                   AttendeeId=attendee_id)
            if failure not in (None, GONE):
                self.undeleted.append((meeting_id, attendee_id))
                return
        _, failure = self.call("api_delete_meeting", self.api.delete_meeting, MeetingId=meeting_id)
        if failure not in (None, GONE):
            self.undeleted.append((meeting_id, None))
