"""The async flavor: `AsyncSqliteSaver`, and its executors on aiosqlite.

aiosqlite runs each connection in a thread of its own and hands every statement to it; a
plan's statements go to one connection, so a read is one hop and a `put` one (a single
statement). `aget_tuple` on the saver's own file takes no hop unless a lock is in the way:
see `AsyncPooledExecutor.run_quick_read`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_base import (
    CheckpointSaver,
    ConfigError,
    MissingDriverError,
    Plan,
    StorageError,
    arun,
    run,
)

from ._backend import SqliteBackend
from ._conn import MEMORY, ConnectOptions, connection_pragmas, open_options
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

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["AsyncSqliteSaver"]

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
    conn: aiosqlite.Connection, plan: Plan[T], write_lock: asyncio.Lock | None = None
) -> T:
    """Run a plan in its transaction on `conn`.

    `write_lock`: taken before the plan's first write and held to its end (see
    `AsyncPooledExecutor`).
    """
    nested = conn.in_transaction
    wrapped = transaction(plan, nested=nested, autocommit=autocommits(conn), one_statement=True)
    held = False

    async def perform(op: Any) -> Any:
        nonlocal held
        if write_lock is not None and not held and takes_write_lock(op):
            await write_lock.acquire()
            held = True
        return await _perform(conn, op)

    try:
        return await arun(wrapped, perform)
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


async def open_connection(path: str, options: ConnectOptions) -> aiosqlite.Connection:
    """A connection of the saver's own, in autocommit mode (transactions are explicit)."""
    driver = _driver()
    try:
        pending = driver.connect(
            path, timeout=options.timeout, isolation_level=None, cached_statements=256
        )
        _daemonize(pending)
        conn: aiosqlite.Connection = await pending
    except Exception as exc:
        if isinstance(exc, driver.Error):
            raise translate(exc) from exc
        raise
    try:
        for pragma in connection_pragmas(path, options.synchronous):
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
            raise translate(exc) from exc
        raise
    return conn


class _WouldWait(Exception):
    """A quick read met a lock, or a request it does not perform: run the plan on a thread."""


def _read_now(conn: sqlite3.Connection, plan: Plan[T]) -> T:
    """Run a read-only plan on `conn` in the calling thread, never waiting for a lock."""

    def perform(op: Any) -> Any:
        if type(op) is not Query:
            raise _WouldWait
        try:
            return conn.execute(op.sql, op.params).fetchall()
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise _WouldWait from exc
            raise translate(exc) from exc

    return run(plan, perform)


class AsyncPooledExecutor:
    """Runs each plan on a connection of a pool of at most `max_connections`.

    Connections are opened on demand and `max_idle` of them kept; a plan that finds every
    connection busy waits for one to come back. With `synchronous="full"` writing plans
    queue on a lock of the saver, as in the sync flavor's `PooledExecutor`: the agent graph
    on this saver took 9.5 instead of 11.8 ms per turn with `durability="sync"`, 8.6 instead
    of 9.9 ms with `"async"` (7 interleaved rounds, 4 threads of 3 turns); 8 and 16 writer
    tasks put 1,312 and 1,197 checkpoints/s with it, 1,270 and 1,157 without.
    """

    def __init__(self, path: str, options: ConnectOptions) -> None:
        self._path = path
        self._options = options
        self._write_lock = asyncio.Lock() if options.synchronous == "full" else None
        self._idle: list[aiosqlite.Connection] = []
        self._count = 0  # open connections, idle or in use
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._reader: sqlite3.Connection | None = None
        self._reader_pid = 0
        self._reader_lock = threading.Lock()

    async def _take(self) -> aiosqlite.Connection:
        while True:
            if self._closed:
                raise StorageError("the SQLite saver is closed")
            if self._idle:
                return self._idle.pop()
            if self._count < self._options.max_connections:
                self._count += 1
                try:
                    return await open_connection(self._path, self._options)
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

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _give_back(self, conn: aiosqlite.Connection) -> None:
        if self._closed or (len(self._idle) >= self._options.max_idle and not self._waiters):
            self._count -= 1
            await conn.close()
        else:
            self._idle.append(conn)
        self._wake()

    async def run(self, plan: Plan[T]) -> T:
        conn = await self._take()
        try:
            result = await _run_on(conn, plan, self._write_lock)
        except BaseException:
            await asyncio.shield(self._give_back(conn))
            raise
        await self._give_back(conn)
        return result

    async def run_quick_read(self, make: Callable[[], Plan[T]]) -> T:
        """A read of one checkpoint, on the event loop's thread when no lock is in the way.

        A hop to an aiosqlite thread and back cost 61 us on an idle machine (a one-row
        SELECT: 70 us through aiosqlite, 9 us with sqlite3 on the calling thread), more
        under load, where the read of a 100-step thread's latest checkpoint takes 40 us.
        The event loop's thread runs it on a read-only connection that never waits for a
        lock (`busy_timeout` 0): in WAL mode a reader rarely meets one; when it does, the
        read goes to a pooled connection's thread, as any other plan does. The rows are
        deserialized on the loop's thread either way.
        """
        reader = self._quick_reader()
        if reader is not None and self._reader_lock.acquire(blocking=False):
            try:
                return _read_now(reader, make())
            except _WouldWait:
                pass
            finally:
                self._reader_lock.release()
        return await self.run(make())

    def _quick_reader(self) -> sqlite3.Connection | None:
        if self._closed:
            return None
        if self._reader is not None and self._reader_pid == os.getpid():
            return self._reader
        try:  # opening a file takes no lock
            conn = sqlite3.connect(
                self._path,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=64,
            )
            conn.execute("PRAGMA query_only=1")
        except sqlite3.Error:
            return None  # the pooled connections will report what is wrong
        self._reader, self._reader_pid = conn, os.getpid()
        return conn

    async def aclose(self) -> None:
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None and self._reader_pid == os.getpid():
            with self._reader_lock:
                reader.close()
        while self._idle:
            conn = self._idle.pop()
            self._count -= 1
            await conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # they see the pool closed


