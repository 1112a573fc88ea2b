"""The Locust users locustfiles import: the neutral base classes and Amazon IVS Chat's own.

Kept for existing locustfiles (`from harness.users import ChatterUser, ViewerUser`); other services'
users live in their packages, e.g. `harness.services.ivschat.users`.
"""

from .locust.users import ChatClient, ChatUser, ListenerUser, SenderUser, open_loop
from .services.ivschat.users import ChatterUser, ModeratorUser, ViewerUser

__all__ = ["ChatClient", "ChatUser", "ChatterUser", "ListenerUser", "ModeratorUser", "SenderUser", "ViewerUser",
           "open_loop"]
