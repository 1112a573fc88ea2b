"""What a greenlet holds of a session: its fixed ids and the last state the loop posted."""

from __future__ import annotations

from dataclasses import dataclass

from ..services.base import UserSpec
from ..session.chat_session import SessionState


@dataclass(eq=False)
class SessionHandle:
    """Owned by the gevent hub's thread. The session itself is the loop's (`LoopSide.sessions`, by
    sender id): a greenlet reaches it only through the runtime's crossings, and learns its state
    from the loop's posts (`ChatRuntime.state_posted`), which are the only writes to `state`."""

    user: UserSpec
    population: str = "users"  # the Locust user class: connection counts are kept per population
    state: SessionState = SessionState.NEW

    @property
    def sender_id(self) -> str:
        return self.user.sender_id

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def room(self) -> str:
        return self.user.room
