"""With `synchronous="full"`, writers queued on the saver's write lock share one commit
(`_group.py`): every write is still committed before its call returns, a failing statement
takes no other down, and what a batch could not commit goes through the general path."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from typing import Any

import pytest

from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver, _group
from checkpoint_sqlite._group import AsyncGroupCommit, GroupCommit, _commit, _Write
from tests.conformance.builders import checkpoint, config
from tests.sqlite._conns import connect
from tests.sqlite._threads import PUTS, THREADS, check_on_disk, put_many


def _batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(statements, statements committed) of every batch from now on."""
    seen: list[tuple[int, int]] = []
    commit = _group._commit

    def counted(conn: sqlite3.Connection, batch: list[Any]) -> None:
        commit(conn, batch)
        seen.append((len(batch), sum(w.ok for w in batch)))

    monkeypatch.setattr(_group, "_commit", counted)
    return seen


def _check_shared(batches: list[tuple[int, int]]) -> None:
    """Every write committed once, some of them in a batch with others."""
    sizes = [size for size, _ in batches]
    assert all(ok == size for size, ok in batches)
    assert sum(sizes) == THREADS * PUTS * 2  # each put and put_writes, exactly once
    assert max(sizes) > 1, "no two writers ever shared a commit"
    assert len(sizes) < THREADS * PUTS * 2


def test_concurrent_writers_share_commits_and_every_write_is_there(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(monkeypatch)
    with SqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        assert put_many(saver, "w") == []
    _check_shared(batches)
    check_on_disk(db_path, "w")


def _table() -> sqlite3.Connection:
    conn = connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y INTEGER CHECK (y >= 0))")
    return conn


_INSERT = "INSERT INTO t (x, y) VALUES (?, ?)"


def _table_file(tmp_path: Any) -> str:
    """A database file with the table `t`, for an `AsyncGroupCommit` of the test's."""
    path = str(tmp_path / "t.db")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as setup:
        setup.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y INTEGER)")
    return path


def _connect(path: str) -> sqlite3.Connection:
    return connect(path, isolation_level=None, check_same_thread=False)


def _stored(path: str) -> list[tuple[int]]:
    """What is committed in `t`, by another connection."""
    with contextlib.closing(sqlite3.connect(path)) as check:
        return check.execute("SELECT x FROM t ORDER BY x").fetchall()


def test_a_failing_statement_leaves_the_rest_of_its_batch_committed() -> None:
    conn = _table()
    batch = [_Write(_INSERT, (1, 1)), _Write(_INSERT, (2, -1)), _Write(_INSERT, (3, 3))]
    _commit(conn, batch)
    assert [(w.done, w.ok) for w in batch] == [(True, True), (True, False), (True, True)]
    assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]
    assert not conn.in_transaction


def test_a_batch_that_cannot_commit_reports_nothing_written(tmp_path: Any) -> None:
    path = str(tmp_path / "t.db")
    conn = connect(path, isolation_level=None, timeout=0.05, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y INTEGER)")
    holder = connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer: BEGIN IMMEDIATE times out
    batch = [_Write(_INSERT, (1, 1)), _Write(_INSERT, (2, 2))]
    _commit(conn, batch)
    assert [(w.done, w.ok) for w in batch] == [(True, False), (True, False)]
    holder.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert not conn.in_transaction


def test_a_writer_whose_statement_was_committed_by_another_runs_nothing() -> None:
    conn = _table()
    group = GroupCommit()
    group.lock.acquire()  # a writer in the middle of its commit
    results: list[bool] = []
    waiting = [
        threading.Thread(target=lambda v=v: results.append(group.write(conn, _INSERT, (v, v))))
        for v in (1, 2, 3)
    ]
    for thread in waiting:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(group) == 3  # all three queued behind the lock
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    group.lock.release()
    for thread in waiting:
        thread.join()
    assert results == [True, True, True]
    assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,), (3,)]
    # The first to take the lock committed all three in one transaction.
    assert seen.count("BEGIN IMMEDIATE") == 1 and seen.count("COMMIT") == 1


