"""The async executor: runs PostgreSQL plans on an `AsyncConnection` or `AsyncConnectionPool`.

The twin of `_executor.py`, awaiting where that one blocks: same retry rule (`RunState`), same
statements. With a pool, no lock: each plan holds one pooled connection while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from checkpoint_base import ConfigError, Plan, StorageError, arun

from ._errors import FIRST_WAIT, answered, aprobe_pool, pool_timeout, translate
from ._query import Begin, Fetch, Query
from ._state import (
    PROBE,
    PrepareThreshold,
    Preparing,
    RunState,
    aenter,
    atransaction,
    reconnect_delays,
    worth_waiting,
    write_cursor,
)

__all__ = ["AsyncPostgresExecutor"]

_log = logging.getLogger("checkpoint_postgres")

T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]
IDLE = psycopg.pq.TransactionStatus.IDLE


class _ARun(RunState[AConn, AbstractAsyncContextManager[psycopg.AsyncTransaction]]):
    """One plan's connection, transaction and retry budget."""

    __slots__ = ()

    async def begin(self) -> None:
        tx = self.conn.transaction()
        await aenter(tx)
        self.tx = tx
        self.statements = 0

    async def commit(self) -> None:
        tx, self.tx = self.tx, None
        if tx is not None:
            await tx.__aexit__(None, None, None)

    async def rollback(self) -> None:
        """Roll back (or, on a dead connection, forget) the plan's transaction."""
        tx, self.tx = self.tx, None
        if tx is not None:
            with contextlib.suppress(psycopg.Error):
                await tx.__aexit__(psycopg.Rollback, psycopg.Rollback(), None)


