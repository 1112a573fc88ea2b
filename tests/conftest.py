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


def pytest_collection_finish(session):
    """Importing Locust gevent-patches the importing process; in the test process that makes asyncio
    tests and child-process waits hang until they time out. Test modules that need Locust run it in a
    child process (as `chatload run` and the Locust end-to-end tests do); fail at once, naming the
    cause, if one imported it here."""
    import sys

    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        raise pytest.UsageError("a test module imported Locust (or gevent-patched) into the test process; "
                                "import it in a child process instead (see tests/test_locust_defaults_cached.py)")
