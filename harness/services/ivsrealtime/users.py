"""Locust users for Amazon IVS Real-Time stages: participants (subscribers) and publishers.

    from harness.services.ivsrealtime.users import Participant, Publisher

One user is one participant: it gets a token (CreateParticipantToken or self-signed), joins the
stage over the events socket, follows the roster, and sends the SDK's PING 15 s after it starts and
every 15 s after that (web broadcast SDK 1.41.0 sends its first PING 15 s after connecting, not on
joining), timed to its PONG (`ping` in Locust's table and the `ping` histogram). The schedule runs
per user, not per connection: after a reconnect the SDK starts its 15 s again, chatload keeps its
beat. Nobody sends chat messages on a stage.
"""

from __future__ import annotations

import gevent
from locust import constant, task

from ...locust.users import ChatUser
from .client import PING
from .tokens import PUBLISH, SUBSCRIBE

__all__ = ["Participant", "Publisher"]

PING_INTERVAL_S = 15.0  # the web broadcast SDK's pingIntervalMs


class StageUser(ChatUser):
    abstract = True
    service = "ivsrealtime"
    wait_time = constant(0)

    @task
    def ping(self) -> None:
        """The SDK's keepalive, timed: 15 s, then PING, which its PONG answers."""
        gevent.sleep(PING_INTERVAL_S)  # the wait comes first: the SDK's first PING is 15 s in
        if self.client.connected:
            self.client.request(PING)


class Participant(StageUser):
    """Joins with a SUBSCRIBE-only token: sees everyone, takes no publisher slot."""

    abstract = True
    capabilities = (SUBSCRIBE,)
    user_id_prefix = "participant"


class Publisher(StageUser):
    """Joins with a PUBLISH token and, on the emulator, publishes at once as the SDK does (a stub SDP:
    media is out of scope), taking one of the stage's 12 publisher slots or meeting STAGE_AT_CAPACITY;
    against AWS it holds the capability without publishing."""

    abstract = True
    capabilities = (PUBLISH, SUBSCRIBE)
    user_id_prefix = "publisher"


def _load_botocore_models() -> None:
    """A process's first boto3 client loads botocore's models (~0.7 s here); later ones take ~20 ms.
    Made when Locust imports these users, before the run, it no longer stalls the first user's
    runtime — and every user spawned behind it — at the start of a join storm."""
    from .boto import ivsrealtime_client

    ivsrealtime_client("us-east-1", "http://127.0.0.1:9")  # no request is made


_load_botocore_models()
