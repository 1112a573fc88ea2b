"""The Hotsock service's long timers on a connection (spec §1.1, §1.7), all multiplied by
`Timings.scale` so tests can use seconds:

- 2 hours after the upgrade the connection is closed 1001 "Going away" (`connectionExpiresAt`).
- 10 minutes without a data frame in either direction: closed 1001 "Going away" (API Gateway's
  idle timeout; WebSocket pings do not count — emulator choice, and the emulator sends none).
- `keepAlive: true`: `hotsock.keepAlive` every 9.5 minutes (which also keeps the connection busy).
- `heartbeatTimeout: N`: no `hotsock.heartbeat` for N seconds → closed 1001 "Going away" (the code
  and reason are an emulator choice; other frames do not count as heartbeats).

The data plane mixes in `ConnectionTimers` and supplies `_loop`, `timings`, `metrics` (its
`server_closes` counter), `_send(conn, frame)` and `_close(conn, code, reason)`. A connection's
timers are its `timers` handles; the data plane cancels them when the connection is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import codec
from .channels import Connection

GOING_AWAY = 1001


@dataclass(frozen=True)
class Timings:
    """The service's long timers, scaled: `scale=0.001` makes the 2-hour maximum last 7.2 s."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("the time scale must be positive")

    # The service's durations in seconds, times the scale.
    max_connection_s = property(lambda self: 7200 * self.scale)
    idle_s = property(lambda self: 600 * self.scale)
    keep_alive_s = property(lambda self: 570 * self.scale)
    deduplication_s = property(lambda self: 300 * self.scale)

    def heartbeat_s(self, claim_s: int) -> float:
        return claim_s * self.scale


UNSCALED = Timings()  # the service's own durations


class ConnectionTimers:
    def _start_timers(self, conn: Connection) -> None:
        loop, timings = self._loop, self.timings
        now = conn.active_at = conn.heartbeat_at = loop.time()
        conn.timers["max"] = loop.call_later(timings.max_connection_s, self._going_away, conn, "max-duration")
        conn.timers["idle"] = loop.call_at(now + timings.idle_s, self._check_idle, conn)
        if conn.claims.heartbeat_timeout_s is not None:
            conn.timers["heartbeat"] = loop.call_at(now + timings.heartbeat_s(conn.claims.heartbeat_timeout_s),
                                                    self._check_heartbeat, conn)
        if conn.claims.keep_alive:
            conn.timers["keepalive"] = loop.call_at(now + timings.keep_alive_s, self._keep_alive, conn)

    def _going_away(self, conn: Connection, cause: str) -> None:
        if conn.closed:
            return
        self.metrics.server_closes[cause] += 1
        self._close(conn, GOING_AWAY, "Going away")

    def _check_idle(self, conn: Connection) -> None:
        due = conn.active_at + self.timings.idle_s
        if self._loop.time() >= due:
            self._going_away(conn, "idle")
        elif not conn.closed:
            conn.timers["idle"] = self._loop.call_at(due, self._check_idle, conn)

    def _check_heartbeat(self, conn: Connection) -> None:
        due = conn.heartbeat_at + self.timings.heartbeat_s(conn.claims.heartbeat_timeout_s)
        if self._loop.time() >= due:
            self._going_away(conn, "heartbeat")
        elif not conn.closed:
            conn.timers["heartbeat"] = self._loop.call_at(due, self._check_heartbeat, conn)

    def _keep_alive(self, conn: Connection) -> None:
        if conn.closed:
            return
        self._send(conn, codec.KEEP_ALIVE)
        conn.timers["keepalive"] = self._loop.call_later(self.timings.keep_alive_s, self._keep_alive, conn)

    def expire_sessions(self, members: list[Connection]) -> list[dict]:
        """The fault route's "expire": the 2-hour maximum, reached now — close 1001 "Going away"."""
        for conn in members:
            self._going_away(conn, "expire")
        return [conn.describe() for conn in members]
