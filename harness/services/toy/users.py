"""Locust users for the toy service."""

from ...locust.users import ListenerUser, SenderUser


class ToyListener(ListenerUser):
    abstract = True
    service = "toy"


class ToySender(SenderUser):
    abstract = True
    service = "toy"
