"""A thread of one's own that runs functions for an event loop, one at a time, in order.

aiosqlite gives each connection such a thread. The loop's `run_in_executor` on its default
executor cost about 100 us more per call on the 2-core test machine (a 200 us task: 335
against 230 us, medians of 20 blocks of 50): its pool hands each call to whichever thread
is free, through more locks and futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Worker"]

T = TypeVar("T")


def _settle(
    done: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
    after: Callable[[], None] | None,
) -> None:
    """On the loop, once the call returned: `after`, then the result (if still awaited)."""
    try:
        if after is not None:
            after()
    finally:
        if not done.done():
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)


class Worker:
    """Runs calls on a daemon thread started at the first call.

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._work: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def call(
        self, fn: Callable[..., T], *args: Any, after: Callable[[], None] | None = None
    ) -> asyncio.Future[T]:
        """Run `fn(*args)` on the thread; a future of the running loop gets its result.

        `after` runs on the loop once `fn` has returned or raised, also when the future was
        cancelled meanwhile (cancelling it does not stop `fn`): a lock held for the call is
        released there, not before.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        if self._pid != os.getpid():  # forked: the parent's thread was not copied
            self._work, self._thread, self._pid = queue.SimpleQueue(), None, os.getpid()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._work.put((fn, args, done, loop, after))
        return done

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            fn, args, done, loop, after = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller, whatever it is
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, done, result, error, after)

    def stop(self) -> None:
        """End the thread after the calls already sent; a later call starts another."""
        if self._thread is not None:
            self._work.put(None)
            self._thread = None
