"""The `FaultTarget` methods a data plane gets for free when each room has a `DeliveryLine`.

Every emulator's faults mean the same thing (see `admin.py`): select members, drop them (abrupt:
the TCP connection is aborted, clients see 1006; clean: a close frame), set a delivery delay per
room or for all rooms, pause and resume a room's line, restart the listener on the same port. A
data plane that mixes `LineFaults` in provides only what is its own:

    runtime(room)        the live side of a room (anything with a `.line`), made on first use
    runtimes()           every live room
    all_members()        every open member (`.id`, `.room_id`, `.user_id`, `.transport`, `.connection`,
                         `.describe()`)
    start(), stop()      listen and stop listening

and its own `expire_sessions` (what expiry means is the service's own). `close_soon` closes a
member's WebSocket from synchronous code without losing the task.

Emulators older than this module keep their own copies of these methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .delivery import select_members


class LineFaults:
    default_delay: tuple[float, float] = (0.0, 0.0)  # (delay_s, jitter_s) for rooms made later
    delivery_cost_s: float = 0.0

    # -- what the data plane provides -------------------------------------------------------------

    def runtime(self, room):  # pragma: no cover - abstract
        raise NotImplementedError

    def runtimes(self) -> Iterable:  # pragma: no cover - abstract
        raise NotImplementedError

    def all_members(self) -> Iterable:  # pragma: no cover - abstract
        raise NotImplementedError

    async def start(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def stop(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the shared faults ------------------------------------------------------------------------

    def close_soon(self, member, code: int, reason: str) -> None:
        """A clean close from synchronous code; the task is kept until it ends."""
        tasks = self.__dict__.setdefault("_close_tasks", set())
        task = asyncio.ensure_future(member.connection.close(code, reason[:120]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def select(self, *, room_id=None, user_ids=None, connection_ids=None, fraction=None, seed=None) -> list:
        return select_members(self.all_members(), room_id=room_id, user_ids=user_ids,
                              connection_ids=connection_ids, fraction=fraction, seed=seed)

    def drop(self, members: list, *, mode: str = "abrupt", code: int = 1001, reason: str = "") -> list[dict]:
        if mode not in ("abrupt", "clean"):
            raise ValueError("mode must be 'abrupt' or 'clean'")
        for member in members:
            if mode == "abrupt":
                member.transport.abort()
            else:
                self.close_soon(member, code, reason or "Dropped by fault injection")
        return [m.describe() for m in members]

    def set_delay(self, room, delay_s: float, jitter_s: float = 0.0) -> None:
        if delay_s < 0 or jitter_s < 0:
            raise ValueError("delay and jitter must not be negative")
        for runtime in [self.runtime(room)] if room else list(self.runtimes()):
            runtime.line.set_delay(delay_s, jitter_s)
        if room is None:
            self.default_delay = (delay_s, jitter_s)

    def pause(self, room, mode: str = "drop") -> None:
        self.runtime(room).line.pause(mode)

    def resume(self, room) -> int:
        return self.runtime(room).line.resume()

    async def restart(self, downtime_s: float = 0.0, mode: str = "abrupt") -> int:
        """Stop listening, drop every connection, wait `downtime_s`, listen again on the same port."""
        members = list(self.all_members())
        if mode == "abrupt":
            for member in members:
                member.transport.abort()
        elif mode != "clean":
            raise ValueError("mode must be 'abrupt' or 'clean'")
        await self.stop()
        if downtime_s > 0:
            await asyncio.sleep(downtime_s)
        await self.start()
        return len(members)