class AsyncPostgresExecutor:
    """Runs plans on an `AsyncConnection` or an `AsyncConnectionPool`.

    Args:
        source: The connection or pool. A pool that is not open yet is opened on first use.
        owned: Close `source` in `aclose()` (true when the saver created it).
        prepare_threshold: As for `PostgresExecutor`.
        schema: For error messages.
        reconnect_timeout: Seconds to keep trying to replace a lost single connection while
            the server cannot be reached (a restart): then the operation fails.
        on_prepare: As for `PostgresExecutor`.
        reopen: Makes a pool like `source` (given with an owned pool): the pool's tasks and
            locks belong to the event loop that opened it, so when the saver moves to
            another loop (`moved_loop`) it takes a new pool there.
    """

    def __init__(
        self,
        source: AConn | AsyncConnectionPool[Any],
        *,
        owned: bool,
        prepare_threshold: PrepareThreshold,
        schema: str,
        reconnect_timeout: float = 30.0,
        on_prepare: Callable[[bool], None] | None = None,
        reopen: Callable[[], AsyncConnectionPool[Any]] | None = None,
    ) -> None:
        self._pool = source if isinstance(source, AsyncConnectionPool) else None
        self._connected = False  # the pool has given a connection (`_getconn`)
        self._conn = None if isinstance(source, AsyncConnectionPool) else source
        self._owned = owned
        self._opened = not owned
        self._lock: asyncio.Lock | None = None
        self._preparing = Preparing(prepare_threshold, on_prepare)
        self._schema = schema
        self._reconnect_timeout = reconnect_timeout
        self._dsn: tuple[str, str | None] | None = None
        if self._conn is not None:
            self._dsn = (self._conn.info.dsn, self._conn.info.password)
        self._reopen = reopen
        self._stale_pool = False
        self._pool_loop: asyncio.AbstractEventLoop | None = None  # a passed pool's loop
        self._guard: asyncio.Task[None] | None = None
        self._returning: set[asyncio.Task[None]] = set()  # connections on their way back

    # -- public ----------------------------------------------------------------------------

    async def run(self, plan: Plan[T]) -> T:
        """Run one plan on one connection (in one transaction if it begins one)."""
        if self._pool is None:
            if self._lock is None:  # created here: it must belong to the running loop
                self._lock = asyncio.Lock()
            async with self._lock:
                conn = await self._single()
                state = _ARun(conn, conn.pgconn.transaction_status)
                state.replaceable = self._owned
                state.read_only_tries = 1
                try:
                    return await self._drive(plan, state)
                finally:
                    self._conn = state.conn
        try:
            self._check_pool()
        except BaseException:
            plan.close()
            raise
        if self._pool_loop is None and self._reopen is None:
            self._pool_loop = asyncio.get_running_loop()
        try:
            if not self._opened:
                await self._pool.open()
                self._opened = True
                self._guard = asyncio.get_running_loop().create_task(
                    _close_at_shutdown(weakref.ref(self._pool)), name="checkpointers-pool-guard"
                )
            conn = await self._getconn()
        except StorageError:
            raise
        except Exception as exc:
            raise translate(exc, self._schema) from exc
        state = _ARun(conn, conn.pgconn.transaction_status)
        state.replaceable = True
        state.read_only_tries = self._pool.max_size + 1  # its old ones may all be stale
        try:
            return await self._drive(plan, state)
        finally:
            if state.held:
                self._give_back(state.conn)

    def moved_loop(self) -> None:
        """The saver moved to another event loop, the last one stopped: the lock was bound
        to it, and so were the pool's tasks. The saver's own pool is left to the garbage
        collector (closing it needs its loop; its connections close when collected) and a
        new one opens here; a pool passed in cannot be replaced: each plan on another loop
        than the one it was first used on then raises an error that says so (back on that
        loop, it works again)."""
        self._lock = None
        self._guard = None  # it was the stopped loop's
        if self._pool is None:
            return  # a connection runs on whichever loop awaits it
        if self._reopen is None:  # a plan here says so (closing the pool is its owner's)
            loop = asyncio.get_running_loop()
            self._stale_pool = self._pool_loop is not None and loop is not self._pool_loop
            return
        self._pool, self._opened = self._reopen(), False

    def _check_pool(self) -> None:
        if self._stale_pool:
            raise ConfigError(
                "the psycopg_pool.AsyncConnectionPool passed to AsyncPostgresSaver was "
                "opened on another event loop, which has stopped: its tasks ran there. "
                "Open the pool and the saver on the event loop that uses them (inside the "
                "same asyncio.run), or pass a conninfo: the saver then opens a pool of its "
                "own on each loop it moves to."
            )

    async def aclose(self) -> None:
        """Wait for the connections on their way back to the pool; close the pool or
        connection if the saver created it."""
        loop = asyncio.get_running_loop()  # a return left on a stopped loop never ends
        returning = [task for task in self._returning if task.get_loop() is loop]
        if returning:
            await asyncio.gather(*returning, return_exceptions=True)
        if not self._owned:
            return
        if self._pool is not None:
            await self._pool.close()
            if self._guard is not None:
                self._guard.cancel()
                self._guard = None
        elif self._conn is not None:
            await self._conn.close()

    # -- driving a plan --------------------------------------------------------------------

    async def _drive(self, plan: Plan[T], state: _ARun) -> T:
        if self._preparing.pending:
            await self._probe(state.conn)
        try:
            result = await arun(plan, lambda request: self._execute(state, request))
            await state.commit()
            return result
        except psycopg.Error as exc:  # from the commit
            raise translate(exc, self._schema) from exc
        finally:
            await state.rollback()  # when an error left the transaction open

    async def _execute(self, state: _ARun, request: Query | Begin) -> Any:
        if isinstance(request, Begin):
            state.want_tx = state.tx is None and not state.outer_tx
            return None
        request = state.statement(request)
        while True:
            try:
                if state.want_tx and state.tx is None:
                    await state.begin()
                result = await self._perform(state.conn, request)
                break
            except psycopg.Error as exc:
                if self._preparing.refused(exc) and state.may_retry(request, lost=False):
                    continue  # unprepared this time, and from now on
                lost, pause = state.after_error(exc, request, self._reconnect_timeout)
                if pause is None:
                    if state.stale and self._pool is not None:
                        await state.conn.close()  # the pool drops it instead of handing it out
                    raise translate(exc, self._schema) from exc
            if pause:
                await asyncio.sleep(pause)
            if lost:
                try:
                    await self._replace(state)
                except StorageError:
                    raise
                except Exception as exc:  # the pool's own errors (PoolTimeout, ...)
                    raise translate(exc, self._schema) from exc
        if state.tx is not None:
            state.statements += 1
        return result

    async def _probe(self, conn: AConn) -> None:
        """`PostgresExecutor._probe`, awaited."""
        if conn.pgconn.transaction_status != IDLE:
            return
        try:
            row = await self._perform(conn, PROBE)
        except psycopg.Error:
            return
        self._preparing.decide(conn.info.backend_pid, row, conn.prepare_threshold is not None)

    async def _perform(self, conn: AConn, query: Query) -> Any:
        if not conn.autocommit and conn.pgconn.transaction_status == IDLE:
            if query.untransacted:
                await conn.set_autocommit(True)
                try:
                    return await self._perform_on(conn, query)
                finally:
                    with contextlib.suppress(psycopg.Error):  # a broken one is replaced
                        await conn.set_autocommit(False)
            # The caller's connection is not in autocommit: commit this statement ourselves.
            async with atransaction(conn):
                return await self._perform_on(conn, query)
        return await self._perform_on(conn, query)

    async def _perform_on(self, conn: AConn, query: Query) -> Any:
        if query.fetch is Fetch.NONE:
            await write_cursor(conn).execute(
                query.sql, query.params, prepare=self._preparing.prepare
            )
            return None
        async with conn.cursor(binary=True, row_factory=tuple_row) as cur:
            await cur.execute(query.sql, query.params, prepare=self._preparing.prepare)
            if query.fetch is Fetch.ALL:
                return await cur.fetchall()
            if query.fetch is Fetch.ONE:
                return await cur.fetchone()
            return None

    # -- connections -----------------------------------------------------------------------

    async def _single(self) -> AConn:
        conn = self._conn
        assert conn is not None
        if conn.closed or conn.broken:
            conn = await self._reconnect(conn)
        return conn

    async def _replace(self, state: _ARun) -> None:
        """Swap a lost connection for a working one (the plan's transaction died with it)."""
        await state.rollback()
        if self._pool is not None:
            state.held = False
            if state.stale:  # a demoted primary: the others may reach it too, and answer
                await state.conn.close()
            self._give_back(state.conn)  # a closed or broken connection is discarded
            drain = getattr(self._pool, "drain", None)  # psycopg_pool >= 3.3
            if drain is not None and state.stale and state.drain():
                await drain()  # `PostgresExecutor._replace`
            if not state.stale:
                await self._pool.check()  # the others likely died with it (server restart)
            state.replaced(await self._getconn())
            state.held = True
        else:
            state.replaced(await self._reconnect(state.conn))

    async def _getconn(self) -> AConn:
        """Async twin of the sync executor's `_getconn`."""
        pool = self._pool
        assert pool is not None
        first = not self._connected
        try:
            conn = await pool.getconn(timeout=min(FIRST_WAIT, pool.timeout) if first else None)
        except PoolTimeout as exc:
            probed = await aprobe_pool(pool)
            if not first or (probed is not None and not answered(probed)):
                raise pool_timeout(exc, probed) from exc
            try:
                conn = await pool.getconn(timeout=max(pool.timeout - FIRST_WAIT, 0.1))
            except PoolTimeout as again:
                raise pool_timeout(again, await aprobe_pool(pool)) from again
        self._connected = True
        return cast(AConn, conn)

    def _give_back(self, conn: AConn) -> None:
        """Return a pooled connection where no cancellation of the caller reaches it.

        psycopg_pool's `putconn` may wait for the pool's lock (or roll back or close the
        connection) before the connection is back: a cancellation landing there dropped it,
        and the pool counted it as taken for ever. Its first step runs here, as a plain call:
        nothing can cancel it, and in the usual case it ends there, the connection back
        before the caller goes on. What is left when it has to wait runs on a task of its
        own, which `aclose` waits for.

        Awaited under `asyncio.shield`, the return cost each call about 20 us (a loop
        iteration; 8% of a get on the pool). All of it on a task, the connection came back
        an iteration later: 16 writers sharing a pool of 16 connections each found the pool
        empty at their next put and waited for it, for a fifth fewer puts per second (median
        of 15 interleaved rounds: 3,612 with the whole return on a task, 4,514 with its
        first step here).
        """
        assert self._pool is not None
        returning = self._pool.putconn(conn)
        try:
            waits_on = returning.send(None)
        except StopIteration:
            return  # back in the pool
        except Exception as exc:
            _log.warning("returning a connection to its pool failed: %r", exc)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a call collected after its loop stopped: nothing can wait now
            with contextlib.suppress(Exception):
                returning.close()
            return
        rest = _finish(_Resumed(returning, waits_on))
        task = loop.create_task(rest, name="checkpointers-putconn")
        self._returning.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._returned)

    def _returned(self, task: asyncio.Task[None]) -> None:
        self._returning.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.warning("returning a connection to its pool failed: %r", exc)

    async def _reconnect(self, old: AConn) -> AConn:
        """A new connection with the settings of `old`, which the executor then owns."""
        if self._dsn is None:
            raise StorageError("the PostgreSQL connection is closed and cannot be reopened")
        with contextlib.suppress(psycopg.Error):
            await old.close()
        dsn, password = self._dsn
        extra: dict[str, Any] = {} if password is None else {"password": password}
        delays = reconnect_delays(self._reconnect_timeout)
        while True:
            try:
                conn = await type(old).connect(
                    dsn, autocommit=old.autocommit, prepare_threshold=old.prepare_threshold, **extra
                )
                break
            except psycopg.Error as exc:
                delay = next(delays, None) if worth_waiting(exc) else None
                if delay is None:
                    raise translate(exc, self._schema) from exc
                await asyncio.sleep(delay)
        self._conn = conn
        self._owned = True
        return conn


