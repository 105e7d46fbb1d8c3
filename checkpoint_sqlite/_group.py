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

import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["GroupCommit"]


@dataclass(slots=True, eq=False)
class _Write:
    sql: str
    row: Any
    done: bool = False
    ok: bool = False
    """Committed (only meaningful once `done`)."""
    ran: bool = False


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
    try:
        if len(batch) == 1:
            (job,) = batch
            try:
                conn.execute(job.sql, job.row)
            except sqlite3.Error:
                return
            job.ok = True
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return
        for job in batch:
            try:
                conn.execute(job.sql, job.row)
            except sqlite3.Error:
                if not conn.in_transaction:  # the error rolled the transaction back
                    return
                continue  # only this statement was undone
            job.ran = True
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            return
        for job in batch:
            job.ok = job.ran
    finally:
        if conn.in_transaction:  # not committed: nothing of the batch stays
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        for job in batch:
            job.done = True
