"""The async flavor's executors: they run `AsyncSqliteSaver`'s plans, on aiosqlite.

aiosqlite runs each connection in a thread of its own and hands every statement to it; a
plan's statements go to one connection, so a read is one hop and a `put` one (a single
statement). `aget_tuple`, `aput` and `aput_writes` on the saver's own file take no hop unless
something would make them wait: see `AsyncPooledExecutor.run_quick`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from checkpoint_base import (
    CheckpointerError,
    MissingDriverError,
    Plan,
    StorageError,
    arun,
    run,
)

from ._alone import DONE, after_write, resumed, run_alone, standalone_write
from ._conn import (
    MEMORY,
    READ_PROBE,
    ConnectOptions,
    connect_target,
    connection_pragmas,
    synchronous_pragma,
    why_unopened,
)
from ._group import AsyncGroupCommit
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
from ._sync import open_connection as sync_connection
from ._wal import for_saver as wal_for_saver
from ._worker import Worker

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["AsyncMemoryExecutor", "AsyncPooledExecutor", "AsyncSharedExecutor"]

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
    `AsyncPooledExecutor`). `on_write`: called once the plan has committed a write.
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


class _WouldWait(Exception):
    """A quick plan met a lock, or a request it may not perform: run it on a thread."""


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


def _run_now(conn: sqlite3.Connection, plan: Plan[T], writes: bool) -> T:
    """Run a plan on `conn` in the calling thread, never waiting: `_WouldWait` instead.

    `conn` has `busy_timeout` 0, so a lock in the way fails at once; the transaction
    wrapper would then ask to pause and retry (`Sleep`), and that is where this gives up.
    Nothing is done by then: the write lock is taken by the plan's first write, which is
    what failed. `writes`: False gives up at the first write instead.
    """
    done, out = run_alone(conn, plan, writes=writes)
    if done:
        return out  # type: ignore[no-any-return]
    rest: Plan[T] = out
    wrapped = transaction(rest, nested=False, autocommit=True)

    def perform(op: Any) -> Any:
        kind = type(op)
        if kind is Query:
            return conn.execute(op.sql, op.params).fetchall()
        if kind is Execute and writes:
            if len(op.rows) == 1:
                conn.execute(op.sql, op.rows[0])
            else:
                conn.executemany(op.sql, op.rows)
            return None
        raise _WouldWait

    return run(wrapped, perform)


class AsyncPooledExecutor:
    """Runs each plan on a connection of a pool of at most `max_connections`.

    Connections are opened on demand and `max_idle` of them kept; a plan that finds every
    connection busy waits for one to come back. With `synchronous="full"` writing plans
    queue on a lock of the saver, as in the sync flavor's `PooledExecutor`: the agent graph
    on this saver took 9.5 instead of 11.8 ms per turn with `durability="sync"`, 8.6 instead
    of 9.9 ms with `"async"` (7 interleaved rounds, 4 threads of 3 turns); 8 and 16 writer
    tasks put 1,312 and 1,197 checkpoints/s with it, 1,270 and 1,157 without. Writes of
    one statement queued on that lock share a commit (`_group.AsyncGroupCommit`, on a
    thread and a connection of its own): 8 writer tasks put 5,783 instead of 1,430
    checkpoints/s, 32 put 8,635 instead of 1,375/s, and one 2,257 instead of 1,700/s
    (`python -m benchmarks --backend sqlite-full --workload concurrency --flavor async`,
    quick size, before and after).

    WAL checkpoints run on a thread of their own (`WalCheckpointer`), not inside a write.
    """

    def __init__(self, path: str, options: ConnectOptions) -> None:
        self._path = path
        self._options = options
        self._group = (
            AsyncGroupCommit(lambda: sync_connection(path, options))
            if options.synchronous == "full"
            else None
        )
        self._idle: list[aiosqlite.Connection] = []
        self._busy: set[aiosqlite.Connection] = set()  # taken by a plan of the current loop
        self._count = 0  # open connections, idle or in use
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._quick: sqlite3.Connection | None = None
        self._quick_pid = 0
        self._quick_lock = threading.Lock()
        self._quick_refused = False  # the loop's thread may not call sqlite3 (blockbuster)
        self._wal, self._valve = wal_for_saver(path, options.synchronous)

    async def _take(self) -> aiosqlite.Connection:
        while True:
            if self._closed:
                raise StorageError("the SQLite saver is closed")
            if self._idle:
                conn = self._idle.pop()
                self._busy.add(conn)
                return conn
            if self._count < self._options.max_connections:
                self._count += 1
                try:
                    conn = await open_connection(self._path, self._options)
                    try:
                        for pragma in self._valve:  # this connection's settings: no lock
                            await conn.execute(pragma)
                    except BaseException:
                        await conn.close()
                        raise
                    self._busy.add(conn)
                    return conn
                except BaseException:
                    self._count -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # we were woken but will not take it: pass it on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def moved_loop(self) -> None:
        """The saver moved to another event loop (the last one stopped): the waiters were
        tasks of that loop, and the write lock was bound to it.

        A connection still taken by a plan of that loop is not counted any more: a loop
        closed with the plan pending never runs it to its end, so the connection would never
        come back, and after `max_connections` such loops every plan waited forever. Its
        worker thread ends when it answers the closed loop; the connection closes when the
        abandoned plan is collected. Should the old loop run again and the plan end after
        all, the connection is closed instead of pooled (`_give_back`)."""
        self._count -= len(self._busy)
        self._busy.clear()
        self._waiters.clear()
        if self._group is not None:
            self._group.moved_loop()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _give_back(self, conn: aiosqlite.Connection) -> None:
        if conn not in self._busy:  # taken under a loop the saver has left: not counted
            await conn.close()
            return
        self._busy.discard(conn)
        if self._closed or (len(self._idle) >= self._options.max_idle and not self._waiters):
            self._count -= 1
            await conn.close()
        else:
            self._idle.append(conn)
        self._wake()

    async def run(self, plan: Plan[T]) -> T:
        if self._group is not None:  # a single-statement write shares a commit
            first, op = standalone_write(plan)
            if first is DONE:
                return op  # type: ignore[no-any-return]
            if op is not None:
                if self._closed:
                    plan.close()
                    raise StorageError("the SQLite saver is closed")
                try:
                    ok = await self._group.write(op.sql, op.rows[0])
                except BaseException:
                    plan.close()
                    raise
                if ok:
                    return after_write(plan)
            plan = resumed(first, plan)  # anything else, or a write not committed there
        conn = await self._take()
        try:
            wrote = self._wal.wrote if self._wal is not None else None
            lock = self._group.lock if self._group is not None else None
            result = await _run_on(conn, plan, lock, wrote)
        except GeneratorExit:  # a call its closed loop left pending, collected: no loop to
            raise  # give the connection back on (`moved_loop` stopped counting it)
        except BaseException:
            await asyncio.shield(self._give_back(conn))
            raise
        await self._give_back(conn)
        return result

    async def run_quick(self, make: Callable[[], Plan[T]]) -> T:
        """A get, put or put_writes, on the event loop's thread when nothing makes it wait.

        A hop to an aiosqlite thread and back cost 61 us on an idle machine (a one-row
        SELECT: 70 us through aiosqlite, 9 us with sqlite3 on the calling thread), more
        under load; the read of a 100-step thread's latest checkpoint takes 40 us and its
        put 80-130 us. So the loop's thread runs these plans itself, on a connection of its
        own that never waits: `busy_timeout` 0, so a lock held by another connection fails
        the plan's first statement at once, and the plan then goes to a pooled connection's
        thread as any other plan does (it waits there). Writes run there only in WAL mode
        with `synchronous="normal"`, where a commit does not sync to disk; with `"full"`
        they always take the thread. The connection does not checkpoint the WAL itself (a
        checkpoint syncs): the `WalCheckpointer`'s thread does.

        Where the loop's thread may not call sqlite3 at all (blockbuster raises for it under
        LangGraph's `langgraph dev`), the first refused call, made before anything changed,
        sends that plan and every later one to the threads (`_refused_on_loop`).
        """
        conn = self._quick_conn()
        if conn is not None and self._quick_lock.acquire(blocking=False):
            writes = self._options.synchronous == "normal"
            before = conn.total_changes
            refused: Exception | None = None
            try:
                result = _run_now(conn, make(), writes)
            except _WouldWait:
                pass
            except Exception as exc:
                if not _refused_on_loop(exc, conn, before):
                    raise
                refused = exc
            else:
                if self._wal is not None and conn.total_changes != before:
                    self._wal.wrote()
                return result
            finally:
                if conn.in_transaction:  # a plan cut short: never leave one open here
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                self._quick_lock.release()
            if refused is not None:  # the connection is free now: close it
                self._refuse_quick(refused)
        return await self.run(make())

    def _refuse_quick(self, exc: Exception) -> None:
        """The loop's thread may not call sqlite3: every plan runs on a thread from now on."""
        self._quick_refused = True
        quick, self._quick = self._quick, None
        if quick is not None:
            quick.close()
        _calls_go_to_threads(exc, f"SQLite saver of {self._path!r}")

    def _quick_conn(self) -> sqlite3.Connection | None:
        if self._closed or self._quick_refused:
            return None
        if self._quick is not None and self._quick_pid == os.getpid():
            return self._quick
        conn = None
        try:  # opening a file takes no lock; these settings are the connection's own
            target, uri = connect_target(self._path, self._options.read_only)
            conn = sqlite3.connect(
                target,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=64,
                uri=uri,
            )
            conn.execute(synchronous_pragma(self._options.synchronous))
            for pragma in self._valve:  # checkpoints are the thread's job (see `_wal`)
                conn.execute(pragma)
            if conn.execute("PRAGMA journal_mode").fetchone() != ("wal",):
                conn.close()  # not (yet) WAL: a commit would sync; try again next time
                return None
        except sqlite3.Error:
            if conn is not None:
                conn.close()
            return None  # busy now, or broken: the pooled connections will tell
        except Exception as exc:  # the loop's thread may not call sqlite3 (see run_quick)
            if conn is not None:
                conn.close()
            self._refuse_quick(exc)
            return None
        self._quick, self._quick_pid = conn, os.getpid()
        return conn

    async def aclose(self) -> None:
        self._closed = True
        if self._group is not None:
            await self._group.aclose()
        # Waits for a checkpoint in progress: on a thread, so the loop goes on meanwhile.
        if self._wal is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._wal.close)
        quick, self._quick = self._quick, None
        if quick is not None and self._quick_pid == os.getpid():
            with self._quick_lock:
                quick.close()
        while self._idle:
            conn = self._idle.pop()
            self._count -= 1
            await conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # they see the pool closed


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
        loop's thread may not call sqlite3: see `AsyncPooledExecutor.run_quick`)."""
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
