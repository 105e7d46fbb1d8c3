"""The sync executor: runs PostgreSQL plans on a psycopg `Connection` or `ConnectionPool`.

With a pool, each plan takes a connection for its duration and gives it back: concurrent
callers never wait on each other here (no saver-wide lock). A single connection is shared
under a lock, since a plan's statements must not interleave with another thread's.

A connection that the server or a proxy closed is replaced, and the failed statement runs
once more on the new one, when that is safe: outside a transaction the statements are
idempotent (see `Query.idempotent`); inside one, only if the failure hit its first statement
and the plan did not start inside the caller's own transaction.

After a fork (gunicorn `--preload`, Celery prefork) the connections inherited are the
parent's: their sockets are shared with it, and a statement or a close on them in the child
would interleave with the parent's on the server's session. The child never uses or closes
them: a pool of the saver's is replaced by a new one like it, a connection passed in by a new
connection to the same server (as when one is lost); a pool passed in raises at once, since
only its owner knows how to open another.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from checkpoint_base import Plan, StorageError, run

from ._errors import FIRST_WAIT, answered, pool_timeout, probe_pool, translate
from ._query import Begin, Fetch, Query
from ._state import (
    PROBE,
    PrepareThreshold,
    Preparing,
    RunState,
    begin,
    reconnect_delays,
    transaction,
    worth_waiting,
    write_cursor,
)

__all__ = ["PostgresExecutor"]

T = TypeVar("T")
IDLE = psycopg.pq.TransactionStatus.IDLE
Conn = psycopg.Connection[Any]

_fork_lock = threading.Lock()
"""Held while an executor replaces what it inherited through a fork (`_after_fork`)."""


def _new_fork_lock() -> None:
    global _fork_lock
    _fork_lock = threading.Lock()  # a thread not copied into the child may have held it


os.register_at_fork(after_in_child=_new_fork_lock)


class _Run(RunState[Conn, AbstractContextManager[psycopg.Transaction]]):
    """One plan's connection, transaction and retry budget."""

    __slots__ = ()

    def begin(self) -> None:
        self.tx = begin(self.conn)
        self.statements = 0

    def commit(self) -> None:
        tx, self.tx = self.tx, None
        if tx is not None:
            tx.__exit__(None, None, None)

    def rollback(self) -> None:
        """Roll back (or, on a dead connection, forget) the plan's transaction."""
        tx, self.tx = self.tx, None
        if tx is not None:
            with contextlib.suppress(psycopg.Error):
                tx.__exit__(psycopg.Rollback, psycopg.Rollback(), None)


