"""The pooled async saver's get, put and put_writes run on the event loop's thread unless they
would wait (a lock, or a commit that syncs to disk), and go to a pooled thread then."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest

import checkpoint_sqlite._aexecutor as aexecutor_module
import checkpoint_sqlite._apool as apool_module
import checkpoint_sqlite._group as group_module
from checkpoint_sqlite import AsyncSqliteSaver
from checkpoint_sqlite._backend import SqliteBackend
from checkpoint_sqlite._conn import ConnectOptions
from checkpoint_sqlite._requests import Execute, Query
from tests.conformance.builders import checkpoint, config, new_thread


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The requests performed on aiosqlite connections (each one a hop to their thread)."""
    seen: list[Any] = []
    perform = aexecutor_module._perform

    async def counting(conn: Any, op: Any) -> Any:
        seen.append(op)
        return await perform(conn, op)

    monkeypatch.setattr(aexecutor_module, "_perform", counting)
    return seen


async def test_a_get_takes_no_hop(db_path: str, hops: list[Any]) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:
        tid = new_thread()
        first = await saver.aput(config(tid), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        second = await saver.aput(
            config(tid, checkpoint_id=first["configurable"]["checkpoint_id"]),
            checkpoint({"a": 2}, {"a": 2}),
            {"step": 1},
            {"a": 2},
        )
        await saver.aput_writes(second, [("a", 3)], "task")
        hops.clear()
        latest = await saver.aget_tuple(config(tid))
        by_id = await saver.aget_tuple(first)
        missing = await saver.aget_tuple(config(new_thread()))
        assert hops == []
        assert latest is not None and latest.checkpoint["channel_values"] == {"a": 2}
        assert latest.pending_writes == [("task", "a", 3)]
        assert latest.parent_config == first
        assert by_id is not None and by_id.checkpoint["channel_values"] == {"a": 1}
        assert missing is None
        # What the loop's thread reads is what a pooled connection reads.
        via_pool = await saver._aexecutor.run(saver.backend.get(tid, "", None))  # type: ignore[union-attr]
        assert via_pool is not None
        assert via_pool.checkpoint.checkpoint_id == latest.config["configurable"]["checkpoint_id"]


async def test_a_locked_database_moves_the_read_off_the_loop(db_path: str, hops: list[Any]) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:
        tid = new_thread()
        stored = await saver.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    # Back to a rollback journal, where a writer's EXCLUSIVE lock keeps every reader out.
    raw = sqlite3.connect(db_path, isolation_level=None)
    assert raw.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    raw.close()
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    executor = apool_module.AsyncPooledExecutor(db_path, ConnectOptions(timeout=10.0))
    backend = SqliteBackend()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    timer = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
    timer.start()
    started = time.monotonic()
    try:
        row = await executor.run_quick(lambda: backend.get(tid, "", None))
    finally:
        timer.join()
        ticker.cancel()
        holder.close()
        await executor.aclose()
    waited = time.monotonic() - started
    assert row is not None
    assert row.checkpoint.checkpoint_id == stored["configurable"]["checkpoint_id"]
    assert waited >= 0.35  # it waited for the lock ...
    assert any(isinstance(op, Query) for op in hops)  # ... on a pooled connection's thread ...
    assert ticks >= 10  # ... while the event loop went on running other tasks


async def test_puts_and_writes_take_no_hop(db_path: str, hops: list[Any]) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:
        tid = new_thread()
        hops.clear()
        stored = await saver.aput(config(tid), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        await saver.aput_writes(stored, [("a", 2), ("b", 3)], "task")
        assert hops == []
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:  # new connections
        got = await saver.aget_tuple(config(tid))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
        assert got.pending_writes == [("task", "a", 2), ("task", "b", 3)]


async def test_with_full_sync_writes_take_the_thread(
    db_path: str, hops: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    commit = group_module._commit

    def on_thread(conn: Any, batch: Any) -> None:
        threads.append(threading.get_ident())
        commit(conn, batch)

    monkeypatch.setattr(group_module, "_commit", on_thread)
    async with AsyncSqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        tid = new_thread()
        hops.clear()
        stored = await saver.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
        # The put, committed by the group commit on a worker thread, not the loop's.
        assert len(threads) == 1 and threads[0] != threading.get_ident()
        hops.clear()
        got = await saver.aget_tuple(stored)
        assert hops == []  # reads still take no hop
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


async def test_a_held_write_lock_moves_the_put_off_the_loop(db_path: str, hops: list[Any]) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:
        tid = new_thread()
        holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # WAL: readers go on, writers wait
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        hops.clear()
        timer = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
        timer.start()
        started = time.monotonic()
        try:
            stored = await saver.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
        finally:
            timer.join()
            ticker.cancel()
            holder.close()
        waited = time.monotonic() - started
        assert waited >= 0.35
        assert any(isinstance(op, Execute) for op in hops)
        assert ticks >= 10
        got = await saver.aget_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


async def test_a_closed_saver_says_so(db_path: str) -> None:
    saver = AsyncSqliteSaver.from_conn_string(db_path)
    async with saver as opened:
        tid = new_thread()
        await opened.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    with pytest.raises(Exception, match="closed"):
        await opened.aget_tuple(config(tid))
