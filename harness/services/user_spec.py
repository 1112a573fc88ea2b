"""Who one connection is: the request a session connects with and a token provider serves.

Its own module because both the service contract (`harness.services.base`) and the token providers
(`harness.services.tokens`) take it, and the contract names the providers: kept in either, the two
would import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class UserSpec:
    """What one connection is for: who, in which room, allowed to do what. Token providers get it too."""

    sender_id: str  # unique across every process of a run: the identity in measured messages
    user_id: str  # the id the service knows the user by
    room: str
    capabilities: tuple[str, ...] = ()  # in the service's own vocabulary
    session_minutes: int | None = None
    attributes: Mapping[str, str] | None = None
