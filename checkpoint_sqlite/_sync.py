"""The sync flavor: `SqliteSaver`, and its executors on the standard library's `sqlite3`."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_base import CheckpointSaver, ConfigError, Plan, StorageError, run

from ._alone import run_alone
from ._backend import SqliteBackend
from ._conn import (
    MEMORY,
    READ_PROBE,
    ConnectOptions,
    connect_target,
    connection_pragmas,
    open_options,
    why_unopened,
)
from ._fs import check_filesystem
from ._group import GroupCommit
from ._requests import Execute, Query
from ._session import Sleep, autocommits, busy_pauses, is_busy, takes_write_lock, transaction
from ._wal import for_saver as wal_for_saver

__all__ = ["SqliteSaver"]

T = TypeVar("T")


def _perform(conn: sqlite3.Connection, op: Any) -> Any:
    """Perform one request of a wrapped plan on `conn`."""
    if type(op) is Query:
        return conn.execute(op.sql, op.params).fetchall()
    if type(op) is Execute:
        if len(op.rows) == 1:
            conn.execute(op.sql, op.rows[0])
        else:
            conn.executemany(op.sql, op.rows)
        return None
    if type(op) is Sleep:
        time.sleep(op.seconds)
        return None
    raise TypeError(f"not a SQLite request: {op!r}")


def _run_on(
    conn: sqlite3.Connection,
    plan: Plan[T],
    group: GroupCommit | None = None,
) -> T:
    """Run a plan in its transaction on `conn`; leave `conn` outside any transaction we began.

    `group`: a single-statement write is committed through it; any other plan takes its
    lock before its first write and holds it to its end (see `PooledExecutor`).
    """
    nested = conn.in_transaction
    autocommit = autocommits(conn)
    if autocommit and not nested:
        done, out = run_alone(conn, plan, group)
        if done:
            return out  # type: ignore[no-any-return]
        plan = out
    write_lock = group.lock if group is not None else None
    wrapped = transaction(plan, nested=nested, autocommit=autocommit)
    held = False

    def perform(op: Any) -> Any:
        nonlocal held
        if write_lock is not None and not held and takes_write_lock(op):
            write_lock.acquire()
            held = True
        return _perform(conn, op)

    try:
        return run(wrapped, perform)
    except BaseException:
        # KeyboardInterrupt and the like skip the plan's own rollback.
        if conn.in_transaction and not nested:
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
        raise
    finally:
        if held:
            assert write_lock is not None
            write_lock.release()


def open_connection(path: str, options: ConnectOptions) -> sqlite3.Connection:
    """A connection of the saver's own: autocommit (transactions are explicit), any thread."""
    target, uri = connect_target(path, options.read_only)
    pragmas = READ_PROBE if options.read_only else connection_pragmas(path, options.synchronous)
    try:
        conn = sqlite3.connect(
            target,
            timeout=options.timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
            uri=uri,
        )
        try:
            for pragma in pragmas:
                for pause in busy_pauses(options.timeout):
                    try:
                        conn.execute(pragma).fetchall()
                        break
                    except sqlite3.OperationalError as exc:
                        if pause is None or not is_busy(exc):
                            raise
                        time.sleep(pause)
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        from ._session import translate

        raise why_unopened(path, str(exc), options.read_only) or translate(exc) from exc
    return conn


