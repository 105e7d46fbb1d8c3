"""The async flavor's pool of connections on the saver's own file: `AsyncPooledExecutor`.

`aget_tuple`, `aput` and `aput_writes` take no hop to a connection's thread unless something
would make them wait: see `AsyncPooledExecutor.run_quick`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from checkpoint_base import Plan, StorageError, run

from ._aexecutor import _calls_go_to_threads, _refused_on_loop, _run_on, open_connection
from ._alone import DONE, after_write, resumed, run_alone, standalone_write
from ._conn import ConnectOptions, connect_target, synchronous_pragma
from ._group import AsyncGroupCommit
from ._requests import Execute, Query
from ._session import transaction
from ._sync import open_connection as sync_connection
from ._wal import for_saver as wal_for_saver

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["AsyncPooledExecutor"]

T = TypeVar("T")


class _WouldWait(Exception):
    """A quick plan met a lock, or a request it may not perform: run it on a thread."""


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
