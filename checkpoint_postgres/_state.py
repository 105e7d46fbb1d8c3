"""What the sync and the async executor share: the retry rule of a plan run, and how long
to keep trying to reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, Literal, TypeVar

import psycopg
from psycopg import pq
from psycopg.rows import tuple_row

from ._errors import connection_lost, read_only, reports_read_only, retryable_conflict
from ._query import Fetch, Query

__all__ = [
    "AUTO",
    "PROBE",
    "PrepareThreshold",
    "Preparing",
    "RunState",
    "aenter",
    "atransaction",
    "begin",
    "reconnect_delays",
    "transaction",
    "worth_waiting",
]

AUTO: Literal["auto"] = "auto"
PrepareThreshold = int | None | Literal["auto"]
"""A saver's `prepare_threshold`: an int (psycopg prepares by the connection's threshold),
None (never prepare), or `AUTO` (prepare when the server itself answers, see `Preparing`)."""

PROBE = Query(b"SELECT pg_backend_pid()", (), Fetch.ONE)
"""What `Preparing.decide` compares with the process id the connection was given."""

# A prepared statement of the connection's went missing, or a name is taken already: the
# statements did not reach the session that prepared them (a pooler).
_PREPARED_GONE = frozenset({"26000", "42P05"})


class Preparing:
    """Whether an executor asks psycopg to prepare its statements (`execute(prepare=...)`).

    With `AUTO` nothing is prepared until a connection has been probed. A server reports its
    process id when a session starts, and `pg_backend_pid()` returns the same id on a direct
    connection; a pooler (PgBouncer, PgCat and others) gives its clients an id of its own, and
    in transaction mode a client's statements may each run on another server session, where
    a statement prepared on the first does not exist. So the ids agree: prepare by the
    connection's threshold; they differ: never prepare. Should a prepared statement go missing
    all the same (a pooler that passes the id through), preparing stops for good
    (`refused`), and the statement may run again unprepared.

    Args:
        threshold: The saver's `prepare_threshold`.
        on_change: Called with True when statements will be prepared, False when not, each
            time `AUTO` settles it (the backend picks its statements by it).
    """

    __slots__ = ("_auto", "_on_change", "pending", "prepare")

    def __init__(
        self, threshold: PrepareThreshold, on_change: Callable[[bool], None] | None = None
    ) -> None:
        self._auto = threshold == AUTO
        self._on_change = on_change
        self.pending = self._auto
        """A connection is still to be probed."""
        self.prepare: bool | None = None if isinstance(threshold, int) else False
        """`prepare=` of every execute: None lets psycopg decide, False never prepares."""

    def decide(self, backend_pid: int, row: Any, allowed: bool = True) -> None:
        """Settle `AUTO` from a connection's `backend_pid` and its `PROBE` row; `allowed`
        is false when the connection itself never prepares (its `prepare_threshold` is
        None), so the statements for unprepared use stay."""
        self.pending = False
        self._set(allowed and row is not None and row[0] == backend_pid)

    def refused(self, exc: psycopg.Error) -> bool:
        """Stop preparing after a prepared statement went missing; True when that happened."""
        if self._auto and self.prepare is None and exc.sqlstate in _PREPARED_GONE:
            self._set(False)
            return True
        return False

    def _set(self, direct: bool) -> None:
        self.prepare = None if direct else False
        if self._on_change is not None:
            self._on_change(direct)


# The server refuses connections while it stops or starts (a restart, a failover): wait.
_WAIT_STATES = frozenset({"57P01", "57P02", "57P03"})
_PERMANENT = ("password", "authentication", "does not exist", "permission denied", "pg_hba.conf")


def worth_waiting(exc: BaseException) -> bool:
    """Whether a failed connection attempt may succeed later (not bad credentials, no such
    database, ...): no answer at all, or a server shutting down or starting up."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    if state is not None:
        return state in _WAIT_STATES or state.startswith("08")
    # A failed connection attempt carries no SQLSTATE, only libpq's text: waiting cannot fix
    # a refusal of who we are or where we go; anything else (refused, reset, shutting down,
    # starting up, timed out) may pass.
    text = str(exc).lower()
    return not any(word in text for word in _PERMANENT)


