"""Shared fixtures: a real emulator child process on loopback, and boto3 clients aimed at it."""

from __future__ import annotations

import itertools

import pytest

from harness.services.ivschat.emulator import EmulatorProcess
from tests.browser import chromium  # noqa: F401 - the headless Chromium fixture, for every test module

_names = itertools.count()


@pytest.fixture(scope="session")
def emulator():
    """One emulator process for the session; tests isolate themselves by creating their own rooms."""
    with EmulatorProcess() as process:
        yield process


@pytest.fixture(scope="session")
def ivschat(emulator):
    """A real boto3 `ivschat` client aimed at the session emulator."""
    return emulator.boto3_client()


@pytest.fixture
def room(ivschat):
    """A fresh room (default limits) for one test; deleted afterwards if it still exists."""
    created = ivschat.create_room(name=f"test-{next(_names)}")
    yield created
    try:
        ivschat.delete_room(identifier=created["arn"])
    except ivschat.exceptions.ResourceNotFoundException:
        pass