class AsyncSharedExecutor:
    """Runs plans one at a time on a single connection (`:memory:`, or one you passed in)."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        owned: bool,
        prepare: Callable[[], Plan[None]] | None = None,
    ) -> None:
        self._conn = conn
        self._owned = owned
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

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            if self._owned:
                await self._conn.close()


class AsyncSqliteSaver(CheckpointSaver):
    """A LangGraph checkpointer on SQLite, async flavor (aiosqlite).

    From a connection you opened (the saver sets up its tables on first use and never
    closes the connection):

        async with aiosqlite.connect("checkpoints.db") as conn:
            graph = builder.compile(checkpointer=AsyncSqliteSaver(conn))

    Or let the saver open its own connections (WAL, `synchronous=NORMAL`, a small pool):

        async with AsyncSqliteSaver.from_conn_string("checkpoints.db") as saver:
            graph = builder.compile(checkpointer=saver)

    Sync methods work from other threads while the saver's event loop runs; from inside
    that loop they raise `SyncCallInEventLoopError` at once (waiting would deadlock).
    Close the saver (or use `async with`) to release its connections. The connections it
    opens itself run on daemon threads, so one left open does not keep the process alive; a
    connection you pass in is yours, thread included.

    Durability: as for `SqliteSaver`: every write is one transaction; committed
    checkpoints survive a crash of the process; a kill mid-`put` leaves all or nothing.

    Args:
        conn: An open `aiosqlite.Connection`; calls are serialized on it. If it is inside a
            transaction of yours when the saver writes, the saver's writes join it (as a
            savepoint) and last once you commit.
        serde: The serializer (default: the package's safe msgpack serializer).
    """

    def __init__(self, conn: aiosqlite.Connection, *, serde: SerializerProtocol | None = None):
        if not isinstance(conn, _driver().Connection):
            raise ConfigError(
                f"AsyncSqliteSaver(conn) takes an open aiosqlite.Connection, got {conn!r:.100}; "
                "for a file path use `async with AsyncSqliteSaver.from_conn_string(path) as "
                "saver:` or `await checkpoint_base.aconnect('sqlite:///' + path)`"
            )
        backend = SqliteBackend()
        super().__init__(
            backend,
            aexecutor=AsyncSharedExecutor(conn, owned=False, prepare=backend.setup),
            serde=serde,
        )

    @classmethod
    async def open(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float | None = None,
        synchronous: str | None = None,
        max_idle: int = 4,
        max_connections: int = 16,
    ) -> AsyncSqliteSaver:
        """Open a saver with connections of its own; `await asetup()`, then `aclose()` it.

        Args:
            conn_string: A path, `:memory:`, or a `sqlite:///path.db` URL; the URL may carry
                `?timeout=...&synchronous=...`.
            serde: The serializer.
            timeout: Seconds to wait for another connection's lock before retrying
                (default 5).
            synchronous: `"normal"` (default: a commit survives a crash of the process) or
                `"full"` (it also survives a power loss; each commit waits for the disk).
            max_idle: Idle connections (each one a thread) kept for reuse.
            max_connections: At most this many connections at once.

        Raises:
            ConfigError: `conn_string` is not a SQLite path or URL, or an option is invalid.
            MissingDriverError: aiosqlite is not installed.
        """
        _driver()
        path, options = open_options(
            conn_string,
            timeout=timeout,
            synchronous=synchronous,
            max_idle=max_idle,
            max_connections=max_connections,
        )
        executor: AsyncPooledExecutor | AsyncSharedExecutor
        if path == MEMORY:
            executor = AsyncSharedExecutor(await open_connection(path, options), owned=True)
        else:
            executor = AsyncPooledExecutor(path, options)
        saver = cls.__new__(cls)
        CheckpointSaver.__init__(saver, SqliteBackend(), aexecutor=executor, serde=serde)
        return saver

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float | None = None,
        synchronous: str | None = None,
    ) -> AsyncIterator[AsyncSqliteSaver]:
        """Open a saver on a database file (or `:memory:`), set up, closed on exit.

        Args:
            conn_string: A path such as `"checkpoints.db"`, `":memory:"`, or a
                `sqlite:///path.db` URL.
            serde: The serializer.
            timeout: Seconds to wait for another connection's lock before retrying.
            synchronous: `"normal"` (default) or `"full"`, as for `open`.

        Yields:
            The saver, with its tables created or migrated.
        """
        saver = await cls.open(conn_string, serde=serde, timeout=timeout, synchronous=synchronous)
        try:
            await saver.asetup()
            yield saver
        finally:
            await saver.aclose()
