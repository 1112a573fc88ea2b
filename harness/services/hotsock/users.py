"""Locust users for Hotsock: subscribers, chatters, server publishers, presence members, and users
whose tokens forbid what they try.

    from harness.services.hotsock.users import ChannelChatter, Publisher, Subscriber

Every connected user subscribes to its channel (the user's room) as soon as `hotsock.connected`
arrives, and again on every new connection. Its token is minted for it (`token_provider`) from its
`capabilities`, in claim words (`client.SUBSCRIBE`, `PUBLISH`, `NO_SUBSCRIBE`, `NO_PUBLISH`).
"""

from __future__ import annotations

import random

import gevent
from locust import constant, task

from ...locust.state import runtime_for
from ...locust.users import ChatUser, ListenerUser, PublisherUser, SenderUser
from ...session.chat_session import RequestFailed
from .client import ALIAS_ATTRIBUTE, HEARTBEAT_ATTRIBUTE, NO_PUBLISH, NO_SUBSCRIBE, PUBLISH, SUBSCRIBE

__all__ = ["ChannelChatter", "Intruder", "MutedChatter", "PresenceMember", "Publisher", "Subscriber"]


class HotsockUser(ChatUser):
    """What every Hotsock connection shares: the target's heartbeatTimeout and channel alias, if any,
    go into the user's token attributes (the token provider puts them in the token; the protocol
    heartbeats, and names its channel by the alias)."""

    abstract = True
    service = "hotsock"

    def on_start(self) -> None:
        settings = runtime_for(self.environment).target.settings
        for setting, attribute in (("heartbeat_timeout", HEARTBEAT_ATTRIBUTE), ("channel_alias", ALIAS_ATTRIBUTE)):
            if settings.get(setting):
                self.token_attributes = {**(self.token_attributes or {}), attribute: str(settings[setting])}
        super().on_start()


class Subscriber(HotsockUser, ListenerUser):
    """Subscribes to its channel and listens (on a presence channel, a member of its roster)."""

    abstract = True
    capabilities = (SUBSCRIBE,)
    user_id_prefix = "subscriber"


class ChannelChatter(HotsockUser, SenderUser):
    """Subscribes and sends client messages on an open-loop schedule; with `echo` its own copy acks."""

    abstract = True
    capabilities = (SUBSCRIBE, PUBLISH)
    user_id_prefix = "chatter"


class Publisher(PublisherUser):
    """Publishes through the installation's HTTP publish API, timed from each POST's intended time."""

    abstract = True
    service = "hotsock"


class PresenceMember(HotsockUser):
    """Joins and leaves its channel over and over: stays `stay_s`, is away `away_s` (uniform ranges)."""

    abstract = True
    capabilities = (SUBSCRIBE,)
    user_id_prefix = "member"
    wait_time = constant(0)
    stay_s = (2.0, 4.0)
    away_s = (0.5, 1.0)

    @task
    def come_and_go(self) -> None:
        gevent.sleep(random.uniform(*self.stay_s))
        self._ask("unsubscribe")
        gevent.sleep(random.uniform(*self.away_s))
        self._ask("subscribe")

    def _ask(self, name: str) -> None:
        try:
            self.client.request(name, wait=True, timeout=10)
        except RequestFailed:
            pass  # counted where it happened (errors.<code>, timeouts, not_sent)


class Intruder(HotsockUser, SenderUser):
    """Its token forbids subscribing and publishing on its channel (explicit falses, which always win);
    it subscribes at every connect and sends on a schedule all the same."""

    abstract = True
    capabilities = (NO_SUBSCRIBE, NO_PUBLISH)
    user_id_prefix = "intruder"


class MutedChatter(HotsockUser, SenderUser):
    """Subscribed, but its token forbids publishing: every send must come back refused."""

    abstract = True
    capabilities = (SUBSCRIBE, NO_PUBLISH)
    user_id_prefix = "muted"
