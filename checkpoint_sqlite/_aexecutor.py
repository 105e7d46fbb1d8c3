"""The async flavor's connections, and the executors of a saver on `:memory:` or on a
connection passed in: they run `AsyncSqliteSaver`'s plans, on aiosqlite (the pool on the
saver's own file is `_apool.AsyncPooledExecutor`).

aiosqlite runs each connection in a thread of its own and hands every statement to it; a
plan's statements go to one connection, so a read is one hop and a `put` one (a single
statement).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from checkpoint_base import CheckpointerError, MissingDriverError, Plan, StorageError, arun

from ._conn import (
    MEMORY,
    READ_PROBE,
    ConnectOptions,
    connect_target,
    connection_pragmas,
    why_unopened,
)
from ._requests import Execute, Query
from ._session import (
    Sleep,
    autocommits,
    busy_pauses,
    is_busy,
    takes_write_lock,
    transaction,
    translate,
)
from ._sync import _run_on as sync_run_on
from ._worker import Worker

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["AsyncMemoryExecutor", "AsyncSharedExecutor"]

T = TypeVar("T")


def _driver() -> ModuleType:
    try:
        import aiosqlite
    except ImportError as exc:
        raise MissingDriverError(
            "AsyncSqliteSaver needs aiosqlite, which is not installed; install it with: "
            "pip install 'checkpointers[sqlite]'"
        ) from exc
    return aiosqlite


async def _perform(conn: aiosqlite.Connection, op: Any) -> Any:
    """Perform one request of a wrapped plan on `conn` (one hop to its thread)."""
    if type(op) is Query:
        return await conn.execute_fetchall(op.sql, op.params)
    if type(op) is Execute:
        if len(op.rows) == 1:
            await conn.execute(op.sql, op.rows[0])
        else:
            await conn.executemany(op.sql, op.rows)
        return None
    if type(op) is Sleep:
        await asyncio.sleep(op.seconds)
        return None
    raise TypeError(f"not a SQLite request: {op!r}")


async def _run_on(
    conn: aiosqlite.Connection,
    plan: Plan[T],
    write_lock: asyncio.Lock | None = None,
    on_write: Callable[[], None] | None = None,
) -> T:
    """Run a plan in its transaction on `conn`.

    `write_lock`: taken before the plan's first write and held to its end (see
    `_apool.AsyncPooledExecutor`). `on_write`: called once the plan has committed a write.
    """
    nested = conn.in_transaction
    wrapped = transaction(plan, nested=nested, autocommit=autocommits(conn))
    held = False
    wrote = False

    async def perform(op: Any) -> Any:
        nonlocal held, wrote
        if not wrote and takes_write_lock(op):
            wrote = True
            if write_lock is not None:
                await write_lock.acquire()
                held = True
        return await _perform(conn, op)

    try:
        result = await arun(wrapped, perform)
        if wrote and on_write is not None:
            on_write()
        return result
    except Exception:
        raise
    except BaseException:
        # Cancelled mid-plan: the plan's own rollback did not run. aiosqlite performs calls
        # in order, so this ROLLBACK runs after the statement still in flight.
        if not nested:
            with contextlib.suppress(BaseException):  # the original error is what matters
                await conn.rollback()
        raise
    finally:
        if held:
            assert write_lock is not None
            write_lock.release()


def _daemonize(pending: Any) -> None:
    """Make the worker thread of a connection we open a daemon, before it starts.

    aiosqlite runs each connection on a thread that is not a daemon, so a saver nobody closed
    kept the interpreter from exiting: the script hung after its last line. A daemon thread
    is dropped at exit instead. Nothing awaited is lost: an awaited write has committed, and a
    statement cut off at exit rolls back as after a crash (tests/sqlite/test_crash.py). The
    thread is `Connection._thread` in aiosqlite 0.21+, the connection itself before that.
    """
    thread = pending if isinstance(pending, threading.Thread) else getattr(pending, "_thread", None)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


_abandoned: set[asyncio.Future[None]] = set()
"""Closes of connections opened for callers that were cancelled meanwhile (kept referenced)."""


async def _opened(pending: aiosqlite.Connection) -> aiosqlite.Connection:
    """`await pending`; when the caller is cancelled meanwhile, the connection that aiosqlite's
    thread goes on opening is closed once it is open. Without this, nothing closed it: CPython
    dropped it soon after, and Python 3.13 warns about a connection left to the collector."""
    opening: asyncio.Future[aiosqlite.Connection] = asyncio.ensure_future(pending)
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_abandoned)
        raise


def _close_abandoned(opening: asyncio.Future[aiosqlite.Connection]) -> None:
    if opening.cancelled() or opening.exception() is not None:
        return  # nothing was opened (and the error is retrieved: no warning about it)
    closing = asyncio.ensure_future(opening.result().close())
    _abandoned.add(closing)
    closing.add_done_callback(_abandoned.discard)


async def open_connection(path: str, options: ConnectOptions) -> aiosqlite.Connection:
    """A connection of the saver's own, in autocommit mode (transactions are explicit)."""
    driver = _driver()
    target, uri = connect_target(path, options.read_only)
    pragmas = READ_PROBE if options.read_only else connection_pragmas(path, options.synchronous)
    try:
        pending = driver.connect(
            target, timeout=options.timeout, isolation_level=None, cached_statements=256, uri=uri
        )
        _daemonize(pending)
        conn = await _opened(pending)
    except Exception as exc:
        if isinstance(exc, driver.Error):
            raise why_unopened(path, str(exc), options.read_only) or translate(exc) from exc
        raise
    try:
        for pragma in pragmas:
            for pause in busy_pauses(options.timeout):
                try:
                    await conn.execute_fetchall(pragma)
                    break
                except driver.OperationalError as exc:
                    if pause is None or not is_busy(exc):
                        raise
                    await asyncio.sleep(pause)
    except BaseException as exc:
        await conn.close()
        if isinstance(exc, driver.Error):
            raise why_unopened(path, str(exc), options.read_only) or translate(exc) from exc
        raise
    return conn


