"""Viewers and chatters only (no moderator), so every frame the emulator delivers is a chat message."""

from harness.services.ivschat.users import ChatterUser, ViewerUser


class Viewer(ViewerUser):
    weight = 3


class Chatter(ChatterUser):
    weight = 1
