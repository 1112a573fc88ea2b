"""The one place where gevent (Locust's users) and asyncio (our sockets) meet.

Locust runs on gevent; the sockets run on uvloop in one real OS thread per process. Crossing:
- gevent → loop: `LoopThread.call(fn, *args)` = `loop.call_soon_threadsafe`; cheap, never blocks.
- loop → gevent: `GeventInbox.post(fn, *args)` appends to a plain deque and pokes a hub `async_`
  watcher (libev's thread-safe wake-up); the hub drains the deque in its own thread.
- A greenlet that needs an answer from the loop uses `LoopThread.ask(fn, *args)`: the loop computes,
  the answer comes back through the inbox into a gevent `AsyncResult`. A greenlet never blocks on a
  `concurrent.futures.Future` (that would block the whole hub, every user with it).
The loop thread is started with the unpatched `_thread.start_new_thread`: after monkey-patching,
`threading.Thread` would be a greenlet in the hub's thread, not a thread of its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

import gevent
import gevent.event
from gevent import monkey

from . import marks

log = logging.getLogger(__name__)

_start_new_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")


class GeventInbox:
    """Callbacks posted from any thread, run in the gevent hub's thread, in order."""

    def __init__(self) -> None:
        self._queue: collections.deque = collections.deque()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._drain)

    def post(self, fn: Callable, *args) -> None:
        self._queue.append((fn, args))
        self._watcher.send()

    def _drain(self) -> None:
        # Runs inside the hub: callbacks must not block. Anything that waits spawns a greenlet.
        queue = self._queue
        while queue:
            fn, args = queue.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("callback %r from the loop thread failed", fn)

    def close(self) -> None:
        self._watcher.stop()
        self._watcher.close()


class LoopThread:
    """A uvloop event loop running in a real OS thread, plus the inbox that answers back."""

    def __init__(self, name: str = "chatload-loop") -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inbox = GeventInbox()
        self._stopped = _allocate_lock()

    @marks.runs_in_greenlet
    def start(self, timeout: float = 10.0) -> LoopThread:
        import uvloop

        started = _allocate_lock()
        started.acquire()
        self._stopped.acquire()

        def run() -> None:
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            marks.loop_thread_started(self.name)
            loop.call_soon(started.release)
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()
                    marks.loop_thread_ended()
                    self._stopped.release()

        _start_new_thread(run, ())
        # Poll the real lock with gevent sleeps: a blocking acquire would freeze the hub.
        deadline = time.monotonic() + timeout
        while not started.acquire(False):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: event loop thread did not start within {timeout} s")
            gevent.sleep(0.001)
        return self

    def call(self, fn: Callable, *args) -> None:
        """Run `fn(*args)` on the loop soon. From any thread; never blocks."""
        self.loop.call_soon_threadsafe(fn, *args)

    @marks.runs_in_greenlet
    def ask(self, fn: Callable, *args, timeout: float | None = 30.0):
        """From a greenlet: run `fn(*args)` on the loop and wait (cooperatively) for its result.

        `fn` may return a value or an awaitable; exceptions travel back and are raised here.
        """
        result = gevent.event.AsyncResult()
        inbox = self.inbox

        def on_loop() -> None:
            try:
                value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller as is
                inbox.post(result.set_exception, exc)
                return
            if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
                future = asyncio.ensure_future(value)

                def done(f: asyncio.Future) -> None:
                    if f.cancelled():
                        inbox.post(result.set_exception, asyncio.CancelledError())
                    elif f.exception() is not None:
                        inbox.post(result.set_exception, f.exception())
                    else:
                        inbox.post(result.set, f.result())

                future.add_done_callback(done)
            else:
                inbox.post(result.set, value)

        self.call(on_loop)
        return result.get(timeout=timeout)

    @marks.runs_in_greenlet
    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is None or self.loop.is_closed():
            return

        def shutdown() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        self.loop.call_soon_threadsafe(shutdown)
        deadline = time.monotonic() + timeout
        while not self._stopped.acquire(False):
            if time.monotonic() > deadline:
                log.warning("%s: loop thread did not stop within %s s", self.name, timeout)
                break
            gevent.sleep(0.005)
        self.inbox.close()
