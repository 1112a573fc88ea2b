"""`ClientProtocol.closed`: a service may say what a close means (e.g. come back with a fresh token
after a clean 1001), and the session acts on it whatever the reconnect policy; by default a close
means nothing and the policy decides, as before."""

from __future__ import annotations

from harness.metrics.histograms import Recorder
from harness.metrics.ledger_record import DeliveryLedger
from harness.net.reconnect import ExponentialBackoff
from harness.services.base import ClientProtocol, MustReconnect, ServiceEvent, UserSpec
from harness.session.chat_session import ChatSession


class _Runtime:
    clock_offset_ns = 0

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.ledger = DeliveryLedger()
        self.service = None
        self.closes: list[int] = []

    def post_state(self, handle, state) -> None:
        pass

    def report_closed(self, session, code, reason, clean) -> None:
        self.closes.append(code)


class _Plain(ClientProtocol):
    def receive(self, payload, is_text, at_ns):
        return None

    def send_message(self, request, content, extra):
        return b""


class _GoingAwayMeansComeBack(_Plain):
    def closed(self, code, reason, clean):
        return (ServiceEvent("going_away"), MustReconnect("going away")) if code == 1001 else None


def _closed_session(protocol_class, code: int, clean: bool) -> ChatSession:
    user = UserSpec("s1", "user-s1", "room")
    session = ChatSession(_Runtime(), handle=None, user=user, policy=ExponentialBackoff())
    session.protocol = protocol_class(user)
    session.on_closed(code, "", clean, 1_000)
    return session


def test_by_default_a_clean_close_is_left_to_the_policy():
    session = _closed_session(_Plain, 1001, clean=True)
    assert not session.must_reconnect and not session._should_reconnect(), "backoff: no reconnect after a clean close"
    assert session.runtime.closes == [1001]


def test_a_protocol_that_gives_a_close_meaning_makes_the_session_come_back():
    session = _closed_session(_GoingAwayMeansComeBack, 1001, clean=True)
    assert session.must_reconnect and session._should_reconnect()
    assert session.recorder.totals()["counters"]["events.going_away"] == 1


def test_a_close_the_protocol_has_nothing_to_say_about_changes_nothing():
    session = _closed_session(_GoingAwayMeansComeBack, 1000, clean=True)
    assert not session.must_reconnect and not session._should_reconnect()
