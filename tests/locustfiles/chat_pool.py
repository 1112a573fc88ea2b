"""One chatter and listener pools of 10 connections each: every connection is a receiver."""

from harness.locust.pool import ListenerPool
from harness.services.ivschat.users import ChatterUser, ViewerUser


class ViewerPool(ListenerPool, ViewerUser):
    connections_per_user = 10


class Chatter(ChatterUser):
    fixed_count = 1
