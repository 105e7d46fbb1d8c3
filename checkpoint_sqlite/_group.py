"""Group commit: with `synchronous="full"`, writers of one saver share a commit and its sync.

With `synchronous="full"` every commit waits for the disk (an fsync of the WAL), and the
saver's writers queue for SQLite's write lock on a lock of the saver (`PooledExecutor`).
LangGraph writes from several threads at once: a step's `put_writes` and the next `put`
overlap (with `durability="sync"`, 268 of 270 writes of 30 agent-graph turns did), so each
writer used to wait for the syncs of those before it and then sync on its own.

Here a writer that finds the lock taken leaves its statement in a queue. The writer that
takes the lock next runs every queued statement, its own among them, in one transaction:
`BEGIN IMMEDIATE`, each statement, `COMMIT`, one sync for all of them. A writer whose
statement someone else committed returns without running anything. Every caller still
returns only after its statement is committed and synced; readers see each statement whole
(a put is one statement, atomic with its triggers) and a batch all at once.

A statement that fails inside a batch leaves the others alone (SQLite undoes only that
statement). It is reported as not run, and its writer runs it again on its own through the
general path (`_session.transaction`), which retries and translates errors as it would
have anyway. If the batch's transaction cannot begin or commit, or an error ends it, every
statement of it is reported as not run and goes that way too: nothing of it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._worker import Worker

__all__ = ["AsyncGroupCommit", "GroupCommit"]


@dataclass(slots=True, eq=False)
class _Write:
    sql: str
    row: Any
    done: bool = False
    ok: bool = False
    """Committed (only meaningful once `done`)."""
    batch: Any = None
    """The async flavor's future of the batch running it on the thread, once there is one."""


class GroupCommit:
    """The write lock of a saver's writers, with commits shared by the writers queued on it.

    `lock` is SQLite's write lock as the saver takes it: a writing plan that is not a single
    statement holds it from its `BEGIN IMMEDIATE` to its end (`_sync._run_on`).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._queue: list[_Write] = []
        self._queue_lock = threading.Lock()

    def write(self, conn: sqlite3.Connection, sql: str, row: Any) -> bool:
        """Run one autocommit statement, committed with whatever else is queued.

        `conn` must be in autocommit mode, outside a transaction. Returns True once the
        statement is committed; False when it was not run or not committed (nothing of it is
        written): the caller then runs it on its own, as any other plan.
        """
        job = _Write(sql, row)
        with self._queue_lock:
            self._queue.append(job)
        with self.lock:
            if not job.done:  # still queued: this writer commits the queue
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                _commit(conn, batch)
        return job.ok

    def __len__(self) -> int:
        """Statements waiting for a commit (for tests)."""
        return len(self._queue)


def _commit(conn: sqlite3.Connection, batch: list[_Write]) -> None:
    """Run the batch's statements in one transaction (a single one alone) and commit them;
    each write's `ok` says whether it is committed, then `done` is set."""
    committed = False
    try:
        if len(batch) == 1:  # a statement alone is its own transaction
            conn.execute(batch[0].sql, batch[0].row)
            batch[0].ok = True
        else:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                try:
                    conn.execute(job.sql, job.row)
                except sqlite3.Error:
                    if not conn.in_transaction:  # the error rolled the transaction back
                        raise
                    continue  # only this statement was undone
                job.ok = True
            conn.execute("COMMIT")
        committed = True
    except sqlite3.Error:
        pass  # nothing of the batch is written: each writer goes the general path
    finally:
        if not committed:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for job in batch:
                job.ok = False
        for job in batch:
            job.done = True


class AsyncGroupCommit:
    """`GroupCommit` for the async flavor.

    A batch runs on a `sqlite3` connection of its own, on a thread of its own (`Worker`):
    one hop for the whole batch, where each statement through aiosqlite is a hop of its own.
    `lock` is the saver's write lock (an `asyncio.Lock`); it is held until the batch's
    thread is done, also when the task that started it is cancelled (the batch still
    commits, as a statement in flight would).

    Args:
        connect: Opens the batches' connection (autocommit, the saver's settings); called on
            the thread at the first batch.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.lock = asyncio.Lock()
        self._queue: list[_Write] = []
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._worker = Worker("checkpointers-sqlite-commit")
        self._closed = False

    async def write(self, sql: str, row: Any) -> bool:
        """`GroupCommit.write`, without a connection of the caller's.

        A cancelled writer settles its statement before it raises: one still queued is taken
        out (nothing of it is written), one in a batch on the thread is waited for (it is
        committed or not by then). Left queued, it would be committed by the next writer,
        after its caller was told it was cancelled (a put landing after a delete).
        """
        job = _Write(sql, row)
        self._queue.append(job)
        try:
            await self.lock.acquire()
        except BaseException:
            if job in self._queue:
                self._queue.remove(job)
            elif job.batch is not None:  # in another writer's batch, on the thread
                await asyncio.wait((job.batch,))
            raise
        if job.done or self._closed:  # committed (or not) by the writer before; or closed
            self.lock.release()
            return job.ok  # closed: False, and the caller finds the saver closed
        try:
            batch, self._queue = self._queue, []
            done = self._worker.call(self._commit, batch, after=self.lock.release)
        except BaseException:
            self.lock.release()
            raise
        for queued in batch:
            queued.batch = done
        try:
            # Shielded: the batch goes on when this writer is cancelled, and the lock is
            # released when it ends; the writers in it wait for `done`, never cancelled.
            await asyncio.shield(done)
        except BaseException:
            await asyncio.wait((done,))
            raise
        return job.ok

    def moved_loop(self) -> None:
        """The saver moved to another event loop (the last one stopped): a new lock, and
        the queued writers, tasks of that loop, are forgotten (nothing of theirs ran)."""
        self.lock = asyncio.Lock()
        self._queue = []

    def _commit(self, batch: list[_Write]) -> None:
        if self._pid != os.getpid():  # forked: the parent's connection is not ours to use
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            try:
                self._conn = self._connect()
            except Exception:  # each writer meets the error on the general path
                for job in batch:
                    job.done = True
                return
        _commit(self._conn, batch)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()

    async def aclose(self) -> None:
        """Close the batches' connection and end the thread, after a batch in progress;
        writers still waiting for the lock then write nothing (`write` returns False)."""
        await self.lock.acquire()
        self._closed = True
        try:
            done = self._worker.call(self._close, after=self.lock.release)
        except BaseException:
            self.lock.release()
            raise
        self._worker.stop()
        await done