class PooledExecutor:
    """Runs each plan on a connection of a pool: one database file, many threads.

    A thread takes an idle connection (or opens one) for one plan and gives it back: no
    lock is held around the pool, so threads read concurrently. Writes are ordered by
    SQLite's write lock and, among this saver's writers, by `writer_lock` (with `"normal"`)
    or the group commit (with `"full"`), both below.

    A put runs as its single statement, not as BEGIN, two INSERTs and COMMIT: the write lock
    is then held for one `sqlite3_step`, with no return to Python in between, so a writer
    on another connection rarely finds it taken. Finding it taken costs that writer at least
    the 1 ms first sleep of SQLite's busy handler. LangGraph saves checkpoints and writes
    from background threads at once: with `durability="async"` the agent graph of the
    benchmarks took 6.0 ms per turn instead of 8.0-8.6 ms (two runs of 11 interleaved
    rounds, 4 threads of 3 turns); with `durability="sync"`, 5.84-5.90 ms either way.

    With `synchronous="full"` a commit holds the write lock through an fsync, so writers of
    the saver collide often; there they queue on a lock of the saver instead (a Python lock
    wakes its waiter at once, SQLite's busy handler sleeps). Measured with 10 interleaved
    rounds: the agent graph with `durability="sync"` took 7.0 ms per turn instead of 10.1
    ms, and 16 writer threads put 1,581 instead of 1,219 checkpoints/s (8: 1,541 against
    1,499). Writers queued on that lock share commits (`_group.py`): whoever takes it
    commits every single-statement write queued behind it in one transaction, one fsync for
    all. 8 writer threads put 4,282 instead of 2,831 checkpoints/s and 32 put 2,827 instead
    of 1,929/s (`python -m benchmarks --backend sqlite-full --workload concurrency --flavor
    sync`, quick size, before and after).

    With `"normal"` the saver's writers take turns on `writer_lock` for a whole put or
    put_writes, serializing included (`checkpoint_base._plan.SerialWriters`). Taking it only
    around the statement made two writers slower (5,095 instead of 7,899 puts/s: each turn
    handed over between threads). Around the whole call, the threads that wait for their
    turn sleep on the lock instead of taking the GIL from the one writing, which gave it away
    during its statement and needs it back: writer threads each putting 10-step threads,
    with no pause, put 6,434 instead of 3,876 checkpoints/s with 32 threads and 6,470 instead
    of 4,868 with 16, the same within noise with 1, 2 and 8 (7,437 against 7,532/s with 2);
    the 99.9th percentile put took 81 instead of 106 ms with 32 (10 interleaved rounds of
    each, one process). The agent graph ran the same within noise (3-turn threads, 80
    interleaved rounds, four runs: -3% to +2% per turn with `durability="sync"`, 0% with
    `"async"`).

    WAL checkpoints run on a thread of their own (`WalCheckpointer`), not inside a
    caller's commit.

    Several connections cost their page caches: SQLite drops a connection's cache when
    another connection changed the WAL since its last transaction, so a read there starts
    cold (a missing thread 11.0 instead of 7.9 us, a 12-message checkpoint 28.3 instead of
    15.6 us). Sending every call to one connection while it was free (the pool only when it
    was busy) did not pay: the agent graph ran 1.33x instead of 1.36x and 1.29x instead of
    1.30x the official saver's turns/s (`durability="sync"`, 3 turns), 1.17x instead of
    1.20x (`"async"`), 1.27x instead of 1.28x (`"exit"`, 20 turns); 25 interleaved rounds.
    """

    def __init__(self, path: str, options: ConnectOptions) -> None:
        self._path = path
        self._options = options
        self._group = GroupCommit() if options.synchronous == "full" else None
        self._writer_lock = threading.Lock() if self._group is None else None
        self.writer_wait = min(options.timeout, threading.TIMEOUT_MAX)
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._wal, self._valve = wal_for_saver(path, options.synchronous)

    def _open(self) -> sqlite3.Connection:
        conn = open_connection(self._path, self._options)
        for pragma in self._valve:  # settings of this connection: they take no lock
            conn.execute(pragma)
        return conn

    @property
    def writer_lock(self) -> threading.Lock | None:
        """What the saver holds around a whole put or put_writes (`SerialWriters`): with
        `synchronous="normal"`; with `"full"` writers queue on the `GroupCommit` instead,
        which has them share commits."""
        if os.getpid() != self._pid:
            self._forked()
        return self._writer_lock

    def _forked(self) -> None:
        """In a forked child: the parent's connections are not ours to use, and a lock may
        have been held by a thread not copied."""
        self._idle, self._pid = [], os.getpid()
        if self._group is not None:
            self._group = GroupCommit()
        if self._writer_lock is not None:
            self._writer_lock = threading.Lock()

    def _take(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("the SQLite saver is closed")
        if os.getpid() != self._pid:
            self._forked()
        try:
            return self._idle.pop()  # atomic under the GIL
        except IndexError:
            return self._open()

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if self._closed or len(self._idle) >= self._options.max_idle or conn.in_transaction:
            conn.close()
        else:
            self._idle.append(conn)

    def run(self, plan: Plan[T]) -> T:
        conn = self._take()
        before = conn.total_changes
        try:
            result = _run_on(conn, plan, self._group)
        except Exception:
            self._give_back(conn)  # the plan's transaction was rolled back
            raise
        except BaseException:
            conn.close()  # interrupted mid-statement: its state is unknown
            raise
        if self._wal is not None and conn.total_changes != before:
            self._wal.wrote()
        self._give_back(conn)
        return result

    def close(self) -> None:
        self._closed = True
        if self._wal is not None:
            self._wal.close()
        while self._idle:
            self._idle.pop().close()


class SharedExecutor:
    """Runs plans one at a time on a single connection (`:memory:`, or one you passed in).

    An in-memory database lives in its connection, so every thread must use that one; the
    lock is held for one plan and never across a `list()` page boundary.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        owned: bool,
        prepare: Callable[[], Plan[None]] | None = None,
    ) -> None:
        self._conn = conn
        self._owned = owned
        self._lock = threading.Lock()
        self._prepare = prepare
        self._closed = False
        self._pid = os.getpid()

    def _forked(self, plan: Plan[Any]) -> None:
        """In a forked child: an in-memory database is the child's own copy (a new lock: the
        parent's may have been held by a thread the child does not have); a connection
        passed in refers to a file the parent still writes through it, which SQLite forbids."""
        if not self._owned:
            plan.close()
            raise StorageError(
                "this SqliteSaver runs on a sqlite3 connection opened before os.fork(), and "
                "SQLite forbids using one in a child process (it can corrupt the database): "
                "open the connection and the saver in the child, or build the saver from the "
                "path (SqliteSaver.from_conn_string(path) opens connections per process)"
            )
        self._lock, self._pid = threading.Lock(), os.getpid()

    def run(self, plan: Plan[T]) -> T:
        if self._pid != os.getpid():
            self._forked(plan)
        with self._lock:
            if self._closed:
                plan.close()
                raise StorageError("the SQLite saver is closed")
            if self._prepare is not None:  # first use of a connection passed in: set up
                _run_on(self._conn, self._prepare())
                self._prepare = None
            return _run_on(self._conn, plan)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._owned:
                self._conn.close()


class SqliteSaver(CheckpointSaver):
    """A LangGraph checkpointer on SQLite, sync flavor (`sqlite3` from the standard library).

    From a connection you opened (the saver sets up its tables on first use and never
    closes the connection):

        conn = sqlite3.connect("checkpoints.db", check_same_thread=False)
        graph = builder.compile(checkpointer=SqliteSaver(conn))

    Or let the saver open its own connections (WAL, `synchronous=NORMAL`, a pool of
    connections so that threads do not wait on each other):

        with SqliteSaver.from_conn_string("checkpoints.db") as saver:
            graph = builder.compile(checkpointer=saver)

    Durability: each `put` / `put_writes` is one transaction. With the saver's own
    connections a committed checkpoint survives a crash or kill of the process; a power
    loss may lose the last commits (WAL with `synchronous=NORMAL`). A kill in the middle
    of a `put` leaves the whole checkpoint or nothing.

    With `synchronous="normal"` the saver's own connections leave WAL checkpoints (copying
    the WAL into the database file, which syncs) to a daemon thread of the saver,
    `checkpointers-sqlite-wal`, so that a `put` does not wait for one; closing the saver
    stops it.

    Args:
        conn: An open `sqlite3.Connection`. Open it with `check_same_thread=False` to use
            the saver from several threads; calls are serialized on it. If it is inside a
            transaction of yours when the saver writes, the saver's writes join it (as a
            savepoint) and last once you commit.
        serde: The serializer (default: the package's safe msgpack serializer).
    """

    def __init__(self, conn: sqlite3.Connection, *, serde: SerializerProtocol | None = None):
        if not isinstance(conn, sqlite3.Connection):
            raise ConfigError(
                f"SqliteSaver(conn) takes an open sqlite3.Connection, got {conn!r:.100}; for a "
                "file path use `with SqliteSaver.from_conn_string(path) as saver:` or "
                "checkpoint_base.connect('sqlite:///' + path)"
            )
        backend = SqliteBackend()
        super().__init__(
            backend,
            executor=SharedExecutor(conn, owned=False, prepare=backend.setup),
            serde=serde,
        )

    @classmethod
    def open(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float | None = None,
        synchronous: str | None = None,
        read_only: bool | None = None,
        max_idle: int = 8,
    ) -> SqliteSaver:
        """Open a saver with connections of its own; call `setup()`, then `close()` it.

        Args:
            conn_string: A path, `:memory:`, or a `sqlite:///path.db` URL; the URL may carry
                `?timeout=...&synchronous=...`.
            serde: The serializer.
            timeout: Seconds to wait for another connection's lock before retrying
                (default 5).
            synchronous: `"normal"` (default: a commit survives a crash of the process) or
                `"full"` (it also survives a power loss; each commit waits for the disk).
            read_only: Open the file read-only (SQLite's `mode=ro`): reads work on a file
                this process may read but not write, or that it must not change; any write
                fails, and `setup()` only checks that the schema is up to date. The file must
                exist, and unless the directory is writable, its `-shm` file too (it exists
                while a process has the database open).
            max_idle: Idle connections kept for reuse.

        Raises:
            ConfigError: `conn_string` is not a SQLite path or URL, or an option is invalid.
        """
        path, options = open_options(
            conn_string,
            timeout=timeout,
            synchronous=synchronous,
            read_only=read_only,
            max_idle=max_idle,
        )
        executor: PooledExecutor | SharedExecutor
        if path == MEMORY:
            executor = SharedExecutor(open_connection(path, options), owned=True)
        else:
            check_filesystem(path)
            executor = PooledExecutor(path, options)
        saver = cls.__new__(cls)
        CheckpointSaver.__init__(saver, SqliteBackend(), executor=executor, serde=serde)
        saver.read_only = options.read_only
        return saver

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float | None = None,
        synchronous: str | None = None,
        read_only: bool | None = None,
    ) -> Iterator[SqliteSaver]:
        """Open a saver on a database file (or `:memory:`), set up, closed on exit.

        Args:
            conn_string: A path such as `"checkpoints.db"`, `":memory:"`, or a
                `sqlite:///path.db` URL.
            serde: The serializer.
            timeout: Seconds to wait for another connection's lock before retrying.
            synchronous: `"normal"` (default) or `"full"`, as for `open`.
            read_only: Open the file read-only, as for `open`.

        Yields:
            The saver, with its tables created or migrated.
        """
        saver = cls.open(
            conn_string, serde=serde, timeout=timeout, synchronous=synchronous, read_only=read_only
        )
        try:
            saver.setup()
            yield saver
        finally:
            saver.close()
