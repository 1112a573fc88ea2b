"""Locust users for Amazon IVS Chat: viewers, chatters and moderators.

    from harness.services.ivschat.users import ChatterUser, ModeratorUser, ViewerUser
"""

from __future__ import annotations

import random

from locust import between, task

from ...locust.users import ChatUser, ListenerUser, SenderUser, open_loop
from .client import IvsChatProtocol
from .codec import DELETE_MESSAGE, DISCONNECT_USER, SEND_MESSAGE

__all__ = ["ChatterUser", "ModeratorUser", "ViewerUser", "open_loop"]


class ViewerUser(ListenerUser):
    """Only listens: the bulk of a real room."""

    abstract = True
    service = "ivschat"
    user_id_prefix = "viewer"


class ChatterUser(SenderUser):
    """Sends messages on an open-loop schedule (`--chat-message-rate` per user per second)."""

    abstract = True
    service = "ivschat"
    capabilities = (SEND_MESSAGE,)
    user_id_prefix = "chatter"


class ModeratorUser(ChatUser):
    """Can send, delete and kick; by default it deletes one recent message now and then."""

    abstract = True
    service = "ivschat"
    capabilities = (SEND_MESSAGE, DELETE_MESSAGE, DISCONNECT_USER)
    user_id_prefix = "moderator"
    wait_time = between(5, 10)

    def recent_message_ids(self) -> list[str]:
        """Ids of the last messages this connection received (what a moderator would delete)."""
        return self.client.query(IvsChatProtocol.recent_message_ids) or []

    def delete_message(self, message_id: str, reason: str | None = None, **kwargs):
        return self.client.request("delete", message_id, reason, **kwargs)

    def disconnect_user(self, user_id: str, reason: str | None = None, **kwargs):
        return self.client.request("disconnect", user_id, reason, **kwargs)

    @task
    def moderate(self) -> None:
        ids = self.recent_message_ids()
        if ids:
            self.delete_message(random.choice(ids), "moderated by chatload")
