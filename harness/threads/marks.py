"""Which thread calls what: the loop thread or the gevent hub's greenlets.

Each process has two threads that matter. The loop thread runs uvloop: sessions, transports,
client protocols, the recorder and the ledger. The gevent hub's thread runs Locust: users'
greenlets, Locust's stats, the runtime's hub side. `boundary.py` is the only crossing.

`@runs_on_loop` and `@runs_in_greenlet` say in the code which of the two calls a function: the
mark is kept as `fn.runs_on` ("loop" or "greenlet"), and a contract's subclasses inherit it for
their overrides (`inherit_marks`). With `CHATLOAD_CHECK_THREADS=1` in the environment (read once,
at import) each marked function also checks its calling thread and raises AssertionError naming
the function, the thread it belongs to and the thread that called it. Off, the decorators return
the function itself: nothing is added to any call, the receive path's included.

"On the loop" means inside a running asyncio event loop (a LoopThread's, or a test's own loop);
"in a greenlet" means in a thread that is no LoopThread's and runs no asyncio loop just now.
"""

from __future__ import annotations

import _thread
import asyncio
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

CHECKING = os.environ.get("CHATLOAD_CHECK_THREADS", "") not in ("", "0")
if CHECKING:  # said once per process, so that a run can show the checks were on
    sys.stderr.write(f"chatload: thread checks on (CHATLOAD_CHECK_THREADS) in process {os.getpid()}\n")
LOOP = "loop"
GREENLET = "greenlet"

log = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable)
# Monkey-patching makes `_thread.get_ident` a greenlet's id: the real thread's is wanted here. Where
# gevent is loaded, its saved original; elsewhere (an emulator, the CLI) the function as it is now,
# which a later patch cannot change under us. Importing gevent only for this cost every process
# that reads the service contract ~20 ms at start.
_monkey = sys.modules.get("gevent.monkey")
_get_ident = _monkey.get_original("_thread", "get_ident") if _monkey is not None else _thread.get_ident
_main_ident = _get_ident()
_loop_threads: dict[int, str] = {}  # thread id → name; written by each LoopThread when it starts


def loop_thread_started(name: str) -> None:
    """Called by a LoopThread inside its new thread: that thread is a loop thread from now on."""
    _loop_threads[_get_ident()] = name


def loop_thread_ended() -> None:
    _loop_threads.pop(_get_ident(), None)


def _thread_name() -> str:
    ident = _get_ident()
    if ident in _loop_threads:
        return f"loop thread {_loop_threads[ident]!r}"
    if ident == _main_ident:
        return "the main thread (the gevent hub's)"
    return f"thread {ident}"


def on_loop() -> bool:
    return asyncio._get_running_loop() is not None or _get_ident() in _loop_threads


def in_greenlet() -> bool:
    return asyncio._get_running_loop() is None and _get_ident() not in _loop_threads


def _checked(fn: _F, owner: str) -> _F:
    where = "the loop thread" if owner == LOOP else "a greenlet on the gevent hub's thread"
    belongs = on_loop if owner == LOOP else in_greenlet

    @functools.wraps(fn)
    def check_then_call(*args, **kwargs):
        if not belongs():
            message = f"thread check: {fn.__qualname__} runs on {where}, but was called on {_thread_name()}"
            # Logged too: a loop callback's or the inbox's exception is logged, a greenlet's may be
            # counted as a failure of what it did; the log line is what a checked run is searched for.
            log.error("chatload %s", message)
            raise AssertionError(message)
        return fn(*args, **kwargs)

    check_then_call.runs_on = owner
    return check_then_call  # type: ignore[return-value]


def _mark(owner: str) -> Callable[[_F], _F]:
    def mark(fn: _F) -> _F:
        if CHECKING:
            return _checked(fn, owner)
        fn.runs_on = owner
        return fn

    return mark


runs_on_loop = _mark(LOOP)
runs_in_greenlet = _mark(GREENLET)


def inherit_marks(cls: type) -> None:
    """A contract's subclass (from `__init_subclass__`): its overrides of marked hooks run where the
    contract says, and are checked there too in checking mode."""
    for name, value in list(vars(cls).items()):
        if not inspect.isfunction(value) or getattr(value, "runs_on", None) is not None:
            continue
        for base in cls.__mro__[1:]:
            owner = getattr(base.__dict__.get(name), "runs_on", None)
            if owner is not None:
                setattr(cls, name, _mark(owner)(value))
                break