def reconnect_delays(timeout: float) -> Iterator[float]:
    """Pauses between connection attempts: 50 ms doubling to 1 s, until `timeout` is spent."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while (left := deadline - time.monotonic()) > 0:
        yield min(delay, left)
        delay = min(delay * 2, 1.0)


def begin(conn: psycopg.Connection[Any]) -> psycopg.Transaction:
    """The entered transaction of what `with conn.transaction():` opens on an idle `conn`,
    undone when the entry is interrupted.

    The sync side of `aenter`: Ctrl-C (KeyboardInterrupt) while the BEGIN is on its way
    cannot be held off, and psycopg before 3.3.7 left the connection in the transaction it
    began, counted as entered, and the generator of `conn.transaction()` with it: nothing
    could roll it back. So the `Transaction` is made here (as `conn.transaction()` makes it
    outside pipeline mode), and rolled back if the connection is still in a transaction
    after a failed entry (later psycopg versions undo it themselves); if that fails too, the
    connection is closed (the executor replaces a closed connection, the pool discards it).
    """
    tx = psycopg.Transaction(conn)
    try:
        tx.__enter__()
    except BaseException:
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            with contextlib.suppress(Exception):
                tx.__exit__(psycopg.Rollback, psycopg.Rollback(tx), None)
            if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                conn.close()
        raise
    return tx


@contextlib.contextmanager
def transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """`with conn.transaction():`, begun by `begin`."""
    tx = begin(conn)
    try:
        yield
    except BaseException as exc:
        if not tx.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        tx.__exit__(None, None, None)


async def aenter(cm: contextlib.AbstractAsyncContextManager[Any]) -> None:
    """`await cm.__aenter__()` for `conn.transaction()`, never cut short by a cancellation.

    psycopg before 3.3.7 did not undo a transaction entry cancelled once its BEGIN (or
    SAVEPOINT) was on its way: the connection stayed in the transaction, which psycopg still
    counted as entered since `__aexit__` never runs after a failed `__aenter__`. Every later
    plan on that connection then ran inside it and never committed, and the connection's own
    `commit()` refused to run. So the entry runs to its end in a task of its own; when the
    caller is cancelled meanwhile, the transaction it opened is rolled back before the
    cancellation goes on.
    """
    entering = asyncio.ensure_future(cm.__aenter__())
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        await asyncio.wait((entering,))
        if not entering.cancelled() and entering.exception() is None:
            with contextlib.suppress(Exception):  # a broken connection: nothing to undo
                await cm.__aexit__(psycopg.Rollback, psycopg.Rollback(), None)
        raise


@contextlib.asynccontextmanager
async def atransaction(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """`async with conn.transaction():`, entered by `aenter`."""
    cm = conn.transaction()
    await aenter(cm)
    try:
        yield
    except BaseException as exc:
        if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await cm.__aexit__(None, None, None)


C = TypeVar("C", bound=psycopg.BaseConnection[Any])
X = TypeVar("X")


class RunState(Generic[C, X]):
    """One plan's connection `C`, its open transaction `X` if any, and its retry budget.

    A failed statement may run again: outside a transaction when it is idempotent (it
    committed on its own, or not at all); inside one only after a lost connection hit the
    first statement (nothing of the transaction can have committed). Never when the plan
    started inside the caller's own transaction: that transaction is gone with the
    connection, and continuing on a new one would split it. The first retry is immediate
    (a dropped idle connection); later ones wait, within the reconnect timeout, for a server
    that is restarting or a proxy that cannot reach it yet.

    A write refused as read-only (SQLSTATE 25006) on a pooled connection, or on a single one
    of the saver's own making (`replaceable`), is taken the same way: the connection may
    reach a primary that a failover demoted or fenced (Aurora's old writer, a Patroni
    switchover), while a new connection finds the new one (a DNS name that moved,
    `target_session_attrs=read-write` over several hosts). The connection is `stale`:
    closed, never handed back to a pool, where every later write would meet the same
    refusal; the pool is drained (psycopg_pool 3.3 and later), so that the others from
    before go too. The statement runs again at once, on the next connection, as long as
    `read_only_tries` lasts: for a pool one more than its size, as an older psycopg_pool
    may still hand out connections from before. A new connection that reports a read-only
    server (`in_hot_standby`, `default_transaction_read_only`: PostgreSQL 14 and later)
    gets the last try: the server the saver is pointed at takes no writes.
    """

    __slots__ = (
        "conn",
        "delays",
        "drained",
        "held",
        "outer_tx",
        "read_only_tries",
        "replaceable",
        "stale",
        "statements",
        "tx",
        "want_tx",
    )

    def __init__(self, conn: C, status: int) -> None:
        self.conn = conn
        self.held = True  # false while a pooled connection is being swapped
        self.outer_tx = status != pq.TransactionStatus.IDLE
        self.want_tx = False  # the plan began a transaction: open it before its next statement
        self.tx: X | None = None
        self.statements = 0  # run inside `tx` so far
        self.delays: Iterator[float] | None = None
        self.stale = False  # the connection refused a write as read-only: close, not reuse
        self.replaceable = False  # set by the executor: not a single connection the caller owns
        self.read_only_tries = 0  # set by the executor
        self.drained = False

    def statement(self, query: Query) -> Query:
        """`query`, or its `unsynced` form when it will be a transaction of its own."""
        if query.unsynced is None or self.outer_tx or self.want_tx or self.tx is not None:
            return query
        return dataclasses.replace(query, sql=query.unsynced, unsynced=None)

    def may_retry(self, query: Query, lost: bool) -> bool:
        """Whether the statement that just failed may run again."""
        if self.outer_tx:
            return False
        if self.want_tx:
            return lost and self.statements == 0
        return query.idempotent

    def after_error(
        self, exc: psycopg.Error, query: Query, timeout: float
    ) -> tuple[bool, float | None]:
        """What to do after `query` failed with `exc`.

        Returns:
            (whether the connection is lost and must be replaced, seconds to wait before
            running `query` again, or None when it must not run again).
        """
        lost = connection_lost(exc, self.conn)
        if not lost and read_only(exc) and self.replaceable and not self.outer_tx:
            self.stale = True
            if self.read_only_tries > 0:
                self.read_only_tries -= 1
                return True, 0.0 if self.may_retry(query, lost=True) else None
        retry = (lost or retryable_conflict(exc)) and self.may_retry(query, lost)
        return lost, self.pause(timeout) if retry else None

    def drain(self) -> bool:
        """Whether to drain the pool now: once a run, at its first stale connection."""
        first, self.drained = not self.drained, True
        return first

    def replaced(self, conn: C) -> None:
        """`conn` took the place of the lost or stale one."""
        self.conn = conn
        if self.stale and reports_read_only(conn):
            self.read_only_tries = 0  # this one says so itself: the last try
        self.stale = False

    def pause(self, timeout: float) -> float | None:
        """Seconds to wait before the next retry, or None when the budget is spent."""
        if self.delays is None:
            self.delays = reconnect_delays(timeout)
            return 0.0
        return next(self.delays, None)


WRITE_CURSOR = "_checkpointers_write_cursor"
"""Attribute of a connection holding the cursor its writes reuse (see `write_cursor`)."""


def write_cursor(conn: Any) -> Any:
    """The cursor `conn`'s statements that return no rows run on, kept on the connection.

    A fresh cursor starts with empty adapter caches: a put through one cost 256 us of client
    CPU, through a kept one 237 us (psycopg 3.3, the benchmarks' 100-step recording). Only
    writes reuse it, so the cursor never keeps a large result alive. The connection and its
    cursor point at each other; the garbage collector frees both once the connection is
    dropped. Works for a `Connection` and an `AsyncConnection` alike (`cursor()` is not a
    coroutine on either).
    """
    cur = getattr(conn, WRITE_CURSOR, None)
    if cur is None or cur.closed:
        cur = conn.cursor(binary=True, row_factory=tuple_row)
        setattr(conn, WRITE_CURSOR, cur)
    return cur
