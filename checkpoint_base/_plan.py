"""Plans: storage operations written once, as generators, run by a sync or an async executor.

A plan yields requests (a SQL statement, a Redis command: whatever its backend's executor
understands) and receives each request's result through `send`. It returns the operation's
result. The plan never waits on I/O itself, so the same plan serves both flavors; only the
executor differs. Plans compose with `yield from`, and run without a server in unit tests by
sending them fake results. This is the sans-IO design of psycopg's `generators.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar

__all__ = [
    "AsyncExecutor",
    "Plan",
    "QuickOps",
    "SerialWriters",
    "SyncExecutor",
    "arun",
    "done",
    "run",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Plan = Generator[Any, Any, T]
"""A generator that yields requests, receives their results, and returns `T`."""


def run(plan: Plan[T], execute: Callable[[Any], Any]) -> T:
    """Drive `plan` to completion, performing each request with `execute`.

    An exception raised by `execute` is thrown into the plan, so a plan can clean up
    (or translate) with an ordinary `try`.
    """
    try:
        request = next(plan)
        while True:
            try:
                result = execute(request)
            except Exception as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun(plan: Plan[T], execute: Callable[[Any], Awaitable[Any]]) -> T:
    """Drive `plan` to completion, awaiting each request with `execute`."""
    try:
        request = next(plan)
        while True:
            try:
                result = await execute(request)
            except Exception as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def done(value: T) -> Plan[T]:
    """A plan that performs no request and returns `value` (for backends with nothing to do)."""
    return value
    yield  # pragma: no cover - makes this function a generator


class SyncExecutor(Protocol):
    """Runs plans on a blocking driver. Owns connections, transactions and error translation.

    One may also have `writer_lock` (see `SerialWriters`).
    """

    def run(self, plan: Plan[T]) -> T:
        """Run one plan, with every request of it on one connection (or pipeline)."""
        ...

    def close(self) -> None:
        """Release what the executor owns (not what the caller passed in)."""
        ...


class SerialWriters(Protocol):
    """A sync executor whose database takes one writer at a time (SQLite).

    Optional. When `writer_lock` is not None, the saver's sync flavor holds it around each
    whole `put` and `put_writes`, serializing the values included, so the threads of a
    process that write through the saver take turns instead of all running Python between
    their statements (each gives the GIL away while the database runs its statement, then
    waits to get it back). A writer waits at most `writer_wait` seconds for its turn, then
    goes ahead without it: the database's own lock makes it wait, or fail, as it would have
    anyway. `writer_lock` is read on every call, so that a forked child gets a new lock.
    """

    writer_wait: float

    @property
    def writer_lock(self) -> threading.Lock | None:
        """The lock, or None when writers need not take turns."""
        ...


class AsyncExecutor(Protocol):
    """Runs plans on an asyncio driver. Owns connections, transactions and error translation.

    One may also have `moved_loop()`: the saver calls it (synchronously, on the new loop)
    when it is used on an event loop other than the last one, which has stopped or closed;
    the executor then drops what was bound to the old loop at once, and may return an
    awaitable that the saver awaits next (closing what it dropped, on the new loop).
    """

    async def run(self, plan: Plan[T]) -> T:
        """Run one plan, with every request of it on one connection (or pipeline)."""
        ...

    async def aclose(self) -> None:
        """Release what the executor owns (not what the caller passed in)."""
        ...


class QuickOps(Protocol):
    """An async executor that may run a small operation without a thread hop.

    Optional: the saver's `aget_tuple`, `aput` and `aput_writes` use it when the executor
    has it. The executor runs `make()` at once on the event loop's thread when that cannot
    wait (on a lock, a sync to disk), else as `run(make())` would; a plan runs once, so it
    gets a factory.
    """

    async def run_quick(self, make: Callable[[], Plan[T]]) -> T:
        """Run the plan `make()` returns: one get, put or put_writes."""
        ...