async def _close_at_shutdown(pool: weakref.ref[AsyncConnectionPool[Any]]) -> None:
    """Close the saver's own pool when its event loop shuts down with it still open.

    `asyncio.run` ends by cancelling every task and waiting for them. A psycopg_pool pool
    left open has tasks that take the cancellation of a connection attempt for a failed
    attempt and schedule another, so that wait never ended (a saver from a conninfo, never
    closed, while its pool was still opening connections). This task waits for the same
    cancellation and closes the pool, which stops those tasks.
    """
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        opened = pool()
        if opened is not None and not opened.closed:
            with contextlib.suppress(Exception):
                await opened.close(timeout=1.0)
        raise


class _Resumed:
    """Awaitable rest of a coroutine whose first step already ran and yielded `waits_on`:
    awaited in a task, it hands that task what the coroutine waits on, as `await` would
    have, and forwards what the task sends or throws back (a cancellation included)."""

    __slots__ = ("_coro", "_waits_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waits_on: Any) -> None:
        self._coro = coro
        self._waits_on = waits_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, signal = self._coro, self._waits_on
        while True:
            try:
                sent = yield signal
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # forwarded, as `await` forwards it
                try:
                    signal = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    signal = coro.send(sent)
                except StopIteration:
                    return


async def _finish(rest: _Resumed) -> None:
    await rest