def test_writes_a_batch_could_not_commit_go_through_the_general_path(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(monkeypatch)
    with SqliteSaver.from_conn_string(db_path, synchronous="full", timeout=0.05) as saver:
        saver.setup()
        holder = connect(db_path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # longer than busy_timeout: every batch fails
        released = threading.Timer(0.2, lambda: holder.execute("ROLLBACK"))
        released.start()
        try:
            assert put_many(saver, "late") == []  # retried by the general path, then written
        finally:
            released.join()
            holder.close()
        assert any(ok == 0 for _, ok in batches), "no batch failed: the lock was not held"
        for n in range(THREADS):
            history = list(saver.list(config(f"late{n}")))
            assert [t.metadata["step"] for t in history] == list(range(PUTS, 0, -1))


async def _aput_many(saver: AsyncSqliteSaver, prefix: str) -> None:
    async def writer(n: int) -> None:
        stored = None
        for step in range(1, PUTS + 1):
            cp = checkpoint({"n": n, "step": step}, {"n": step, "step": step})
            stored = await saver.aput(
                stored or config(f"{prefix}{n}"), cp, {"step": step}, {"n": step, "step": step}
            )
            await saver.aput_writes(stored, [("n", step)], f"task-{step}")

    await asyncio.gather(*(writer(n) for n in range(THREADS)))


async def test_concurrent_async_writers_share_commits_and_every_write_is_there(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(monkeypatch)
    async with AsyncSqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        await _aput_many(saver, "a")
    _check_shared(batches)
    check_on_disk(db_path, "a")


async def test_a_cancelled_async_writer_leaves_the_lock_held_until_its_batch_ends(
    tmp_path: Any,
) -> None:
    path = _table_file(tmp_path)
    entered, leave = threading.Event(), threading.Event()

    def slow_connect() -> sqlite3.Connection:
        entered.set()
        leave.wait(10)  # the batch's thread is busy until the test lets it go
        return _connect(path)

    group = AsyncGroupCommit(slow_connect)
    first = asyncio.create_task(group.write(_INSERT, (1, 1)))
    assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    first.cancel()
    await asyncio.sleep(0.05)
    # The cancelled writer settles its statement first: it waits for the batch to end, so
    # its caller never sees the write land after being told it was cancelled.
    assert not first.done()
    assert group.lock.locked()  # the batch is still running on its thread
    second = asyncio.create_task(group.write(_INSERT, (2, 2)))
    await asyncio.sleep(0.05)
    assert not second.done()  # it waits for the lock, not for a connection in use
    leave.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(first, 10)
    assert await asyncio.wait_for(second, 10) is True
    await group.aclose()
    assert _stored(path) == [(1,), (2,)]


async def test_an_async_writer_cancelled_while_queued_writes_nothing(tmp_path: Any) -> None:
    path = _table_file(tmp_path)
    group = AsyncGroupCommit(lambda: _connect(path))
    await group.lock.acquire()  # a batch in progress
    queued = asyncio.create_task(group.write(_INSERT, (1, 1)))
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    group.lock.release()
    # The next writer commits the queue: the cancelled statement is no longer in it.
    assert await group.write(_INSERT, (2, 2)) is True
    await group.aclose()
    assert _stored(path) == [(2,)]


async def test_an_async_writer_still_waiting_when_the_group_closes_writes_nothing(
    tmp_path: Any,
) -> None:
    path = _table_file(tmp_path)
    group = AsyncGroupCommit(lambda: _connect(path))
    assert await group.write(_INSERT, (1, 1)) is True
    await group.lock.acquire()  # a batch in progress
    closing = asyncio.create_task(group.aclose())
    await asyncio.sleep(0)  # aclose waits for the lock first ...
    late = asyncio.create_task(group.write(_INSERT, (2, 2)))  # ... then this writer
    await asyncio.sleep(0)
    group.lock.release()
    await closing
    assert await late is False  # the executor then reports the saver closed
    assert _stored(path) == [(1,)]
    assert group._worker._thread is None  # no thread started again for it