class PostgresExecutor:
    """Runs plans on a `Connection` or a `ConnectionPool`.

    Args:
        source: The connection or pool.
        owned: Close `source` in `close()` (true when the saver created it).
        prepare_threshold: None never prepares statements (safe behind PgBouncer in
            transaction mode); a number lets psycopg prepare by the connection's threshold;
            "auto" does that once a connection shows the server answers directly
            (`Preparing`).
        schema: For error messages.
        reconnect_timeout: Seconds to keep trying to replace a lost single connection while
            the server cannot be reached (a restart): then the operation fails.
        on_prepare: Told whether statements will be prepared, when "auto" settles it.
        reopen: Opens a pool like `source`, for a forked child (given with an owned pool).
    """

    def __init__(
        self,
        source: Conn | ConnectionPool[Any],
        *,
        owned: bool,
        prepare_threshold: PrepareThreshold,
        schema: str,
        reconnect_timeout: float = 30.0,
        on_prepare: Callable[[bool], None] | None = None,
        reopen: Callable[[], ConnectionPool[Any]] | None = None,
    ) -> None:
        self._pool = source if isinstance(source, ConnectionPool) else None
        self._connected = False  # the pool has given a connection (`_getconn`)
        self._conn = None if isinstance(source, ConnectionPool) else source
        self._owned = owned
        self._lock = threading.Lock()
        self._preparing = Preparing(prepare_threshold, on_prepare)
        self._schema = schema
        self._reconnect_timeout = reconnect_timeout
        self._dsn: tuple[str, str | None] | None = None
        if self._conn is not None:
            self._dsn = (self._conn.info.dsn, self._conn.info.password)
        self._reopen = reopen
        self._pid = os.getpid()
        self._finalizer = _closing(self, self._pool) if owned else None

    # -- public ----------------------------------------------------------------------------

    def run(self, plan: Plan[T]) -> T:
        """Run one plan on one connection (in one transaction if it begins one)."""
        if self._pid != os.getpid():
            try:
                self._after_fork()
            except BaseException:
                plan.close()
                raise
        if self._pool is None:
            with self._lock:
                conn = self._single()
                state = _Run(conn, conn.pgconn.transaction_status)
                state.replaceable = self._owned
                state.read_only_tries = 1
                try:
                    return self._drive(plan, state)
                finally:
                    self._conn = state.conn
        try:
            conn = self._getconn()
        except StorageError:
            raise
        except Exception as exc:
            raise translate(exc, self._schema) from exc
        state = _Run(conn, conn.pgconn.transaction_status)
        state.replaceable = True
        state.read_only_tries = self._pool.max_size + 1  # its old ones may all be stale
        try:
            return self._drive(plan, state)
        finally:
            if state.held:
                self._pool.putconn(state.conn)

    def close(self) -> None:
        """Close the pool or connection if the saver created it (in this process)."""
        if not self._owned or self._pid != os.getpid():
            return  # forked, and not used since: the parent's connections are not ours
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._pool is not None:
            self._pool.close()
        elif self._conn is not None:
            self._conn.close()

    # -- driving a plan --------------------------------------------------------------------

    def _drive(self, plan: Plan[T], state: _Run) -> T:
        if self._preparing.pending:
            self._probe(state.conn)
        try:
            result = run(plan, lambda request: self._execute(state, request))
            state.commit()
            return result
        except psycopg.Error as exc:  # from the commit
            raise translate(exc, self._schema) from exc
        finally:
            state.rollback()  # when an error left the transaction open

    def _execute(self, state: _Run, request: Query | Begin) -> Any:
        if isinstance(request, Begin):
            state.want_tx = state.tx is None and not state.outer_tx
            return None
        request = state.statement(request)
        while True:
            try:
                if state.want_tx and state.tx is None:
                    state.begin()
                result = self._perform(state.conn, request)
                break
            except psycopg.Error as exc:
                if self._preparing.refused(exc) and state.may_retry(request, lost=False):
                    continue  # unprepared this time, and from now on
                lost, pause = state.after_error(exc, request, self._reconnect_timeout)
                if pause is None:
                    if state.stale and self._pool is not None:
                        state.conn.close()  # the pool drops it instead of handing it out
                    raise translate(exc, self._schema) from exc
            if pause:
                time.sleep(pause)
            if lost:
                try:
                    self._replace(state)
                except StorageError:
                    raise
                except Exception as exc:  # the pool's own errors (PoolTimeout, ...)
                    raise translate(exc, self._schema) from exc
        if state.tx is not None:
            state.statements += 1
        return result

    def _getconn(self) -> Conn:
        """A connection of the pool; why there is none when the pool times out.

        The pool's first connection is waited for `FIRST_WAIT` seconds, then the executor
        connects once itself (`probe_pool`): a refused connection, a database or role that
        does not exist fail at once with the server's words; a server that answered but is
        not ready yet (`answered`: a failover's standby before its promotion) is waited for
        up to the pool's timeout. Later, the pool's own timeout applies, and the error says
        whether connecting fails or every connection is busy.
        """
        pool = self._pool
        assert pool is not None
        first = not self._connected
        try:
            conn = pool.getconn(timeout=min(FIRST_WAIT, pool.timeout) if first else None)
        except PoolTimeout as exc:
            probed = probe_pool(pool)
            if not first or (probed is not None and not answered(probed)):
                raise pool_timeout(exc, probed) from exc
            try:
                conn = pool.getconn(timeout=max(pool.timeout - FIRST_WAIT, 0.1))
            except PoolTimeout as again:
                raise pool_timeout(again, probe_pool(pool)) from again
        self._connected = True
        return cast(Conn, conn)

    def _probe(self, conn: Conn) -> None:
        """Settle `prepare_threshold="auto"` on `conn` (see `Preparing`), when it is idle:
        never a statement inside the caller's transaction."""
        if conn.pgconn.transaction_status != IDLE:
            return
        try:
            row = self._perform(conn, PROBE)
        except psycopg.Error:
            return  # a later connection settles it; nothing is prepared meanwhile
        self._preparing.decide(conn.info.backend_pid, row, conn.prepare_threshold is not None)

    def _perform(self, conn: Conn, query: Query) -> Any:
        if not conn.autocommit and conn.pgconn.transaction_status == IDLE:
            if query.untransacted:
                conn.autocommit = True
                try:
                    return self._perform_on(conn, query)
                finally:
                    with contextlib.suppress(psycopg.Error):  # a broken one is replaced
                        conn.autocommit = False
            # The caller's connection is not in autocommit: commit this statement ourselves.
            with transaction(conn):
                return self._perform_on(conn, query)
        return self._perform_on(conn, query)

    def _perform_on(self, conn: Conn, query: Query) -> Any:
        if query.fetch is Fetch.NONE:
            write_cursor(conn).execute(query.sql, query.params, prepare=self._preparing.prepare)
            return None
        with conn.cursor(binary=True, row_factory=tuple_row) as cur:
            cur.execute(query.sql, query.params, prepare=self._preparing.prepare)
            if query.fetch is Fetch.ALL:
                return cur.fetchall()
            if query.fetch is Fetch.ONE:
                return cur.fetchone()
            return None

    # -- connections -----------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: leave the parent's connections alone (never used, never
        closed: closing would end the parent's sessions) and take this process's own."""
        with _fork_lock:
            if self._pid == os.getpid():
                return  # another thread of this process did it
            if self._pool is not None:
                if self._reopen is None:
                    raise StorageError(
                        f"this process was forked from process {self._pid}, which opened the "
                        "psycopg_pool.ConnectionPool passed to the saver: its connections "
                        "belong to that process. Open the pool in each process after the "
                        "fork, or pass a conninfo: the saver then opens a pool of its own "
                        "in each process."
                    )
                self._pool = self._reopen()
                self._finalizer = _closing(self, self._pool)
            elif self._conn is not None:
                self._conn = self._connect_like(self._conn)
            self._lock = threading.Lock()  # a thread not copied may have held it
            self._pid = os.getpid()

    def _single(self) -> Conn:
        conn = self._conn
        assert conn is not None
        if conn.closed or conn.broken:
            conn = self._reconnect(conn)
        return conn

    def _replace(self, state: _Run) -> None:
        """Swap a lost connection for a working one (the plan's transaction died with it)."""
        state.rollback()
        if self._pool is not None:
            state.held = False
            if state.stale:  # a demoted primary: the others may reach it too, and answer
                state.conn.close()
            self._pool.putconn(state.conn)  # a closed or broken one is discarded, not reused
            drain = getattr(self._pool, "drain", None)  # psycopg_pool >= 3.3
            if drain is not None and state.stale and state.drain():
                # Every connection from before goes, those in use as they come back: the
                # next one is new, on whatever server is the primary now.
                drain()
            if not state.stale:
                self._pool.check()  # the others likely died with it (server restart)
            state.replaced(self._getconn())
            state.held = True
        else:
            state.replaced(self._reconnect(state.conn))

    def _reconnect(self, old: Conn) -> Conn:
        """A new connection with the settings of `old`, which the executor then owns."""
        with contextlib.suppress(psycopg.Error):
            old.close()
        return self._connect_like(old)

    def _connect_like(self, old: Conn) -> Conn:
        """`_reconnect` without closing `old`."""
        if self._dsn is None:
            raise StorageError("the PostgreSQL connection is closed and cannot be reopened")
        dsn, password = self._dsn
        extra: dict[str, Any] = {} if password is None else {"password": password}
        delays = reconnect_delays(self._reconnect_timeout)
        while True:
            try:
                conn = type(old).connect(
                    dsn, autocommit=old.autocommit, prepare_threshold=old.prepare_threshold, **extra
                )
                break
            except psycopg.Error as exc:
                delay = next(delays, None) if worth_waiting(exc) else None
                if delay is None:
                    raise translate(exc, self._schema) from exc
                time.sleep(delay)
        self._conn = conn
        self._owned = True
        return conn


def _closing(executor: PostgresExecutor, pool: ConnectionPool[Any] | None) -> Any:
    """Close the saver's own pool when the saver is dropped without `close()`."""
    if pool is None:
        return None
    return weakref.finalize(executor, _close_dropped, pool, os.getpid())


def _close_dropped(pool: ConnectionPool[Any], pid: int) -> None:
    """Close a pool whose saver was dropped unclosed, in the thread that dropped it.

    Left to itself, the pool is closed by its `__del__` in whichever thread lets go of it
    last, which can be one of its own workers (running a maintenance task): that worker
    cannot join itself, and Python prints the error at exit. Never in a forked child (the
    connections are the parent's) nor in a worker of the pool.
    """
    if os.getpid() != pid or threading.current_thread() in getattr(pool, "_workers", ()):
        return
    with contextlib.suppress(Exception):
        pool.close()
