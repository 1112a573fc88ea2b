"""What one measured send counts, in one place: sent, accepted, rejected.

A session's sends (its socket, answered by the service's ack or echo) and a publisher's publishes
(the service's publish API, answered by the call) are the same measured message to the ledger and
the recorder; only where the answer comes from differs. Both are counted here, on the loop thread
that owns the recorder and the ledger, so every report's `sent`, `accepted`, `rejected.*`,
`send_lag`, `ack` and `to_server` mean the same thing for both.
"""

from __future__ import annotations

from ..services.base import accepted_after
from ..threads.marks import runs_on_loop


@runs_on_loop
def sent(recorder, ledger, sender_id: str, seq: int, room: str, intended_ns: int, now_ns: int) -> None:
    """A measured message went out at `now_ns` (corrected clock)."""
    # How late the harness itself sent against the schedule: part of every latency it reports.
    recorder.record("send_lag", (now_ns - intended_ns) // 1000)
    ledger.sent(sender_id, seq, room, intended_ns)
    recorder.count("sent")


@runs_on_loop
def accepted(recorder, ledger, sender_id: str, seq: int, room: str, intended_ns: int, answered_ns: int,
             server_ns: int | None, sent_ns: int) -> None:
    """The service accepted it: its answer arrived at `answered_ns`; `server_ns` is the service's own
    time of acceptance when it says (corrected clock, as are `sent_ns` and `intended_ns`)."""
    recorder.ack.record((answered_ns - intended_ns) // 1000)
    accepted_ns = answered_ns
    if server_ns is not None:
        accepted_ns = accepted_after(server_ns, sent_ns)
        recorder.to_server.record((accepted_ns - intended_ns) // 1000)
    ledger.acked(sender_id, seq, room, accepted_ns)
    recorder.count("accepted")


@runs_on_loop
def rejected(recorder, ledger, sender_id: str, seq: int, code, at_ns: int, category) -> None:
    """The service refused it (`errors.<code>` is the caller's: it counts every rejection, sends or not)."""
    ledger.rejected(sender_id, seq, code, at_ns, category)
    recorder.count(f"rejected.{category}")