logger = logging.getLogger("checkpoint_sqlite")


def _refused_on_loop(exc: Exception, conn: sqlite3.Connection, changes: int) -> bool:
    """True when `exc`, raised by a quick plan before it changed anything on `conn`, says that
    the event loop's thread may not make the call: a checker such as blockbuster (LangGraph's
    `langgraph dev` runs graphs under it) raises its own error for a sqlite3 call there.
    SQLite's errors and this package's are the plan's own; they are never taken for it."""
    return (
        not isinstance(exc, (sqlite3.Error, CheckpointerError))
        and not conn.in_transaction
        and conn.total_changes == changes
    )


def _calls_go_to_threads(exc: Exception, where: str) -> None:
    logger.info(
        "%s: the event loop refused a sqlite3 call on its thread (%s: %s); from now on every "
        "call of this saver runs on a thread, as any plan that must wait does",
        where,
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )


class AsyncMemoryExecutor:
    """Runs plans on a `:memory:` database the saver opened: one `sqlite3` connection, one
    plan at a time.

    An in-memory database never waits for a disk or another connection, so a get, put or
    put_writes runs on the event loop's thread (`run_quick`), without the hop to aiosqlite's
    thread and back that each statement cost (a put of a 100-step thread: 265 us, of which
    the statement and its serialization take under 110). Any other plan (a list, a delete,
    a prune) runs on a thread of the executor's, one hop per plan, so a long one does not
    hold up the loop.
    """

    def __init__(self) -> None:
        self._conn = sqlite3.connect(
            MEMORY, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        self._lock = asyncio.Lock()  # one plan at a time: the database is the connection
        self._worker = Worker("checkpointers-sqlite-memory")
        self._closed = False
        self._quick_refused = False  # the loop's thread may not call sqlite3 (blockbuster)

    async def run(self, plan: Plan[T]) -> T:
        await self._lock.acquire()
        try:
            if self._closed:
                plan.close()
                raise StorageError("the SQLite saver is closed")
            # The lock is released when the plan has ended on the thread, also when this
            # task is cancelled meanwhile.
            done: asyncio.Future[T] = self._worker.call(
                sync_run_on, self._conn, plan, after=self._lock.release
            )
        except BaseException:
            self._lock.release()
            raise
        return await done

    def moved_loop(self) -> None:
        """The saver moved to another event loop: its lock was bound to the last one."""
        self._lock = asyncio.Lock()

    async def run_quick(self, make: Callable[[], Plan[T]]) -> T:
        """A get, put or put_writes, on the loop's thread unless a plan is running (or the
        loop's thread may not call sqlite3: see `_apool.AsyncPooledExecutor.run_quick`)."""
        if self._lock.locked() or self._quick_refused:
            return await self.run(make())
        async with self._lock:  # free: taken without a pause
            if self._closed:
                raise StorageError("the SQLite saver is closed")
            before = self._conn.total_changes
            try:
                return sync_run_on(self._conn, make())
            except Exception as exc:
                if not _refused_on_loop(exc, self._conn, before):
                    raise
                self._quick_refused = True
                _calls_go_to_threads(exc, "in-memory SQLite saver")
        return await self.run(make())

    async def aclose(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                self._worker.stop()
                self._conn.close()


class AsyncSharedExecutor:
    """Runs plans one at a time on a connection you passed in (your `:memory:` database
    among them; the saver's own is `AsyncMemoryExecutor`'s), which stays yours: closing the
    saver does not close it."""

    def __init__(
        self, conn: aiosqlite.Connection, *, prepare: Callable[[], Plan[None]] | None = None
    ) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._prepare = prepare
        self._closed = False

    async def run(self, plan: Plan[T]) -> T:
        async with self._lock:
            if self._closed:
                plan.close()
                raise StorageError("the SQLite saver is closed")
            if self._prepare is not None:  # first use of a connection passed in: set up
                await _run_on(self._conn, self._prepare())
                self._prepare = None
            return await _run_on(self._conn, plan)

    def moved_loop(self) -> None:
        """The saver moved to another event loop: its lock was bound to the last one."""
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
