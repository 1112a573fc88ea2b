"""The fault methods of `admin.FaultTarget` that every emulator's data plane can share.

A data plane whose rooms deliver through `DeliveryLine`s mixes in `LineFaults` and supplies:

    runtimes()                  every room's live state: `.members` (a dict of open connections,
                                `delivery.Selectable` with a `.transport`) and `.line` (its DeliveryLine)
    runtime(room)               one room's live state (creating it if needed)
    close_member(member, code, reason)   the service's clean close of one connection
    start(), stop()             listen, and stop listening while dropping every connection

From the first two come the defaults of the three fault hooks: `all_members()` (every open
connection), `line_of(room)` and `lines()` (every room's DeliveryLine), so a service states only
what differs. A service whose rooms are not shaped so overrides the hooks instead: Hotsock, whose
connections sit in several channels at once, supplies `all_members`, `line_of`, `lines` and
`room_members(room_id)`, which otherwise reads each member's `room_id`.

It then gets `select`, `drop`, `set_delay`, `pause`, `resume` and `restart` that behave the same for
every service. What "expire" means stays the service's own. `close_soon` closes a member's
WebSocket from synchronous code without losing the task (a `close_member` can use it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..services.untrusted import close_reason
from .delivery import DeliveryLine, select_members


class LineFaults:
    default_delay: tuple[float, float] = (0.0, 0.0)  # (delay_s, jitter_s) for rooms made later

    def runtimes(self) -> Iterable:
        raise NotImplementedError  # no silent default: a line left open keeps its timers running

    def runtime(self, room):
        raise NotImplementedError

    def all_members(self) -> Iterable:
        for runtime in self.runtimes():
            yield from runtime.members.values()

    def line_of(self, room) -> DeliveryLine:
        return self.runtime(room).line

    def lines(self) -> list[DeliveryLine]:
        return [runtime.line for runtime in self.runtimes()]

    def close_soon(self, member, code: int, reason: str) -> None:
        """A clean close from synchronous code; the task is kept until it ends. The reason is cut to
        what a close frame carries in bytes: a longer one makes websockets raise inside the task and
        leave the socket open (a kicked user went on chatting)."""
        tasks = self.__dict__.setdefault("_close_tasks", set())
        task = asyncio.ensure_future(member.connection.close(code, close_reason(reason)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def select(self, *, room_id: str | None = None, user_ids: Iterable[str] | None = None,
               connection_ids: Iterable[int] | None = None, fraction: float | None = None,
               seed: int | None = None) -> list:
        """Members matching every filter given; `fraction` then samples that many (rounded)."""
        members = self.all_members() if room_id is None else self.room_members(room_id)
        return select_members(members, user_ids=user_ids, connection_ids=connection_ids, fraction=fraction,
                              seed=seed)

    def room_members(self, room_id: str) -> list:
        return [m for m in self.all_members() if m.room_id == room_id]

    def drop(self, members: list, *, mode: str = "abrupt", code: int = 1001, reason: str = "") -> list[dict]:
        """Abrupt: the TCP connection is aborted with no close frame (clients see 1006). Clean: a close frame."""
        if mode not in ("abrupt", "clean"):
            raise ValueError("mode must be 'abrupt' or 'clean'")
        for member in members:
            if mode == "abrupt":
                member.transport.abort()
            else:
                self.close_member(member, code, reason or "Dropped by fault injection")
        return [m.describe() for m in members]

    def set_delay(self, room, delay_s: float, jitter_s: float = 0.0) -> None:
        """Delay (and jitter) one room's delivery, or every room's, including rooms made later."""
        if delay_s < 0 or jitter_s < 0:
            raise ValueError("delay and jitter must not be negative")
        for line in [self.line_of(room)] if room else list(self.lines()):
            line.set_delay(delay_s, jitter_s)
        if room is None:
            self.default_delay = (delay_s, jitter_s)

    def pause(self, room, mode: str = "drop") -> None:
        self.line_of(room).pause(mode)

    def resume(self, room) -> int:
        return self.line_of(room).resume()

    async def restart(self, downtime_s: float = 0.0, mode: str = "abrupt") -> int:
        """Stop listening, drop every connection, wait `downtime_s`, listen again on the same port."""
        if mode not in ("abrupt", "clean"):
            raise ValueError("mode must be 'abrupt' or 'clean'")
        members = list(self.all_members())
        if mode == "abrupt":
            for member in members:
                member.transport.abort()
        await self.stop()
        if downtime_s > 0:
            await asyncio.sleep(downtime_s)
        await self.start()
        return len(members)
